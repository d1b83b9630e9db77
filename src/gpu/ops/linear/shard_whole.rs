//! The unfused form of a host linear shard (probability targets, and empty products): its
//! logits `[N, Cs]` whole as a cross_entropy shard, then G's products with the host's
//! transposes of X and W_s.

use super::shard::{LinearShard, LinearShardGrads, PreparedLinearShard};
use crate::error::Result;
use crate::gpu::api::Grad;
use crate::gpu::ops::linear::matmul_prepared::build_matmul;
use crate::gpu::ops::linear::matmul_prepared::product;
use crate::gpu::ops::loss::shard::build_shard;
use crate::gpu::ops::loss::{PreparedShard, VocabShard};
use crate::gpu::runtime::context::Context;
use crate::options::{LossOptions, Output, Target, Tensor};
use crate::shard::Partial;

/// The logits whole, and Xᵀ `[D, N]` and W_sᵀ `[D, Cs]`, the backward's second operands
/// (K-contiguous).
pub(super) struct Whole {
    pub(super) loss: PreparedShard,
    x_t: Vec<f32>,
    w_t: Vec<f32>,
    bias: bool,
}

/// The logits whole (one product, the bias added on the host), as a cross_entropy shard.
pub(super) fn whole_shard(
    ctx: &Context,
    shard: LinearShard,
    target: Target,
    opts: &LossOptions,
    grad: bool,
) -> Result<Whole> {
    let (&[n, d], cs) = (shard.input.shape, shard.weight.shape[0]) else {
        unreachable!("checked by build_linear_shard")
    };
    // An empty product (no rows or no features) is all zeros, without a dispatch.
    let mut logits = match n == 0 || d == 0 {
        true => vec![0f32; n * cs],
        false => build_matmul(ctx, shard.input, shard.weight)?.run()?.data,
    };
    if let Some(b) = shard.bias {
        for row in logits.chunks_mut(cs.max(1)) {
            row.iter_mut().zip(b.data).for_each(|(z, &b)| *z += b);
        }
    }
    let shape = [n, cs];
    let vocab = VocabShard {
        logits: Tensor::new(&logits, &shape),
        first_class: shard.first_class,
        classes: shard.classes,
        target,
        options: *opts,
        grad: if grad { Grad::Returned } else { Grad::None },
    };
    let keep = |t: &Tensor<f32>, rows: usize| match grad {
        true => transpose(t.data, rows, d),
        false => vec![],
    };
    Ok(Whole {
        loss: build_shard(ctx, vocab, target, opts, grad)?,
        x_t: keep(&shard.input, n),
        w_t: keep(&shard.weight, cs),
        bias: shard.bias.is_some(),
    })
}

impl PreparedLinearShard {
    pub(super) async fn whole_grads(
        &self,
        w: &Whole,
        merged: &[Partial],
    ) -> Result<LinearShardGrads> {
        let (n, d, cs) = self.dims;
        let g = w.loss.grad_held(merged).await?.data;
        if n == 0 || d == 0 {
            let zeros = |rows: usize, cols: usize| Output {
                data: vec![0.0; rows * cols],
                shape: vec![rows, cols],
            };
            let bias = w.bias.then(|| Output {
                data: (0..cs)
                    .map(|c| (0..n).map(|r| g[r * cs + c] as f64).sum::<f64>() as f32)
                    .collect(),
                shape: vec![cs],
            });
            return Ok(LinearShardGrads {
                input: zeros(n, d),
                weight: zeros(cs, d),
                bias,
            });
        }
        // dX_s = G · W_s = G @ (W_sᵀ)ᵀ and dW_s = Gᵀ · X = Gᵀ @ (Xᵀ)ᵀ.
        let (gs, ws) = ([n, cs], [d, cs]);
        let input = product(&self.ctx, Tensor::new(&g, &gs), Tensor::new(&w.w_t, &ws));
        let input = input.await?;
        let g_t = transpose(&g, n, cs);
        let (gs, xs) = ([cs, n], [d, n]);
        let weight = product(&self.ctx, Tensor::new(&g_t, &gs), Tensor::new(&w.x_t, &xs));
        let weight = weight.await?;
        let bias = w.bias.then(|| Output {
            data: g_t
                .chunks(n.max(1))
                .take(cs)
                .map(|col| col.iter().map(|&v| v as f64).sum::<f64>() as f32)
                .collect(),
            shape: vec![cs],
        });
        Ok(LinearShardGrads {
            input,
            weight,
            bias,
        })
    }
}

/// `[rows, cols]` row-major, transposed to `[cols, rows]`.
fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = a[r * cols + c];
        }
    }
    t
}
