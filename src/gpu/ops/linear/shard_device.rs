//! One vocabulary shard of a `linear_cross_entropy` on tensors already on the device, fused:
//! the hidden states `[N, D]`, this shard's slice of the classifier `[Cs, D]` (and bias)
//! and the class targets `[N]` in; its partials out, in the `[2, N, 4]` layout of a device
//! `cross_entropy` shard (src/gpu/ops/loss/shard_device.rs); then, from the merged statistics,
//! its gradients into the caller's tensors. Recorded into the caller's encoder.
//!
//! The shard's logits `[N, Cs]` never exist. Both programs walk the rows in chunks:
//! - partials: `logits = X[chunk] · W_sᵀ + b_s` into a scratch (shaders/matmul.wgsl), then
//!   each row's partial (`cross_entropy_partials`), copied into its place in `[2, N, 4]`;
//! - gradients: the mean's D from the targets; then for each chunk the logits again, G their
//!   gradient over them from the merged statistics (`cross_entropy_grad_segments`, in
//!   place), and `dX[chunk] =
//!   G · W_s`, `dW_s (+)= Gᵀ · X[chunk]`, `db_s (+)= 1ᵀ · G`, summed over the chunks in
//!   order: deterministic, no atomics.
//!
//! Device memory beyond the caller's tensors: the logits scratch (at most the budget, at
//! least one row), about 80 bytes a row (the partials `[2, N, 4]`, each chunk's own
//! partials, losses and targets), f32 copies of 16-bit inputs, and a few small buffers. The logits
//! are computed twice, once a pass, rather than held.

use super::chunks::{ChunkTargets, Tensors};
use super::device::{check_apart, check_shape, grad_at};
use super::matmul::Operand;
use crate::error::{Result, XentError};
use crate::geometry::tiles::row_chunks;
use crate::gpu::api::Grad;
use crate::gpu::ops::linear::chunks::{linear_chunk_rows, push_linear_grads, push_logits};
use crate::gpu::ops::linear::device::f32_view;
use crate::gpu::ops::loss::shard_kernels::{shard_kernels, shard_spec};
use crate::gpu::ops::loss::shard_kernels::{ShardChunk, ShardGrad, ShardKernels, ShardRows};
use crate::gpu::runtime::buffers::Bound;
use crate::gpu::runtime::buffers::{output, upload};
use crate::gpu::runtime::cancel::record_settled;
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::device_tensor::DeviceTensor;
use crate::gpu::runtime::program::record;
use crate::gpu::runtime::program::{BufferCopy, Program};
use crate::linear::LinearProblem;
use crate::options::{DType, LossOptions};
use std::ops::Range;

/// A shard of a `linear_cross_entropy` on the device: `input` `[N, D]` and this shard's
/// `weight` `[Cs, D]` and `bias` `[Cs]` (classes `first_class ..` of `classes`), each f32,
/// f16 or bf16 (16-bit ones are widened into f32 copies of ours), and class targets `[N]`
/// over all C (i32, u32 or i64), in a buffer with `COPY_SRC` usage, checked on the device
/// ([`PreparedLinearShardDevice::check_targets`] reads it).
#[derive(Clone, Copy, Debug)]
pub struct DeviceLinearShard<'a> {
    /// The hidden states `[N, D]`, the same on every shard.
    pub input: &'a DeviceTensor,
    /// This shard's rows `[Cs, D]` of the classifier weight.
    pub weight: &'a DeviceTensor,
    /// This shard's slice `[Cs]` of the bias.
    pub bias: Option<&'a DeviceTensor>,
    /// The class targets `[N]` over all C (i32, u32 or i64), checked on the device.
    pub target: &'a DeviceTensor,
    /// The first of its classes: it holds `first_class .. first_class + Cs` of C.
    pub first_class: usize,
    /// C, the classes of all shards together.
    pub classes: usize,
    /// f32 tensors for the shard's gradients: its share `[N, D]` of the input's (written;
    /// summed over the shards it is the input's gradient), and its slices `[Cs, D]` of the
    /// weight's and `[Cs]` of the bias's (which may be left out). `None`: partials only.
    pub grad: Grad<'a>,
    /// The most bytes of logits held at once (their gradient is written over them)
    /// ([`crate::DEFAULT_LINEAR_BUDGET`], for one).
    pub budget: usize,
    /// PyTorch's loss options (`weight`: all C classes).
    pub options: LossOptions<'a>,
}

