//! The loss of C classes from every row's merged partial: in f64, reduced as the options ask.

use super::partial::Partial;
use crate::cpu::wide::{WideOptions, WideOutput};
use crate::error::{Result, XentError};
use crate::options::{LossOptions, Output, Reduction, Target};
use crate::problem::{check_loss, Loss, LossProblem, Targets, IGNORED};

/// The targets as each shard sees them.
#[derive(Clone, Copy, Debug)]
pub enum ShardTargets<'a> {
    /// Every row's class `[N]` (the same on every shard), or `ignore_index`.
    Classes(&'a [i64]),
    /// This shard's slice `[N, Cs]` of the probabilities `[N, C]`.
    Probs(&'a [f64]),
}

/// Each row's loss and its share of the mean's denominator, from its merged partial.
pub(crate) fn row_losses(
    merged: &[Partial],
    classes: usize,
    targets: &ShardTargets,
    opts: &WideOptions,
) -> Vec<(f64, f64)> {
    let w = |c: usize| opts.weight.map_or(1.0, |w| w[c]);
    let (eps, z) = (opts.label_smoothing, opts.z_loss);
    merged
        .iter()
        .enumerate()
        .map(|(r, p)| {
            let lse = p.lse().value();
            // Σ q_c (lse - z_c) and lse - z_y as ln S - (z - max): exact for huge logits,
            // where max + ln S rounds back to max.
            let log_s = p.sum_exp.ln();
            let smooth = p.q * log_s - p.qd;
            let (loss, den) = match targets {
                ShardTargets::Probs(_) => (smooth, 1.0),
                ShardTargets::Classes(t) if t[r] == opts.ignore_index => return (0.0, 0.0),
                ShardTargets::Classes(t) => {
                    let y = t[r] as usize;
                    let zy = p.target.unwrap_or(f64::NAN);
                    let nll = w(y) * (log_s - (zy - p.max));
                    match eps > 0.0 {
                        true => ((1.0 - eps) * nll + eps / classes as f64 * smooth, w(y)),
                        false => (nll, w(y)),
                    }
                }
            };
            (loss + z * lse * lse, den)
        })
        .collect()
}

/// The loss of C classes from the merged partials, reduced as `opts.reduction` asks.
pub fn loss(
    merged: &[Partial],
    classes: usize,
    targets: &ShardTargets,
    opts: &WideOptions,
) -> Result<WideOutput> {
    if let ShardTargets::Classes(t) = targets {
        if t.len() != merged.len() {
            return Err(XentError::InvalidShape(format!(
                "{} merged rows for {} class targets",
                merged.len(),
                t.len()
            )));
        }
    }
    let rows = row_losses(merged, classes, targets, opts);
    let (sum, den) = rows
        .iter()
        .fold((0.0, 0.0), |(s, d), (l, w)| (s + l, d + w));
    Ok(match opts.reduction {
        Reduction::None => WideOutput {
            data: rows.iter().map(|r| r.0).collect(),
            shape: vec![rows.len()],
        },
        Reduction::Sum => WideOutput {
            data: vec![sum],
            shape: vec![],
        },
        Reduction::Mean => WideOutput {
            data: vec![crate::cpu::mean(sum, den, opts.label_smoothing)],
            shape: vec![],
        },
    })
}

/// The loss of `cross_entropy` (or of a `linear_cross_entropy`) over C = `classes` from every
/// row's partial merged over the shards ([`super::merge`]), computed in f64 and
/// reduced as `opts` asks: what a sharded caller's merging rank returns. `target` is the
/// class targets `[N]`, or any probabilities (their sums came with the partials).
pub fn loss_of_merged(
    merged: &[Partial],
    classes: usize,
    target: Target,
    opts: &LossOptions,
) -> Result<Output> {
    let n = merged.len();
    let shape = [n, classes];
    let problem = match target {
        Target::Probs(_) => crate::problem::check_loss_shapes(
            Loss::CrossEntropy,
            &shape,
            n * classes,
            &shape,
            true,
            opts,
        )?,
        t => check_loss(Loss::CrossEntropy, &shape, n * classes, &t, opts)?,
    };
    merged_loss(merged, classes, &problem, opts)
}

/// The loss from every row's merged partial, in f64, as the options reduce it.
pub(crate) fn merged_loss(
    merged: &[Partial],
    classes: usize,
    problem: &LossProblem,
    opts: &LossOptions,
) -> Result<Output> {
    let weight: Option<Vec<f64>> = opts.weight.map(|w| w.iter().map(|&v| v as f64).collect());
    let wide = WideOptions {
        weight: weight.as_deref(),
        // The checked targets mark an ignored row with IGNORED.
        ignore_index: IGNORED as i64,
        reduction: opts.reduction,
        label_smoothing: opts.label_smoothing as f64,
        z_loss: opts.z_loss as f64,
        softcap: opts.softcap.map(|c| c as f64),
    };
    let ys: Vec<i64>;
    let targets = match &problem.targets {
        Targets::Classes(t) => {
            ys = t.iter().map(|&y| y as i64).collect();
            ShardTargets::Classes(&ys)
        }
        Targets::Probs(_) => ShardTargets::Probs(&[]),
    };
    let out = loss(merged, classes, &targets, &wide)?;
    Ok(Output {
        data: out.data.iter().map(|&v| v as f32).collect(),
        shape: match opts.reduction {
            Reduction::None => problem.out_shape.clone(),
            _ => vec![],
        },
    })
}
