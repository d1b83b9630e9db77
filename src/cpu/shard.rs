//! The vocabulary-shard contract of `cross_entropy`, in f64: the reference a sharded GPU path
//! mirrors (issue 15).
//!
//! A shard holds the logits `[N, Cs]` of classes `[c0, c0 + Cs)` of `[N, C]`. It gives one
//! [`Partial`] per row, a few numbers that any all-gather can move. The partials of a row,
//! merged in shard order by [`merge`], are the row's softmax statistics over all C classes.
//! From them alone come the loss ([`loss`]) and, on each shard, its own slice of
//! `d loss / d logits` ([`grad`]). No shard ever needs another shard's logits.
//!
//! The math, with z the logit after softcap, q_c = w_c for class targets (the smoothing term)
//! and w_c · p'_c for probabilities (p' = (1 - ε) p + ε / C):
//! - lse = max + ln(Σ exp(z_c - max));
//! - class target y: w_y (lse - z_y), smoothed to (1 - ε) of that plus (ε / C)(Q lse - Σ q_c z_c)
//!   with Q = Σ q_c; D gets w_y; an ignored row gives 0 and adds 0 to D;
//! - probabilities: Q lse - Σ q_c z_c, D gets 1;
//! - z-loss: + z lse² on every counted row.
//!
//! ```
//! use wgpu_xent::cpu::shard::{grad, loss, merge, partials, Shard, ShardTargets};
//! use wgpu_xent::cpu::wide::WideOptions;
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

use super::lse::Lse;
use super::wide::{WideOptions, WideOutput};
use crate::error::{Result, XentError};
use crate::options::{Reduction, Tensor};

/// One shard: the logits `[N, Cs]` of classes `first_class .. first_class + Cs`.
#[derive(Clone, Copy, Debug)]
pub struct Shard<'a> {
    pub logits: Tensor<'a, f64>,
    pub first_class: usize,
}

/// The targets as each shard sees them.
#[derive(Clone, Copy, Debug)]
pub enum ShardTargets<'a> {
    /// Every row's class `[N]` (the same on every shard), or `ignore_index`.
    Classes(&'a [i64]),
    /// This shard's slice `[N, Cs]` of the probabilities `[N, C]`.
    Probs(&'a [f64]),
}

/// One row's statistics over a slice of the classes: 5 numbers and a flag.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Partial {
    /// max_c z_c (`-f64::MAX` over no class).
    pub max: f64,
    /// Σ_c exp(z_c - max).
    pub sum_exp: f64,
    /// Σ_c q_c.
    pub q: f64,
    /// Σ_c q_c (z_c - max): against the max, so that huge logits keep their precision.
    pub qd: f64,
    /// z_y, when the row's target class lies in the slice.
    pub target: Option<f64>,
}

impl Partial {
    /// Over no class.
    pub const EMPTY: Partial = Partial {
        max: Lse::EMPTY.m,
        sum_exp: 0.0,
        q: 0.0,
        qd: 0.0,
        target: None,
    };

    fn lse(&self) -> Lse {
        Lse {
            m: self.max,
            s: self.sum_exp,
        }
    }

    /// A GPU shard's partial of one row from its two stats vec4s (the device layout,
    /// [`crate::Context::prepare_cross_entropy_shard_device`]): `p` = (max, sum_exp, q, a)
    /// with a = Σ q_c (z_c - r) against a reference r, and `e` = (r, z_target, found, 0).
    pub fn from_planes(p: [f32; 4], e: [f32; 4]) -> Partial {
        let (m, q, a, r) = (p[0] as f64, p[2] as f64, p[3] as f64, e[0] as f64);
        Partial {
            max: m,
            sum_exp: p[1] as f64,
            q,
            qd: a + q * (r - m),
            target: (e[2] != 0.0).then_some(e[1] as f64),
        }
    }

    /// The merged statistics a GPU shard's gradient reads, in f32: (max, sum_exp, q, lse).
    pub fn stats(&self) -> [f32; 4] {
        let lse = self.max + self.sum_exp.ln();
        [
            self.max as f32,
            self.sum_exp as f32,
            self.q as f32,
            lse as f32,
        ]
    }

    /// This partial and a later shard's, as one: associative in exact arithmetic; merged
    /// in shard order the result is the same bits on every run.
    pub fn merge(self, later: Partial) -> Partial {
        let st = self.lse().merge(later.lse());
        let m = st.m;
        Partial {
            max: m,
            sum_exp: st.s,
            q: self.q + later.q,
            qd: self.qd + self.q * (self.max - m) + later.qd + later.q * (later.max - m),
            target: self.target.or(later.target),
        }
    }
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

/// Where `classes` are cut into `shards` slices as even as they come, never more slices than
/// classes (and one for none): shard k holds classes `bounds[k]..bounds[k + 1]`.
pub fn even_bounds(classes: usize, shards: usize) -> Vec<usize> {
    let count = shards.min(classes).max(1);
    (0..=count).map(|k| k * classes / count).collect()
}

/// Every row's partials merged over the shards, in the order given (rank order); an error
/// when the shards do not all hold the same rows.
pub fn merge(shards: &[Vec<Partial>]) -> Result<Vec<Partial>> {
    let rows = shards.first().map_or(0, |s| s.len());
    if let Some(s) = shards.iter().find(|s| s.len() != rows) {
        return Err(XentError::InvalidShape(format!(
            "shards' partials cover {rows} and {} rows: every shard holds every row",
            s.len()
        )));
    }
    Ok((0..rows)
        .map(|r| shards.iter().fold(Partial::EMPTY, |acc, s| acc.merge(s[r])))
        .collect())
}

/// Each row's loss and its share of the mean's denominator, from its merged partial.
fn row_losses(
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
            data: vec![super::loss::mean(sum, den, opts.label_smoothing)],
            shape: vec![],
        },
    })
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
