//! A loss call's dispatches, stage by stage: D from the targets, the forward (per row, or
//! split rows' partials and merge), the fused gradient or nll_loss's, the reduction, the lse
//! gather and the 16-bit gradient. `build_loss` runs the stages in that order.

use super::buffers::{row_chunks, row_runs, ChunkBuffers, ChunkInputs, Common};
use super::plan::{LossPlan, LossSpec};
use super::prepared::PreparedLoss;
use super::{Grad, Loss, Request};
use crate::error::Result;
use crate::geometry::rows;
use crate::gpu::kernels::{Entry, KernelKey};
use crate::gpu::ops::convert::{push_gather, push_pack};
use crate::gpu::ops::loss::buffers::{chunk_buffers, forward_bind, grad_bind, loss_common};
use crate::gpu::ops::loss::prepared::prepared_loss;
use crate::gpu::ops::reduce::{push_reduction, push_reduction_over, push_sum_into, single_pass};
use crate::gpu::ops::reduce::{Finish, Part, Reduced};
use crate::gpu::runtime::buffers::upload;
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::program::push;
use crate::gpu::runtime::program::Program;
use crate::options::{LossOptions, Reduction};

/// Elements each invocation of `nll_grad` writes: NLL_VALUES in shaders/grad.wgsl (a naga
/// unit test in src/gpu/kernels/source.rs checks the two agree).
pub(crate) const NLL_GRAD_VALUES: u64 = 4;

/// A chunk's dispatch label: its shape.
fn label(spec: &LossSpec, b: &ChunkBuffers) -> String {
    let l = &spec.layout;
    format!("rows={} C={} inner={}", b.rows, l.classes, l.inner)
}

/// Builds every buffer, bind group and dispatch of one call over `inputs`.
pub(crate) fn build_loss(
    ctx: &Context,
    spec: &LossSpec,
    inputs: Vec<ChunkInputs>,
    opts: &LossOptions<'_>,
    req: Request,
) -> Result<PreparedLoss> {
    let variant = ctx.variant(spec.dtype, inputs.iter().map(|c| c.logits.size));
    let plan = LossPlan::new(spec, opts, req, variant, &ctx.walk_tuning())?;
    build_planned(ctx, spec, plan, inputs, opts, req)
}

/// As `build_loss`, with the plan given (vocabulary shards force split rows).
pub(crate) fn build_planned(
    ctx: &Context,
    spec: &LossSpec,
    mut plan: LossPlan,
    inputs: Vec<ChunkInputs>,
    opts: &LossOptions<'_>,
    req: Request,
) -> Result<PreparedLoss> {
    let common = loss_common(ctx, spec, opts)?;
    let bufs = chunk_buffers(ctx, (spec, opts, req), &plan, inputs)?;
    // A batch one workgroup reduces in one pass: D and the loss take a dispatch each.
    plan.single_pass = plan.fused
        && !plan.split_rows
        && !spec.check_targets
        && bufs.len() == 1
        && single_pass(ctx, bufs[0].rows);
    let mut program = Program::default();
    if spec.check_targets {
        // Reset the flag at the start of every run.
        let init = upload(ctx, "target error init", &[u32::MAX, 0, 0, 0])?;
        program.copy_before(init, common.error.clone(), 16);
    }
    if plan.sum_weights {
        // W for the smoothing term, summed from the device weights on every run.
        let classes = spec.layout.classes;
        push_sum_into(ctx, &mut program, &common.weight, classes, &common.scale, 1)?;
    }
    if (plan.needs_d && !plan.single_pass) || spec.check_targets {
        push_row_dens(ctx, &mut program, &plan, &common, &bufs, spec)?;
    }
    let call = (spec, opts, req);
    let reduced = match plan.fused {
        true => push_fused(ctx, &mut program, &plan, &common, &bufs, call)?,
        false => push_forward(ctx, &mut program, &plan, &common, &bufs, call)?,
    };
    if req.lse {
        // stats are (M, S, Q, lse) per row, at every `segments`-th vec4 for split rows.
        let stride = 4 * plan.walk.split.segments;
        for b in row_chunks(&bufs) {
            if let Some(lse) = &b.lse {
                push_gather(ctx, &mut program, &b.stats, lse, b.rows, stride, 3)?;
            }
        }
    }
    if let Some((target, half)) = &spec.grad_pack {
        // The gradient in the logits' 16-bit dtype: packed from the f32 one (one chunk).
        if let Some(g) = bufs.first().and_then(|b| b.grad.as_ref()) {
            push_pack(ctx, &mut program, g, target, bufs[0].elems, *half)?;
        }
    }
    Ok(prepared_loss(ctx, program, (common, bufs, reduced), call))
}

