//! `xent eval`: one operation on .npy files.

use crate::error::{CliError, Result};
use crate::npy;
use crate::ops::run_op;
use crate::output::{check_distinct, Staged};
use crate::{data, DeviceKind, Op};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use wgpu_xent::{Context, DType, LossOptions, Reduction};

#[derive(Args)]
pub struct EvalArgs {
    /// The operation.
    #[arg(value_enum)]
    op: Op,
    /// Logits (log-probabilities for nll-loss): float32 .npy; `-` reads stdin.
    #[arg(long)]
    input: PathBuf,
    /// Class indices (int64 or int32 .npy) or class probabilities (float32, the input's shape);
    /// `-` reads stdin.
    #[arg(long)]
    target: Option<PathBuf>,
    /// Per-class weight: float32 .npy of shape `[C]`; `-` reads stdin.
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
    /// The input's dtype: f32 (`<f4`), f16 (`<f2`) or bf16 (uint16 bit patterns). Default:
    /// the file's own (f32 or f16).
    #[arg(long, value_enum)]
    input_dtype: Option<InputDtype>,
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

/// `none`, `mean` or `sum`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum CliReduction {
    None,
    Mean,
    Sum,
}

impl From<CliReduction> for Reduction {
    fn from(r: CliReduction) -> Self {
        match r {
            CliReduction::None => Reduction::None,
            CliReduction::Mean => Reduction::Mean,
            CliReduction::Sum => Reduction::Sum,
        }
    }
}

/// The dtype of the logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InputDtype {
    F32,
    F16,
    Bf16,
}

impl From<InputDtype> for DType {
    fn from(d: InputDtype) -> Self {
        match d {
            InputDtype::F32 => DType::F32,
            InputDtype::F16 => DType::F16,
            InputDtype::Bf16 => DType::BF16,
        }
    }
}

pub fn run(a: &EvalArgs) -> Result<()> {
    if a.lse_out.is_some() && a.op != Op::CrossEntropy {
        return Err(CliError::Arg(
            "--lse-out applies to cross-entropy only".into(),
        ));
    }
    check_distinct(&[
        ("--out", Some(&a.out)),
        ("--grad-out", a.grad_out.as_deref()),
        ("--lse-out", a.lse_out.as_deref()),
    ])?;
    let inputs = data::read(
        &a.input,
        a.input_dtype.map(DType::from),
        a.target.as_ref(),
        a.weight.as_ref(),
    )?;
    let opts = LossOptions {
        weight: inputs.weight.as_deref(),
        ignore_index: a.ignore_index,
        reduction: a.reduction.into(),
        label_smoothing: a.label_smoothing,
        z_loss: a.z_loss,
        softcap: a.softcap,
    };
    let ctx = match a.device {
        DeviceKind::Gpu => Some(Context::new()?),
        DeviceKind::Cpu => None,
    };
    let result = run_op(
        ctx.as_ref(),
        a.op,
        &inputs,
        &opts,
        a.grad_out.is_some(),
        a.lse_out.is_some(),
        a.dim,
    )?;
    // Everything is computed, then written beside its destination, then renamed into place:
    // bad input, a full disk or a kill leaves no partial output and the older files untouched.
    let mut staged = Staged::default();
    let outputs = [
        (Some(&a.out), Some(&result.loss)),
        (a.grad_out.as_ref(), result.grad.as_ref()),
        (a.lse_out.as_ref(), result.lse.as_ref()),
    ];
    for (path, t) in outputs {
        if let (Some(path), Some(t)) = (path, t) {
            staged.stage(path, |w| npy::write_f32_to(w, &t.data, &t.shape))?;
        }
    }
    staged.commit()?;
    Ok(())
}
