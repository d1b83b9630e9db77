//! CPU cross_entropy and nll_loss: the mirror of shaders/loss.wgsl and reduce.wgsl, in f64.

use super::grad::{cross_entropy_grad, nll_grad};
use super::Real;
use crate::error::Result;
use crate::options::{
    BackwardOptions, FloatTensor, LossAndGrad, LossOptions, Output, Reduction, Target, Tensor,
};
use crate::problem::{check_loss, rows_shape, Loss, LossProblem, Targets, IGNORED};
use crate::shard::Lse;
use rayon::prelude::*;

/// `torch.nn.functional.cross_entropy`, accumulated in f64.
pub fn cross_entropy<'i>(
    input: impl Into<FloatTensor<'i>>,
    target: Target,
    opts: &LossOptions,
) -> Result<Output> {
    let f = forward(input.into(), &target, opts)?;
    Ok(reduce(&f.rows, &f.problem, Scalars::of(opts)))
}

/// `cross_entropy` and the per-row log-sum-exp (shape `[N, d1..dk]`).
pub fn cross_entropy_with_lse<'i>(
    input: impl Into<FloatTensor<'i>>,
    target: Target,
    opts: &LossOptions,
) -> Result<(Output, Output)> {
    let f = forward(input.into(), &target, opts)?;
    Ok((reduce(&f.rows, &f.problem, Scalars::of(opts)), f.lse()))
}

/// The checked problem and per-row results of `cross_entropy`, as loss.wgsl computes them.
struct Forward<'a> {
    values: std::borrow::Cow<'a, [f32]>,
    shape: &'a [usize],
    problem: LossProblem,
    weight: Option<Vec<f64>>,
    rows: Vec<RowLoss>,
}

fn forward<'a>(input: FloatTensor<'a>, target: &Target, opts: &LossOptions) -> Result<Forward<'a>> {
    let values = input.to_f32();
    let problem = check_loss(
        Loss::CrossEntropy,
        input.shape(),
        values.len(),
        target,
        opts,
    )?;
    let weight = widen_weight(opts.weight);
    let call = LossCall {
        x: &values[..],
        probs: probs(&problem),
        weight: weight.as_deref(),
        problem: &problem,
        s: Scalars::of(opts),
    };
    let rows = cross_entropy_rows(&call);
    Ok(Forward {
        values,
        shape: input.shape(),
        problem,
        weight,
        rows,
    })
}

impl Forward<'_> {
    fn lse(&self) -> Output {
        Output {
            data: lse_values(&self.rows),
            shape: rows_shape(self.shape),
        }
    }
}

/// The class weights in f64 (exact from f32).
fn widen_weight(w: Option<&[f32]>) -> Option<Vec<f64>> {
    w.map(|w| w.iter().map(|&v| v as f64).collect())
}

/// The probability targets of a checked problem (empty for class targets).
fn probs(problem: &LossProblem) -> &[f32] {
    match &problem.targets {
        Targets::Probs(p) => p,
        Targets::Classes(_) => &[],
    }
}

/// Each row's log-sum-exp, in `R`.
pub(crate) fn lse_values<R: Real>(rows: &[RowLoss]) -> Vec<R> {
    rows.iter().map(|r| R::from_f64(r.st.value())).collect()
}

/// The fused forward + backward of `cross_entropy`, as grad.wgsl computes it, in f64.
pub fn cross_entropy_backward<'i>(
    input: impl Into<FloatTensor<'i>>,
    target: Target,
    opts: &LossOptions,
    backward: &BackwardOptions,
) -> Result<LossAndGrad> {
    let f = forward(input.into(), &target, opts)?;
    let call = LossCall {
        x: &f.values[..],
        probs: probs(&f.problem),
        weight: f.weight.as_deref(),
        problem: &f.problem,
        s: Scalars::of(opts),
    };
    let grad = cross_entropy_grad(&call, &f.rows, backward.grad_output);
    Ok(LossAndGrad {
        loss: reduce(&f.rows, &f.problem, Scalars::of(opts)),
        grad: Some(Output {
            data: grad,
            shape: f.shape.to_vec(),
        }),
        lse: Some(f.lse()),
    })
}

