//! CPU cross_entropy and nll_loss: the mirror of shaders/loss.wgsl and reduce.wgsl, in f64.

use super::lse::Lse;
use crate::error::Result;
use crate::options::{
    BackwardOptions, Logits, LossAndGrad, LossOptions, Output, Reduction, Target, Tensor,
};
use crate::problem::{check_loss, rows_shape, Loss, LossProblem, Targets, IGNORED};
use rayon::prelude::*;

/// `torch.nn.functional.cross_entropy`, accumulated in f64.
pub fn cross_entropy<'i>(
    input: impl Into<Logits<'i>>,
    target: Target,
    opts: &LossOptions,
) -> Result<Output> {
    let f = forward(input.into(), &target, opts)?;
    Ok(reduce(&f.rows, &f.problem, opts.reduction))
}

/// `cross_entropy` and the per-row log-sum-exp (shape `[N, d1..dk]`).
pub fn cross_entropy_with_lse<'i>(
    input: impl Into<Logits<'i>>,
    target: Target,
    opts: &LossOptions,
) -> Result<(Output, Output)> {
    let f = forward(input.into(), &target, opts)?;
    Ok((reduce(&f.rows, &f.problem, opts.reduction), f.lse()))
}

/// The checked problem and per-row results of `cross_entropy`, as loss.wgsl computes them.
struct Forward<'a> {
    values: std::borrow::Cow<'a, [f32]>,
    shape: &'a [usize],
    problem: LossProblem,
    rows: Vec<RowLoss>,
}

fn forward<'a>(input: Logits<'a>, target: &Target, opts: &LossOptions) -> Result<Forward<'a>> {
    let values = input.to_f32();
    let problem = check_loss(
        Loss::CrossEntropy,
        input.shape(),
        values.len(),
        target,
        opts,
    )?;
    let rows = cross_entropy_rows(&values, &problem, opts);
    Ok(Forward {
        values,
        shape: input.shape(),
        problem,
        rows,
    })
}

impl Forward<'_> {
    fn lse(&self) -> Output {
        Output {
            data: self.rows.iter().map(|r| r.st.value() as f32).collect(),
            shape: rows_shape(self.shape),
        }
    }
}

/// The fused forward + backward of `cross_entropy`, as grad.wgsl computes it, in f64.
pub fn cross_entropy_backward<'i>(
    input: impl Into<Logits<'i>>,
    target: Target,
    opts: &LossOptions,
    backward: &BackwardOptions,
) -> Result<LossAndGrad> {
    let f = forward(input.into(), &target, opts)?;
    let (problem, rows) = (&f.problem, &f.rows);
    let input = Tensor::new(&f.values, f.shape);
    let l = problem.layout;
    let coef = backward.grad_output as f64 / denominator(rows, opts.reduction);
    let eps = opts.label_smoothing as f64;
    let classes = l.classes as f64;
    let w = |c: usize| class_weight(opts, c);
    let weight_sum: f64 = (0..l.classes).map(w).sum();
    // As PyTorch's autograd (and grad.wgsl): k = g/D first, then log_softmax's backward
    // p_c·Σ_j G_j - G_c, the one-hot term only at the target, so that an infinite weight or g
    // gives NaN at the target and inf elsewhere.
    let grad = map_classes(input.data, problem, |r, c, i| {
        let row = &rows[r];
        let x = load(input.data, i, opts);
        let p = row.st.log_prob(x).exp();
        let mut d = match &problem.targets {
            Targets::Probs(t) => {
                p * (coef * row.q) - coef * (w(c) * (t[i] as f64 * (1.0 - eps) + eps / classes))
            }
            Targets::Classes(t) => match t[r] {
                IGNORED => return 0.0,
                y => {
                    let ky = coef * ((1.0 - eps) * w(y as usize));
                    let mut d = p * ky;
                    if c == y as usize {
                        d -= ky;
                    }
                    if eps > 0.0 {
                        let ke = coef * (eps / classes);
                        d += p * (ke * weight_sum) - ke * w(c);
                    }
                    d
                }
            },
        };
        if opts.z_loss != 0.0 {
            d += p * (coef * (2.0 * opts.z_loss as f64 * row.st.value()));
        }
        if let Some(cap) = opts.softcap {
            let y = x / cap as f64;
            d *= 1.0 - y * y;
        }
        d
    });
    Ok(LossAndGrad {
        loss: reduce(rows, problem, opts.reduction),
        grad: Some(Output {
            data: grad,
            shape: input.shape.to_vec(),
        }),
        lse: backward.return_lse.then(|| f.lse()),
    })
}

