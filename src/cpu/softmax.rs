//! CPU log_softmax and softmax: the mirror of shaders/softmax.wgsl, in f64.

use super::lse::Lse;
use crate::error::Result;
use crate::layout::RowLayout;
use crate::options::{Logits, Output, Tensor};
use rayon::prelude::*;

/// `torch.nn.functional.log_softmax(x, dim)`, accumulated in f64.
pub fn log_softmax<'i>(x: impl Into<Logits<'i>>, dim: i64) -> Result<Output> {
    let x: Logits = x.into();
    let values = x.to_f32();
    let x = Tensor::new(&values, x.shape());
    map_rows(x, dim, |xs, lse, _| lse.log_prob(xs))
}

/// `torch.nn.functional.softmax(x, dim)`, accumulated in f64.
pub fn softmax<'i>(x: impl Into<Logits<'i>>, dim: i64) -> Result<Output> {
    let x: Logits = x.into();
    let values = x.to_f32();
    let x = Tensor::new(&values, x.shape());
    map_rows(x, dim, |xs, lse, _| (xs - lse.m).exp() / lse.s)
}

/// `log_softmax`'s backward: `grad_out - exp(out) · Σ grad_out` along `dim`, in f64.
pub fn log_softmax_backward(grad_out: Tensor<f32>, out: Tensor<f32>, dim: i64) -> Result<Output> {
    backward(grad_out, out, dim, |gy, y, sum_gy, _| gy - y.exp() * sum_gy)
}

/// `softmax`'s backward: `out · (grad_out - Σ grad_out · out)` along `dim`, in f64.
pub fn softmax_backward(grad_out: Tensor<f32>, out: Tensor<f32>, dim: i64) -> Result<Output> {
    backward(grad_out, out, dim, |gy, y, _, dot| y * (gy - dot))
}

/// For each row: Σ gy and Σ gy·y, then `f(gy_c, y_c, Σ gy, Σ gy·y)` for each class.
fn backward(
    gy: Tensor<f32>,
    y: Tensor<f32>,
    dim: i64,
    f: impl Fn(f64, f64, f64, f64) -> f64 + Sync,
) -> Result<Output> {
    y.check_len("output")?;
    gy.check_len("grad_out")?;
    if gy.shape != y.shape {
        return Err(crate::XentError::ShapeMismatch {
            input: y.shape.to_vec(),
            target: gy.shape.to_vec(),
        });
    }
    let l = RowLayout::for_dim(y.shape, dim)?;
    let mut gx = vec![0f32; l.len()];
    let slice = (l.classes * l.inner).max(1);
    gx.par_chunks_mut(slice)
        .zip(y.data.par_chunks(slice).zip(gy.data.par_chunks(slice)))
        .for_each(|(gxs, (ys, gys))| {
            for i in 0..l.inner {
                let at = |c: usize| c * l.inner + i;
                let sum: f64 = (0..l.classes).map(|c| gys[at(c)] as f64).sum();
                let dot: f64 = (0..l.classes)
                    .map(|c| gys[at(c)] as f64 * ys[at(c)] as f64)
                    .sum();
                for c in 0..l.classes {
                    gxs[at(c)] = f(gys[at(c)] as f64, ys[at(c)] as f64, sum, dot) as f32;
                }
            }
        });
    Ok(Output {
        data: gx,
        shape: y.shape.to_vec(),
    })
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
