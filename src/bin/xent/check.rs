//! `xent check`: the GPU against the CPU reference on one configuration.

use crate::compare::{compare, compare_scaled, scale_of, Comparison};
use crate::data::{self, Inputs, Synth};
use crate::error::{CliError, Result};
use crate::eval::{CliReduction, InputDtype};
use crate::linear::{self, LinearFiles, LinearInputs};
use crate::ops::{refuse_unused, run_op};
use crate::Op;
use clap::Args;
use std::path::PathBuf;
use wgpu_xent::cpu::wide::WideOptions;
use wgpu_xent::{Context, LossOptions, Output};

/// Default `--tol-abs`.
pub const TOL_ABS: f64 = 1e-5;
/// Default `--tol-rel`.
pub const TOL_REL: f64 = 1e-4;

#[derive(Args)]
// A negative value after a flag is the value (`--label-smoothing -0.1` reaches the range check).
#[command(allow_negative_numbers = true)]
pub struct CheckArgs {
    /// The operation.
    #[arg(long, value_enum, default_value_t = Op::CrossEntropy)]
    op: Op,
    /// Generate data of this shape: NxC or NxCxD1x.. (default 64x1000 without --input);
    /// NxDxC for linear-cross-entropy (default 64x128x1000, with a bias).
    #[arg(long)]
    shape: Option<String>,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Read the logits from this .npy instead of generating them (`-`: stdin).
    #[arg(long, conflicts_with = "shape")]
    input: Option<PathBuf>,
    /// Targets .npy (int64/int32/uint32 classes, or float32 probabilities), with --input.
    #[arg(long, requires = "input")]
    target: Option<PathBuf>,
    /// Weight .npy (float32 `[C]`), with --input.
    #[arg(long, requires = "input")]
    weight: Option<PathBuf>,
    /// The classifier weight .npy `[C, D]`, with --input. linear-cross-entropy.
    #[arg(long, requires = "input")]
    linear_weight: Option<PathBuf>,
    /// The classifier bias .npy `[C]`, with --input. linear-cross-entropy.
    #[arg(long, requires = "input")]
    linear_bias: Option<PathBuf>,
    /// Generate a random per-class weight.
    #[arg(long)]
    weighted: bool,
    /// Fraction of generated targets set to --ignore-index.
    #[arg(long, default_value_t = 0.0)]
    ignore_frac: f32,
    /// Targets equal to this are ignored [default: -100].
    #[arg(long)]
    ignore_index: Option<i64>,
    /// Generate class-probability targets instead of class indices.
    #[arg(long)]
    probs: bool,
    /// none, mean or sum [default: mean].
    #[arg(long, value_enum)]
    reduction: Option<CliReduction>,
    /// Label smoothing ε in [0, 1] [default: 0].
    #[arg(long)]
    label_smoothing: Option<f32>,
    /// z-loss scale [default: 0].
    #[arg(long)]
    z_loss: Option<f32>,
    /// Logit soft-capping.
    #[arg(long)]
    softcap: Option<f32>,
    /// Also compare d(loss)/d(input).
    #[arg(long)]
    grad: bool,
    /// The class axis of log-softmax / softmax [default: -1].
    #[arg(long)]
    dim: Option<i64>,
    /// The logits' dtype.
    #[arg(long, value_enum, default_value_t = InputDtype::F32)]
    dtype: InputDtype,
    /// Absolute tolerance: an element passes when |gpu - cpu| <= tol_abs + tol_rel·|cpu|.
    #[arg(long, default_value_t = TOL_ABS)]
    tol_abs: f64,
    /// Relative tolerance.
    #[arg(long, default_value_t = TOL_REL)]
    tol_rel: f64,
    /// Testing only: adds 1e-2 to the first GPU output, so that the check must fail.
    #[arg(long, hide = true)]
    perturb: bool,
    /// Testing only: zeroes the last quarter of the GPU output, so that the check must fail.
    #[arg(long, hide = true)]
    zero_tail: bool,
}