/// A [`DeviceLinearShard`] prepared: record its partials, merge, record its gradients.
pub struct PreparedLinearShardDevice {
    ctx: Context,
    /// Widens 16-bit inputs into our f32 copies: recorded before either program, so each
    /// reads the inputs as they are when it is recorded.
    prelude: Program,
    partials: Program,
    grads: Option<Program>,
    out: wgpu::Buffer,
    rows: usize,
    // Keeps the buffers the programs bind.
    kernels: ShardKernels,
}

/// The buffers the chunks share: the logits scratch (G over it in the gradients' pass), and
/// a row of ones (db = 1ᵀ·G).
struct Scratch {
    logits: wgpu::Buffer,
    ones: Operand,
}

pub(crate) fn build_linear_shard_device(
    ctx: &Context,
    call: DeviceLinearShard,
) -> Result<PreparedLinearShardDevice> {
    let opts = &call.options;
    let p = LinearProblem::new(
        call.input.shape(),
        call.weight.shape(),
        call.bias.map(|b| b.shape()),
    )?;
    if p.unbatched {
        return Err(XentError::InvalidShape(format!(
            "a linear shard's input is [N, D], got {:?}",
            call.input.shape()
        )));
    }
    let (n, cs) = (p.rows, p.classes);
    let shape = ShardRows {
        rows: n,
        first_class: call.first_class,
        shard_classes: cs,
        classes: call.classes,
    };
    let spec = shard_spec(shape, call.target, opts)?;
    check_apart(
        [Some(call.input), Some(call.weight), call.bias],
        grads_into(&call)?,
    )?;
    if !call
        .target
        .buffer()
        .usage()
        .contains(wgpu::BufferUsages::COPY_SRC)
    {
        return Err(XentError::InvalidArgument(
            "a linear shard's target buffer needs COPY_SRC usage: each chunk's targets are copied out of it".into(),
        ));
    }
    let mut prelude = Program::default();
    let t = shard_tensors(ctx, &call, &p, &mut prelude)?;
    // Each chunk's partials are bound whole: 32 bytes a row.
    let stats_rows = (ctx.max_binding_bytes() as usize / 32).max(1);
    let rows = linear_chunk_rows(ctx, &p, call.budget)?.min(stats_rows);
    let spans = row_chunks(n, rows);
    let scratch = Scratch {
        logits: output(ctx, "shard logits", rows * cs)?,
        ones: Operand {
            buffer: upload(ctx, "ones", &vec![1.0f32; rows])?,
            offset: 0,
            major: 0,
            step: 1,
        },
    };
    let (chunks, target_copies) =
        linear_shard_chunks(ctx, &spans, cs, &scratch.logits, call.target)?;
    let grad = match t.grads {
        Some(_) => ShardGrad::OverLogits,
        None => ShardGrad::None,
    };
    let kernels = shard_kernels(ctx, (shape, spec), opts, chunks, grad)?;
    let out = output(ctx, "shard partials", 8 * n)?;
    let mut partials = Program::default();
    target_copies
        .iter()
        .for_each(|c| partials.copy_in(c.clone()));
    kernels.push_target_check(&mut partials)?;
    for (k, span) in spans.iter().enumerate() {
        push_logits(ctx, &mut partials, &t, &p, &scratch.logits, span.clone())?;
        kernels.push_partials(&mut partials, k)?;
        for plane in 0..2 {
            partials.copy_out(stats_copy(&kernels, k, span, n, plane, true, &out));
        }
    }
    let grads = match &t.grads {
        Some(grads) => {
            let mut program = Program::default();
            target_copies.into_iter().for_each(|c| program.copy_in(c));
            kernels.push_dens(&mut program)?;
            for (k, span) in spans.iter().enumerate() {
                program.copy_in(stats_copy(&kernels, k, span, n, 0, false, &out));
                push_logits(ctx, &mut program, &t, &p, &scratch.logits, span.clone())?;
                kernels.push_grad(&mut program, k)?;
                let g = (&scratch.logits, &scratch.ones);
                push_linear_grads(ctx, &mut program, &t, grads, g, &p, span.clone())?;
            }
            Some(program)
        }
        None => None,
    };
    Ok(PreparedLinearShardDevice {
        ctx: ctx.clone(),
        prelude,
        partials,
        grads,
        out,
        rows: n,
        kernels,
    })
}

