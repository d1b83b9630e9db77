//! One op on the GPU or the CPU reference, as `eval` and `check` run it, and which flags
//! each op uses.

use crate::data::Inputs;
use crate::error::{CliError, Result};
use crate::Op;
use wgpu_xent::cpu::wide::{self, WideLossAndGrad, WideOptions, WideTarget};
use wgpu_xent::{
    cpu, BackwardOptions, Context, FloatTensor, Grad, LossAndGrad, LossCall, LossOptions, Target,
    Tensor,
};

/// The ops that use a flag of `eval` or `check` (every op uses those not listed).
fn users(flag: &str) -> &'static [Op] {
    const LOSSES: &[Op] = &[Op::CrossEntropy, Op::NllLoss, Op::LinearCrossEntropy];
    const SMOOTHED: &[Op] = &[Op::CrossEntropy, Op::LinearCrossEntropy];
    match flag {
        "--target" | "--weight" | "--weighted" | "--ignore-index" | "--ignore-frac"
        | "--reduction" => LOSSES,
        "--label-smoothing" | "--probs" => SMOOTHED,
        "--z-loss" | "--softcap" | "--lse-out" => &[Op::CrossEntropy],
        "--dim" => &[Op::LogSoftmax, Op::Softmax],
        "--linear-weight"
        | "--linear-bias"
        | "--grad-linear-weight-out"
        | "--grad-linear-bias-out" => &[Op::LinearCrossEntropy],
        _ => &[
            Op::CrossEntropy,
            Op::NllLoss,
            Op::LogSoftmax,
            Op::Softmax,
            Op::LinearCrossEntropy,
        ],
    }
}

/// The error for linear-cross-entropy reaching a path of the ops on logits (crate::linear
/// runs it).
fn not_on_logits() -> CliError {
    CliError::Arg("linear-cross-entropy takes --linear-weight, not logits".into())
}

/// The logits of `inp`, for any op but linear-cross-entropy.
fn logits_of(op: Op, inp: &Inputs) -> Result<FloatTensor<'_>> {
    match op {
        Op::LinearCrossEntropy => Err(not_on_logits()),
        _ => Ok(inp.input()),
    }
}

/// Refuses the first flag given (`(flag, given)`) that `op` does not use, naming the ops
/// that do: `--target is not used by log-softmax (only by cross-entropy, nll-loss and
/// linear-cross-entropy)`.
pub fn refuse_unused(op: Op, flags: &[(&str, bool)]) -> Result<()> {
    for &(flag, given) in flags {
        let ops = users(flag);
        if given && !ops.contains(&op) {
            let names: Vec<&str> = ops.iter().map(|o| o.name()).collect();
            let names = match names.split_last() {
                Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
                _ => names.join(""),
            };
            return Err(CliError::Arg(format!(
                "{flag} is not used by {op} (only by {names})"
            )));
        }
    }
    Ok(())
}

/// Runs `op` on the CPU reference in f64, on the float64 logits of `inp` (`inp.wide.x`);
/// other float inputs are widened exactly where they are not float64 themselves (the
/// weight of `opts` is the inputs').
pub fn run_wide(
    op: Op,
    inp: &Inputs,
    opts: &WideOptions,
    grad: bool,
    lse: bool,
    dim: i64,
) -> Result<WideLossAndGrad> {
    if op == Op::LinearCrossEntropy {
        return Err(not_on_logits());
    }
    let x64 = inp.wide.x.clone().unwrap_or_else(|| widen(&inp.x));
    let x = Tensor::new(&x64, &inp.shape);
    if matches!(op, Op::LogSoftmax | Op::Softmax) {
        return Ok(wide::softmax(x, dim, op == Op::LogSoftmax, grad)?);
    }
    if !inp.target_given {
        return Err(CliError::Arg(format!("{op} needs --target")));
    }
    let (probs, weight) = wide_probs_and_weight(inp);
    let target = match &probs {
        Some(p) => WideTarget::Probs(Tensor::new(p, &inp.tshape)),
        None => WideTarget::Classes(Target::I64(Tensor::new(&inp.classes, &inp.tshape))),
    };
    let opts = WideOptions {
        weight: weight.as_deref(),
        ..*opts
    };
    Ok(match op {
        Op::NllLoss => wide::nll_loss(x, target, &opts, grad)?,
        _ => wide::cross_entropy(x, target, &opts, grad, lse)?,
    })
}

