//! CPU cross_entropy and nll_loss: the mirror of shaders/loss.wgsl and reduce.wgsl, in f64.

use super::lse::Lse;
use crate::error::Result;
use crate::layout::{check_loss, LossProblem, Targets, IGNORED};
use crate::options::{LossOptions, Output, Reduction, Target, Tensor};
use rayon::prelude::*;

/// `torch.nn.functional.cross_entropy`, accumulated in f64.
pub fn cross_entropy(input: Tensor<f32>, target: Target, opts: &LossOptions) -> Result<Output> {
    let problem = check_loss("cross_entropy", &input, &target, opts)?;
    let rows = cross_entropy_rows(input.data, &problem, opts);
    Ok(reduce(&rows, &problem, opts.reduction))
}

/// `torch.nn.functional.nll_loss`, accumulated in f64.
pub fn nll_loss(input: Tensor<f32>, target: Target, opts: &LossOptions) -> Result<Output> {
    let problem = check_loss("nll_loss", &input, &target, opts)?;
    let Targets::Classes(t) = &problem.targets else {
        unreachable!("nll_loss takes class targets")
    };
    let l = problem.layout;
    let w = |c: usize| opts.weight.map_or(1.0, |w| w[c] as f64);
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
                    lse: f64::NAN,
                }
            }
        })
        .collect();
    Ok(reduce(&rows, &problem, opts.reduction))
}

/// One row's loss, its share of the mean's denominator, and its log-sum-exp.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RowLoss {
    pub loss: f64,
    pub den: f64,
    #[allow(dead_code)] // read by the gradient
    pub lse: f64,
}

/// Per-row cross_entropy, as `cross_entropy_rows` in loss.wgsl computes it.
pub(crate) fn cross_entropy_rows(
    x: &[f32],
    problem: &LossProblem,
    opts: &LossOptions,
) -> Vec<RowLoss> {
    let l = problem.layout;
    let classes = l.classes;
    let eps = opts.label_smoothing as f64;
    let z = opts.z_loss as f64;
    let load = |i: usize| {
        let v = x[i] as f64;
        match opts.softcap {
            Some(cap) => cap as f64 * (v / cap as f64).tanh(),
            None => v,
        }
    };
    let w = |c: usize| opts.weight.map_or(1.0, |w| w[c] as f64);
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
            let (mut loss, den) = match &problem.targets {
                Targets::Probs(p) => {
                    let t = |c: usize| p[at(c)] as f64 * (1.0 - eps) + eps / classes as f64;
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
            if z != 0.0 && den != 0.0 {
                loss += z * lse * lse;
            }
            RowLoss { loss, den, lse }
        })
        .collect()
}

/// The reduction of reduce.wgsl: `none`, `sum`, or Σ loss / Σ den (NaN for 0/0).
pub(crate) fn reduce(rows: &[RowLoss], problem: &LossProblem, reduction: Reduction) -> Output {
    let (sum, den) = rows
        .iter()
        .fold((0.0, 0.0), |(s, d), r| (s + r.loss, d + r.den));
    match reduction {
        Reduction::None => Output {
            data: rows.iter().map(|r| r.loss as f32).collect(),
            shape: problem.out_shape.clone(),
        },
        Reduction::Sum => Output {
            data: vec![sum as f32],
            shape: vec![],
        },
        Reduction::Mean => Output {
            data: vec![(sum / den) as f32],
            shape: vec![],
        },
    }
}