/// Refuses a tolerance that is NaN, infinite or negative (NaN would pass everything).
fn check_tolerance(flag: &str, v: f64) -> Result<()> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(CliError::Arg(format!(
            "{flag} {v}: a tolerance must be a finite number >= 0"
        )))
    }
}

/// The inputs: read from --input, or generated (after checking that they fit in memory).
fn inputs(a: &CheckArgs) -> Result<Inputs> {
    if let Some(path) = &a.input {
        return data::read(
            path,
            Some(a.dtype.into()),
            a.target.as_ref(),
            a.weight.as_ref(),
        );
    }
    let s = a.shape.as_deref().unwrap_or("64x1000");
    let shape = data::parse_shape(s)?;
    if shape[1] == 0 && matches!(a.op, Op::CrossEntropy | Op::NllLoss) {
        return Err(CliError::Arg(format!(
            "--shape {s}: C = 0 leaves no class to draw targets from"
        )));
    }
    // FloatTensor (f32 and 16-bit), probabilities, and the outputs and gradients of both sides.
    let per_logit = 4 * (3 + u64::from(a.probs) + 2 * u64::from(a.grad)) + 2;
    data::check_fits(s, &shape, per_logit)?;
    let synth = Synth {
        seed: a.seed,
        weighted: a.weighted,
        ignore_frac: a.ignore_frac,
        ignore_index: a.ignore_index.unwrap_or(-100),
        probs: a.probs,
    };
    Ok(data::quantize(
        data::synthesize(&shape, &synth),
        a.dtype.into(),
    ))
}

/// The testing switches: a perturbed first output, or a tail of zeros.
fn perturb(a: &CheckArgs, out: &mut [f32]) -> Result<()> {
    if out.is_empty() && (a.perturb || a.zero_tail) {
        return Err(CliError::Arg("--perturb: the output is empty".into()));
    }
    if a.perturb {
        out[0] += 1e-2;
    }
    if a.zero_tail {
        let from = out.len() - out.len().div_ceil(4);
        out[from..].fill(0.0);
    }
    Ok(())
}

/// Refuses the flags `a.op` does not use.
fn check_flags(a: &CheckArgs) -> Result<()> {
    refuse_unused(
        a.op,
        &[
            ("--target", a.target.is_some()),
            ("--weight", a.weight.is_some()),
            ("--weighted", a.weighted),
            ("--ignore-frac", a.ignore_frac != 0.0),
            ("--ignore-index", a.ignore_index.is_some()),
            ("--probs", a.probs),
            ("--reduction", a.reduction.is_some()),
            ("--label-smoothing", a.label_smoothing.is_some()),
            ("--z-loss", a.z_loss.is_some()),
            ("--softcap", a.softcap.is_some()),
            ("--dim", a.dim.is_some()),
            ("--linear-weight", a.linear_weight.is_some()),
            ("--linear-bias", a.linear_bias.is_some()),
        ],
    )
}

/// The options of `a`, for the GPU and for the f64 CPU reference.
fn options<'a>(
    a: &CheckArgs,
    weight: Option<&'a [f32]>,
) -> (LossOptions<'a>, WideOptions<'static>) {
    let opts = LossOptions {
        weight,
        ignore_index: if a.probs {
            -100
        } else {
            a.ignore_index.unwrap_or(-100)
        },
        reduction: a.reduction.unwrap_or(CliReduction::Mean).into(),
        label_smoothing: a.label_smoothing.unwrap_or(0.0),
        z_loss: a.z_loss.unwrap_or(0.0),
        softcap: a.softcap,
    };
    let wide = WideOptions {
        weight: None,
        ignore_index: opts.ignore_index,
        reduction: opts.reduction,
        label_smoothing: opts.label_smoothing as f64,
        z_loss: opts.z_loss as f64,
        softcap: opts.softcap.map(f64::from),
    };
    (opts, wide)
}

