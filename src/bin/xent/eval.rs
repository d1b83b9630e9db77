//! `xent eval`: one operation on .npy files.

use crate::error::{CliError, Result};
use crate::linear::{self, LinearFiles};
use crate::npy;
use crate::ops::{refuse_unused, run_op, run_wide};
use crate::output::{check_outputs, Staged};
use crate::results::{Results, Values};
use crate::{data, sharded, DeviceKind, Op};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};
use wgpu_xent::cpu::wide::WideOptions;
use wgpu_xent::{Context, DType, LossOptions, Reduction};

#[derive(Args)]
// A negative value after a flag is the value (`--label-smoothing -0.1` reaches the range check).
#[command(allow_negative_numbers = true)]
pub struct EvalArgs {
    /// The operation.
    #[arg(value_enum)]
    op: Op,
    /// FloatTensor (log-probabilities for nll-loss; the hidden states [N, D] or [D] for
    /// linear-cross-entropy): float32, float64 or float16 .npy; `-` reads stdin.
    #[arg(long)]
    input: PathBuf,
    /// The classifier weight [C, D], stored as --input is. linear-cross-entropy.
    #[arg(long)]
    linear_weight: Option<PathBuf>,
    /// The classifier bias [C], stored as --input is. linear-cross-entropy.
    #[arg(long)]
    linear_bias: Option<PathBuf>,
    /// Class indices (int64, int32, uint32 or uint8 .npy) or class probabilities (float32 or float64, the
    /// input's shape); `-` reads stdin. cross-entropy and nll-loss.
    #[arg(long)]
    target: Option<PathBuf>,
    /// Per-class weight: float32, float64 or float16 .npy of shape `[C]`; `-` reads stdin.
    /// cross-entropy and nll-loss.
    #[arg(long)]
    weight: Option<PathBuf>,
    /// Targets equal to this are ignored [default: -100]. cross-entropy and nll-loss.
    #[arg(long)]
    ignore_index: Option<i64>,
    /// none, mean or sum [default: mean]. cross-entropy and nll-loss.
    #[arg(long, value_enum)]
    reduction: Option<CliReduction>,
    /// Label smoothing ε in [0, 1] [default: 0]. cross-entropy.
    #[arg(long)]
    label_smoothing: Option<f64>,
    /// The class axis; negative counts from the end [default: -1]. log-softmax and softmax.
    #[arg(long)]
    dim: Option<i64>,
    /// The input's dtype (and linear-cross-entropy's weight and bias): f32 (`<f4`), f16
    /// (`<f2`) or bf16 (uint16 bit patterns). Default: the file's own (f32, f64 or f16).
    #[arg(long, value_enum)]
    input_dtype: Option<InputDtype>,
    /// Where to run.
    #[arg(long, value_enum, default_value_t = DeviceKind::Gpu)]
    device: DeviceKind,
    /// Output: .npy (0-d for mean and sum); float64 for a float64 input on the CPU, else
    /// float32.
    #[arg(long)]
    out: PathBuf,
    /// Write d(loss)/d(input) here (the input's shape), from the fused forward + backward.
    /// For `none` it is the gradient of the summed losses; for log-softmax and softmax, the
    /// gradient of the summed output.
    #[arg(long)]
    grad_out: Option<PathBuf>,
    /// Write d(loss)/d(linear_weight) here ([C, D]). linear-cross-entropy.
    #[arg(long)]
    grad_linear_weight_out: Option<PathBuf>,
    /// Write d(loss)/d(linear_bias) here ([C]; needs --linear-bias). linear-cross-entropy.
    #[arg(long)]
    grad_linear_bias_out: Option<PathBuf>,
    /// Write the per-row log-sum-exp here (shape [N, d1..dk]). cross-entropy.
    #[arg(long)]
    lse_out: Option<PathBuf>,
    /// z-loss scale: adds z·lse² per non-ignored row [default: 0]. cross-entropy.
    #[arg(long)]
    z_loss: Option<f64>,
    /// Logit soft-capping: logits become C·tanh(x/C) first. cross-entropy.
    #[arg(long)]
    softcap: Option<f64>,
    /// Split the classes over this many devices: the adapters wgpu finds on the backends
    /// `WGPU_BACKEND` names (e.g. `vulkan,gl`), in turn, one device each. Their partials are
    /// merged on the host; the outputs are the unsharded call's. Every op (never more
    /// devices than classes); not with --lse-out or --device cpu.
    #[arg(long)]
    shards: Option<usize>,
    /// Print nothing on success (by default: one line, the loss or the outputs written).
    #[arg(long, short)]
    quiet: bool,
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

/// An output to write: (what, path, values, shape).
type Written<'a> = (&'static str, &'a Path, Values<'a>, &'a [usize]);

/// The outputs asked for, in order; an error (nothing is written) where one asked for
/// was not computed.
fn outputs<'a>(results: &'a Results, a: &'a EvalArgs) -> Result<Vec<Written<'a>>> {
    let paths = [
        ("out", Some(&a.out)),
        ("grad", a.grad_out.as_ref()),
        ("grad_linear_weight", a.grad_linear_weight_out.as_ref()),
        ("grad_linear_bias", a.grad_linear_bias_out.as_ref()),
        ("lse", a.lse_out.as_ref()),
    ];
    let mut out = Vec::new();
    for ((what, path), array) in paths.into_iter().zip(results.arrays()) {
        match (path, array) {
            (Some(path), Some((v, shape))) => out.push((what, path.as_path(), v, shape)),
            (Some(path), None) => {
                return Err(CliError::Arg(format!(
                    "{} computed no {what} for {}",
                    a.op,
                    path.display()
                )))
            }
            (None, _) => {}
        }
    }
    Ok(out)
}

/// Refuses the flags `a.op` does not use.
fn check_flags(a: &EvalArgs) -> Result<()> {
    refuse_unused(
        a.op,
        &[
            ("--target", a.target.is_some()),
            ("--weight", a.weight.is_some()),
            ("--ignore-index", a.ignore_index.is_some()),
            ("--reduction", a.reduction.is_some()),
            ("--label-smoothing", a.label_smoothing.is_some()),
            ("--z-loss", a.z_loss.is_some()),
            ("--softcap", a.softcap.is_some()),
            ("--lse-out", a.lse_out.is_some()),
            ("--dim", a.dim.is_some()),
            ("--linear-weight", a.linear_weight.is_some()),
            ("--linear-bias", a.linear_bias.is_some()),
            (
                "--grad-linear-weight-out",
                a.grad_linear_weight_out.is_some(),
            ),
            ("--grad-linear-bias-out", a.grad_linear_bias_out.is_some()),
            ("--shards", a.shards.is_some()),
        ],
    )?;
    if a.shards.is_some() && matches!(a.device, DeviceKind::Cpu) {
        return Err(CliError::Arg(
            "--shards splits the classes over GPU devices: not with --device cpu".into(),
        ));
    }
    if a.shards.is_some() && a.lse_out.is_some() {
        return Err(CliError::Arg(
            "--lse-out is not written by a sharded call (--shards)".into(),
        ));
    }
    if a.grad_linear_bias_out.is_some() && a.linear_bias.is_none() {
        return Err(CliError::Arg(
            "--grad-linear-bias-out needs --linear-bias: there is no bias to differentiate".into(),
        ));
    }
    Ok(())
}

/// The one line on stderr when float64 inputs (`flags`) are rounded to float32; `wide`: the
/// input itself is float64.
fn note_rounding(a: &EvalArgs, flags: &[&str], wide: bool) {
    if flags.is_empty() {
        return;
    }
    let flags = flags.join(", ");
    match (a.device, wide) {
        (DeviceKind::Gpu, _) => warn!(
            "note: the GPU computes in float32: float64 {flags} rounded to float32, outputs are \
             float32 (--device cpu computes and writes float64)"
        ),
        (DeviceKind::Cpu, false) => warn!(
            "note: float64 {flags} rounded to float32 to match the float32 input; outputs are \
             float32"
        ),
        (DeviceKind::Cpu, true) => {}
    }
}

/// The options of `a`: PyTorch's float64 ones for the f64 path, and as f32.
fn options<'a>(a: &EvalArgs, weight: Option<&'a [f32]>) -> (WideOptions<'static>, LossOptions<'a>) {
    let wide = WideOptions {
        weight: None,
        ignore_index: a.ignore_index.unwrap_or(-100),
        reduction: a.reduction.unwrap_or(CliReduction::Mean).into(),
        label_smoothing: a.label_smoothing.unwrap_or(0.0),
        z_loss: a.z_loss.unwrap_or(0.0),
        softcap: a.softcap,
    };
    let opts = LossOptions {
        weight,
        ignore_index: wide.ignore_index,
        reduction: wide.reduction,
        label_smoothing: wide.label_smoothing as f32,
        z_loss: wide.z_loss as f32,
        softcap: wide.softcap.map(|c| c as f32),
    };
    (wide, opts)
}

