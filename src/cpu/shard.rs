//! The f64 oracle of one vocabulary shard of `cross_entropy`: its rows' partials and its slice
//! of the gradient, computed from its own logits as the GPU shards compute them. The protocol
//! they follow (partials, merge, loss of merged) is `crate::shard`.
//!
//! ```
//! use wgpu_xent::cpu::shard::{grad, partials, Shard};
//! use wgpu_xent::cpu::wide::WideOptions;
//! use wgpu_xent::shard::{loss, merge, ShardTargets};
//! use wgpu_xent::Tensor;
//! // 2 rows of 5 classes: classes 0..3 on one shard, 3..5 on the other.
//! let (a, b) = ([1.0, 2.0, 0.5, 3.0, -1.0, 0.0], [0.0, 1.0, 2.0, 0.5]);
//! let targets = ShardTargets::Classes(&[1, 4]);
//! let opts = WideOptions::default();
//! let s0 = Shard { logits: Tensor::new(&a, &[2, 3]), first_class: 0 };
//! let s1 = Shard { logits: Tensor::new(&b, &[2, 2]), first_class: 3 };
//! let p0 = partials(&s0, 5, &targets, &opts)?;
//! let p1 = partials(&s1, 5, &targets, &opts)?;
//! let merged = merge(&[p0, p1])?;
//! let mean = loss(&merged, 5, &targets, &opts)?;
//! let g1 = grad(&s1, 5, &merged, &targets, &opts)?; // d loss / d logits[:, 3..5]
//! assert_eq!(g1.shape, vec![2, 2]);
//! # Ok::<(), wgpu_xent::XentError>(())
//! ```

use super::wide::{WideOptions, WideOutput};
use crate::error::{Result, XentError};
use crate::options::{Reduction, Tensor};
use crate::shard::{row_losses, Lse, Partial, ShardTargets};

/// One shard: the logits `[N, Cs]` of classes `first_class .. first_class + Cs`.
#[derive(Clone, Copy, Debug)]
pub struct Shard<'a> {
    pub logits: Tensor<'a, f64>,
    pub first_class: usize,
}

/// The shard's rows' partials, after checking its shape, its classes against `classes` (C),
/// the targets and the options' weights.
pub fn partials(
    shard: &Shard,
    classes: usize,
    targets: &ShardTargets,
    opts: &WideOptions,
) -> Result<Vec<Partial>> {
    let (n, cs) = check(shard, classes, targets, opts)?;
    let c0 = shard.first_class;
    let w = |c: usize| opts.weight.map_or(1.0, |w| w[c]);
    let eps = opts.label_smoothing;
    Ok((0..n)
        .map(|r| {
            let mut p = Partial::EMPTY;
            let z = |k: usize| cap(shard.logits.data[r * cs + k], opts.softcap);
            let st = (0..cs).fold(Lse::EMPTY, |st, k| st.push(z(k)));
            for k in 0..cs {
                let z = z(k);
                let q = match targets {
                    ShardTargets::Classes(_) => w(c0 + k),
                    ShardTargets::Probs(t) => {
                        w(c0 + k) * (t[r * cs + k] * (1.0 - eps) + eps / classes as f64)
                    }
                };
                p.q += q;
                p.qd += q * (z - st.m);
                if let ShardTargets::Classes(t) = targets {
                    if t[r] == (c0 + k) as i64 {
                        p.target = Some(z);
                    }
                }
            }
            Partial {
                max: st.m,
                sum_exp: st.s,
                ..p
            }
        })
        .collect())
}

