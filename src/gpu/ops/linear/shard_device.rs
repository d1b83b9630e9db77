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
use crate::geometry::rows::Split;
use crate::geometry::tiles::row_chunks;
use crate::gpu::api::Grad;
use crate::gpu::ops::linear::chunks::{linear_chunk_rows, push_linear_grads, push_logits};
use crate::gpu::ops::linear::device::f32_view;
use crate::gpu::ops::loss::buffers::ChunkInputs;
use crate::gpu::ops::loss::plan::LossSpec;
use crate::gpu::ops::loss::shard_kernels::{device_split, shard_kernels, shard_spec};
use crate::gpu::ops::loss::shard_kernels::{ShardGrad, ShardRows};
use crate::gpu::ops::loss::PreparedShardDevice;
use crate::gpu::runtime::buffers::{output, upload, Bound};
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::device_tensor::DeviceTensor;
use crate::gpu::runtime::program::{BufferCopy, Program};
use crate::linear::LinearProblem;
use crate::options::LossOptions;
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
    pub linear_weight: &'a DeviceTensor,
    /// This shard's slice `[Cs]` of the bias.
    pub linear_bias: Option<&'a DeviceTensor>,
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

/// A [`DeviceLinearShard`] prepared: the one recorded form of a shard, with the same verbs
/// as a device `cross_entropy` shard's.
pub type PreparedLinearShardDevice = PreparedShardDevice;

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
        call.linear_weight.shape(),
        call.linear_bias.map(|b| b.shape()),
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
        [Some(call.input), Some(call.linear_weight), call.linear_bias],
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
    let rows = linear_chunk_rows(ctx, &p, call.budget)?.min(stats_rows(ctx, 1));
    let split = device_split(ctx, rows, cs)?;
    linear_shard_core(ctx, (shape, spec), opts, (&t, &p), (split, rows), prelude)
}

/// The chunk rows whose partials, `K` segments a row, fit one binding.
pub(crate) fn stats_rows(ctx: &Context, segments: usize) -> usize {
    (ctx.max_binding_bytes() as usize / (32 * segments)).max(1)
}

/// The shard's programs over tensors `t` (checked, f32), chunks of `rows` rows, each row
/// in `split`'s segments: the partials after `prelude`, and the gradients where `t` has them.
pub(crate) fn linear_shard_core(
    ctx: &Context,
    (shape, spec): (ShardRows, LossSpec),
    opts: &LossOptions,
    (t, p): (&Tensors, &LinearProblem),
    (split, rows): (Split, usize),
    prelude: Program,
) -> Result<PreparedShardDevice> {
    let spans = row_chunks(p.rows, rows);
    let scratch = Scratch {
        logits: output(ctx, "shard logits", rows * p.classes)?,
        ones: Operand {
            buffer: upload(ctx, "ones", &vec![1.0f32; rows])?,
            offset: 0,
            major: 0,
            step: 1,
        },
    };
    let (chunks, target_copies) = linear_shard_chunks(ctx, &spans, shape, &scratch.logits, t)?;
    let grad = match t.grads {
        Some(_) => ShardGrad::OverLogits,
        None => ShardGrad::None,
    };
    let kernels = shard_kernels(ctx, (shape, spec), opts, (split, chunks), grad)?;
    let mut partials = Program::default();
    target_copies
        .iter()
        .for_each(|c| partials.copy_in(c.clone()));
    if let ChunkTargets::Classes(_) = t.targets {
        kernels.push_target_check(&mut partials)?;
    }
    for (k, span) in spans.iter().enumerate() {
        push_logits(ctx, &mut partials, t, p, &scratch.logits, span.clone())?;
        kernels.push_partials(&mut partials, k)?;
    }
    kernels.copy_partials_out(&mut partials);
    let grads = match &t.grads {
        Some(grads) => {
            let mut program = Program::default();
            target_copies.into_iter().for_each(|c| program.copy_in(c));
            kernels.copy_merged_in(&mut program);
            kernels.push_dens(&mut program)?;
            for (k, span) in spans.iter().enumerate() {
                push_logits(ctx, &mut program, t, p, &scratch.logits, span.clone())?;
                kernels.push_grad(&mut program, k)?;
                let g = (&scratch.logits, &scratch.ones);
                push_linear_grads(ctx, &mut program, t, grads, g, p, span.clone())?;
            }
            Some(program)
        }
        None => None,
    };
    // The scratch and the ones stay alive in the programs' bind groups.
    Ok(PreparedShardDevice::new(
        ctx,
        (prelude, partials, grads),
        kernels,
    ))
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
            match (db, call.linear_bias) {
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
            call.linear_weight,
            "linear_weight",
            &[cs, d],
            prelude,
        )?),
        bias: match call.linear_bias {
            Some(b) => Some(f32_view(ctx, b, "linear_bias", &[cs], prelude)?),
            None => None,
        },
        targets: ChunkTargets::Classes(call.target),
        grads,
        budget: call.budget,
        lse: false,
    })
}

/// Each chunk of rows: its logits in the scratch, and its targets: class targets in a
/// buffer of its own, copied out of the call's (the copies returned) at the start of every
/// run, or its rows of the shard's probabilities `[N, Cs]`, uploaded.
fn linear_shard_chunks(
    ctx: &Context,
    spans: &[Range<usize>],
    shape: ShardRows,
    scratch: &wgpu::Buffer,
    t: &Tensors,
) -> Result<(Vec<ChunkInputs>, Vec<BufferCopy>)> {
    let cs = shape.shard_classes;
    let mut chunks = vec![];
    let mut copies = vec![];
    for span in spans {
        let (targets, probs) = match t.targets {
            ChunkTargets::Classes(target) => {
                let word = target.dtype().size();
                let bytes = span.len() * word;
                let targets = output(ctx, "shard chunk targets", bytes.div_ceil(4))?;
                copies.push(BufferCopy {
                    src: target.buffer().clone(),
                    src_offset: target.offset() + (span.start * word) as u64,
                    dst: targets.clone(),
                    dst_offset: 0,
                    bytes: bytes as u64,
                });
                let size = bytes.next_multiple_of(4) as u64;
                (
                    Bound {
                        buffer: targets,
                        offset: 0,
                        size,
                    },
                    None,
                )
            }
            ChunkTargets::Probs(all) => {
                let probs = upload(
                    ctx,
                    "shard chunk probs",
                    &all[span.start * cs..span.end * cs],
                )?;
                let none = upload::<i32>(ctx, "targets", &[])?;
                (Bound::whole(none), Some(Bound::whole(probs)))
            }
        };
        chunks.push(ChunkInputs {
            // Bound in whole groups of 8, which wide loads read.
            logits: Bound {
                buffer: scratch.clone(),
                offset: 0,
                size: ((span.len() * cs).next_multiple_of(8) * 4) as u64,
            },
            targets,
            probs,
            rows: span.clone(),
            elems: 0..span.len() * cs,
            seg_first: 0,
            classes: shape.first_class..shape.first_class + cs,
        });
    }
    Ok((chunks, copies))
}

/// Where a device linear shard's gradients go: dX, dW and db (which may be left out).
fn grads_into<'a>(call: &DeviceLinearShard<'a>) -> Result<Option<super::device::Grads<'a>>> {
    Ok(match call.grad.tensors("a device linear shard", 2..=3)? {
        None => None,
        Some(&[dx, dw]) => Some((dx, dw, None)),
        Some(g) => Some((g[0], g[1], Some(g[2]))),
    })
}
