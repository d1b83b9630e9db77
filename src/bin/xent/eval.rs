//! `xent eval`: one operation on .npy files.

use crate::{DeviceKind, Op};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use wgpu_xent::npy::{self, NpyTarget};
use wgpu_xent::{
    cpu, BackwardOptions, Context, LossAndGrad, LossOptions, Output, Reduction, Result, Target,
    Tensor, XentError,
};

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
    /// Write d(loss)/d(input) here (float32, the input's shape), from the fused forward +
    /// backward. For `none` it is the gradient of the summed losses; for log-softmax and
    /// softmax, the gradient of the summed output.
    #[arg(long)]
    grad_out: Option<PathBuf>,
    /// Write the per-row log-sum-exp here (cross-entropy; float32 of shape [N, d1..dk]).
    #[arg(long)]
    lse_out: Option<PathBuf>,
    /// z-loss scale: adds z·lse² per non-ignored row (cross-entropy).
    #[arg(long, default_value_t = 0.0)]
    z_loss: f32,
    /// Logit soft-capping: logits become C·tanh(x/C) first (cross-entropy).
    #[arg(long)]
    softcap: Option<f32>,
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
    if a.lse_out.is_some() && a.op != Op::CrossEntropy {
        return Err(XentError::InvalidArgument(
            "--lse-out applies to cross-entropy only".into(),
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
        z_loss: a.z_loss,
        softcap: a.softcap,
    };
    let backward = BackwardOptions {
        grad_output: 1.0,
        return_lse: a.lse_out.is_some(),
    };
    let want_grad = a.grad_out.is_some();
    let ctx = match a.device {
        DeviceKind::Gpu => Some(Context::new()?),
        DeviceKind::Cpu => None,
    };
    let result: LossAndGrad = match a.op {
        Op::LogSoftmax | Op::Softmax => {
            let log = a.op == Op::LogSoftmax;
            let out = match (&ctx, log) {
                (Some(ctx), true) => ctx.log_softmax(x, a.dim)?,
                (Some(ctx), false) => ctx.softmax(x, a.dim)?,
                (None, true) => cpu::log_softmax(x, a.dim)?,
                (None, false) => cpu::softmax(x, a.dim)?,
            };
            let grad = if want_grad {
                let ones = vec![1.0f32; out.data.len()];
                let (gy, y) = (
                    Tensor::new(&ones, &out.shape),
                    Tensor::new(&out.data, &out.shape),
                );
                Some(match (&ctx, log) {
                    (Some(ctx), true) => ctx.log_softmax_backward(gy, y, a.dim)?,
                    (Some(ctx), false) => ctx.softmax_backward(gy, y, a.dim)?,
                    (None, true) => cpu::log_softmax_backward(gy, y, a.dim)?,
                    (None, false) => cpu::softmax_backward(gy, y, a.dim)?,
                })
            } else {
                None
            };
            LossAndGrad {
                loss: out,
                grad,
                lse: None,
            }
        }
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
            let forward_only = |out: Output| LossAndGrad {
                loss: out,
                grad: None,
                lse: None,
            };
            let with_lse = |(loss, lse): (Output, Output)| LossAndGrad {
                loss,
                grad: None,
                lse: Some(lse),
            };
            match (a.op, &ctx, want_grad) {
                (Op::CrossEntropy, Some(ctx), true) => {
                    ctx.cross_entropy_backward(x, target, &opts, &backward)?
                }
                (Op::CrossEntropy, None, true) => {
                    cpu::cross_entropy_backward(x, target, &opts, &backward)?
                }
                (Op::CrossEntropy, Some(ctx), false) if backward.return_lse => {
                    with_lse(ctx.cross_entropy_with_lse(x, target, &opts)?)
                }
                (Op::CrossEntropy, None, false) if backward.return_lse => {
                    with_lse(cpu::cross_entropy_with_lse(x, target, &opts)?)
                }
                (Op::CrossEntropy, Some(ctx), false) => {
                    forward_only(ctx.cross_entropy(x, target, &opts)?)
                }
                (Op::CrossEntropy, None, false) => {
                    forward_only(cpu::cross_entropy(x, target, &opts)?)
                }
                (_, Some(ctx), true) => ctx.nll_loss_backward(x, target, &opts, &backward)?,
                (_, None, true) => cpu::nll_loss_backward(x, target, &opts, &backward)?,
                (_, Some(ctx), false) => forward_only(ctx.nll_loss(x, target, &opts)?),
                (_, None, false) => forward_only(cpu::nll_loss(x, target, &opts)?),
            }
        }
    };
    // Everything is computed before anything is written: bad input leaves no output behind.
    npy::write_f32(&a.out, &result.loss.data, &result.loss.shape)?;
    if let (Some(path), Some(g)) = (&a.grad_out, &result.grad) {
        npy::write_f32(path, &g.data, &g.shape)?;
    }
    if let (Some(path), Some(l)) = (&a.lse_out, &result.lse) {
        npy::write_f32(path, &l.data, &l.shape)?;
    }
    Ok(())
}
