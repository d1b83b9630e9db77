//! One vocabulary shard of a `linear_cross_entropy`: the rows' hidden states `[N, D]` and a
//! slice `[Cs, D]` of the classifier (and of its bias), classes `first_class ..` of C. Its
//! logits `[N, Cs]` are one matrix product; from them come the shard's partials
//! ([`PreparedShard`]); from the merged partials its slice of d loss / d logits G, and from G
//! its slices of the weight's and bias's gradients and its share of the input's
//! (`G · W_s`, which the caller sums over the shards).
//!
//! The shard holds its own logits, `N × Cs` floats: C / R classes each over R shards, never
//! the full C.

use crate::cpu::shard::Partial;
use crate::error::{Result, XentError};
use crate::gpu::context::Context;
use crate::gpu::loss::{PreparedShard, VocabShard};
use crate::options::{LossOptions, Output, Target, Tensor};

/// A shard of a `linear_cross_entropy`, in f32.
#[derive(Clone, Copy, Debug)]
pub struct LinearShard<'a> {
    /// The hidden states `[N, D]`, the same on every shard.
    pub input: Tensor<'a, f32>,
    /// This shard's rows `[Cs, D]` of the classifier weight.
    pub weight: Tensor<'a, f32>,
    /// This shard's slice `[Cs]` of the bias.
    pub bias: Option<Tensor<'a, f32>>,
    pub first_class: usize,
    /// C, the classes of all shards together.
    pub classes: usize,
}

/// A shard's gradients: its share of d loss / d input (summed over the shards, it is the
/// input's gradient), and its own slices of the weight's and the bias's.
#[derive(Clone, Debug)]
pub struct LinearShardGrads {
    pub input: Output,
    pub weight: Output,
    pub bias: Option<Output>,
}

/// A [`LinearShard`] prepared on one context: [`PreparedLinearShard::partials`], then, with
/// every shard's merged, [`PreparedLinearShard::grads`].
pub struct PreparedLinearShard {
    ctx: Context,
    loss: PreparedShard,
    /// Xᵀ `[D, N]` and W_sᵀ `[D, Cs]`, the backward's second operands (K-contiguous).
    x_t: Vec<f32>,
    w_t: Vec<f32>,
    dims: (usize, usize, usize),
    bias: bool,
}

impl Context {
    pub(crate) fn build_linear_shard(
        &self,
        shard: LinearShard,
        target: Target,
        opts: &LossOptions,
        grad: bool,
    ) -> Result<PreparedLinearShard> {
        let (n, d, cs) = match (shard.input.shape, shard.weight.shape) {
            (&[n, d], &[cs, dw]) if d == dw => (n, d, cs),
            (x, w) => {
                return Err(XentError::InvalidShape(format!(
                    "a linear shard's input is [N, D] and its weight [Cs, D], got {x:?} and {w:?}"
                )))
            }
        };
        shard.input.check_len("input")?;
        shard.weight.check_len("linear_weight")?;
        let mut logits = self.matmul(shard.input, shard.weight)?.data;
        if let Some(b) = shard.bias {
            if b.shape != [cs] {
                return Err(XentError::InvalidShape(format!(
                    "a linear shard's bias is [{cs}], got {:?}",
                    b.shape
                )));
            }
            b.check_len("linear_bias")?;
            for row in logits.chunks_mut(cs.max(1)) {
                row.iter_mut().zip(b.data).for_each(|(z, &b)| *z += b);
            }
        }
        let shape = [n, cs];
        let vocab = VocabShard {
            logits: Tensor::new(&logits, &shape),
            first_class: shard.first_class,
            classes: shard.classes,
        };
        let loss = self.build_shard(vocab, target, opts, grad)?;
        let keep = |t: &Tensor<f32>, rows: usize| match grad {
            true => transpose(t.data, rows, d),
            false => vec![],
        };
        Ok(PreparedLinearShard {
            ctx: self.clone(),
            x_t: keep(&shard.input, n),
            w_t: keep(&shard.weight, cs),
            loss,
            dims: (n, d, cs),
            bias: shard.bias.is_some(),
        })
    }
}

impl PreparedLinearShard {
    /// Each row's [`Partial`] over this shard's classes.
    pub fn partials(&self) -> Result<Vec<Partial>> {
        self.loss.partials()
    }

    /// The shard's gradients (upstream gradient 1; of the summed losses for `none`) from
    /// every shard's partials merged in shard order.
    pub fn grads(&self, merged: &[Partial]) -> Result<LinearShardGrads> {
        let (n, d, cs) = self.dims;
        let g = self.loss.grad(merged)?.data;
        // dX_s = G · W_s = G @ (W_sᵀ)ᵀ and dW_s = Gᵀ · X = Gᵀ @ (Xᵀ)ᵀ.
        let input = self
            .ctx
            .matmul(Tensor::new(&g, &[n, cs]), Tensor::new(&self.w_t, &[d, cs]))?;
        let g_t = transpose(&g, n, cs);
        let weight = self
            .ctx
            .matmul(Tensor::new(&g_t, &[cs, n]), Tensor::new(&self.x_t, &[d, n]))?;
        let bias = self.bias.then(|| Output {
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