pub fn run(a: &CheckArgs) -> Result<bool> {
    check_flags(a)?;
    check_tolerance("--tol-abs", a.tol_abs)?;
    check_tolerance("--tol-rel", a.tol_rel)?;
    if a.op == Op::LinearCrossEntropy {
        return check_linear(a);
    }
    let inputs = inputs(a)?;
    let (opts, _) = options(a, inputs.weight.as_deref());
    let dim = a.dim.unwrap_or(-1);
    let ctx = Context::with_options(wgpu_xent::ContextOptions::from_env()?)?;
    let mut gpu = run_op(Some(&ctx), a.op, &inputs, &opts, a.grad, false, dim)?;
    let cpu = run_op(None, a.op, &inputs, &opts, a.grad, false, dim)?;
    perturb(a, &mut gpu.loss.data)?;
    let info = ctx.adapter_info();
    out!(
        "xent check {} {:?} on {} ({:?}); tolerance |gpu - cpu| <= {:e}·min(1, max|cpu|) + {:e}·|cpu|",
        a.op, inputs.shape, info.name, info.backend, a.tol_abs, a.tol_rel
    )?;
    let cmp = compare(&gpu.loss.data, &cpu.loss.data, a.tol_abs, a.tol_rel);
    let mut ok = report("output", &cmp, &cpu.loss.shape)?;
    if let (Some(g), Some(c)) = (&gpu.grad, &cpu.grad) {
        // The gradient of a summed softmax, y·(1 - Σy), is rounding noise on the scale of y.
        let scale = match a.op {
            Op::Softmax => scale_of(&cpu.loss.data),
            _ => scale_of(&c.data),
        };
        let cmp = compare_scaled(&g.data, &c.data, a.tol_abs, a.tol_rel, scale);
        ok &= report("gradient", &cmp, &c.shape)?;
    }
    out!("{}", if ok { "PASS" } else { "FAIL" })?;
    Ok(ok)
}

/// The inputs of linear-cross-entropy: read from --input and --linear-weight, or generated
/// (after checking that they fit in memory).
fn linear_inputs(a: &CheckArgs) -> Result<LinearInputs> {
    if let Some(path) = &a.input {
        return linear::read(&LinearFiles {
            input: path,
            linear_weight: a.linear_weight.as_ref(),
            linear_bias: a.linear_bias.as_ref(),
            target: a.target.as_ref(),
            weight: a.weight.as_ref(),
            dtype: Some(a.dtype.into()),
        });
    }
    let s = a.shape.as_deref().unwrap_or("64x128x1000");
    let (n, d, c) = linear::parse_shape3(s, "NxDxC")?;
    if c == 0 {
        return Err(CliError::Arg(format!(
            "--shape {s}: C = 0 leaves no class to draw targets from"
        )));
    }
    // Both sides' inputs and gradients (x, W twice each), and the [N, C] targets.
    let words = [(n, d, 6), (c, d, 6), (n, c, 4)]
        .iter()
        .try_fold(0usize, |sum, &(p, q, k)| {
            p.checked_mul(q)?.checked_mul(k)?.checked_add(sum)
        });
    match words {
        Some(w) => data::check_fits(s, &[w], 4)?,
        None => {
            return Err(CliError::Arg(format!(
                "--shape {s}: the element count overflows"
            )))
        }
    }
    let synth = Synth {
        seed: a.seed,
        weighted: a.weighted,
        ignore_frac: a.ignore_frac,
        ignore_index: a.ignore_index.unwrap_or(-100),
        probs: a.probs,
    };
    Ok(linear::synthesize((n, d, c), &synth, a.dtype.into(), true))
}

