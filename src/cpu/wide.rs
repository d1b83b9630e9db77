//! The CPU reference on f64 inputs, with f64 outputs: PyTorch's float64 results. The same
//! code as the f32 entry points (the arithmetic is f64 in both); only the element type of the
//! logits, probabilities, weights and results differs.
//!
//! ```
//! use wgpu_xent::cpu::wide::{self, WideOptions, WideTarget};
//! use wgpu_xent::{Target, Tensor};
//! let (x, t) = ([0.5f64, -1.0, 2.0, 0.0, 1.0, 3.0], [2i64, 0]);
//! let target = WideTarget::Classes(Target::I64(Tensor::new(&t, &[2])));
//! let opts = WideOptions { label_smoothing: 0.1, ..Default::default() };
//! let out = wide::cross_entropy(Tensor::new(&x, &[2, 3]), target, &opts, true, false)?;
//! assert_eq!(out.loss.shape, Vec::<usize>::new());
//! assert_eq!(out.grad.unwrap().data.len(), 6);
//! # Ok::<(), wgpu_xent::XentError>(())
//! ```

use super::grad::{cross_entropy_grad, nll_grad};
use super::loss::{
    cross_entropy_rows, lse_values, nll_rows, reduce_f64, LossCall, RowLoss, Scalars,
};
use super::softmax::{backward, log_prob, log_softmax_grad, map_rows_in, prob, softmax_grad};
use crate::error::Result;
use crate::options::{LossOptions, Reduction, Target, Tensor};
use crate::problem::{check_loss, check_loss_shapes, rows_shape, Loss, LossProblem};

/// An f64 result and its PyTorch shape.
#[derive(Clone, Debug, PartialEq)]
pub struct WideOutput {
    /// Values in row-major order.
    pub data: Vec<f64>,
    /// The shape (`[]` for a scalar).
    pub shape: Vec<usize>,
}

/// A loss, and the gradient and per-row log-sum-exp when asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct WideLossAndGrad {
    /// The loss, as the forward op returns it.
    pub loss: WideOutput,
    /// d(loss)/d(input) (of the summed losses for `none`), the input's shape.
    pub grad: Option<WideOutput>,
    /// The per-row log-sum-exp, shape `[N, d1..dk]` (cross_entropy only).
    pub lse: Option<WideOutput>,
}

/// Class indices (any of [`Target`]'s integer kinds), or f64 probabilities of the input's
/// shape.
#[derive(Clone, Copy, Debug)]
pub enum WideTarget<'a> {
    /// Class indices; `Target::Probs` is taken too (its f32 values widened).
    Classes(Target<'a>),
    /// Class probabilities in f64 (cross_entropy only).
    Probs(Tensor<'a, f64>),
}

/// [`LossOptions`] in f64: PyTorch's float64 options (`label_smoothing=0.1` is the double
/// 0.1, not the float 0.1).
#[derive(Clone, Copy, Debug)]
pub struct WideOptions<'a> {
    /// Per-class weight, shape `[C]`.
    pub weight: Option<&'a [f64]>,
    /// Targets equal to this contribute nothing (default -100).
    pub ignore_index: i64,
    /// `none`, `mean` (default) or `sum`.
    pub reduction: Reduction,
    /// ε in [0, 1]. cross_entropy only.
    pub label_smoothing: f64,
    /// z-loss scale; 0 is off. cross_entropy only.
    pub z_loss: f64,
    /// Logit soft-capping. cross_entropy only.
    pub softcap: Option<f64>,
}

impl Default for WideOptions<'_> {
    fn default() -> Self {
        let d = LossOptions::default();
        Self {
            weight: None,
            ignore_index: d.ignore_index,
            reduction: d.reduction,
            label_smoothing: 0.0,
            z_loss: 0.0,
            softcap: None,
        }
    }
}

impl WideOptions<'_> {
    fn scalars(&self) -> Scalars {
        Scalars {
            eps: self.label_smoothing,
            z: self.z_loss,
            cap: self.softcap,
            reduction: self.reduction,
        }
    }
}

/// The checked problem and the probabilities of one f64 loss call.
struct Checked {
    problem: LossProblem,
    probs: Vec<f64>,
}

