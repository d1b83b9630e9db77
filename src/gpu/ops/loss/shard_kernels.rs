//! The kernels of a vocabulary shard: the one GPU implementation of the shard protocol
//! (`crate::shard`), which every shard form records. Its chunks' logits lie where the caller
//! put them: a device shard's own tensor, a linear shard's logits scratch refilled chunk by
//! chunk, or a host shard's uploads.
//!
//! Each row is `K` segments of `cross_entropy_partials` (one for a device shard, whose
//! layout is part of its contract). The partials of all rows are `[2, N·K, 4]` f32: plane 0
//! holds each segment's (max, sum_exp, q, a), plane 1 its (r, z_target, found, 0) (the layout:
//! src/gpu/ops/loss/shard_device.rs). For the gradient the merged (max, sum_exp, q, lse) of
//! each row goes over plane 0 at the row's first segment, `crate::shard::Partial::stats`.
//!
//! What the caller records, in order: for the partials, each chunk's
//! [`ShardKernels::push_partials`], then [`ShardKernels::copy_partials_out`]; for the
//! gradient, [`ShardKernels::copy_merged_in`], [`ShardKernels::push_dens`] (the mean's D,
//! from the targets of every row), then each chunk's [`ShardKernels::push_grad`].

use super::buffers::{row_chunks, ChunkBuffers, ChunkInputs, Common};
use super::plan::{LossPlan, LossSpec};
use super::shard::check_classes;
use super::{Grad, Loss, Request};
use crate::error::{Result, XentError};
use crate::geometry::rows::{self, Split};
use crate::gpu::kernels::{Entry, KernelKey};
use crate::gpu::ops::loss::buffers::{chunk_buffers, forward_bind, grad_bind, loss_common};
use crate::gpu::ops::reduce::push_reduction;
use crate::gpu::runtime::buffers::{output, upload, Bound};
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::device_tensor::DeviceTensor;
use crate::gpu::runtime::program::{push, run_program, BufferCopy, Program};
use crate::gpu::runtime::readback::staging;
use crate::gpu::runtime::readback::Staging;
#[cfg(not(target_arch = "wasm32"))]
use crate::gpu::runtime::run_lock::run_locked;
use crate::gpu::runtime::run_lock::run_locked_async;
use crate::layout::RowLayout;
use crate::options::{DType, Float, LossOptions, Reduction};
use crate::problem::check_loss_shapes;

/// A shard's rows and classes: rows `[N]`, classes `first_class ..` (`Cs` of them) of C.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ShardRows {
    pub rows: usize,
    pub first_class: usize,
    pub shard_classes: usize,
    pub classes: usize,
}

/// Where a shard's gradient goes.
pub(crate) enum ShardGrad {
    /// Nowhere: partials only.
    None,
    /// Into a tensor of its own, each chunk's `[rows, Cs]` from its start.
    Into(Bound),
    /// Over the chunk's logits.
    OverLogits,
    /// Into a host-mappable buffer of each chunk's own.
    Own,
}

/// A shard's kernels, planned, with the buffers of each chunk.
pub(crate) struct ShardKernels {
    ctx: Context,
    plan: LossPlan,
    in_place: bool,
    common: Common,
    pub chunks: Vec<ChunkBuffers>,
    reduction: Reduction,
    /// The target check: the flag's reset value, where it is read back, and what an error
    /// names (C, `ignore_index`).
    check: (wgpu::Buffer, Staging, usize, i64),
    /// Held by each read (src/gpu/runtime/run_lock.rs).
    lock: crate::gpu::runtime::run_lock::RunLock,
    /// The partials of every row, `[2, N·K, 4]`: the only chunk's own stats, or a buffer
    /// the chunks' stats are copied into.
    pub out: wgpu::Buffer,
    copies: bool,
    pub rows: usize,
    /// K, the segments of each row.
    pub segments: usize,
}