/// cross-entropy, nll-loss, log-softmax and softmax.
fn compute(a: &EvalArgs) -> Result<Results> {
    let inputs = data::read(
        &a.input,
        a.input_dtype.map(DType::from),
        a.target.as_ref(),
        a.weight.as_ref(),
    )?;
    note_rounding(a, &inputs.wide.flags(), inputs.wide.x.is_some());
    let (wide, opts) = options(a, inputs.weight.as_deref());
    let (grad, lse, dim) = (
        a.grad_out.is_some(),
        a.lse_out.is_some(),
        a.dim.unwrap_or(-1),
    );
    Ok(match (a.device, inputs.wide.x.is_some()) {
        (DeviceKind::Cpu, true) => Results::F64(run_wide(a.op, &inputs, &wide, grad, lse, dim)?),
        (DeviceKind::Cpu, false) => {
            Results::F32(run_op(None, a.op, &inputs, &opts, grad, lse, dim)?)
        }
        (DeviceKind::Gpu, _) => match a.shards {
            Some(count) => {
                let classes = sharded::classes(&inputs.shape, a.op, dim);
                let devices = sharded::devices(count, classes)?;
                // No classes to split: the unsharded call, on the first device.
                Results::F32(match classes {
                    0 => run_op(Some(&devices[0]), a.op, &inputs, &opts, grad, lse, dim)?,
                    _ => sharded::run(&devices, a.op, &inputs, &opts, (grad, dim))?,
                })
            }
            None => {
                let ctx = Context::with_options(wgpu_xent::ContextOptions::from_env()?)?;
                Results::F32(run_op(Some(&ctx), a.op, &inputs, &opts, grad, lse, dim)?)
            }
        },
    })
}