/// The shard's slice `[N, Cs]` of d loss / d logits (upstream gradient 1; of the summed
/// losses for `none`), from its own logits and the merged partials.
pub fn grad(
    shard: &Shard,
    classes: usize,
    merged: &[Partial],
    targets: &ShardTargets,
    opts: &WideOptions,
) -> Result<WideOutput> {
    let (n, cs) = check(shard, classes, targets, opts)?;
    if merged.len() != n {
        return Err(XentError::InvalidShape(format!(
            "{} merged rows for a shard of {n} rows",
            merged.len()
        )));
    }
    let w = |c: usize| opts.weight.map_or(1.0, |w| w[c]);
    let (eps, c_f) = (opts.label_smoothing, classes as f64);
    let d = match opts.reduction {
        Reduction::Mean => row_losses(merged, classes, targets, opts)
            .iter()
            .map(|r| r.1)
            .sum(),
        _ => 1.0,
    };
    let coef = 1.0 / d;
    let mut out = vec![0.0; n * cs];
    for r in 0..n {
        let p = &merged[r];
        let st = p.lse();
        for k in 0..cs {
            let (c, x) = (shard.first_class + k, shard.logits.data[r * cs + k]);
            let z = cap(x, opts.softcap);
            let prob = st.log_prob(z).exp();
            let mut g = match targets {
                ShardTargets::Probs(t) => {
                    let pc = t[r * cs + k] * (1.0 - eps) + eps / c_f;
                    prob * (coef * p.q) - coef * (w(c) * pc)
                }
                // As PyTorch's: 0 - p·0 (src/cpu/grad.rs).
                ShardTargets::Classes(t) if t[r] == opts.ignore_index => {
                    out[r * cs + k] = prob * 0.0;
                    continue;
                }
                ShardTargets::Classes(t) => {
                    let y = t[r] as usize;
                    let ky = coef * ((1.0 - eps) * w(y));
                    let mut g = prob * ky - if c == y { ky } else { 0.0 };
                    if eps > 0.0 {
                        let ke = coef * (eps / c_f);
                        g += prob * (ke * p.q) - ke * w(c);
                    }
                    g
                }
            };
            if opts.z_loss != 0.0 {
                g += prob * (coef * (2.0 * opts.z_loss * st.value()));
            }
            if let Some(cap) = opts.softcap {
                let y = x / cap;
                let t = y.tanh();
                g *= 1.0 - t * t;
            }
            out[r * cs + k] = g;
        }
    }
    Ok(WideOutput {
        data: out,
        shape: vec![n, cs],
    })
}

/// The logit after softcap.
fn cap(x: f64, cap: Option<f64>) -> f64 {
    match cap {
        Some(c) => c * (x / c).tanh(),
        None => x,
    }
}

/// Checks the shard against C, its targets and the options: `(N, Cs)`.
fn check(
    shard: &Shard,
    classes: usize,
    targets: &ShardTargets,
    opts: &WideOptions,
) -> Result<(usize, usize)> {
    let &[n, cs] = shard.logits.shape else {
        return Err(XentError::InvalidShape(format!(
            "a shard's logits are [N, Cs], got {:?}",
            shard.logits.shape
        )));
    };
    shard.logits.check_len("logits")?;
    if shard
        .first_class
        .checked_add(cs)
        .is_none_or(|end| end > classes)
    {
        return Err(XentError::InvalidShape(format!(
            "a shard of classes {}..{} + {cs} is past C = {classes}",
            shard.first_class, shard.first_class
        )));
    }
    if let Some(w) = opts.weight.filter(|w| w.len() != classes) {
        return Err(XentError::InvalidShape(format!(
            "weight tensor should be defined either for all {classes} classes or no classes but got weight tensor of shape: [{}]",
            w.len()
        )));
    }
    match targets {
        ShardTargets::Classes(t) if t.len() != n => Err(XentError::InvalidShape(format!(
            "expected {n} class targets, got {}",
            t.len()
        ))),
        ShardTargets::Classes(t) => match t
            .iter()
            .position(|&y| y != opts.ignore_index && (y < 0 || y as usize >= classes))
        {
            Some(i) => Err(XentError::TargetOutOfBounds {
                position: vec![i],
                value: t[i],
                classes,
                ignore_index: opts.ignore_index,
            }),
            None => Ok((n, cs)),
        },
        ShardTargets::Probs(p) if p.len() != n * cs => Err(XentError::InvalidShape(format!(
            "a shard's probabilities are [{n}, {cs}], got {} values",
            p.len()
        ))),
        ShardTargets::Probs(_) => Ok((n, cs)),
    }
}
