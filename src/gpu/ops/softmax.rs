//! Launchers for `shaders/softmax.wgsl`: log_softmax, softmax and their backward passes.

use crate::error::{Result, XentError};
use crate::geometry::chunks;
use crate::geometry::rows;
use crate::gpu::kernels::uniform;
use crate::gpu::kernels::{Entry, Family, KernelKey, Variant};
use crate::gpu::ops::convert::push_pack;
use crate::gpu::runtime::buffers::Bindable;
use crate::gpu::runtime::buffers::{bind, host_output, output, uniform, upload};
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::device_tensor::{Access, DeviceTensor};
use crate::gpu::runtime::program::push;
use crate::gpu::runtime::program::Program;
use crate::gpu::runtime::readback::staging_for;
use crate::gpu::runtime::readback::Staging;
use crate::gpu::runtime::timestamps::timestamp_queries;
use crate::gpu::runtime::timestamps::Timestamps;
use crate::layout::RowLayout;
use crate::options::{DType, Float, FloatTensor, Output, Tensor};

mod prepared;
pub(crate) mod shard;

uniform! {
    /// The uniform of shaders/softmax.wgsl: what each field means is documented there.
    pub(crate) struct SoftmaxParams in Softmax {
        rows: u32,
        classes: u32,
        inner: u32,
        lanes: u32,
        segments: u32,
        segment_len: u32,
        seg_first: u32,
        seg_total: u32,
    }
}

/// What one chunk's dispatches work on: its own view, the call's walk, and the partials
/// buffer shared by the chunks of a row (src/geometry/chunks.rs).
struct SoftmaxChunk<'a> {
    layout: RowLayout,
    walk: rows::RowPlan,
    seg_first: u32,
    stats: &'a wgpu::Buffer,
    /// The split kernels even for one segment a row (a vocabulary shard: `shard`).
    split_always: bool,
}

/// A softmax-family call built once (`ctx.prepare(&SoftmaxCall::..)`), on host data or on a
/// device tensor: each [`PreparedSoftmax::run`] is one submission and one readback, or it is
/// recorded ([`PreparedSoftmax::record`]) and its output stays on the device.
///
/// Runs one at a time: its runs and reads hold the call's lock, so it may be shared by threads
/// (in an `Arc`) and joined futures, and a dropped `…_async` future leaves it usable. A
/// blocking method called while an unfinished future of the same thread holds it returns
/// [`crate::XentError::Busy`].
pub struct PreparedSoftmax {
    ctx: Context,
    program: Program,
    outputs: Vec<(wgpu::Buffer, Staging)>,
    timestamps: Option<Timestamps>,
    shape: Vec<usize>,
    /// The output packed into f16 / bf16, when asked for.
    packed: Option<DeviceTensor>,
    /// Held by each run (src/gpu/runtime/run_lock.rs).
    lock: crate::gpu::runtime::run_lock::RunLock,
}

pub(crate) async fn softmax_family(
    ctx: &Context,
    entry: Entry,
    x: FloatTensor<'_>,
    dim: i64,
    gy: Option<Tensor<'_, f32>>,
) -> Result<Output> {
    let prepared = build_softmax(ctx, entry, x, dim, gy)?;
    let _run = prepared.lock.hold().await;
    Ok(prepared.run_held(false).await?.0)
}

