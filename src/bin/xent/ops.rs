//! One op on the GPU or the CPU reference, as `eval` and `check` run it.

use crate::data::Inputs;
use crate::error::{CliError, Result};
use crate::Op;
use wgpu_xent::{cpu, BackwardOptions, Context, LossAndGrad, LossOptions, Tensor};

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
    let x = inp.input();
    let backward = BackwardOptions {
        grad_output: 1.0,
        return_lse: lse,
    };
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
        return Err(CliError::Arg(format!("{op:?} needs --target")));
    }
    let target = inp.target();
    Ok(match (op, ctx, grad) {
        (Op::CrossEntropy, Some(ctx), true) => {
            ctx.cross_entropy_backward(x, target, opts, &backward)?
        }
        (Op::CrossEntropy, None, true) => cpu::cross_entropy_backward(x, target, opts, &backward)?,
        (Op::CrossEntropy, Some(ctx), false) if lse => {
            let (loss, lse) = ctx.cross_entropy_with_lse(x, target, opts)?;
            LossAndGrad {
                loss,
                grad: None,
                lse: Some(lse),
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
        (Op::CrossEntropy, Some(ctx), false) => plain(ctx.cross_entropy(x, target, opts)?),
        (Op::CrossEntropy, None, false) => plain(cpu::cross_entropy(x, target, opts)?),
        (_, Some(ctx), true) => ctx.nll_loss_backward(x, target, opts, &backward)?,
        (_, None, true) => cpu::nll_loss_backward(x, target, opts, &backward)?,
        (_, Some(ctx), false) => plain(ctx.nll_loss(x, target, opts)?),
        (_, None, false) => plain(cpu::nll_loss(x, target, opts)?),
    })
}
