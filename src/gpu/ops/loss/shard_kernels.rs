//! The kernels of a vocabulary shard on the device, over row chunks whose logits lie where
//! the caller put them: a device shard's own tensor (one chunk), or a linear shard's logits
//! scratch, refilled chunk by chunk. Each row is one segment of `cross_entropy_partials`:
//! its partial is one pair of vec4s in the chunk's stats, `[2, rows, 4]` f32 (the layout:
//! src/gpu/ops/loss/shard_device.rs).
//!
//! What the caller records, in order: for the partials, each chunk's
//! [`ShardKernels::push_partials`]; for the gradient, with the merged statistics over plane
//! 0 of each chunk's stats, [`ShardKernels::push_dens`] (the mean's D, from the targets of
//! every chunk), then each chunk's [`ShardKernels::push_grad`].

use super::buffers::{ChunkBuffers, ChunkInputs, Common};
use super::plan::{LossPlan, LossSpec};
use super::shard::check_classes;
use super::{Grad, Loss, Request};
use crate::error::{Result, XentError};
use crate::geometry::rows::{self, Split};
use crate::gpu::kernels::{Entry, KernelKey};
use crate::gpu::ops::loss::buffers::{chunk_buffers, forward_bind, grad_bind, loss_common};
use crate::gpu::ops::reduce::push_reduction;
use crate::gpu::runtime::buffers::upload;
use crate::gpu::runtime::buffers::Bound;
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::device_tensor::DeviceTensor;
use crate::gpu::runtime::program::Program;
use crate::gpu::runtime::program::{push, run_program};
use crate::gpu::runtime::readback::staging;
use crate::gpu::runtime::readback::Staging;
use crate::gpu::runtime::run_lock::run_locked;
use crate::gpu::runtime::run_lock::run_locked_async;
use crate::layout::RowLayout;
use crate::options::{DType, Float, LossOptions, Reduction};
use crate::problem::check_loss_shapes;
use std::ops::Range;

/// A shard's rows and classes: rows `[N]`, classes `first_class ..` (`Cs` of them) of C.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ShardRows {
    pub rows: usize,
    pub first_class: usize,
    pub shard_classes: usize,
    pub classes: usize,
}

/// One chunk of rows: its logits `[rows, Cs]` and targets `[rows]` where they lie.
pub(crate) struct ShardChunk {
    pub logits: Bound,
    pub targets: Bound,
    pub rows: Range<usize>,
}

/// Where a shard's gradient goes.
pub(crate) enum ShardGrad {
    /// Nowhere: partials only.
    None,
    /// Into a tensor of its own, each chunk's `[rows, Cs]` from its start.
    Into(Bound),
    /// Over the chunk's logits.
    OverLogits,
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
}

/// Plans the kernels of a shard of `shape` over `chunks` (`shard_spec` gave
/// `spec`), its gradient going where `grad` says.
pub(crate) fn shard_kernels(
    ctx: &Context,
    (shape, mut spec): (ShardRows, LossSpec),
    opts: &LossOptions,
    chunks: Vec<ShardChunk>,
    grad: ShardGrad,
) -> Result<ShardKernels> {
    let t = ctx.walk_tuning();
    let longest = chunks.iter().map(|c| c.rows.len()).max().unwrap_or(0);
    let split = one_segment(&t, longest, shape.shard_classes)?;
    // Each row's partial is two vec4s in the chunk's stats, bound whole.
    if longest * 32 > ctx.max_binding_bytes() as usize {
        return Err(XentError::Unsupported(format!(
            "a device shard's partials of {longest} rows need {} bytes, past one binding ({} bytes): use fewer rows",
            longest * 32,
            ctx.max_binding_bytes()
        )));
    }
    let req = Request {
        grad: match grad {
            ShardGrad::None => Grad::None,
            ShardGrad::Into(_) => Grad::OutOfPlace,
            ShardGrad::OverLogits => Grad::InPlace,
        },
        ..Request::forward(Loss::CrossEntropy)
    };
    if let ShardGrad::Into(into) = grad {
        spec.grad_into = Some(into);
    }
    let variant = ctx.variant(Float::F32, chunks.iter().map(|c| c.logits.size));
    let plan = LossPlan::new(&spec, opts, req, variant, &t)?.split_into(split, t.workgroup_size);
    let cs = shape.shard_classes;
    let inputs = chunks
        .into_iter()
        .map(|c| ChunkInputs {
            logits: c.logits,
            targets: c.targets,
            probs: None,
            elems: 0..c.rows.len() * cs,
            rows: c.rows,
            seg_first: 0,
            classes: shape.first_class..shape.first_class + cs,
        })
        .collect();
    let common = loss_common(ctx, &spec, opts)?;
    let chunks = chunk_buffers(ctx, (&spec, opts, req), &plan, inputs)?;
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
    })
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
        let rows = chunk.rows;
        push(
            &self.ctx,
            program,
            key,
            bind,
            rows as u64,
            &format!("rows={rows}"),
        )
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
        let ctx = &self.ctx;
        for chunk in &self.chunks {
            self.push_row_dens(program, chunk)?;
        }
        let dens: Vec<_> = self
            .chunks
            .iter()
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
        push(&self.ctx, program, key, bind, chunk.rows as u64, "grad")
    }
}

/// Whether one workgroup walks a row of `cs` classes on this adapter, as a shard's
/// kernels need.
pub(crate) fn walks_shard(ctx: &Context, cs: usize) -> bool {
    one_segment(&ctx.walk_tuning(), 1, cs).is_ok()
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
