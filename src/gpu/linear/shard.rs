//! One vocabulary shard of a `linear_cross_entropy`: the rows' hidden states `[N, D]` and a
//! slice `[Cs, D]` of the classifier (and of its bias), classes `first_class ..` of C. Its
//! logits `[N, Cs]` are one matrix product; from them come the shard's partials
//! ([`PreparedShard`]); from the merged partials its slice of d loss / d logits G, and from G
//! its slices of the weight's and bias's gradients and its share of the input's
//! (`G · W_s`, which the caller sums over the shards).
//!
//! The shard holds its own logits, `N × Cs` floats: C / R classes each over R shards, never
//! the full C.

use crate::cpu::shard::{merge, Partial};
use crate::error::{Result, XentError};
use crate::gpu::context::Context;
use crate::gpu::loss::{concurrently, merged_loss, Loss, PreparedShard, VocabShard};
use crate::linear::{Linear, LinearOutput};
use crate::options::{LossOptions, Output, Reduction, Target, Tensor};
use crate::problem::{check_loss, Targets, IGNORED};

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
        // An empty product (no rows or no features) is all zeros, without a dispatch.
        let empty = n == 0 || d == 0;
        let mut logits = match empty {
            true => vec![0f32; n * cs],
            false => self.matmul(shard.input, shard.weight)?.data,
        };
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
        if n == 0 || d == 0 {
            let zeros = |rows: usize, cols: usize| Output {
                data: vec![0.0; rows * cols],
                shape: vec![rows, cols],
            };
            let bias = self.bias.then(|| Output {
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

/// `linear_cross_entropy` with the classifier's classes split over `devices` (shard k of
/// `min(devices, C)` even slices on `devices[k % len]`, the shards on their own threads),
/// the partials merged on the host in shard order, dX summed over the shards in that order.
pub(crate) fn run_linear_sharded(
    devices: &[Context],
    linear: Linear,
    target: Target,
    opts: &LossOptions,
    grad: bool,
) -> Result<LinearOutput> {
    let p = linear.problem()?;
    let (n, d, c) = (p.rows, p.features, p.classes);
    let logits_shape = match p.unbatched {
        true => vec![c],
        false => vec![n, c],
    };
    let problem = check_loss(Loss::CrossEntropy, &logits_shape, n * c, &target, opts)?;
    if devices.is_empty() {
        return Err(XentError::InvalidArgument(
            "a sharded linear_cross_entropy needs at least one context".into(),
        ));
    }
    let (x, w) = (linear.input.to_f32(), linear.linear_weight.to_f32());
    let b = linear.linear_bias.map(|b| b.to_f32());
    let bounds = crate::cpu::shard::even_bounds(c, devices.len());
    let count = bounds.len() - 1;
    let (classes, probs) = shard_targets(&problem, &bounds, (n, c), opts);
    let (xs, rows) = ([n, d], [n]);
    let shapes: Vec<([usize; 2], [usize; 2], [usize; 1])> = bounds
        .windows(2)
        .map(|s| ([s[1] - s[0], d], [n, s[1] - s[0]], [s[1] - s[0]]))
        .collect();
    let prepare = |k: usize| -> Result<(PreparedLinearShard, Vec<Partial>)> {
        let (c0, c1) = (bounds[k], bounds[k + 1]);
        let (ws, ps, bs) = &shapes[k];
        let shard = LinearShard {
            input: Tensor::new(&x, &xs),
            weight: Tensor::new(&w[c0 * d..c1 * d], ws),
            bias: b.as_ref().map(|b| Tensor::new(&b[c0..c1], bs)),
            first_class: c0,
            classes: c,
        };
        let target = match &problem.targets {
            Targets::Probs(_) => Target::Probs(Tensor::new(&probs[k], ps)),
            Targets::Classes(_) => Target::I64(Tensor::new(&classes, &rows)),
        };
        let prepared = devices[k % devices.len()].build_linear_shard(shard, target, opts, grad)?;
        let partials = prepared.partials()?;
        Ok((prepared, partials))
    };
    let (prepared, partials): (Vec<_>, Vec<_>) = concurrently(count, prepare)?.into_iter().unzip();
    let merged = merge(&partials)?;
    let mut loss = merged_loss(&merged, c, &problem, opts)?;
    if opts.reduction == Reduction::None {
        loss.shape = problem.out_shape.clone();
    }
    let mut out = LinearOutput {
        loss,
        grad_input: None,
        grad_linear_weight: None,
        grad_linear_bias: None,
        lse: None,
    };
    if grad {
        let grads = concurrently(count, |k| prepared[k].grads(&merged))?;
        let (dx, dw, db) = join_grads(&grads, linear.input.shape(), (n, d, c), b.is_some());
        (out.grad_input, out.grad_linear_weight, out.grad_linear_bias) = (Some(dx), Some(dw), db);
    }
    Ok(out)
}

/// The class targets `[N]` as every shard takes them (ignored rows as `ignore_index`), and
/// each shard's slice of probability targets.
fn shard_targets(
    problem: &crate::problem::LossProblem,
    bounds: &[usize],
    (n, c): (usize, usize),
    opts: &LossOptions,
) -> (Vec<i64>, Vec<Vec<f32>>) {
    match &problem.targets {
        Targets::Classes(t) => {
            let back = |y: i32| {
                if y == IGNORED {
                    opts.ignore_index
                } else {
                    y as i64
                }
            };
            (
                t.iter().map(|&y| back(y)).collect(),
                vec![vec![]; bounds.len() - 1],
            )
        }
        Targets::Probs(q) => {
            let slice = |s: &[usize]| -> Vec<f32> {
                (0..n)
                    .flat_map(|r| &q[r * c + s[0]..r * c + s[1]])
                    .copied()
                    .collect()
            };
            (vec![], bounds.windows(2).map(slice).collect())
        }
    }
}

/// dX summed over the shards in order, and dW and db joined from their slices.
fn join_grads(
    grads: &[LinearShardGrads],
    input_shape: &[usize],
    (n, d, c): (usize, usize, usize),
    bias: bool,
) -> (Output, Output, Option<Output>) {
    let mut dx = vec![0f32; n * d];
    for g in grads {
        dx.iter_mut().zip(&g.input.data).for_each(|(a, v)| *a += v);
    }
    let dw = grads.iter().flat_map(|g| g.weight.data.iter().copied());
    let db = grads
        .iter()
        .flat_map(|g| g.bias.iter().flat_map(|b| b.data.iter().copied()));
    (
        Output {
            data: dx,
            shape: input_shape.to_vec(),
        },
        Output {
            data: dw.collect(),
            shape: vec![c, d],
        },
        bias.then(|| Output {
            data: db.collect(),
            shape: vec![c],
        }),
    )
}