/// The shard's tensors, checked, as the chunks' products take them (16-bit ones widened
/// by `prelude`).
fn shard_tensors<'a>(
    ctx: &Context,
    call: &DeviceLinearShard<'a>,
    p: &LinearProblem,
    prelude: &mut Program,
) -> Result<Tensors<'a>> {
    let (n, d, cs) = (p.rows, p.features, p.classes);
    let operand = |(buffer, offset)| Operand {
        buffer,
        offset,
        major: d,
        step: 1,
    };
    let grads = match grads_into(call)? {
        Some((dx, dw, db)) => Some((
            grad_at(dx, "the input's gradient", &[n, d])?,
            grad_at(dw, "the weight's gradient", &[cs, d])?,
            match (db, call.bias) {
                (Some(db), Some(_)) => Some(grad_at(db, "the bias's gradient", &[cs])?),
                (Some(_), None) => {
                    return Err(XentError::InvalidArgument(
                        "a linear shard's bias gradient is given without a bias".into(),
                    ))
                }
                (None, _) => None,
            },
        )),
        None => None,
    };
    check_shape(call.target, "target", &[n])?;
    Ok(Tensors {
        x: operand(f32_view(ctx, call.input, "input", &[n, d], prelude)?),
        w: operand(f32_view(
            ctx,
            call.weight,
            "linear_weight",
            &[cs, d],
            prelude,
        )?),
        bias: match call.bias {
            Some(b) => Some(f32_view(ctx, b, "linear_bias", &[cs], prelude)?),
            None => None,
        },
        targets: ChunkTargets::Classes(call.target),
        grads,
        budget: call.budget,
        lse: false,
    })
}

/// Each chunk of rows: its logits in the scratch, and its targets in a buffer of its
/// own, copied out of the call's (the copies returned) at the start of every run.
fn linear_shard_chunks(
    ctx: &Context,
    spans: &[Range<usize>],
    cs: usize,
    scratch: &wgpu::Buffer,
    target: &DeviceTensor,
) -> Result<(Vec<ShardChunk>, Vec<BufferCopy>)> {
    let word = target.dtype().size();
    let mut chunks = vec![];
    let mut copies = vec![];
    for span in spans {
        let bytes = span.len() * word;
        let targets = output(ctx, "shard chunk targets", bytes.div_ceil(4))?;
        copies.push(BufferCopy {
            src: target.buffer().clone(),
            src_offset: target.offset() + (span.start * word) as u64,
            dst: targets.clone(),
            dst_offset: 0,
            bytes: bytes as u64,
        });
        chunks.push(ShardChunk {
            // Bound in whole groups of 8, which wide loads read.
            logits: Bound {
                buffer: scratch.clone(),
                offset: 0,
                size: ((span.len() * cs).next_multiple_of(8) * 4) as u64,
            },
            targets: Bound {
                buffer: targets,
                offset: 0,
                size: (bytes.next_multiple_of(4)) as u64,
            },
            rows: span.clone(),
        });
    }
    Ok((chunks, copies))
}

