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
mod prepared;
pub(crate) mod shard;
pub(crate) mod shard_device;
pub(crate) mod shards;

use crate::error::Result;
use crate::gpu::ops::linear::chunks::build_linear_chunks;
use crate::gpu::ops::loss::Loss;
use crate::gpu::runtime::buffers::{host_output, upload};
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::device_tensor::DeviceTensor;
use crate::gpu::runtime::readback::staging_for;
use crate::gpu::runtime::readback::Staging;
use crate::gpu::runtime::timestamps::timestamp_queries;
use crate::linear::{Linear, LinearProblem};
use crate::options::{DType, LossOptions, Reduction, Target};
use crate::problem::{check_loss, Targets, IGNORED};
use chunks::{At, Built, ChunkTargets, Tensors};
use matmul::Operand;

pub use matmul_prepared::PreparedMatmul;
pub use prepared::PreparedLinear;

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
        let mut built = build_linear_chunks(ctx, &tensors, &p, &chunk_opts)?;
        let reads = linear_reads(ctx, &built, &tensors, &p, opts.reduction);
        let probs = matches!(checked.targets, Targets::Probs(_));
        Ok(PreparedLinear {
            ctx: ctx.clone(),
            program: std::mem::take(&mut built.program),
            built,
            problem: p,
            reduction: opts.reduction,
            divisor: match opts.reduction {
                Reduction::Mean if probs => p.rows as f64,
                _ => 1.0,
            },
            loss_shape: match opts.reduction {
                Reduction::None => checked.out_shape,
                _ => vec![],
            },
            reads,
            checks: 0,
            grads: grad.then_some(has_bias),
            lse: linear.lse,
            target_shape: target.shape().to_vec(),
            started: false.into(),
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