/// One pass of a softmax-family kernel over every row of `x` (for the backward kernels,
/// `x` is the forward output and `gy` the upstream gradient).
pub(crate) fn build_softmax(
    ctx: &Context,
    entry: Entry,
    x: FloatTensor<'_>,
    dim: i64,
    gy: Option<Tensor<'_, f32>>,
) -> Result<PreparedSoftmax> {
    x.check_len()?;
    if let Some(gy) = gy {
        gy.check_len("grad_out")?;
        if gy.shape != x.shape() {
            return Err(XentError::ShapeMismatch {
                input: x.shape().to_vec(),
                target: gy.shape.to_vec(),
            });
        }
    }
    let layout = RowLayout::for_dim(x.shape(), dim)?;
    let forward = matches!(entry, Entry::LogSoftmax | Entry::Softmax);
    let walk = rows::plan(&layout, &ctx.walk_tuning(), forward);
    let chunks = match layout.is_empty() {
        true => vec![],
        false => chunks::plan(&layout, &walk.split, ctx.max_binding_bytes())?,
    };
    let (mut program, mut second) = (Program::default(), Program::default());
    let mut outputs = Vec::with_capacity(chunks.len());
    let mut stats = None;
    for chunk in &chunks {
        let elems = chunk.elems(&layout, &walk.split);
        let input = upload(ctx, "softmax x", x.bytes(elems.clone()))?;
        let upstream = match gy {
            Some(gy) => upload(ctx, "softmax gy", &gy.data[elems.clone()])?,
            None => upload::<f32>(ctx, "unused", &[])?,
        };
        // The chunks of one row (pieces of a row larger than a binding) share its partials.
        if chunk.seg_first == 0 {
            let rows = chunk.rows(&layout).len();
            stats = Some(partials(ctx, rows, walk.split.segments)?);
        }
        let part = SoftmaxChunk {
            layout: chunk.layout(&layout, &walk.split),
            walk,
            seg_first: chunk.seg_first,
            stats: stats.as_ref().expect("a row's first chunk comes first"),
            split_always: false,
        };
        let kind = ctx.variant(x.float(), [input.size()]);
        let passes = (&mut program, &mut second);
        let output = push_softmax(ctx, passes, entry, kind, &part, &input, &upstream)?;
        let staging = staging_for(ctx, &output, 0, elems.len() as u64 * 4);
        outputs.push((output, staging));
        // Every chunk of a row has written its partials: their second passes may follow.
        if chunk.seg_first + chunk.seg_count == walk.split.segments {
            program.append(std::mem::take(&mut second));
        }
    }
    Ok(PreparedSoftmax {
        ctx: ctx.clone(),
        program,
        outputs,
        timestamps: timestamp_queries(ctx),
        shape: x.shape().to_vec(),
        packed: None,
        lock: Default::default(),
    })
}

/// The split rows' partials, (m, s) or (Σ, 0) per segment of each row; a one-value dummy
/// where rows are not split, which binds it but never reads it.
fn partials(ctx: &Context, rows: usize, segments: u32) -> Result<wgpu::Buffer> {
    match segments {
        1 => output(ctx, "unused partials", 1),
        s => output(ctx, "softmax partials", 2 * rows * s as usize),
    }
}

/// Appends one chunk's dispatches: for split rows the partials to the first program and
/// the segments to the second (which waits for every chunk of the row's partials);
/// otherwise the one kernel to the first. Returns the chunk's output buffer.
fn push_softmax(
    ctx: &Context,
    (program, later): (&mut Program, &mut Program),
    entry: Entry,
    kind: Variant,
    part: &SoftmaxChunk,
    input: &dyn Bindable,
    upstream: &dyn Bindable,
) -> Result<wgpu::Buffer> {
    let (layout, walk, split) = (&part.layout, part.walk, part.walk.split);
    let rows = layout.rows();
    // A piece of each row holds fewer than all of its segments.
    let segments = layout.classes.div_ceil(split.len.max(1) as usize).max(1) as u32;
    let params = uniform(
        ctx,
        "softmax params",
        &SoftmaxParams {
            rows: rows as u32,
            classes: layout.classes as u32,
            inner: layout.inner as u32,
            lanes: walk.lanes,
            segments,
            segment_len: split.len,
            seg_first: part.seg_first,
            seg_total: split.segments,
        },
    );
    let output = host_output(ctx, "softmax y", layout.len())?;
    let stats = part.stats;
    let bind = || {
        bind(
            ctx,
            Family::Softmax,
            &[&params, input, &output, upstream, stats],
        )
    };
    let shape = format!("rows={rows} C={} inner={}", layout.classes, layout.inner);
    // The forward writes y row by row: 8 values a store where that is safe.
    let out_kind = ctx.with_wide_output(kind, layout.inner, [(layout.classes, output.size())]);
    if split.segments > 1 || part.split_always {
        let (first, second) = match entry {
            Entry::LogSoftmax => (Entry::SoftmaxPartials, Entry::LogSoftmaxSegments),
            Entry::Softmax => (Entry::SoftmaxPartials, Entry::SoftmaxSegments),
            Entry::LogSoftmaxBackward => (
                Entry::LogSoftmaxBackwardPartials,
                Entry::LogSoftmaxBackwardSegments,
            ),
            _ => (
                Entry::SoftmaxBackwardPartials,
                Entry::SoftmaxBackwardSegments,
            ),
        };
        let groups = rows as u64 * segments as u64;
        push(
            ctx,
            program,
            KernelKey::new(first, kind),
            bind(),
            groups,
            &shape,
        )?;
        push(
            ctx,
            later,
            KernelKey::new(second, out_kind),
            bind(),
            groups,
            &shape,
        )?;
        return Ok(output);
    }
    let key = match walk.held {
        true => KernelKey::new(entry, out_kind).held(),
        false => KernelKey::new(entry, out_kind),
    };
    let workgroups = rows::workgroups(rows, walk.lanes, ctx.workgroup_size());
    push(ctx, program, key, bind(), workgroups, &shape)?;
    Ok(output)
}