/// Plans the kernels of a shard of `shape` (`spec`: its problem as rows of all C classes)
/// over `chunks`, each row in `split`'s segments, its gradient going where `grad` says.
pub(crate) fn shard_kernels(
    ctx: &Context,
    (shape, mut spec): (ShardRows, LossSpec),
    opts: &LossOptions,
    (split, chunks): (Split, Vec<ChunkInputs>),
    grad: ShardGrad,
) -> Result<ShardKernels> {
    let t = ctx.walk_tuning();
    let req = Request {
        grad: match grad {
            ShardGrad::None => Grad::None,
            ShardGrad::Into(_) | ShardGrad::Own => Grad::OutOfPlace,
            ShardGrad::OverLogits => Grad::InPlace,
        },
        ..Request::forward(Loss::CrossEntropy)
    };
    if let ShardGrad::Into(into) = grad {
        spec.grad_into = Some(into);
    }
    let variant = ctx.variant(Float::F32, chunks.iter().map(|c| c.logits.size));
    let plan = LossPlan::new(&spec, opts, req, variant, &t)?.split_into(split, t.workgroup_size);
    let common = loss_common(ctx, &spec, opts)?;
    let chunks = chunk_buffers(ctx, (&spec, opts, req), &plan, chunks)?;
    let segments = split.segments as usize;
    let copies = !matches!(&chunks[..], [only] if only.rows == shape.rows);
    let out = match copies {
        true => output(ctx, "shard partials", 8 * shape.rows * segments)?,
        false => chunks[0].stats.clone(),
    };
    Ok(ShardKernels {
        ctx: ctx.clone(),
        plan,
        in_place: req.grad == Grad::InPlace,
        common,
        chunks,
        reduction: opts.reduction,
        check: (
            upload(ctx, "target error init", &[u32::MAX, 0, 0, 0])?,
            staging(ctx, 16),
            shape.classes,
            opts.ignore_index,
        ),
        lock: Default::default(),
        out,
        copies,
        rows: shape.rows,
        segments,
    })
}

/// The segments of a shard's rows as its host form walks them: the segment length of the
/// whole row of C classes (`spec`), so that the shard is whole segments of it.
pub(crate) fn host_split(
    ctx: &Context,
    spec: &LossSpec,
    opts: &LossOptions,
    shard_classes: usize,
) -> Result<Split> {
    let req = Request::forward(Loss::CrossEntropy);
    let any = ctx.variant(spec.dtype, []);
    let len = LossPlan::new(spec, opts, req, any, &ctx.walk_tuning())?
        .walk
        .split
        .len
        .max(1);
    Ok(Split {
        segments: (shard_classes as u32).div_ceil(len),
        len,
    })
}

/// A device shard's one segment a row, for chunks of at most `rows` rows of `cs` classes:
/// an error past one workgroup's walk, or when a chunk's partials pass one binding.
pub(crate) fn device_split(ctx: &Context, rows: usize, cs: usize) -> Result<Split> {
    let split = one_segment(&ctx.walk_tuning(), rows, cs)?;
    // Each row's partial is two vec4s in the chunk's stats, bound whole.
    if rows * 32 > ctx.max_binding_bytes() as usize {
        return Err(XentError::Unsupported(format!(
            "a device shard's partials of {rows} rows need {} bytes, past one binding ({} bytes): use fewer rows",
            rows * 32,
            ctx.max_binding_bytes()
        )));
    }
    Ok(split)
}

