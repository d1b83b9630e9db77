//! `xent eval`: one operation on .npy files.

use crate::{DeviceKind, Op};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use wgpu_xent::npy::{self, NpyTarget};
use wgpu_xent::{cpu, Context, LossOptions, Output, Reduction, Result, Target, Tensor, XentError};

#[derive(Args)]
pub struct EvalArgs {
    /// The operation.
    #[arg(value_enum)]
    op: Op,
    /// Logits (log-probabilities for nll-loss): float32 .npy.
    #[arg(long)]
    input: PathBuf,
    /// Class indices (int64 or int32 .npy) or class probabilities (float32, the input's shape).
    #[arg(long)]
    target: Option<PathBuf>,
    /// Per-class weight: float32 .npy of shape [C].
    #[arg(long)]
    weight: Option<PathBuf>,
    /// Targets equal to this are ignored.
    #[arg(long, default_value_t = -100, allow_negative_numbers = true)]
    ignore_index: i64,
    /// none, mean or sum.
    #[arg(long, value_enum, default_value_t = CliReduction::Mean)]
    reduction: CliReduction,
    /// Label smoothing ε in [0, 1] (cross-entropy).
    #[arg(long, default_value_t = 0.0)]
    label_smoothing: f32,
    /// The class axis of log-softmax / softmax; negative counts from the end.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    dim: i64,
    /// The input's dtype.
    #[arg(long, value_enum, default_value_t = InputDtype::F32)]
    input_dtype: InputDtype,
    /// Where to run.
    #[arg(long, value_enum, default_value_t = DeviceKind::Gpu)]
    device: DeviceKind,
    /// Output: float32 .npy (0-d for mean and sum).
    #[arg(long)]
    out: PathBuf,
    /// Write d(loss)/d(input) here (not yet supported).
    #[arg(long)]
    grad_out: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum CliReduction {
    None,
    Mean,
    Sum,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum InputDtype {
    F32,
    F16,
    Bf16,
}

pub fn run(a: &EvalArgs) -> Result<()> {
    if a.input_dtype != InputDtype::F32 {
        return Err(XentError::Unsupported(format!(
            "--input-dtype {:?} is not yet supported (f32 only)",
            a.input_dtype
        )));
    }
    if a.grad_out.is_some() {
        return Err(XentError::Unsupported(
            "--grad-out is not yet supported".into(),
        ));
    }
    let input = npy::read_f32(&a.input)?;
    let x = Tensor::new(&input.data, &input.shape);
    let weight = a.weight.as_ref().map(npy::read_f32).transpose()?;
    if let Some(w) = &weight {
        if w.shape.len() != 1 {
            return Err(XentError::Npy {
                path: a.weight.as_ref().unwrap().display().to_string(),
                message: format!("weight must be 1-D of shape [C], got shape {:?}", w.shape),
            });
        }
    }
    let opts = LossOptions {
        weight: weight.as_ref().map(|w| w.data.as_slice()),
        ignore_index: a.ignore_index,
        reduction: match a.reduction {
            CliReduction::None => Reduction::None,
            CliReduction::Mean => Reduction::Mean,
            CliReduction::Sum => Reduction::Sum,
        },
        label_smoothing: a.label_smoothing,
        ..Default::default()
    };
    let ctx = match a.device {
        DeviceKind::Gpu => Some(Context::new()?),
        DeviceKind::Cpu => None,
    };
    let out: Output = match a.op {
        Op::LogSoftmax => match &ctx {
            Some(ctx) => ctx.log_softmax(x, a.dim)?,
            None => cpu::log_softmax(x, a.dim)?,
        },
        Op::Softmax => match &ctx {
            Some(ctx) => ctx.softmax(x, a.dim)?,
            None => cpu::softmax(x, a.dim)?,
        },
        Op::CrossEntropy | Op::NllLoss => {
            let path = a
                .target
                .as_ref()
                .ok_or_else(|| XentError::InvalidArgument(format!("{:?} needs --target", a.op)))?;
            let t = npy::read_target(path)?;
            let target = match &t {
                NpyTarget::I64(t) => Target::I64(Tensor::new(&t.data, &t.shape)),
                NpyTarget::I32(t) => Target::I32(Tensor::new(&t.data, &t.shape)),
                NpyTarget::F32(t) => Target::Probs(Tensor::new(&t.data, &t.shape)),
            };
            match (a.op, &ctx) {
                (Op::CrossEntropy, Some(ctx)) => ctx.cross_entropy(x, target, &opts)?,
                (Op::CrossEntropy, None) => cpu::cross_entropy(x, target, &opts)?,
                (_, Some(ctx)) => ctx.nll_loss(x, target, &opts)?,
                (_, None) => cpu::nll_loss(x, target, &opts)?,
            }
        }
    };
    npy::write_f32(&a.out, &out.data, &out.shape)
}