/// linear-cross-entropy on the GPU against the f64 CPU reference: the loss and, with --grad,
/// the gradients of the input, the linear weight and the linear bias.
fn check_linear(a: &CheckArgs) -> Result<bool> {
    let li = linear_inputs(a)?;
    let (opts, wide) = options(a, li.inputs.weight.as_deref());
    let ctx = Context::with_options(wgpu_xent::ContextOptions::from_env()?)?;
    let mut gpu = linear::run_gpu(&ctx, &li, &opts, a.grad)?;
    let cpu = linear::narrow(linear::run_cpu(&li, &wide, a.grad, false)?);
    perturb(a, &mut gpu.loss.data)?;
    let info = ctx.adapter_info();
    out!(
        "xent check {} {:?} x {:?} on {} ({:?}); tolerance |gpu - cpu| <= {:e}·min(1, max|cpu|) + {:e}·|cpu|",
        a.op, li.inputs.shape, li.linear_weight.shape, info.name, info.backend, a.tol_abs, a.tol_rel
    )?;
    let pairs: [(&str, Option<&Output>, Option<&Output>); 4] = [
        ("output", Some(&gpu.loss), Some(&cpu.loss)),
        ("gradient", gpu.grad_input.as_ref(), cpu.grad_input.as_ref()),
        (
            "grad W",
            gpu.grad_linear_weight.as_ref(),
            cpu.grad_linear_weight.as_ref(),
        ),
        (
            "grad b",
            gpu.grad_linear_bias.as_ref(),
            cpu.grad_linear_bias.as_ref(),
        ),
    ];
    let mut ok = true;
    for (what, g, c) in pairs {
        match (g, c) {
            (Some(g), Some(c)) if g.data.len() == c.data.len() => {
                let cmp = compare(&g.data, &c.data, a.tol_abs, a.tol_rel);
                ok &= report(what, &cmp, &c.shape)?;
            }
            (None, None) => {}
            (g, c) => {
                out!(
                    "  {what:9} gpu {:?}, cpu {:?}: the shapes differ",
                    g.map(|o| &o.shape),
                    c.map(|o| &o.shape)
                )?;
                ok = false;
            }
        }
    }
    out!("{}", if ok { "PASS" } else { "FAIL" })?;
    Ok(ok)
}

/// One array's comparison; the worst element, with its index in `shape`, only when some
/// element differs.
fn report(what: &str, c: &Comparison, shape: &[usize]) -> Result<bool> {
    let Some((i, g, r)) = c.worst else {
        out!(
            "  {what:9} {:>10} elements  max abs diff 0 (identical)  beyond tolerance {}",
            c.len,
            c.beyond
        )?;
        return Ok(c.beyond == 0);
    };
    let ulp = if c.max_ulp == u64::MAX {
        "inf".to_string()
    } else {
        c.max_ulp.to_string()
    };
    out!(
        "  {what:9} {:>10} elements  max abs {:.3e}  max rel {:.3e}  max ulp {ulp}  beyond tolerance {}",
        c.len, c.max_abs, c.max_rel, c.beyond
    )?;
    out!(
        "  {:9} worst at {:?}: gpu {g:e}, cpu {r:e}",
        "",
        unravel(i, shape)
    )?;
    Ok(c.beyond == 0)
}

/// The multi-dimensional index of flat index `i` in a row-major `shape` (`[i]` when the
/// shape does not hold it, e.g. a 0-d output).
pub fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    if shape.is_empty() || shape.iter().product::<usize>() <= i {
        return vec![i];
    }
    let mut index = vec![0; shape.len()];
    for (k, &d) in shape.iter().enumerate().rev() {
        index[k] = i % d;
        i /= d;
    }
    index
}

#[cfg(test)]
mod tests {
    #[test]
    fn unravel_gives_row_major_indices() {
        assert_eq!(super::unravel(3 * 20 + 17, &[5, 20]), [3, 17]);
        assert_eq!(super::unravel(0, &[]), [0]);
        assert_eq!(super::unravel(7, &[2, 2, 2]), [1, 1, 1]);
    }
}
