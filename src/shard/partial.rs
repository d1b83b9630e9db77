//! One row's statistics over a slice of the classes, and their merge in shard order.

use super::lse::Lse;
use crate::error::{Result, XentError};

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

    pub(crate) fn lse(&self) -> Lse {
        Lse {
            m: self.max,
            s: self.sum_exp,
        }
    }

    /// A GPU shard's partial of one row from its two stats vec4s (the device layout,
    /// `DeviceShard`): `p` = (max, sum_exp, q, a)
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

    /// Each of `rows` rows' partial from a GPU shard's partials `[2, rows·K, 4]` (`words`),
    /// the `K` segments of a row merged in order.
    pub(crate) fn read_planes(words: &[f32], rows: usize, segments: usize) -> Vec<Partial> {
        let quad = |at: usize| [words[at], words[at + 1], words[at + 2], words[at + 3]];
        let aux = rows * segments * 4;
        (0..rows)
            .map(|r| {
                let segment = |j: usize| {
                    let at = 4 * (r * segments + j);
                    Partial::from_planes(quad(at), quad(aux + at))
                };
                match segments {
                    1 => segment(0),
                    _ => (0..segments)
                        .map(segment)
                        .fold(Partial::EMPTY, Partial::merge),
                }
            })
            .collect()
    }

    /// The merged statistics of every row ([`Partial::stats`]) over plane 0 of a GPU shard's
    /// partials of `K` segments a row: at each row's first segment; the rest is not read.
    pub(crate) fn merged_words(merged: &[Partial], segments: usize) -> Vec<f32> {
        let mut words = vec![0f32; merged.len() * segments * 4];
        for (r, p) in merged.iter().enumerate() {
            words[4 * r * segments..][..4].copy_from_slice(&p.stats());
        }
        words
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

/// Where `classes` are cut into `shards` slices as even as they come, never more slices than
/// classes (and one for none): shard k holds classes `bounds[k]..bounds[k + 1]`.
pub fn even_bounds(classes: usize, shards: usize) -> Vec<usize> {
    let count = shards.min(classes).max(1);
    (0..=count).map(|k| k * classes / count).collect()
}

/// Every row's partials merged over the shards, in the order given (rank order); an error
/// when the shards do not all hold the same rows.
pub fn merge(shards: &[Vec<Partial>]) -> Result<Vec<Partial>> {
    merge_with(shards, Partial::EMPTY, Partial::merge)
}

/// Every row's statistics merged over the shards from `empty`, in the order given, by
/// `merge`; an error when the shards do not all hold the same rows.
pub(crate) fn merge_with<S: Copy>(
    shards: &[Vec<S>],
    empty: S,
    merge: impl Fn(S, S) -> S,
) -> Result<Vec<S>> {
    let rows = shards.first().map_or(0, |s| s.len());
    if let Some(s) = shards.iter().find(|s| s.len() != rows) {
        return Err(XentError::InvalidShape(format!(
            "shards' partials cover {rows} and {} rows: every shard holds every row",
            s.len()
        )));
    }
    Ok((0..rows)
        .map(|r| shards.iter().fold(empty, |acc, s| merge(acc, s[r])))
        .collect())
}
