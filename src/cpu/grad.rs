//! CPU gradients of cross_entropy and nll_loss: the mirror of shaders/grad.wgsl, in f64.

use super::loss::{load, LossCall, RowLoss};
use super::Real;
use crate::options::Reduction;
use crate::problem::{LossProblem, Targets, IGNORED};
use rayon::prelude::*;

/// d(cross_entropy)/d(logits) from the forward's rows, in the logits' precision.
pub(crate) fn cross_entropy_grad<X: Real, P: Real>(
    call: &LossCall<X, P>,
    rows: &[RowLoss],
    grad_output: f32,
) -> Vec<X> {
    let (problem, s) = (call.problem, call.s);
    let l = problem.layout;
    let coef = grad_output as f64 / denominator(rows, s.reduction);
    let eps = s.eps;
    let classes = l.classes as f64;
    let w = |c: usize| call.w(c);
    let weight_sum: f64 = (0..l.classes).map(w).sum();
    // As PyTorch's autograd (and grad.wgsl): k = g/D first, then log_softmax's backward
    // p_c·Σ_j G_j - G_c, the one-hot term only at the target, so that an infinite weight or g
    // gives NaN at the target and inf elsewhere.
    map_classes(call.x.len(), problem, |r, c, i| {
        let row = &rows[r];
        let x = load(call.x, i, s.cap);
        let p = row.st.log_prob(x).exp();
        let mut d = match &problem.targets {
            Targets::Probs(_) => {
                let t: f64 = call.probs[i].into();
                p * (coef * row.q) - coef * (w(c) * (t * (1.0 - eps) + eps / classes))
            }
            Targets::Classes(t) => match t[r] {
                // PyTorch's log_softmax backward of the zero upstream gradient, 0 - p·0: NaN
                // where the row's lse is not finite (a NaN or +inf logit, or every logit
                // -inf), and 0 elsewhere.
                IGNORED => return p * 0.0,
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
        if s.z != 0.0 {
            d += p * (coef * (2.0 * s.z * row.st.value()));
        }
        if let Some(cap) = s.cap {
            let y = x / cap;
            d *= 1.0 - y * y;
        }
        d
    })
}

/// d(nll_loss)/d(input), in the input's precision.
pub(crate) fn nll_grad<X: Real, P: Real>(call: &LossCall<X, P>, grad_output: f32) -> Vec<X> {
    let Targets::Classes(t) = &call.problem.targets else {
        unreachable!("nll_loss takes class targets")
    };
    let w = |c: usize| call.w(c);
    let den = match call.s.reduction {
        Reduction::Mean => t
            .iter()
            .filter(|&&y| y != IGNORED)
            .map(|&y| w(y as usize))
            .sum(),
        _ => 1.0,
    };
    let coef = grad_output as f64 / den;
    map_classes(call.x.len(), call.problem, |r, c, _| match t[r] {
        y if y != IGNORED && y as usize == c => -coef * w(c),
        _ => 0.0,
    })
}

/// `f(row, class, flat index)` for every one of `len` logits, in the logits' layout; parallel
/// over outer slices.
fn map_classes<R: Real>(
    len: usize,
    problem: &LossProblem,
    f: impl Fn(usize, usize, usize) -> f64 + Sync,
) -> Vec<R> {
    let l = problem.layout;
    let mut out = vec![R::from_f64(0.0); len];
    let slice = (l.classes * l.inner).max(1);
    out.par_chunks_mut(slice).enumerate().for_each(|(o, ys)| {
        for i in 0..l.inner {
            for c in 0..l.classes {
                let k = c * l.inner + i;
                ys[k] = R::from_f64(f(o * l.inner + i, c, o * slice + k));
            }
        }
    });
    out
}

/// The mean's denominator D (1 for `sum` and `none`).
fn denominator(rows: &[RowLoss], reduction: Reduction) -> f64 {
    match reduction {
        Reduction::Mean => rows.iter().map(|r| r.den).sum(),
        _ => 1.0,
    }
}