/// The copy of chunk `k`'s plane `plane` of partials (rows `span` of `n`) to its place in
/// the shard's `[2, N, 4]` (`out`), or back from it.
fn stats_copy(
    kernels: &ShardKernels,
    k: usize,
    span: &Range<usize>,
    n: usize,
    plane: usize,
    out: bool,
    all: &wgpu::Buffer,
) -> BufferCopy {
    let stats = &kernels.chunks[k].stats;
    let (at_chunk, at_all) = (plane * span.len() * 16, (plane * n + span.start) * 16);
    let (src, src_offset, dst, dst_offset) = match out {
        true => (stats, at_chunk, all, at_all),
        false => (all, at_all, stats, at_chunk),
    };
    BufferCopy {
        src: src.clone(),
        src_offset: src_offset as u64,
        dst: dst.clone(),
        dst_offset: dst_offset as u64,
        bytes: (span.len() * 16) as u64,
    }
}

impl PreparedLinearShardDevice {
    /// Records the shard's partials into `encoder` (after whatever wrote its inputs):
    /// [`PreparedLinearShardDevice::partials`] holds them once it has run.
    pub fn record_partials(&self, encoder: &mut wgpu::CommandEncoder) {
        self.record_prelude(encoder);
        record_settled(&self.ctx, encoder, &self.partials);
    }

    fn record_prelude(&self, encoder: &mut wgpu::CommandEncoder) {
        if self.prelude.len() > 0 {
            record(encoder, &self.prelude, None);
        }
    }

    /// Reads the check of the targets made by the last submitted
    /// [`PreparedLinearShardDevice::record_partials`] (waiting for it), as
    /// [`crate::PreparedShardDevice::check_targets`].
    pub fn check_targets(&self) -> Result<()> {
        self.kernels.read_target_check()
    }

    /// The async form of [`PreparedLinearShardDevice::check_targets`].
    pub async fn check_targets_async(&self) -> Result<()> {
        self.kernels.read_target_check_async().await
    }

    /// The partials, `[2, N, 4]` f32, as a device `cross_entropy` shard's
    /// ([`crate::PreparedShardDevice::partials`]). Past `max_binding_bytes / 32` rows this
    /// is larger than one binding: copy or read it, don't bind it whole.
    pub fn partials(&self) -> DeviceTensor {
        DeviceTensor::from_parts(self.out.clone(), vec![2, self.rows, 4], DType::F32)
    }

    /// Where the merged statistics go before [`PreparedLinearShardDevice::record_grad`]:
    /// `[N, 4]` f32, each row's (max, sum_exp, q, lse) over all C classes
    /// ([`crate::shard::Partial::stats`]), over plane 0 of the partials.
    pub fn merged(&self) -> DeviceTensor {
        DeviceTensor::from_parts(self.out.clone(), vec![self.rows, 4], DType::F32)
    }

    /// Records the shard's gradients into `encoder` (upstream gradient 1; of the summed
    /// losses for `none`), from [`PreparedLinearShardDevice::merged`] and the inputs as they
    /// are now (which should be as `record_partials` read them). An error when the shard was
    /// made without gradients.
    pub fn record_grad(&self, encoder: &mut wgpu::CommandEncoder) -> Result<()> {
        let program = self.grads.as_ref().ok_or_else(|| {
            XentError::InvalidArgument(
                "the linear shard was prepared without gradients (Grad::Into)".into(),
            )
        })?;
        self.record_prelude(encoder);
        record_settled(&self.ctx, encoder, program);
        Ok(())
    }
}

/// Where a device linear shard's gradients go: dX, dW and db (which may be left out).
fn grads_into<'a>(call: &DeviceLinearShard<'a>) -> Result<Option<super::device::Grads<'a>>> {
    Ok(match call.grad.tensors("a device linear shard", 2..=3)? {
        None => None,
        Some(&[dx, dw]) => Some((dx, dw, None)),
        Some(g) => Some((g[0], g[1], Some(g[2]))),
    })
}
