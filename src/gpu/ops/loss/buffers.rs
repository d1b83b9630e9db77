//! The buffers of one loss call: each chunk's inputs where they lie, its parameters and
//! per-row outputs (shared by the chunks of a row larger than one binding), the buffers every
//! chunk binds, and the two bind groups (forward, backward) of a chunk.

use super::plan::{LossPlan, LossSpec};
use super::{Grad, Request};
use crate::error::Result;
use crate::geometry::chunks;
use crate::geometry::rows;
use crate::gpu::kernels::Family;
use crate::gpu::runtime::buffers::{bind, host_output, output, uniform, upload};
use crate::gpu::runtime::buffers::{Bindable, Bound};
use crate::gpu::runtime::context::Context;
use crate::options::{FloatTensor, LossOptions};
use crate::problem::{LossProblem, Targets};
use std::ops::Range;

/// The inputs of one chunk of rows, each bound where it lies.
pub(crate) struct ChunkInputs {
    pub logits: Bound,
    pub targets: Bound,
    pub probs: Option<Bound>,
    pub rows: Range<usize>,
    pub elems: Range<usize>,
    /// The chunk's first segment of each row (0 unless a row is larger than one binding).
    pub seg_first: u32,
    /// The classes of each row here.
    pub classes: Range<usize>,
}

/// The buffers of one chunk of rows.
pub(crate) struct ChunkBuffers {
    pub input: ChunkInputs,
    pub params: wgpu::Buffer,
    pub losses: wgpu::Buffer,
    pub dens: wgpu::Buffer,
    pub stats: wgpu::Buffer,
    /// Each row's lse, when asked for.
    pub lse: Option<wgpu::Buffer>,
    /// The out-of-place gradient; `None` when there is none or it goes over the logits.
    pub grad: Option<Bound>,
    pub rows: usize,
    pub elems: usize,
    /// Segments of each row here (all of them, or a run of a row larger than one binding).
    pub segments: u32,
    /// Whether the chunk holds the last segment of its rows.
    pub last_of_row: bool,
}

/// What every chunk binds besides its own buffers.
pub(crate) struct Common {
    pub weight: Bound,
    /// The gradient's scale: D (1 unless a reduction writes it) and W = Σ w.
    pub scale: wgpu::Buffer,
    /// The device-target error flag.
    pub error: wgpu::Buffer,
    dummy: wgpu::Buffer,
    /// A writable binding may not share its buffer with any other binding.
    dummy_rw: wgpu::Buffer,
}

/// Uploads host inputs, one buffer per chunk (whole rows, or segments of a row larger than
/// one binding, split as `LossPlan` will walk them).
pub(crate) fn host_inputs(
    ctx: &Context,
    input: &FloatTensor<'_>,
    problem: &LossProblem,
) -> Result<Vec<ChunkInputs>> {
    let layout = &problem.layout;
    let split = rows::split(layout, &ctx.walk_tuning());
    chunks::plan(layout, &split, ctx.max_binding_bytes())?
        .iter()
        .map(|chunk| {
            let (elems, rows) = (chunk.elems(layout, &split), chunk.rows(layout));
            let (targets, probs) = match &problem.targets {
                Targets::Classes(t) => (upload(ctx, "targets", &t[rows.clone()])?, None),
                Targets::Probs(p) => (
                    upload::<i32>(ctx, "targets", &[])?,
                    Some(Bound::whole(upload(ctx, "probs", &p[elems.clone()])?)),
                ),
            };
            Ok(ChunkInputs {
                logits: Bound::whole(upload(ctx, "logits", input.bytes(elems.clone()))?),
                targets: Bound::whole(targets),
                probs,
                rows,
                elems: elems.clone(),
                seg_first: chunk.seg_first,
                classes: chunk.classes(layout, &split),
            })
        })
        .collect()
}

/// The buffers every chunk binds.
pub(crate) fn loss_common(ctx: &Context, spec: &LossSpec, opts: &LossOptions) -> Result<Common> {
    let weight = match &spec.weight {
        Some(w) => w.clone(),
        None => Bound::whole(upload(ctx, "weight", opts.weight.unwrap_or(&[]))?),
    };
    // W is known here unless the weights are on the device.
    let classes = spec.layout.classes as f64;
    let weight_sum = opts
        .weight
        .map_or(classes, |w| w.iter().map(|&v| v as f64).sum());
    Ok(Common {
        weight,
        scale: upload(ctx, "scale (D, W)", &[1.0f32, weight_sum as f32])?,
        error: upload(ctx, "target error", &[u32::MAX, 0, 0, 0])?,
        dummy: upload::<f32>(ctx, "unused", &[])?,
        dummy_rw: upload::<f32>(ctx, "unused (writable)", &[])?,
    })
}