/// The checks of a shard's rows, classes, class targets `[N]` and options, and its
/// problem as rows of all C classes.
pub(crate) fn shard_spec(
    shape: ShardRows,
    target: &DeviceTensor,
    opts: &LossOptions,
) -> Result<LossSpec> {
    let ShardRows {
        rows: n,
        first_class,
        shard_classes: cs,
        classes,
    } = shape;
    if n == 0 {
        return Err(XentError::InvalidShape(
            "a device shard holds at least one row".into(),
        ));
    }
    let len = check_classes(n, first_class, cs, classes)?;
    let target_words = match target.dtype() {
        DType::I64 => 2,
        DType::I32 | DType::U32 => 1,
        d => {
            return Err(XentError::InvalidArgument(format!(
                "a device shard's targets are class indices (i32, u32 or i64), not {d:?}"
            )))
        }
    };
    let ignore_index = i32::try_from(opts.ignore_index).map_err(|_| {
        XentError::InvalidArgument(format!(
            "ignore_index {} does not fit in 32 bits, which device targets are compared in",
            opts.ignore_index
        ))
    })?;
    let shape = [n, classes];
    let problem = check_loss_shapes(Loss::CrossEntropy, &shape, len, target.shape(), false, opts)?;
    Ok(LossSpec {
        layout: problem.layout,
        input_shape: shape.to_vec(),
        out_shape: problem.out_shape,
        target_shape: target.shape().to_vec(),
        dtype: Float::F32,
        probs: false,
        target_words,
        unsigned_targets: target.dtype() == DType::U32,
        ignore_index,
        check_targets: false,
        grad_into: None,
        grad_pack: None,
        weight: None,
        uploaded: false,
    })
}

impl ShardKernels {
    /// Chunk `k`'s partials into its stats.
    pub fn push_partials(&self, program: &mut Program, k: usize) -> Result<()> {
        let chunk = &self.chunks[k];
        let key = KernelKey::new(Entry::CrossEntropyPartials, self.plan.variant);
        let bind = forward_bind(&self.ctx, &self.common, chunk);
        let groups = chunk.rows as u64 * chunk.segments as u64;
        let shape = format!("rows={} segments={}", chunk.rows, chunk.segments);
        push(&self.ctx, program, key, bind, groups, &shape)
    }

    /// Copies each chunk's partials into their rows of [`ShardKernels::out`].
    pub fn copy_partials_out(&self, program: &mut Program) {
        for plane in 0..2 {
            self.stats_copies(plane, true)
                .for_each(|c| program.copy_out(c));
        }
    }

    /// Copies the merged statistics written over plane 0 of [`ShardKernels::out`] into
    /// each chunk's stats, where the gradient kernels read them.
    pub fn copy_merged_in(&self, program: &mut Program) {
        self.stats_copies(0, false).for_each(|c| program.copy_in(c));
    }

