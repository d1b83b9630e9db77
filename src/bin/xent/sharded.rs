//! `--shards N`: cross-entropy with its classes split over N devices (`Context::for_shards`:
//! the adapters wgpu finds, in turn), as `Context::cross_entropy_sharded` runs it. The input
//! `[N, C, d1..dk]` (or `[C]`) is viewed as rows × C and cut into N class shards, as even as
//! they come; the gradient is put back in the input's layout.

use crate::data::Inputs;
use crate::error::{CliError, Result};
use wgpu_xent::{check_cross_entropy, Context, LossAndGrad, LossOptions, Output, Target, Tensor};

/// The input's view around its class axis: (outer, C, inner).
fn view(shape: &[usize]) -> (usize, usize, usize) {
    match shape {
        [c] => (1, *c, 1),
        [n, c, rest @ ..] => (*n, *c, rest.iter().product()),
        [] => (1, 1, 1),
    }
}

/// Classes `[c0, c1)` of every row of `x` (laid out as `view`), as a `[rows, c1 - c0]` shard.
fn shard_of(x: &[f32], (outer, c, inner): (usize, usize, usize), c0: usize, c1: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(outer * inner * (c1 - c0));
    for o in 0..outer {
        for j in 0..inner {
            out.extend((c0..c1).map(|k| x[(o * c + k) * inner + j]));
        }
    }
    out
}

/// cross-entropy of `inp` over `devices.len()` class shards (fewer when C is smaller).
pub fn cross_entropy(
    devices: &[Context],
    inp: &Inputs,
    opts: &LossOptions,
    grad: bool,
) -> Result<LossAndGrad> {
    let target = match &inp.probs {
        Some(p) => Target::Probs(Tensor::new(p, &inp.shape)),
        None => Target::I64(Tensor::new(&inp.classes, &inp.tshape)),
    };
    // The whole problem is checked first, so errors read as the unsharded call's.
    let out_shape = check_cross_entropy(&inp.shape, &target, opts)?;
    let v @ (outer, c, inner) = view(&inp.shape);
    let count = devices.len().min(c).max(1);
    let bounds: Vec<usize> = (0..=count).map(|k| k * c / count).collect();
    let rows = outer * inner;
    let xs: Vec<Vec<f32>> = bounds
        .windows(2)
        .map(|b| shard_of(&inp.x, v, b[0], b[1]))
        .collect();
    let shapes: Vec<[usize; 2]> = bounds.windows(2).map(|b| [rows, b[1] - b[0]]).collect();
    let shards: Vec<Tensor<f32>> = xs
        .iter()
        .zip(&shapes)
        .map(|(x, s)| Tensor::new(x, s))
        .collect();
    let probs = inp.probs.as_ref().map(|p| shard_of(p, v, 0, c));
    let (whole, row) = ([rows, c], [rows]);
    let target = match &probs {
        Some(p) => Target::Probs(Tensor::new(p, &whole)),
        None => Target::I64(Tensor::new(&inp.classes, &row)),
    };
    let (mut loss, grads) = Context::cross_entropy_sharded(devices, &shards, target, opts, grad)?;
    if opts.reduction == wgpu_xent::Reduction::None {
        loss.shape = out_shape;
    }
    let grad = grads.map(|g| {
        let mut data = vec![0f32; inp.x.len()];
        for (k, part) in g.iter().enumerate() {
            let (c0, cs) = (bounds[k], bounds[k + 1] - bounds[k]);
            for (r, row) in part.data.chunks(cs.max(1)).enumerate().take(rows) {
                let (o, j) = (r / inner, r % inner);
                for (i, &value) in row.iter().enumerate() {
                    data[(o * c + c0 + i) * inner + j] = value;
                }
            }
        }
        Output {
            data,
            shape: inp.shape.clone(),
        }
    });
    Ok(LossAndGrad {
        loss,
        grad,
        lse: None,
    })
}

/// `count` devices for `--shards`, or an error naming the flag.
pub fn devices(count: usize) -> Result<Vec<Context>> {
    if count == 0 {
        return Err(CliError::Arg("--shards takes a count of 1 or more".into()));
    }
    Ok(Context::for_shards(count, Default::default())?)
}