/// `nll_loss` and its gradient, `-(g/D)·w[y]` at the target, in f64.
pub fn nll_loss_backward<'i>(
    input: impl Into<Logits<'i>>,
    target: Target,
    opts: &LossOptions,
    backward: &BackwardOptions,
) -> Result<LossAndGrad> {
    let input: Logits = input.into();
    let values = input.to_f32();
    let input = Tensor::new(&values, input.shape());
    let loss = nll_loss(input, target, opts)?;
    let problem = check_loss(Loss::Nll, input.shape, input.data.len(), &target, opts)?;
    let Targets::Classes(t) = &problem.targets else {
        unreachable!("nll_loss takes class targets")
    };
    let w = |c: usize| class_weight(opts, c);
    let den = match opts.reduction {
        Reduction::Mean => t
            .iter()
            .filter(|&&y| y != IGNORED)
            .map(|&y| w(y as usize))
            .sum(),
        _ => 1.0,
    };
    let coef = backward.grad_output as f64 / den;
    let grad = map_classes(input.data, &problem, |r, c, _| match t[r] {
        y if y != IGNORED && y as usize == c => -coef * w(c),
        _ => 0.0,
    });
    Ok(LossAndGrad {
        loss,
        grad: Some(Output {
            data: grad,
            shape: input.shape.to_vec(),
        }),
        lse: None,
    })
}

/// `f(row, class, flat index)` for every logit, in the logits' layout; parallel over outer slices.
fn map_classes(
    x: &[f32],
    problem: &LossProblem,
    f: impl Fn(usize, usize, usize) -> f64 + Sync,
) -> Vec<f32> {
    let l = problem.layout;
    let mut out = vec![0f32; x.len()];
    let slice = (l.classes * l.inner).max(1);
    out.par_chunks_mut(slice).enumerate().for_each(|(o, ys)| {
        for i in 0..l.inner {
            for c in 0..l.classes {
                let k = c * l.inner + i;
                ys[k] = f(o * l.inner + i, c, o * slice + k) as f32;
            }
        }
    });
    out
}

/// The logit after softcap, in f64.
fn load<X: Copy + Into<f64>>(x: &[X], i: usize, opts: &LossOptions) -> f64 {
    let v: f64 = x[i].into();
    match opts.softcap {
        Some(cap) => cap as f64 * (v / cap as f64).tanh(),
        None => v,
    }
}

/// The mean's denominator D (1 for `sum` and `none`).
fn denominator(rows: &[RowLoss], reduction: Reduction) -> f64 {
    match reduction {
        Reduction::Mean => rows.iter().map(|r| r.den).sum(),
        _ => 1.0,
    }
}

/// The weight of class c (1 without weights), in f64.
fn class_weight(opts: &LossOptions, c: usize) -> f64 {
    opts.weight.map_or(1.0, |w| w[c] as f64)
}

/// `torch.nn.functional.nll_loss`, accumulated in f64.
pub fn nll_loss<'i>(
    input: impl Into<Logits<'i>>,
    target: Target,
    opts: &LossOptions,
) -> Result<Output> {
    let input: Logits = input.into();
    let values = input.to_f32();
    let input = Tensor::new(&values, input.shape());
    let problem = check_loss(Loss::Nll, input.shape, input.data.len(), &target, opts)?;
    let Targets::Classes(t) = &problem.targets else {
        unreachable!("nll_loss takes class targets")
    };
    let l = problem.layout;
    let w = |c: usize| class_weight(opts, c);
    let rows: Vec<RowLoss> = (0..l.rows())
        .into_par_iter()
        .map(|r| match t[r] {
            IGNORED => RowLoss::default(),
            y => {
                let y = y as usize;
                let x = input.data[l.row_base(r) + y * l.inner] as f64;
                RowLoss {
                    loss: -w(y) * x,
                    den: w(y),
                    ..Default::default()
                }
            }
        })
        .collect();
    Ok(reduce(&rows, &problem, opts.reduction))
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
pub(crate) fn cross_entropy_rows<X: Copy + Into<f64> + Sync>(
    x: &[X],
    problem: &LossProblem,
    opts: &LossOptions,
) -> Vec<RowLoss> {
    let l = problem.layout;
    let classes = l.classes;
    let eps = opts.label_smoothing as f64;
    let z = opts.z_loss as f64;
    let load = |i: usize| load(x, i, opts);
    let w = |c: usize| class_weight(opts, c);
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
                Targets::Probs(p) => {
                    let t = |c: usize| p[at(c)] as f64 * (1.0 - eps) + eps / classes as f64;
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

/// The reduction of reduce.wgsl: `none`, `sum`, or Σ loss / Σ den (NaN for 0/0).
pub(crate) fn reduce(rows: &[RowLoss], problem: &LossProblem, reduction: Reduction) -> Output {
    let shape = match reduction {
        Reduction::None => problem.out_shape.clone(),
        _ => vec![],
    };
    Output {
        data: reduce_f64(rows, reduction)
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        shape,
    }
}

/// The reduction, kept in f64.
fn reduce_f64(rows: &[RowLoss], reduction: Reduction) -> Vec<f64> {
    let (sum, den) = rows
        .iter()
        .fold((0.0, 0.0), |(s, d), r| (s + r.loss, d + r.den));
    match reduction {
        Reduction::None => rows.iter().map(|r| r.loss).collect(),
        Reduction::Sum => vec![sum],
        Reduction::Mean => vec![sum / den],
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
    let rows = cross_entropy_rows(input.data, &problem, opts);
    Ok(reduce_f64(&rows, opts.reduction))
}
