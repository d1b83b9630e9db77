//! `linear_cross_entropy` on the GPU, in row chunks whose logits fit `Linear::budget`:
//!
//! in one submission (src/gpu/ops/linear/chunks.rs): first, from the targets alone, the mean's D
//! over all the rows (summed on the device, so targets on the device need no trip to the
//! host); then for each chunk of R rows, in order:
//! 1. `logits = X[chunk] · Wᵀ + b` into one `[R, C]` scratch buffer (shaders/matmul.wgsl);
//! 2. the fused cross_entropy loss and gradient over it, in place (the loss kernels, with
//!    `sum` reduction and upstream gradient 1 / D for a mean over class targets, 1 / N over
//!    probabilities, else 1), so the gradient is PyTorch's `(g/D)·…`, NaN at D = 0;
//! 3. `dX[chunk] = G · W`, `dW += Gᵀ · X[chunk]` and `db += 1ᵀ · G`, each C element owned
//!    by one invocation and summed over the chunks in order: deterministic, no atomics.
//!
//! Then the rows' losses are reduced in row order. Operands larger than one binding are bound a window at a
//! time (src/geometry/windows.rs). The `[N, C]` logits never exist: device memory beyond the
//! inputs and gradients is the scratch (at most the budget) and each chunk's small buffers.

pub(crate) mod chunks;
pub(crate) mod device;
pub(crate) mod matmul;
pub(crate) mod matmul_prepared;
pub(crate) mod shard;
pub(crate) mod shard_device;
pub(crate) mod shards;

use crate::error::Result;
use crate::gpu::ops::linear::chunks::build_linear_chunks;
use crate::gpu::ops::loss::Loss;
use crate::gpu::runtime::buffers::{host_output, upload};
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::device_tensor::DeviceTensor;
use crate::gpu::runtime::program::run_program;
use crate::gpu::runtime::program::Program;
use crate::gpu::runtime::readback::staging_for;
use crate::gpu::runtime::readback::Staging;
use crate::gpu::runtime::run_lock::{run_locked, run_locked_async};
use crate::gpu::runtime::timestamps::timestamp_queries;
use crate::gpu::runtime::timestamps::Timestamps;
use crate::linear::{Linear, LinearOutput, LinearProblem};
use crate::options::{DType, LossOptions, Output, Reduction, Target};
use crate::problem::{check_loss, Targets, IGNORED};
use chunks::{At, Built, ChunkTargets, Tensors};
use matmul::Operand;
use std::time::Duration;

pub use matmul_prepared::PreparedMatmul;

/// A `linear_cross_entropy` built once, run many times.
///
/// Runs one at a time: each run holds the call's lock, so it may be shared by threads (in an
/// `Arc`), each run returning its own results.
pub struct PreparedLinear {
    ctx: Context,
    program: Program,
    problem: LinearProblem,
    reduction: Reduction,
    /// What the device's loss is divided by on the host: N for a mean over probabilities.
    divisor: f64,
    out_shape: Vec<usize>,
    /// What each run reads back: the loss, then dX, dW and db with the backward.
    reads: Vec<(wgpu::Buffer, Staging)>,
    has_bias: bool,
    /// Whether the backward's gradients and the lse are read.
    grad: bool,
    lse: bool,
    timestamps: Option<Timestamps>,
    /// Held by each run (src/gpu/runtime/run_lock.rs).
    lock: crate::gpu::runtime::run_lock::RunLock,
}

pub(crate) fn build_linear(
    ctx: &Context,
    linear: Linear,
    target: Target,
    opts: &LossOptions,
    grad: bool,
) -> Result<PreparedLinear> {
    let p = linear.problem()?;
    let logits_shape = p.logits_shape();
    let checked = check_loss(
        Loss::CrossEntropy,
        &logits_shape,
        p.rows * p.classes,
        &target,
        opts,
    )?;
    (|| {
        let upload = |label, t: &crate::options::FloatTensor| upload(ctx, label, &t.to_f32());
        let operand = |buffer| Operand {
            buffer,
            offset: 0,
            major: p.features,
            step: 1,
        };
        let class_targets;
        let targets = match &checked.targets {
            Targets::Classes(t) => {
                class_targets = DeviceTensor::from_host(ctx, t, &[t.len()], DType::I32)?;
                ChunkTargets::Classes(&class_targets)
            }
            Targets::Probs(t) => ChunkTargets::Probs(t),
        };
        let has_bias = linear.linear_bias.is_some();
        let grads = match grad {
            true => Some(host_grads(ctx, &p, has_bias)?),
            false => None,
        };
        let tensors = Tensors {
            x: operand(upload("linear input", &linear.input)?),
            w: operand(upload("linear weight", &linear.linear_weight)?),
            bias: match &linear.linear_bias {
                Some(b) => Some((upload("linear bias", b)?, 0)),
                None => None,
            },
            targets,
            grads,
            budget: linear.budget,
            lse: linear.lse,
        };
        // The host targets are checked and their ignored ones marked IGNORED.
        let chunk_opts = LossOptions {
            ignore_index: IGNORED as i64,
            ..*opts
        };
        let built = build_linear_chunks(ctx, &tensors, &p, &chunk_opts)?;
        let reads = linear_reads(ctx, &built, &tensors, &p, opts.reduction);
        let probs = matches!(checked.targets, Targets::Probs(_));
        Ok(PreparedLinear {
            ctx: ctx.clone(),
            program: built.program,
            problem: p,
            reduction: opts.reduction,
            divisor: match opts.reduction {
                Reduction::Mean if probs => p.rows as f64,
                _ => 1.0,
            },
            out_shape: checked.out_shape,
            reads,
            has_bias,
            grad,
            lse: linear.lse,
            timestamps: timestamp_queries(ctx),
            lock: Default::default(),
        })
    })()
}