    /// The copies of plane `plane` between each chunk's stats and its rows of `out`.
    fn stats_copies(&self, plane: usize, out: bool) -> impl Iterator<Item = BufferCopy> + '_ {
        let (n, k) = (self.rows, self.segments);
        row_chunks(&self.chunks)
            .filter(|_| self.copies)
            .map(move |b| {
                let (rows, first) = (b.rows, b.input.rows.start);
                let at_chunk = (plane * rows * k * 16) as u64;
                let at_all = ((plane * n + first) * k * 16) as u64;
                let (src, src_offset, dst, dst_offset) = match out {
                    true => (&b.stats, at_chunk, &self.out, at_all),
                    false => (&self.out, at_all, &b.stats, at_chunk),
                };
                BufferCopy {
                    src: src.clone(),
                    src_offset,
                    dst: dst.clone(),
                    dst_offset,
                    bytes: (rows * k * 16) as u64,
                }
            })
    }

    /// The check of the targets, from the flag's reset: each chunk's rows' dens (which
    /// flag a class past C), then the first bad row's target copied beside its position.
    pub fn push_target_check(&self, program: &mut Program) -> Result<()> {
        program.copy_before(self.check.0.clone(), self.common.error.clone(), 16);
        for chunk in &self.chunks {
            self.push_row_dens(program, chunk)?;
            let key = KernelKey::new(Entry::ReportError, self.plan.variant);
            let bind = forward_bind(&self.ctx, &self.common, chunk);
            push(&self.ctx, program, key, bind, 1, "")?;
        }
        Ok(())
    }

    /// Reads the target check of the last submitted program with
    /// [`ShardKernels::push_target_check`] (waiting for it): a class target past C is an
    /// `Err` naming its row, as the host API's.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_target_check(&self) -> Result<()> {
        run_locked(&self.ctx, &self.lock, self.target_check_held())
    }

    /// The async form of [`ShardKernels::read_target_check`].
    pub async fn read_target_check_async(&self) -> Result<()> {
        run_locked_async(&self.ctx, &self.lock, self.target_check_held()).await
    }

    /// `read_target_check` by a caller that holds the lock.
    async fn target_check_held(&self) -> Result<()> {
        let (_, staging, classes, ignore_index) = &self.check;
        let reads = [(&self.common.error, 0, staging)];
        let nothing = Program::default();
        let (words, _) = run_program(&self.ctx, &nothing, &reads, None).await?;
        let word = |i: usize| words[0].get(i).map_or(u32::MAX, |f| f.to_bits());
        if word(0) == u32::MAX {
            return Ok(());
        }
        Err(XentError::TargetOutOfBounds {
            position: vec![word(0) as usize],
            value: (word(1) as u64 | (word(2) as u64) << 32) as i64,
            classes: *classes,
            ignore_index: *ignore_index,
        })
    }

    fn push_row_dens(&self, program: &mut Program, chunk: &ChunkBuffers) -> Result<()> {
        let key = KernelKey::new(Entry::RowDens, self.plan.variant);
        let groups = (chunk.rows as u64).div_ceil(self.ctx.workgroup_size() as u64);
        let bind = forward_bind(&self.ctx, &self.common, chunk);
        push(&self.ctx, program, key, bind, groups, "")
    }

    /// The mean's D (and the sum's 1) into the gradient's scale, from every chunk's targets.
    pub fn push_dens(&self, program: &mut Program) -> Result<()> {
        if self.reduction == Reduction::None {
            return Ok(());
        }
        // The pieces of a row share its dens: each row counts once.
        let ctx = &self.ctx;
        for chunk in row_chunks(&self.chunks) {
            self.push_row_dens(program, chunk)?;
        }
        let dens: Vec<_> = row_chunks(&self.chunks)
            .map(|c| (&c.dens as _, &c.dens as _, c.rows))
            .collect();
        let scale = Some(&self.common.scale);
        push_reduction(ctx, program, &dens, self.reduction.into(), scale)?;
        Ok(())
    }

    /// Chunk `k`'s slice of the gradient (upstream gradient 1; of the summed losses for
    /// `none`), from the merged statistics over plane 0 of its stats.
    pub fn push_grad(&self, program: &mut Program, k: usize) -> Result<()> {
        let chunk = &self.chunks[k];
        let outputs = [(
            chunk.input.classes.len(),
            chunk.grad.as_ref().map_or(0, |g| g.size),
        )];
        let kind = self.ctx.with_wide_output(self.plan.variant, 1, outputs);
        let mut key = KernelKey::new(Entry::CrossEntropyGradSegments, kind);
        if self.in_place {
            key = key.in_place();
        }
        let bind = grad_bind(&self.ctx, &self.common, chunk, &self.common.scale);
        let groups = chunk.rows as u64 * chunk.segments as u64;
        push(&self.ctx, program, key, bind, groups, "grad")
    }
}

/// One segment a row: within the loop-trip and binding limits, never split for threads.
fn one_segment(t: &rows::WalkTuning, n: usize, cs: usize) -> Result<Split> {
    let one = rows::WalkTuning {
        min_workgroups: 1,
        ..*t
    };
    let own = RowLayout {
        outer: n,
        classes: cs,
        inner: 1,
    };
    if rows::split(&own, &one).segments > 1 {
        return Err(XentError::Unsupported(format!(
            "a device shard of {cs} classes is longer than one workgroup walks on this adapter: use more shards"
        )));
    }
    Ok(Split {
        segments: 1,
        len: (cs as u32).next_multiple_of(4),
    })
}