/// Each row's share of the mean's denominator from its targets alone, and the check of
/// device targets: once per row, by the first chunk of a row larger than one binding.
pub(super) fn push_row_dens(
    ctx: &Context,
    program: &mut Program,
    plan: &LossPlan,
    c: &Common,
    bufs: &[ChunkBuffers],
    spec: &LossSpec,
) -> Result<()> {
    for b in row_chunks(bufs) {
        let groups = (b.rows as u64).div_ceil(ctx.workgroup_size() as u64);
        let key = KernelKey::new(Entry::RowDens, plan.variant);
        push(
            ctx,
            program,
            key,
            forward_bind(ctx, c, b),
            groups,
            &label(spec, b),
        )?;
        if spec.check_targets {
            let key = KernelKey::new(Entry::ReportError, plan.variant);
            push(ctx, program, key, forward_bind(ctx, c, b), 1, "")?;
        }
    }
    Ok(())
}

/// cross_entropy's fused forward + backward: D first (it needs only the targets), then
/// one dispatch per row does the loss and the gradient (split rows: partials and merge,
/// then the gradient segment by segment); then the loss is reduced.
fn push_fused(
    ctx: &Context,
    program: &mut Program,
    plan: &LossPlan,
    c: &Common,
    bufs: &[ChunkBuffers],
    (spec, opts, req): (&LossSpec, &LossOptions, Request),
) -> Result<Option<Reduced>> {
    if plan.needs_d && plan.single_pass {
        // D into scale[0] for the mean; the sum's D stays the 1 it was made with.
        if opts.reduction == Reduction::Mean {
            let key = KernelKey::new(Entry::DensTotal, plan.variant);
            let bind = grad_bind(ctx, c, &bufs[0], &c.scale);
            push(ctx, program, key, bind, 1, &label(spec, &bufs[0]))?;
        }
    } else if plan.needs_d {
        let dens: Vec<Part> = row_chunks(bufs)
            .map(|b| (&b.dens as _, &b.dens as _, b.rows))
            .collect();
        push_reduction(ctx, program, &dens, opts.reduction.into(), Some(&c.scale))?;
    }
    // The gradient is written row by row: 8 values a store where that is safe. In place
    // there is no grad buffer (size 0 here), and the logits are written 8 at a time when
    // they are also read so (`KernelKey::in_place`).
    let outputs = bufs
        .iter()
        .map(|b| (b.input.classes.len(), b.grad.as_ref().map_or(0, |g| g.size)));
    let grad_kind = ctx.with_wide_output(plan.variant, spec.layout.inner, outputs);
    let entry = match plan.split_rows {
        true => Entry::CrossEntropyGradSegments,
        false => Entry::CrossEntropyFused,
    };
    let mut key = KernelKey::new(entry, grad_kind);
    if plan.walk.held {
        key = key.held();
    }
    if req.grad == Grad::InPlace {
        key = key.in_place();
    }
    for row in row_runs(bufs) {
        if plan.split_rows {
            push_split_forward(ctx, program, plan, c, row)?;
        }
        for b in row {
            let groups = match plan.split_rows {
                true => b.rows as u64 * b.segments as u64,
                false => rows::workgroups(b.rows, plan.walk.lanes, ctx.workgroup_size()),
            };
            let bind = grad_bind(ctx, c, b, &c.scale);
            push(ctx, program, key, bind, groups, &label(spec, b))?;
        }
    }
    if plan.single_pass && opts.reduction != Reduction::None {
        let b = &bufs[0];
        let r = push_reduction_over(ctx, program, &b.losses, b.rows, Finish::of(opts), &c.scale)?;
        return Ok(Some(r));
    }
    push_loss_reduction(ctx, program, bufs, opts)
}