/// The gradients' buffers: dX, dW, and db where there is a bias.
pub(super) fn host_grads(
    ctx: &Context,
    p: &LinearProblem,
    has_bias: bool,
) -> Result<(At, At, Option<At>)> {
    let (n, d, c) = (p.rows, p.features, p.classes);
    Ok((
        (host_output(ctx, "grad input", n * d)?, 0),
        (host_output(ctx, "grad linear weight", c * d)?, 0),
        match has_bias {
            true => Some((host_output(ctx, "grad linear bias", c)?, 0)),
            false => None,
        },
    ))
}

/// What each run reads back, in order: the loss, dX, dW, db (with a bias), the lse.
fn linear_reads(
    ctx: &Context,
    built: &Built,
    t: &Tensors,
    p: &LinearProblem,
    reduction: Reduction,
) -> Vec<(wgpu::Buffer, Staging)> {
    let loss_len = match reduction {
        Reduction::None => p.rows,
        _ => 1,
    };
    let mut parts = vec![(&built.loss, loss_len)];
    if let Some((dx, dw, db)) = &t.grads {
        parts.push((&dx.0, p.rows * p.features));
        parts.push((&dw.0, p.classes * p.features));
        parts.extend(db.as_ref().map(|db| (&db.0, p.classes)));
    }
    parts.extend(built.lse.as_ref().map(|lse| (lse, p.rows)));
    parts
        .into_iter()
        .map(|(b, len)| (b.clone(), staging_for(ctx, b, 0, (len.max(1) * 4) as u64)))
        .collect()
}

impl PreparedLinear {
    /// Runs the call and reads the loss (and gradients) back.
    pub fn run(&self) -> Result<LinearOutput> {
        Ok(run_locked(&self.ctx, &self.lock, self.run_held(false))?.0)
    }

    /// The async form of [`PreparedLinear::run`].
    pub async fn run_async(&self) -> Result<LinearOutput> {
        let run = self.run_held(false);
        Ok(run_locked_async(&self.ctx, &self.lock, run).await?.0)
    }

    /// As `run`, with the GPU time of the call where the adapter has timestamps.
    pub fn run_timed(&self) -> Result<(LinearOutput, Option<Duration>)> {
        run_locked(&self.ctx, &self.lock, self.run_held(true))
    }

    /// One run by a caller that holds the run lock.
    async fn run_held(&self, timed: bool) -> Result<(LinearOutput, Option<Duration>)> {
        let p = &self.problem;
        let reads: Vec<_> = self.reads.iter().map(|(b, s)| (b, 0, s)).collect();
        let timestamps = self.timestamps.as_ref().filter(|_| timed);
        let run = run_program(&self.ctx, &self.program, &reads, timestamps);
        let (parts, elapsed) = run.await?;
        let mut parts = parts.into_iter();
        let losses = parts.next().unwrap_or_default();
        let data = match self.reduction {
            Reduction::None => losses[..p.rows].to_vec(),
            _ => vec![(losses[0] as f64 / self.divisor) as f32],
        };
        let loss = Output {
            data,
            shape: match self.reduction {
                Reduction::None => self.out_shape.clone(),
                _ => vec![],
            },
        };
        let mut take = |len: usize, shape: Vec<usize>| {
            parts.next().map(|mut v| {
                v.truncate(len);
                Output { data: v, shape }
            })
        };
        let (mut grad_input, mut grad_linear_weight, mut grad_linear_bias) = (None, None, None);
        if self.grad {
            grad_input = take(p.rows * p.features, p.input_shape());
            grad_linear_weight = take(p.classes * p.features, vec![p.classes, p.features]);
            if self.has_bias {
                grad_linear_bias = take(p.classes, vec![p.classes]);
            }
        }
        let lse = take(p.rows, p.rows_shape()).filter(|_| self.lse);
        Ok((
            LinearOutput {
                loss,
                grad_input,
                grad_linear_weight,
                grad_linear_bias,
                lse,
            },
            elapsed,
        ))
    }
}