/// A softmax call on a device tensor (`SoftmaxCall` with a device input, src/gpu/api/softmax.rs).
pub(crate) fn softmax_device(
    ctx: &Context,
    x: &DeviceTensor,
    dim: i64,
    entry: Entry,
    gy: Option<&DeviceTensor>,
    out: Float,
) -> Result<PreparedSoftmax> {
    if let Some(gy) = gy {
        // The backward reads the forward's output and the upstream gradient as f32.
        if (x.dtype(), gy.dtype()) != (DType::F32, DType::F32) {
            return Err(XentError::Unsupported(format!(
                "the softmax backward pass takes f32 tensors, got {:?} and {:?}",
                x.dtype(),
                gy.dtype()
            )));
        }
        if gy.shape() != x.shape() {
            return Err(XentError::ShapeMismatch {
                input: x.shape().to_vec(),
                target: gy.shape().to_vec(),
            });
        }
    }
    let dtype = match x.dtype() {
        DType::F32 => Float::F32,
        DType::F16 => Float::F16,
        DType::BF16 => Float::BF16,
        d => {
            return Err(XentError::InvalidArgument(format!(
                "softmax of a {d:?} tensor"
            )))
        }
    };
    let layout = RowLayout::for_dim(x.shape(), dim)?;
    if layout.is_empty() {
        return Err(XentError::InvalidShape(
            "nothing to prepare: the tensor is empty".into(),
        ));
    }
    (|| {
        let mut program = Program::default();
        let unused = upload::<f32>(ctx, "unused", &[])?;
        let bound = x.grouped(ctx, &mut program, Access::Read)?;
        let upstream = match gy {
            Some(gy) => Some(gy.grouped(ctx, &mut program, Access::Read)?),
            None => None,
        };
        let upstream: &dyn Bindable = match &upstream {
            Some(b) => b,
            None => &unused,
        };
        let forward = matches!(entry, Entry::LogSoftmax | Entry::Softmax);
        let walk = rows::plan(&layout, &ctx.walk_tuning(), forward);
        let part = SoftmaxChunk {
            layout,
            walk,
            seg_first: 0,
            stats: &partials(ctx, layout.rows(), walk.split.segments)?,
            split_always: false,
        };
        let kind = ctx.variant(dtype, [bound.size]);
        let mut second = Program::default();
        let passes = (&mut program, &mut second);
        let output = push_softmax(ctx, passes, entry, kind, &part, &bound, upstream)?;
        program.append(second);
        let packed = match out {
            Float::F32 => None,
            half => {
                let d = if half == Float::F16 {
                    DType::F16
                } else {
                    DType::BF16
                };
                let t = DeviceTensor::zeros_of(ctx, x.shape(), d)?;
                push_pack(ctx, &mut program, &output, &t.bound(), layout.len(), half)?;
                Some(t)
            }
        };
        Ok(PreparedSoftmax {
            ctx: ctx.clone(),
            program,
            outputs: vec![(
                output.clone(),
                staging_for(ctx, &output, 0, layout.len() as u64 * 4),
            )],
            timestamps: timestamp_queries(ctx),
            shape: x.shape().to_vec(),
            packed,
            lock: Default::default(),
        })
    })()
}
