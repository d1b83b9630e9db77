//! CPU log_softmax and softmax: the mirror of shaders/softmax.wgsl, in f64.

use super::Real;
use crate::error::Result;
use crate::layout::RowLayout;
use crate::options::{FloatTensor, Output, Tensor};
use crate::shard::Lse;
use rayon::prelude::*;

/// `torch.nn.functional.log_softmax(x, dim)`, accumulated in f64.
pub fn log_softmax<'i>(x: impl Into<FloatTensor<'i>>, dim: i64) -> Result<Output> {
    let x: FloatTensor = x.into();
    let values = x.to_f32();
    let x = Tensor::new(&values, x.shape());
    map_rows(x, dim, log_prob)
}

/// `torch.nn.functional.softmax(x, dim)`, accumulated in f64.
pub fn softmax<'i>(x: impl Into<FloatTensor<'i>>, dim: i64) -> Result<Output> {
    let x: FloatTensor = x.into();
    let values = x.to_f32();
    let x = Tensor::new(&values, x.shape());
    map_rows(x, dim, prob)
}

/// log_softmax of `x` in its row.
pub(crate) fn log_prob(x: f64, lse: Lse) -> f64 {
    lse.log_prob(x)
}

/// softmax of `x` in its row.
pub(crate) fn prob(x: f64, lse: Lse) -> f64 {
    (x - lse.m).exp() / lse.s
}

/// log_softmax's backward of one element, from `gy`, `y`, Σ gy and Σ gy·y.
pub(crate) fn log_softmax_grad(gy: f64, y: f64, sum_gy: f64, _dot: f64) -> f64 {
    gy - y.exp() * sum_gy
}

/// softmax's backward of one element, from `gy`, `y`, Σ gy and Σ gy·y.
pub(crate) fn softmax_grad(gy: f64, y: f64, _sum_gy: f64, dot: f64) -> f64 {
    y * (gy - dot)
}

/// `log_softmax`'s backward: `grad_out - exp(out) · Σ grad_out` along `dim`, in f64.
pub fn log_softmax_backward(grad_out: Tensor<f32>, out: Tensor<f32>, dim: i64) -> Result<Output> {
    let shape = out.shape.to_vec();
    let data = backward(grad_out, out, dim, log_softmax_grad)?;
    Ok(Output { data, shape })
}

/// `softmax`'s backward: `out · (grad_out - Σ grad_out · out)` along `dim`, in f64.
pub fn softmax_backward(grad_out: Tensor<f32>, out: Tensor<f32>, dim: i64) -> Result<Output> {
    let shape = out.shape.to_vec();
    let data = backward(grad_out, out, dim, softmax_grad)?;
    Ok(Output { data, shape })
}

/// For each row: Σ gy and Σ gy·y, then `f(gy_c, y_c, Σ gy, Σ gy·y)` for each class.
pub(crate) fn backward<R: Real>(
    gy: Tensor<R>,
    y: Tensor<R>,
    dim: i64,
    f: impl Fn(f64, f64, f64, f64) -> f64 + Sync,
) -> Result<Vec<R>> {
    y.check_len("output")?;
    gy.check_len("grad_out")?;
    if gy.shape != y.shape {
        return Err(crate::XentError::ShapeMismatch {
            input: y.shape.to_vec(),
            target: gy.shape.to_vec(),
        });
    }
    let l = RowLayout::for_dim(y.shape, dim)?;
    let mut gx = vec![R::from_f64(0.0); l.len()];
    let slice = (l.classes * l.inner).max(1);
    gx.par_chunks_mut(slice)
        .zip(y.data.par_chunks(slice).zip(gy.data.par_chunks(slice)))
        .for_each(|(gxs, (ys, gys))| {
            for i in 0..l.inner {
                let at = |c: usize| c * l.inner + i;
                let (g, v) = (|c: usize| gys[at(c)].into(), |c: usize| ys[at(c)].into());
                let sum: f64 = (0..l.classes).map(g).sum();
                let dot: f64 = (0..l.classes).map(|c| g(c) * v(c)).sum();
                for c in 0..l.classes {
                    gxs[at(c)] = R::from_f64(f(g(c), v(c), sum, dot));
                }
            }
        });
    Ok(gx)
}

/// For each row: its `Lse`, then `f(x_c, lse)` for each class. Parallel over outer slices.
fn map_rows(x: Tensor<f32>, dim: i64, f: impl Fn(f64, Lse) -> f64 + Sync) -> Result<Output> {
    Ok(Output {
        data: map_rows_in(x, dim, f)?,
        shape: x.shape.to_vec(),
    })
}

/// [`map_rows`] in any precision, returning the values.
pub(crate) fn map_rows_in<R: Real>(
    x: Tensor<R>,
    dim: i64,
    f: impl Fn(f64, Lse) -> f64 + Sync,
) -> Result<Vec<R>> {
    x.check_len("input")?;
    let l = RowLayout::for_dim(x.shape, dim)?;
    let mut y = vec![R::from_f64(0.0); l.len()];
    let slice = (l.classes * l.inner).max(1);
    y.par_chunks_mut(slice)
        .zip(x.data.par_chunks(slice))
        .for_each(|(ys, xs)| {
            for i in 0..l.inner {
                let row = |c: usize| -> f64 { xs[c * l.inner + i].into() };
                let lse = (0..l.classes).fold(Lse::EMPTY, |a, c| a.push(row(c)));
                for c in 0..l.classes {
                    ys[c * l.inner + i] = R::from_f64(f(row(c), lse));
                }
            }
        });
    Ok(y)
}