/// linear-cross-entropy: float64 results from the CPU reference on a float64 input, else f32.
fn compute_linear(a: &EvalArgs) -> Result<Results> {
    let li = linear::read(&LinearFiles {
        input: &a.input,
        linear_weight: a.linear_weight.as_ref(),
        linear_bias: a.linear_bias.as_ref(),
        target: a.target.as_ref(),
        weight: a.weight.as_ref(),
        dtype: a.input_dtype.map(DType::from),
    })?;
    note_rounding(a, &li.wide_flags(), li.is_wide());
    let (wide, opts) = options(a, li.inputs.weight.as_deref());
    let grad = [
        &a.grad_out,
        &a.grad_linear_weight_out,
        &a.grad_linear_bias_out,
    ]
    .iter()
    .any(|p| p.is_some());
    Ok(match (a.device, li.is_wide()) {
        (DeviceKind::Cpu, true) => Results::WideLinear(linear::run_cpu(&li, &wide, grad, true)?),
        (DeviceKind::Cpu, false) => {
            Results::Linear(linear::narrow(linear::run_cpu(&li, &wide, grad, false)?))
        }
        (DeviceKind::Gpu, _) => match a.shards {
            Some(count) => {
                let classes = li.linear_weight.shape.first().copied().unwrap_or(0);
                let devices = sharded::devices(count, classes)?;
                Results::Linear(match classes {
                    0 => linear::run_gpu(&devices[0], &li, &opts, grad)?,
                    _ => linear::run_sharded(&devices, &li, &opts, grad)?,
                })
            }
            None => Results::Linear(linear::run_gpu(
                &Context::with_options(wgpu_xent::ContextOptions::from_env()?)?,
                &li,
                &opts,
                grad,
            )?),
        },
    })
}

pub fn run(a: &EvalArgs) -> Result<()> {
    check_flags(a)?;
    check_outputs(&[
        ("--out", Some(&a.out)),
        ("--grad-out", a.grad_out.as_deref()),
        (
            "--grad-linear-weight-out",
            a.grad_linear_weight_out.as_deref(),
        ),
        ("--grad-linear-bias-out", a.grad_linear_bias_out.as_deref()),
        ("--lse-out", a.lse_out.as_deref()),
    ])?;
    let results = match a.op {
        Op::LinearCrossEntropy => compute_linear(a)?,
        _ => compute(a)?,
    };
    // Everything is computed, then written beside its destination, then renamed into place:
    // bad input, a full disk or a kill leaves no partial output and the older files untouched.
    let outputs = outputs(&results, a)?;
    let mut staged = Staged::default();
    for (_, path, values, shape) in &outputs {
        staged.stage(path, |w| match values {
            Values::F32(v) => npy::write_to(w, v, shape),
            Values::F64(v) => npy::write_to(w, v, shape),
        })?;
    }
    staged.commit()?;
    if !a.quiet {
        out!("{}", summary(a, &outputs))?;
    }
    Ok(())
}

/// One line: `cross-entropy mean 1.609438 -> o.npy; grad [4, 5] float32 -> g.npy`.
fn summary(a: &EvalArgs, outputs: &[Written]) -> String {
    let parts: Vec<String> = outputs
        .iter()
        .map(|(what, path, values, shape)| {
            let path = path.display();
            let loss = matches!(
                a.op,
                Op::CrossEntropy | Op::NllLoss | Op::LinearCrossEntropy
            );
            match (*what, shape.is_empty() && loss) {
                ("out", true) => {
                    let r = a.reduction.unwrap_or(CliReduction::Mean);
                    let r = format!("{r:?}").to_lowercase();
                    format!("{} {r} {} -> {path}", a.op, values.first())
                }
                ("out", false) => format!("{} {shape:?} {} -> {path}", a.op, values.dtype()),
                _ => format!("{what} {shape:?} {} -> {path}", values.dtype()),
            }
        })
        .collect();
    parts.join("; ")
}