/// f32 values widened to f64 (exactly).
pub fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&v| v as f64).collect()
}

/// The probability targets and the class weight of `inp` in f64: as read where they were
/// float64, else widened.
pub fn wide_probs_and_weight(inp: &Inputs) -> (Option<Vec<f64>>, Option<Vec<f64>>) {
    let pick = |wide: &Option<Vec<f64>>, narrow: &Option<Vec<f32>>| match (wide, narrow) {
        (Some(w), _) => Some(w.clone()),
        (None, Some(v)) => Some(widen(v)),
        (None, None) => None,
    };
    (
        pick(&inp.wide.probs, &inp.probs),
        pick(&inp.wide.weight, &inp.weight),
    )
}

/// Runs `op` on `ctx` (the CPU reference when `None`), with the fused backward when `grad`.
/// For log-softmax and softmax the gradient is that of the summed output.
pub fn run_op(
    ctx: Option<&Context>,
    op: Op,
    inp: &Inputs,
    opts: &LossOptions,
    grad: bool,
    lse: bool,
    dim: i64,
) -> Result<LossAndGrad> {
    let x = logits_of(op, inp)?;
    let backward = BackwardOptions { grad_output: 1.0 };
    let plain = |loss| LossAndGrad {
        loss,
        grad: None,
        lse: None,
    };
    if matches!(op, Op::LogSoftmax | Op::Softmax) {
        let log = op == Op::LogSoftmax;
        let out = match (ctx, log) {
            (Some(ctx), true) => ctx.log_softmax(x, dim)?,
            (Some(ctx), false) => ctx.softmax(x, dim)?,
            (None, true) => cpu::log_softmax(x, dim)?,
            (None, false) => cpu::softmax(x, dim)?,
        };
        if !grad {
            return Ok(plain(out));
        }
        let ones = vec![1.0f32; out.data.len()];
        let (gy, y) = (
            Tensor::new(&ones, &out.shape),
            Tensor::new(&out.data, &out.shape),
        );
        let g = match (ctx, log) {
            (Some(ctx), true) => ctx.log_softmax_backward(gy, y, dim)?,
            (Some(ctx), false) => ctx.softmax_backward(gy, y, dim)?,
            (None, true) => cpu::log_softmax_backward(gy, y, dim)?,
            (None, false) => cpu::softmax_backward(gy, y, dim)?,
        };
        return Ok(LossAndGrad {
            loss: out,
            grad: Some(g),
            lse: None,
        });
    }
    if !inp.target_given {
        return Err(CliError::Arg(format!("{op} needs --target")));
    }
    let target = inp.target();
    Ok(match (op, ctx, grad) {
        (Op::CrossEntropy, Some(ctx), grad) => {
            let call = LossCall::cross_entropy(x, target).options(*opts).lse(lse);
            ctx.run(&call.grad(if grad { Grad::Returned } else { Grad::None }))?
        }
        (Op::CrossEntropy, None, true) => {
            let r = cpu::cross_entropy_backward(x, target, opts, &backward)?;
            LossAndGrad {
                lse: r.lse.filter(|_| lse),
                ..r
            }
        }
        (Op::CrossEntropy, None, false) if lse => {
            let (loss, lse) = cpu::cross_entropy_with_lse(x, target, opts)?;
            LossAndGrad {
                loss,
                grad: None,
                lse: Some(lse),
            }
        }
        (Op::CrossEntropy, None, false) => plain(cpu::cross_entropy(x, target, opts)?),
        (_, Some(ctx), true) => ctx.nll_loss_backward(x, target, opts, &backward)?,
        (_, None, true) => cpu::nll_loss_backward(x, target, opts, &backward)?,
        (_, Some(ctx), false) => plain(ctx.nll_loss(x, target, opts)?),
        (_, None, false) => plain(cpu::nll_loss(x, target, opts)?),
    })
}