/// Each chunk's parameters and outputs; the chunks of a row larger than one binding share
/// its per-row outputs.
pub(crate) fn chunk_buffers(
    ctx: &Context,
    (spec, opts, req): (&LossSpec, &LossOptions, Request),
    plan: &LossPlan,
    inputs: Vec<ChunkInputs>,
) -> Result<Vec<ChunkBuffers>> {
    let split = plan.walk.split;
    // Split rows keep a second plane of (r, x_target, found) per segment.
    let planes = if plan.split_rows { 2 } else { 1 };
    let mut bufs: Vec<ChunkBuffers> = Vec::with_capacity(inputs.len());
    for input in inputs {
        let rows = input.rows.len();
        let params = uniform(ctx, "loss params", &plan.params(spec, opts, req, &input));
        let (losses, dens, stats, lse) = match bufs.last().filter(|_| input.seg_first > 0) {
            Some(b) => (
                b.losses.clone(),
                b.dens.clone(),
                b.stats.clone(),
                b.lse.clone(),
            ),
            None => (
                output(ctx, "losses", rows)?,
                output(ctx, "dens", rows)?,
                output(ctx, "stats", rows * split.segments as usize * 4 * planes)?,
                req.lse.then(|| output(ctx, "lse", rows)).transpose()?,
            ),
        };
        let grad = match (req.grad, &spec.grad_into) {
            (Grad::OutOfPlace, Some(into)) => Some(into.clone()),
            (Grad::OutOfPlace, None) => {
                Some(Bound::whole(host_output(ctx, "grad", input.elems.len())?))
            }
            _ => None,
        };
        let segments = plan.segments(&input);
        bufs.push(ChunkBuffers {
            params,
            losses,
            dens,
            stats,
            lse,
            grad,
            rows,
            elems: input.elems.len(),
            segments,
            last_of_row: input.seg_first + segments == split.segments,
            input,
        });
    }
    Ok(bufs)
}

/// The forward kernels' bindings (shaders/loss.wgsl).
pub(crate) fn forward_bind(ctx: &Context, c: &Common, b: &ChunkBuffers) -> wgpu::BindGroup {
    let probs = b
        .input
        .probs
        .as_ref()
        .map_or(&c.dummy as &dyn Bindable, |p| p);
    let inputs: [&dyn Bindable; 5] = [
        &b.params,
        &b.input.logits,
        &b.input.targets,
        probs,
        &c.weight,
    ];
    let outputs: [&dyn Bindable; 4] = [&b.losses, &b.dens, &b.stats, &c.error];
    bind(ctx, Family::Loss, &[&inputs[..], &outputs[..]].concat())
}

/// The backward kernels' bindings (shaders/grad.wgsl), D in `scale`.
pub(crate) fn grad_bind(
    ctx: &Context,
    c: &Common,
    b: &ChunkBuffers,
    scale: &wgpu::Buffer,
) -> wgpu::BindGroup {
    let probs = b
        .input
        .probs
        .as_ref()
        .map_or(&c.dummy as &dyn Bindable, |p| p);
    let grad = b.grad.as_ref().map_or(&c.dummy_rw as &dyn Bindable, |g| g);
    let inputs: [&dyn Bindable; 5] = [
        &b.params,
        &b.input.logits,
        &b.input.targets,
        probs,
        &c.weight,
    ];
    let outputs: [&dyn Bindable; 4] = [&b.losses, scale, grad, &b.stats];
    bind(ctx, Family::Grad, &[&inputs[..], &outputs[..]].concat())
}

/// The chunks that own their rows' outputs: one per row, the first of each row's chunks.
pub(crate) fn row_chunks(bufs: &[ChunkBuffers]) -> impl Iterator<Item = &ChunkBuffers> {
    bufs.iter().filter(|b| b.input.seg_first == 0)
}

/// The chunks in runs that share their rows: each whole chunk alone, and the pieces of a row
/// larger than one binding together.
pub(crate) fn row_runs(bufs: &[ChunkBuffers]) -> impl Iterator<Item = &[ChunkBuffers]> {
    bufs.split_inclusive(|b| b.last_of_row)
}