/// One loss call in one precision: the logits `X`, probabilities `P` (empty for class
/// targets) and the f64 class weights, with the checked problem and the options' scalars.
pub(crate) struct LossCall<'a, X, P> {
    pub x: &'a [X],
    pub probs: &'a [P],
    pub weight: Option<&'a [f64]>,
    pub problem: &'a LossProblem,
    pub s: Scalars,
}

/// The options' scalars in f64: widened from `LossOptions`, or given in f64 (`wide`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scalars {
    pub eps: f64,
    pub z: f64,
    pub cap: Option<f64>,
    pub reduction: Reduction,
}

impl Scalars {
    pub fn of(opts: &LossOptions) -> Self {
        Self {
            eps: opts.label_smoothing as f64,
            z: opts.z_loss as f64,
            cap: opts.softcap.map(f64::from),
            reduction: opts.reduction,
        }
    }
}

impl<X: Real, P: Real> LossCall<'_, X, P> {
    /// The weight of class c (1 without weights).
    pub(super) fn w(&self, c: usize) -> f64 {
        self.weight.map_or(1.0, |w| w[c])
    }
}

/// `nll_loss` and its gradient, `-(g/D)·w[y]` at the target, in f64.
pub fn nll_loss_backward<'i>(
    input: impl Into<FloatTensor<'i>>,
    target: Target,
    opts: &LossOptions,
    backward: &BackwardOptions,
) -> Result<LossAndGrad> {
    let input: FloatTensor = input.into();
    let values = input.to_f32();
    let input = Tensor::new(&values, input.shape());
    let loss = nll_loss(input, target, opts)?;
    let problem = check_loss(Loss::Nll, input.shape, input.data.len(), &target, opts)?;
    let weight = widen_weight(opts.weight);
    let call = LossCall::<f32, f32> {
        x: input.data,
        probs: &[],
        weight: weight.as_deref(),
        problem: &problem,
        s: Scalars::of(opts),
    };
    Ok(LossAndGrad {
        loss,
        grad: Some(Output {
            data: nll_grad(&call, backward.grad_output),
            shape: input.shape.to_vec(),
        }),
        lse: None,
    })
}

/// The logit after softcap, in f64.
pub(super) fn load<X: Copy + Into<f64>>(x: &[X], i: usize, cap: Option<f64>) -> f64 {
    let v: f64 = x[i].into();
    match cap {
        Some(cap) => cap * (v / cap).tanh(),
        None => v,
    }
}

/// `torch.nn.functional.nll_loss`, accumulated in f64.
pub fn nll_loss<'i>(
    input: impl Into<FloatTensor<'i>>,
    target: Target,
    opts: &LossOptions,
) -> Result<Output> {
    let input: FloatTensor = input.into();
    let values = input.to_f32();
    let input = Tensor::new(&values, input.shape());
    let problem = check_loss(Loss::Nll, input.shape, input.data.len(), &target, opts)?;
    let weight = widen_weight(opts.weight);
    let call = LossCall::<f32, f32> {
        x: input.data,
        probs: &[],
        weight: weight.as_deref(),
        problem: &problem,
        s: Scalars::of(opts),
    };
    Ok(reduce(&nll_rows(&call), &problem, Scalars::of(opts)))
}

/// Per-row nll_loss.
pub(crate) fn nll_rows<X: Real, P: Real>(call: &LossCall<X, P>) -> Vec<RowLoss> {
    let Targets::Classes(t) = &call.problem.targets else {
        unreachable!("nll_loss takes class targets")
    };
    let l = call.problem.layout;
    (0..l.rows())
        .into_par_iter()
        .map(|r| match t[r] {
            IGNORED => RowLoss::default(),
            y => {
                let y = y as usize;
                let x: f64 = call.x[l.row_base(r) + y * l.inner].into();
                RowLoss {
                    loss: -call.w(y) * x,
                    den: call.w(y),
                    ..Default::default()
                }
            }
        })
        .collect()
}

/// One row's loss, its share of the mean's denominator, its softmax statistics and
/// Q = Σ_c q_c (the `stats` of loss.wgsl).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowLoss {
    pub loss: f64,
    pub den: f64,
    pub st: Lse,
    pub q: f64,
}

impl Default for RowLoss {
    fn default() -> Self {
        Self {
            loss: 0.0,
            den: 0.0,
            st: Lse::EMPTY,
            q: 0.0,
        }
    }
}