fn check(op: Loss, x: &Tensor<f64>, target: &WideTarget, opts: &WideOptions) -> Result<Checked> {
    // Checked as the f32 options are: the weight by its length only (its values are not
    // read), the scalars rounded to f32.
    let ones = opts.weight.map(|w| vec![1f32; w.len()]);
    let checked_opts = LossOptions {
        weight: ones.as_deref(),
        ignore_index: opts.ignore_index,
        reduction: opts.reduction,
        label_smoothing: opts.label_smoothing as f32,
        z_loss: opts.z_loss as f32,
        softcap: opts.softcap.map(|c| c as f32),
    };
    let (problem, probs) = match target {
        WideTarget::Classes(Target::Probs(t)) => {
            let problem = check_loss(op, x.shape, x.data.len(), &Target::Probs(*t), &checked_opts)?;
            (problem, t.data.iter().map(|&v| v as f64).collect())
        }
        WideTarget::Classes(t) => {
            let problem = check_loss(op, x.shape, x.data.len(), t, &checked_opts)?;
            (problem, vec![])
        }
        WideTarget::Probs(t) => {
            let problem =
                check_loss_shapes(op, x.shape, x.data.len(), t.shape, true, &checked_opts)?;
            t.check_len("target")?;
            (problem, t.data.to_vec())
        }
    };
    Ok(Checked { problem, probs })
}

/// The reduced loss of `rows`, in PyTorch's shape.
fn loss_output(rows: &[RowLoss], problem: &LossProblem, s: Scalars) -> WideOutput {
    WideOutput {
        data: reduce_f64(rows, s),
        shape: match s.reduction {
            Reduction::None => problem.out_shape.clone(),
            _ => vec![],
        },
    }
}

/// `torch.nn.functional.cross_entropy` in float64, with its gradient (`grad`, for
/// grad_output 1) and per-row log-sum-exp (`lse`).
pub fn cross_entropy(
    x: Tensor<f64>,
    target: WideTarget,
    opts: &WideOptions,
    grad: bool,
    lse: bool,
) -> Result<WideLossAndGrad> {
    let c = check(Loss::CrossEntropy, &x, &target, opts)?;
    let call = LossCall {
        x: x.data,
        probs: &c.probs,
        weight: opts.weight,
        problem: &c.problem,
        s: opts.scalars(),
    };
    let rows = cross_entropy_rows(&call);
    Ok(WideLossAndGrad {
        loss: loss_output(&rows, &c.problem, opts.scalars()),
        grad: grad.then(|| WideOutput {
            data: cross_entropy_grad(&call, &rows, 1.0),
            shape: x.shape.to_vec(),
        }),
        lse: lse.then(|| WideOutput {
            data: lse_values(&rows),
            shape: rows_shape(x.shape),
        }),
    })
}

/// `torch.nn.functional.nll_loss` in float64, with its gradient when `grad`.
pub fn nll_loss(
    x: Tensor<f64>,
    target: WideTarget,
    opts: &WideOptions,
    grad: bool,
) -> Result<WideLossAndGrad> {
    let c = check(Loss::Nll, &x, &target, opts)?;
    let call = LossCall {
        x: x.data,
        probs: &c.probs,
        weight: opts.weight,
        problem: &c.problem,
        s: opts.scalars(),
    };
    Ok(WideLossAndGrad {
        loss: loss_output(&nll_rows(&call), &c.problem, opts.scalars()),
        grad: grad.then(|| WideOutput {
            data: nll_grad(&call, 1.0),
            shape: x.shape.to_vec(),
        }),
        lse: None,
    })
}

/// `log_softmax` (`log: true`) or `softmax` in float64, with the gradient of the summed
/// output when `grad`.
pub fn softmax(x: Tensor<f64>, dim: i64, log: bool, grad: bool) -> Result<WideLossAndGrad> {
    let f = if log { log_prob } else { prob };
    let y = map_rows_in(x, dim, f)?;
    let g = match grad {
        true => {
            let ones = vec![1f64; y.len()];
            let (gy, out) = (Tensor::new(&ones, x.shape), Tensor::new(&y, x.shape));
            let f = if log { log_softmax_grad } else { softmax_grad };
            Some(backward(gy, out, dim, f)?)
        }
        false => None,
    };
    let output = |data| WideOutput {
        data,
        shape: x.shape.to_vec(),
    };
    Ok(WideLossAndGrad {
        loss: output(y),
        grad: g.map(output),
        lse: None,
    })
}