/// The forward alone (cross_entropy per row or over split rows, nll_loss), its reduction,
/// then nll_loss's gradient, which needs only D and the targets.
fn push_forward(
    ctx: &Context,
    program: &mut Program,
    plan: &LossPlan,
    c: &Common,
    bufs: &[ChunkBuffers],
    (spec, opts, req): (&LossSpec, &LossOptions, Request),
) -> Result<Option<Reduced>> {
    for row in row_runs(bufs).filter(|_| plan.split_rows) {
        push_split_forward(ctx, program, plan, c, row)?;
    }
    let wg = ctx.workgroup_size();
    for b in bufs.iter().filter(|_| !plan.split_rows) {
        let (entry, groups) = match req.loss {
            Loss::CrossEntropy => (
                Entry::CrossEntropyRows,
                rows::workgroups(b.rows, plan.walk.lanes, wg),
            ),
            Loss::Nll => (Entry::NllRows, (b.rows as u64).div_ceil(wg as u64)),
        };
        let key = KernelKey::new(entry, plan.variant);
        push(
            ctx,
            program,
            key,
            forward_bind(ctx, c, b),
            groups,
            &label(spec, b),
        )?;
    }
    let reduced = push_loss_reduction(ctx, program, bufs, opts)?;
    if req.grad != Grad::None {
        let one = upload(ctx, "unit scale", &[1.0f32])?;
        let den = reduced.as_ref().map_or(&one, |r| &r.den);
        for b in bufs {
            let groups = (b.elems as u64).div_ceil(wg as u64 * NLL_GRAD_VALUES);
            let key = KernelKey::new(Entry::NllGrad, plan.variant);
            push(
                ctx,
                program,
                key,
                grad_bind(ctx, c, b, den),
                groups,
                &label(spec, b),
            )?;
        }
    }
    Ok(reduced)
}

/// A split-row forward for the chunks of some rows (one chunk, or the pieces of a row
/// larger than one binding): partial statistics per segment of each, then the per-row
/// merge that writes the loss, den and stats.
fn push_split_forward(
    ctx: &Context,
    program: &mut Program,
    plan: &LossPlan,
    c: &Common,
    row: &[ChunkBuffers],
) -> Result<()> {
    let partials = KernelKey::new(Entry::CrossEntropyPartials, plan.variant);
    for b in row {
        let groups = b.rows as u64 * b.segments as u64;
        let shape = format!("rows={} segments={}", b.rows, b.segments);
        push(
            ctx,
            program,
            partials,
            forward_bind(ctx, c, b),
            groups,
            &shape,
        )?;
    }
    let last = row.last().expect("a run has a chunk");
    let merge = KernelKey::new(Entry::CrossEntropyMerge, plan.variant);
    let groups = (last.rows as u64).div_ceil(ctx.workgroup_size() as u64);
    let shape = format!("rows={}", last.rows);
    push(
        ctx,
        program,
        merge,
        forward_bind(ctx, c, last),
        groups,
        &shape,
    )
}

/// The loss reduced over every row (`None` for `Reduction::None`).
fn push_loss_reduction(
    ctx: &Context,
    program: &mut Program,
    bufs: &[ChunkBuffers],
    opts: &LossOptions,
) -> Result<Option<Reduced>> {
    if opts.reduction == Reduction::None {
        return Ok(None);
    }
    let losses: Vec<Part> = row_chunks(bufs)
        .map(|b| (&b.losses as _, &b.dens as _, b.rows))
        .collect();
    Ok(Some(push_reduction(
        ctx,
        program,
        &losses,
        Finish::of(opts),
        None,
    )?))
}