/// Per-row cross_entropy, as `cross_entropy_rows` in loss.wgsl computes it.
pub(crate) fn cross_entropy_rows<X: Real, P: Real>(call: &LossCall<X, P>) -> Vec<RowLoss> {
    let (problem, probs) = (call.problem, call.probs);
    let l = problem.layout;
    let classes = l.classes;
    let (eps, z) = (call.s.eps, call.s.z);
    let load = |i: usize| load(call.x, i, call.s.cap);
    let w = |c: usize| call.w(c);
    (0..l.rows())
        .into_par_iter()
        .map(|r| {
            let base = l.row_base(r);
            let at = |c: usize| base + c * l.inner;
            let st = (0..classes).fold(Lse::EMPTY, |a, c| a.push(load(at(c))));
            let lse = st.value();
            // Σ_c q_c·(lse - x_c), with q_c = w_c (smoothing) or w_c·t'_c (probabilities).
            let smooth = |q: &dyn Fn(usize) -> f64| -> f64 {
                (0..classes).map(|c| -q(c) * st.log_prob(load(at(c)))).sum()
            };
            let mut q = 0.0;
            let (mut loss, den) = match &problem.targets {
                Targets::Probs(_) => {
                    let t = |c: usize| {
                        let p: f64 = probs[at(c)].into();
                        p * (1.0 - eps) + eps / classes as f64
                    };
                    q = (0..classes).map(|c| w(c) * t(c)).sum();
                    (smooth(&|c| w(c) * t(c)), 1.0)
                }
                Targets::Classes(t) => match t[r] {
                    IGNORED => (0.0, 0.0),
                    y => {
                        let y = y as usize;
                        let mut loss = -w(y) * st.log_prob(load(at(y)));
                        if eps > 0.0 {
                            loss = (1.0 - eps) * loss + eps / classes as f64 * smooth(&w);
                        }
                        (loss, w(y))
                    }
                },
            };
            let counted = !matches!(&problem.targets, Targets::Classes(t) if t[r] == IGNORED);
            if z != 0.0 && counted {
                loss += z * lse * lse;
            }
            RowLoss { loss, den, st, q }
        })
        .collect()
}

/// The reduction of reduce.wgsl: `none`, `sum`, or Σ loss / Σ den ([`mean`]).
pub(crate) fn reduce(rows: &[RowLoss], problem: &LossProblem, s: Scalars) -> Output {
    let shape = match s.reduction {
        Reduction::None => problem.out_shape.clone(),
        _ => vec![],
    };
    Output {
        data: reduce_f64(rows, s).into_iter().map(|v| v as f32).collect(),
        shape,
    }
}

/// The reduction, kept in f64.
pub(crate) fn reduce_f64(rows: &[RowLoss], s: Scalars) -> Vec<f64> {
    let (sum, den) = rows
        .iter()
        .fold((0.0, 0.0), |(s, d), r| (s + r.loss, d + r.den));
    match s.reduction {
        Reduction::None => rows.iter().map(|r| r.loss).collect(),
        Reduction::Sum => vec![sum],
        Reduction::Mean => vec![mean(sum, den, s.eps)],
    }
}

/// The mean Σ loss / D, as reduce.wgsl's `finish` takes it. With label smoothing PyTorch
/// divides the nll and the smoothing terms by D separately, and the nll's Σ w_y·(-log p_y)
/// is 0 when D = Σ w_y is (class weights are not negative): 0/0, so NaN, however large the
/// smoothing term.
pub(crate) fn mean(sum: f64, den: f64, eps: f64) -> f64 {
    match den == 0.0 && (sum == 0.0 || eps > 0.0) {
        true => f64::NAN,
        false => sum / den,
    }
}

/// `cross_entropy` of f64 logits, kept in f64 throughout: for finite-difference checks of the
/// gradient, which need more precision than an f32 result carries.
pub fn cross_entropy_f64(
    input: Tensor<f64>,
    target: Target,
    opts: &LossOptions,
) -> Result<Vec<f64>> {
    let problem = check_loss(
        Loss::CrossEntropy,
        input.shape,
        input.data.len(),
        &target,
        opts,
    )?;
    let weight = widen_weight(opts.weight);
    let call = LossCall {
        x: input.data,
        probs: probs(&problem),
        weight: weight.as_deref(),
        problem: &problem,
        s: Scalars::of(opts),
    };
    Ok(reduce_f64(&cross_entropy_rows(&call), Scalars::of(opts)))
}
