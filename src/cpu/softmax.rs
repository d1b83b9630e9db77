//! CPU log_softmax and softmax: the mirror of shaders/softmax.wgsl, in f64.

use super::lse::Lse;
use crate::error::Result;
use crate::layout::RowLayout;
use crate::options::{Output, Tensor};
use rayon::prelude::*;

/// `torch.nn.functional.log_softmax(x, dim)`, accumulated in f64.
pub fn log_softmax(x: Tensor<f32>, dim: i64) -> Result<Output> {
    map_rows(x, dim, |xs, lse, _| lse.log_prob(xs))
}

/// `torch.nn.functional.softmax(x, dim)`, accumulated in f64.
pub fn softmax(x: Tensor<f32>, dim: i64) -> Result<Output> {
    map_rows(x, dim, |xs, lse, _| (xs - lse.m).exp() / lse.s)
}

/// For each row: its `Lse`, then `f(x_c, lse, c)` for each class. Parallel over outer slices.
fn map_rows(x: Tensor<f32>, dim: i64, f: impl Fn(f64, Lse, usize) -> f64 + Sync) -> Result<Output> {
    x.check_len("input")?;
    let l = RowLayout::for_dim(x.shape, dim)?;
    let mut y = vec![0f32; l.len()];
    let slice = (l.classes * l.inner).max(1);
    y.par_chunks_mut(slice)
        .zip(x.data.par_chunks(slice))
        .for_each(|(ys, xs)| {
            for i in 0..l.inner {
                let row = |c: usize| xs[c * l.inner + i] as f64;
                let lse = (0..l.classes).fold(Lse::EMPTY, |a, c| a.push(row(c)));
                for c in 0..l.classes {
                    ys[c * l.inner + i] = f(row(c), lse, c) as f32;
                }
            }
        });
    Ok(Output {
        data: y,
        shape: x.shape.to_vec(),
    })
}
