//! A loss call built once: the per-chunk buffers, the bind groups and the dispatches of
//! `shaders/loss.wgsl`, `grad.wgsl` and `reduce.wgsl`, and the staging buffers; run or
//! recorded as often as needed (`PreparedLoss`).

use super::chunks;
use super::context::{Bindable, Bound, Context};
use super::kernels::{Family, InputKind, Kernel};
use super::loss::{Grad, Loss, Request, Results};
use super::program::{join, Program};
use super::readback::Staging;
use super::reduce::{Part, Reduced};
use super::rows;
use super::timestamps::Timestamps;
use crate::error::Result;
use crate::layout::{LossProblem, RowLayout, Targets, IGNORED};
use crate::options::{DType, Logits, LossAndGrad, LossOptions, Output, Reduction};

/// Keep in sync with `LossParams` in shaders/shared/loss_inputs.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LossParams {
    rows: u32,
    classes: u32,
    inner: u32,
    flags: u32,
    ignore_index: i32,
    label_smoothing: f32,
    z_loss: f32,
    softcap: f32,
    grad_output: f32,
    lanes: u32,
    target_words: u32,
    row_base: u32,
    segments: u32,
    segment_len: u32,
    seg_first: u32,
    seg_total: u32,
    class_first: u32,
    total_classes: u32,
    _pad: [u32; 2],
}

/// Elements each invocation of `nll_grad` writes (keep in sync with NLL_VALUES in
/// shaders/grad.wgsl).
const NLL_GRAD_VALUES: u64 = 4;

const HAS_WEIGHT: u32 = 1;
const PROB_TARGETS: u32 = 2;
const UNSIGNED_TARGETS: u32 = 4;

impl Context {
    /// Uploads host inputs, one buffer per chunk of rows.
    pub(crate) fn host_inputs(
        &self,
        input: &Logits<'_>,
        problem: &LossProblem,
    ) -> Result<Vec<ChunkInputs>> {
        let layout = &problem.layout;
        // The split build_loss takes (rows::plan's), by which a row larger than one binding
        // is bound a few segments at a time.
        let split = rows::split(layout, &self.tuning());
        chunks::plan(layout, &split, self.max_binding_bytes())?
            .iter()
            .map(|chunk| {
                let (elems, rows) = (chunk.elems(layout, &split), chunk.rows(layout));
                let (targets, probs) = match &problem.targets {
                    Targets::Classes(t) => (self.upload("targets", &t[rows.clone()])?, None),
                    Targets::Probs(p) => (
                        self.upload::<i32>("targets", &[])?,
                        Some(Bound::whole(self.upload("probs", &p[elems.clone()])?)),
                    ),
                };
                Ok(ChunkInputs {
                    logits: Bound::whole(self.upload("logits", input.bytes(elems.clone()))?),
                    targets: Bound::whole(targets),
                    probs,
                    rows,
                    elems,
                    seg_first: chunk.seg_first,
                    classes: chunk.classes(layout, &split),
                })
            })
            .collect()
    }

    /// Builds every buffer, bind group and dispatch of one call over `inputs`.
    pub(crate) fn build_loss(
        &self,
        shape: &LossShape,
        inputs: Vec<ChunkInputs>,
        opts: &LossOptions<'_>,
        req: Request,
    ) -> Result<PreparedLoss<'_>> {
        let layout = &shape.layout;
        let dtype = shape.dtype;
        // Class targets and no option beyond weights: the pipelines without the general code.
        let general = shape.probs
            || opts.label_smoothing != 0.0
            || opts.z_loss != 0.0
            || opts.softcap.is_some();
        let kind = InputKind {
            general,
            ..self.input_kind(dtype, inputs.iter().map(|c| c.logits.size))
        };
        let mut flags = 0;
        if opts.weight.is_some() || shape.weight.is_some() {
            flags |= HAS_WEIGHT;
        }
        if shape.probs {
            flags |= PROB_TARGETS;
        }
        if shape.unsigned_targets {
            flags |= UNSIGNED_TARGETS;
        }
        if req.grad == Grad::InPlace && dtype != DType::F32 {
            return Err(crate::XentError::Unsupported(
                "an in-place gradient needs f32 logits (the gradient is f32)".into(),
            ));
        }
        let weight = match &shape.weight {
            Some(w) => w.clone(),
            None => Bound::whole(self.upload("weight", opts.weight.unwrap_or(&[]))?),
        };
        // The gradient's scale: D (1 unless a reduction writes it) and W = Σ w, known here
        // unless the weights are on the device.
        let weight_sum = opts
            .weight
            .map_or(layout.classes as f64, |w| w.iter().map(|&v| v as f64).sum());
        let scale = self.upload("scale (D, W)", &[1.0f32, weight_sum as f32])?;
        let dummy = self.upload::<f32>("unused", &[])?;
        // A writable binding may not share its buffer with any other binding.
        let dummy_rw = self.upload::<f32>("unused (writable)", &[])?;
        let error = self.upload("target error", &[u32::MAX, 0, 0, 0])?;
        let mut program = Program::default();
        if shape.check_targets {
            // Reset the flag at the start of every run.
            let init = self.upload("target error init", &[u32::MAX, 0, 0, 0])?;
            program.copy_before(init, error.clone(), 16);
        }
        // Long rows, and few rows, of cross_entropy are split across workgroups, all WG
        // invocations on each piece; otherwise `lanes` invocations per row. The fused
        // backward reads each row twice: the second time from workgroup memory where the rows
        // fit there (and the device gains from it). nll_loss reads one value a row.
        let fused = req.loss == Loss::CrossEntropy && req.grad != Grad::None;
        let walk = rows::plan(layout, &self.tuning(), fused);
        let split = walk.split;
        let (lanes, held) = match req.loss {
            Loss::CrossEntropy => (walk.lanes, walk.held),
            Loss::Nll => (1, false),
        };
        let split_rows = req.loss == Loss::CrossEntropy && split.segments > 1;
        let segment_groups = |b: &ChunkBuffers| b.rows as u64 * b.segments as u64;
        let per_row_groups = |rows: usize| (rows as u64).div_ceil(self.workgroup_size() as u64);
        let row_groups = |rows: usize| rows::workgroups(rows, lanes, self.workgroup_size());

        // Every chunk's parameters and per-row outputs.
        let mut bufs = Vec::with_capacity(inputs.len());
        for input in inputs {
            let rows = input.rows.len();
            // This chunk's share of each row: all of it, or some segments of a row larger than
            // one binding, whose per-row outputs it shares with the row's other chunks.
            let segments = input
                .classes
                .len()
                .div_ceil(split.len.max(1) as usize)
                .max(1) as u32;
            let first_of_row = input.seg_first == 0;
            let planes = if split.segments > 1 { 2 } else { 1 };
            let shared = match (first_of_row, bufs.last()) {
                (false, Some(prev)) => Some(ChunkBuffers::row_outputs(prev)),
                _ => None,
            };
            let params = self.uniform(
                "loss params",
                &LossParams {
                    rows: rows as u32,
                    classes: input.classes.len() as u32,
                    inner: layout.inner as u32,
                    flags,
                    ignore_index: shape.ignore_index,
                    label_smoothing: opts.label_smoothing,
                    z_loss: opts.z_loss,
                    softcap: opts.softcap.unwrap_or(0.0),
                    grad_output: req.grad_output,
                    lanes,
                    target_words: shape.target_words,
                    row_base: input.rows.start as u32,
                    segments,
                    segment_len: split.len,
                    seg_first: input.seg_first,
                    seg_total: split.segments,
                    class_first: input.classes.start as u32,
                    total_classes: layout.classes as u32,
                    _pad: [0; 2],
                },
            );
            let (losses, dens, stats, lse) = match shared {
                Some(outputs) => outputs,
                None => (
                    self.output("losses", rows)?,
                    self.output("dens", rows)?,
                    self.output("stats", rows * split.segments as usize * 4 * planes)?,
                    match req.lse {
                        true => Some(self.output("lse", rows)?),
                        false => None,
                    },
                ),
            };
            bufs.push(ChunkBuffers {
                params,
                losses,
                dens,
                stats,
                lse,
                grad: match (req.grad, &shape.grad_into) {
                    (Grad::OutOfPlace, Some(into)) => Some(into.clone()),
                    (Grad::OutOfPlace, None) => {
                        Some(Bound::whole(self.host_output("grad", input.elems.len())?))
                    }
                    _ => None,
                },
                rows,
                elems: input.elems.len(),
                segments,
                last_of_row: input.seg_first + segments == split.segments,
                input,
            });
        }
        let forward_bind = |b: &ChunkBuffers| {
            self.bind(
                Family::Loss,
                &[
                    &b.params,
                    &b.input.logits,
                    &b.input.targets,
                    b.input
                        .probs
                        .as_ref()
                        .map_or(&dummy as &dyn Bindable, |p| p),
                    &weight,
                    &b.losses,
                    &b.dens,
                    &b.stats,
                    &error,
                ],
            )
        };
        let label = |kernel: Kernel, b: &ChunkBuffers| {
            format!(
                "{kernel:?} rows={} C={} inner={}",
                b.rows, layout.classes, layout.inner
            )
        };
        // The backward's bindings, D (`scale`) given.
        let grad_bind = |b: &ChunkBuffers, scale: &wgpu::Buffer| {
            self.bind(
                Family::Grad,
                &[
                    &b.params,
                    &b.input.logits,
                    &b.input.targets,
                    b.input
                        .probs
                        .as_ref()
                        .map_or(&dummy as &dyn Bindable, |p| p),
                    &weight,
                    &b.losses,
                    scale,
                    b.grad.as_ref().map_or(&dummy_rw as &dyn Bindable, |g| g),
                    &b.stats,
                ],
            )
        };
        let one = self.upload("unit scale", &[1.0f32])?;
        // D, from the targets alone, when a fused backward needs it before any logit is read;
        // and the check of device targets, which row_dens does too.
        let needs_d = req.loss == Loss::CrossEntropy
            && req.grad != Grad::None
            && opts.reduction != Reduction::None;
        if shape.weight.is_some()
            && req.loss == Loss::CrossEntropy
            && req.grad != Grad::None
            && opts.label_smoothing > 0.0
        {
            // W for the smoothing term, summed from the device weights on every run.
            self.push_sum_into(&mut program, &weight, layout.classes, &scale, 1)?;
        }
        if needs_d || shape.check_targets {
            // Once per row: by the first chunk of a row larger than one binding.
            for b in bufs.iter().filter(|b| b.input.seg_first == 0) {
                let groups = (b.rows as u64).div_ceil(self.workgroup_size() as u64);
                self.push_typed(
                    &mut program,
                    Kernel::RowDens,
                    kind,
                    forward_bind(b),
                    groups,
                    label(Kernel::RowDens, b),
                )?;
                if shape.check_targets {
                    self.push_typed(
                        &mut program,
                        Kernel::ReportError,
                        kind,
                        forward_bind(b),
                        1,
                        "report_error".into(),
                    )?;
                }
            }
        }
        let dens: Vec<Part> = row_chunks(&bufs)
            .map(|b| (&b.dens as _, &b.dens as _, b.rows))
            .collect();
        let losses: Vec<Part> = row_chunks(&bufs)
            .map(|b| (&b.losses as _, &b.dens as _, b.rows))
            .collect();
        // The fused gradient is written row by row: 8 values a store where that is safe. In
        // place there is no grad buffer (size 0 here), and the logits are written 8 at a time
        // when they are also read so (`Context::pipeline`).
        let grad_kind = self.with_wide_output(
            kind,
            layout,
            bufs.iter().map(|b| b.grad.as_ref().map_or(0, |g| g.size)),
        );
        let reduced = if fused {
            // One dispatch per row does the loss and the gradient; then the loss is reduced.
            if needs_d {
                self.push_reduction(&mut program, &dens, opts.reduction, Some(&scale))?;
            }
            let kernel = match (req.grad, split.segments) {
                (Grad::InPlace, 1) if held => Kernel::CrossEntropyFusedHeldInPlace,
                (_, 1) if held => Kernel::CrossEntropyFusedHeld,
                (Grad::InPlace, 1) => Kernel::CrossEntropyFusedInPlace,
                (_, 1) => Kernel::CrossEntropyFused,
                (Grad::InPlace, _) => Kernel::CrossEntropyGradSegmentsInPlace,
                _ => Kernel::CrossEntropyGradSegments,
            };
            for row in row_runs(&bufs) {
                if split_rows {
                    // Split rows: partial statistics, then the merge writes each row's loss.
                    self.push_split_forward(&mut program, kind, forward_bind, row)?;
                }
                for b in row {
                    let groups = match split.segments {
                        1 => row_groups(b.rows),
                        _ => segment_groups(b),
                    };
                    let bind = grad_bind(b, &scale);
                    let label = label(kernel, b);
                    self.push_typed(&mut program, kernel, grad_kind, bind, groups, label)?;
                }
            }
            match opts.reduction {
                Reduction::None => None,
                r => Some(self.push_reduction(&mut program, &losses, r, None)?),
            }
        } else {
            let kernel = match req.loss {
                Loss::CrossEntropy => Kernel::CrossEntropyRows,
                Loss::Nll => Kernel::NllRows,
            };
            for row in row_runs(&bufs).filter(|_| split_rows) {
                self.push_split_forward(&mut program, kind, forward_bind, row)?;
            }
            for b in bufs.iter().filter(|_| !split_rows) {
                let groups = match kernel {
                    Kernel::NllRows => per_row_groups(b.rows),
                    _ => row_groups(b.rows),
                };
                self.push_typed(
                    &mut program,
                    kernel,
                    kind,
                    forward_bind(b),
                    groups,
                    label(kernel, b),
                )?;
            }
            let reduced = match opts.reduction {
                Reduction::None => None,
                r => Some(self.push_reduction(&mut program, &losses, r, None)?),
            };
            if req.grad != Grad::None {
                // nll_loss: the gradient needs only D and the targets.
                for b in &bufs {
                    let bind = grad_bind(b, reduced.as_ref().map_or(&one, |r| &r.den));
                    self.push_typed(
                        &mut program,
                        Kernel::NllGrad,
                        kind,
                        bind,
                        (b.elems as u64).div_ceil(self.workgroup_size() as u64 * NLL_GRAD_VALUES),
                        label(Kernel::NllGrad, b),
                    )?;
                }
            }
            reduced
        };
        drop(dens);
        drop(losses);
        if req.lse {
            // stats are (M, S, Q, lse) per row, at every `segments`-th vec4 for split rows.
            for b in row_chunks(&bufs) {
                if let Some(lse) = &b.lse {
                    let stride = 4 * split.segments;
                    self.push_gather(&mut program, &b.stats, lse, b.rows, stride, 3)?;
                }
            }
        }
        if let Some((target, half)) = &shape.grad_pack {
            // The gradient in the logits' 16-bit dtype: packed from the f32 one (one chunk).
            if let Some(g) = bufs.first().and_then(|b| b.grad.as_ref()) {
                self.push_pack(&mut program, g, target, bufs[0].elems, *half)?;
            }
        }

        // Staging buffers, made once and reused by every run.
        let loss_staging = match &reduced {
            Some(_) => vec![self.staging(4)],
            None => row_chunks(&bufs)
                .map(|b| self.staging(b.rows as u64 * 4))
                .collect(),
        };
        let grad_staging = match req.grad {
            Grad::None => vec![],
            _ => bufs
                .iter()
                .map(|b| {
                    let g = b.grad.as_ref().unwrap_or(&b.input.logits);
                    self.staging_for(&g.buffer, g.offset, b.elems as u64 * 4)
                })
                .collect(),
        };
        let lse_staging = match req.lse {
            true => row_chunks(&bufs)
                .map(|b| self.staging(b.rows as u64 * 4))
                .collect(),
            false => vec![],
        };
        Ok(PreparedLoss {
            ctx: self,
            program,
            reduced,
            chunks: bufs,
            loss_staging,
            grad_staging,
            lse_staging,
            error: shape.check_targets.then(|| (error, self.staging(16))),
            timestamps: self.timestamp_queries(),
            lse_shape: shape.out_shape.clone(),
            loss_shape: match opts.reduction {
                Reduction::None => shape.out_shape.clone(),
                _ => vec![],
            },
            input_shape: shape.input_shape.clone(),
            target_shape: shape.target_shape.clone(),
            classes: layout.classes,
            ignore_index: shape.ignore_index as i64,
            dtype,
            req,
            read_grad: true,
            started: false.into(),
        })
    }
}

impl Context {
    /// Appends a split-row forward for the chunks of some rows (one chunk, or the pieces of a
    /// row larger than one binding): partial statistics per segment of each, then the per-row
    /// merge that writes the loss, den and stats.
    fn push_split_forward(
        &self,
        program: &mut Program,
        kind: InputKind,
        forward_bind: impl Fn(&ChunkBuffers) -> wgpu::BindGroup,
        row: &[ChunkBuffers],
    ) -> Result<()> {
        let partials = Kernel::CrossEntropyPartials;
        for b in row {
            let groups = b.rows as u64 * b.segments as u64;
            let label = format!("{partials:?} rows={} segments={}", b.rows, b.segments);
            self.push_typed(program, partials, kind, forward_bind(b), groups, label)?;
        }
        let last = row.last().expect("a run has a chunk");
        let merge = Kernel::CrossEntropyMerge;
        let groups = (last.rows as u64).div_ceil(self.workgroup_size() as u64);
        let label = format!("{merge:?} rows={}", last.rows);
        self.push_typed(program, merge, kind, forward_bind(last), groups, label)
    }
}

/// The chunks that own their rows' outputs: one per row, the first of each row's chunks.
fn row_chunks(bufs: &[ChunkBuffers]) -> impl Iterator<Item = &ChunkBuffers> {
    bufs.iter().filter(|b| b.input.seg_first == 0)
}

/// The chunks in runs that share their rows: each whole chunk alone, and the pieces of a row
/// larger than one binding together.
fn row_runs(bufs: &[ChunkBuffers]) -> impl Iterator<Item = &[ChunkBuffers]> {
    bufs.split_inclusive(|b| b.last_of_row)
}

/// What a loss call computes over: the layout, shapes and the kind of targets.
pub(crate) struct LossShape {
    pub layout: RowLayout,
    pub input_shape: Vec<usize>,
    pub out_shape: Vec<usize>,
    pub target_shape: Vec<usize>,
    pub dtype: DType,
    pub probs: bool,
    /// 32-bit words per class target (2 for i64).
    pub target_words: u32,
    /// u32 class targets (on the device): words of 2^31 and more are classes, not negatives.
    pub unsigned_targets: bool,
    /// The ignore_index the kernel compares with (host targets are normalised to IGNORED).
    pub ignore_index: i32,
    /// Device targets: checked on the device, reported by the error flag.
    pub check_targets: bool,
    /// Where an out-of-place gradient goes, when the caller gives a buffer.
    pub grad_into: Option<Bound>,
    /// Packs the f32 gradient into this f16 / bf16 tensor (the logits themselves, or the
    /// caller's), rounded to nearest even.
    pub grad_pack: Option<(Bound, DType)>,
    /// Class weights on the device (else `LossOptions::weight`, uploaded).
    pub weight: Option<Bound>,
}

impl LossShape {
    /// The shape of a checked host problem.
    pub fn host(problem: &LossProblem, input: &Logits<'_>, target_shape: &[usize]) -> Self {
        Self {
            layout: problem.layout,
            input_shape: input.shape().to_vec(),
            out_shape: problem.out_shape.clone(),
            target_shape: target_shape.to_vec(),
            dtype: input.dtype(),
            probs: matches!(problem.targets, Targets::Probs(_)),
            target_words: 1,
            unsigned_targets: false,
            ignore_index: IGNORED,
            check_targets: false,
            grad_into: None,
            grad_pack: None,
            weight: None,
        }
    }
}

/// The inputs of one chunk of rows, each bound where it lies.
pub(crate) struct ChunkInputs {
    pub logits: Bound,
    pub targets: Bound,
    pub probs: Option<Bound>,
    pub rows: std::ops::Range<usize>,
    pub elems: std::ops::Range<usize>,
    /// The chunk's first segment of each row (0 unless a row is larger than one binding).
    pub seg_first: u32,
    /// The classes of each row here.
    pub classes: std::ops::Range<usize>,
}

/// The buffers of one chunk of rows.
struct ChunkBuffers {
    input: ChunkInputs,
    params: wgpu::Buffer,
    losses: wgpu::Buffer,
    dens: wgpu::Buffer,
    stats: wgpu::Buffer,
    /// Each row's lse, when asked for.
    lse: Option<wgpu::Buffer>,
    /// The out-of-place gradient; `None` when there is none or it goes over the logits.
    grad: Option<Bound>,
    rows: usize,
    elems: usize,
    /// Segments of each row here (all of them, or a run of a row larger than one binding).
    segments: u32,
    /// Whether the chunk holds the last segment of its rows.
    last_of_row: bool,
}

impl ChunkBuffers {
    /// The per-row outputs, which the chunks of a row larger than one binding share.
    fn row_outputs(&self) -> RowOutputs {
        (
            self.losses.clone(),
            self.dens.clone(),
            self.stats.clone(),
            self.lse.clone(),
        )
    }
}

type RowOutputs = (
    wgpu::Buffer,
    wgpu::Buffer,
    wgpu::Buffer,
    Option<wgpu::Buffer>,
);

/// A loss call whose inputs are on the device and whose buffers, bind groups, dispatches and
/// staging buffers are built: each [`PreparedLoss::run_timed`] is one submission and one readback.
/// Built by [`Context::prepare_cross_entropy`].
pub struct PreparedLoss<'a> {
    ctx: &'a Context,
    program: Program,
    reduced: Option<Reduced>,
    chunks: Vec<ChunkBuffers>,
    loss_staging: Vec<Staging>,
    grad_staging: Vec<Staging>,
    lse_staging: Vec<Staging>,
    /// The device-target error flag and its staging buffer (device targets only).
    error: Option<(wgpu::Buffer, Staging)>,
    timestamps: Option<Timestamps>,
    loss_shape: Vec<usize>,
    lse_shape: Vec<usize>,
    input_shape: Vec<usize>,
    target_shape: Vec<usize>,
    classes: usize,
    ignore_index: i64,
    dtype: DType,
    req: Request,
    /// Whether each run reads the gradient back (the host API) or leaves it on the device.
    read_grad: bool,
    /// Whether the call was ever recorded or run: before that there is no loss to read.
    started: std::sync::atomic::AtomicBool,
}

impl PreparedLoss<'_> {
    /// Runs the call: one submission, then the loss read back (the gradient stays on the
    /// device; see [`PreparedLoss::read_grad`]). Returns the loss and, when the adapter has
    /// timestamp queries, the GPU time of the compute pass.
    pub fn run_timed(&self) -> Result<(LossAndGrad, Option<std::time::Duration>)> {
        pollster::block_on(self.ctx.scoped(self.run()))
            .map(|(r, t)| (r.into_loss_and_grad(&self.input_shape), t))
    }

    /// Replaces the logits (same shape) with `data`: a queue write, no allocation.
    pub fn write_logits(&self, data: &[f32]) -> Result<()> {
        let total: usize = self.chunks.iter().map(|c| c.elems).sum();
        if data.len() != total {
            return Err(crate::XentError::InvalidShape(format!(
                "write_logits: expected {total} values, got {}",
                data.len()
            )));
        }
        if self.dtype != DType::F32 {
            return Err(crate::XentError::Unsupported(
                "write_logits takes f32 values; these logits are 16-bit".into(),
            ));
        }
        let mut at = 0;
        for c in &self.chunks {
            let logits = &c.input.logits;
            let bytes: &[u8] = bytemuck::cast_slice(&data[at..at + c.elems]);
            self.ctx
                .queue
                .write_buffer(&logits.buffer, logits.offset, bytes);
            at += c.elems;
        }
        Ok(())
    }

    /// Reads back the gradient of the last run (empty unless prepared with `grad`).
    pub fn read_grad(&self) -> Result<Vec<f32>> {
        self.check_started("read_grad")?;
        let reads: Vec<_> = self
            .grad_sources()
            .zip(&self.grad_staging)
            .map(|((b, o), s)| (b, o, s))
            .collect();
        let (parts, _) = pollster::block_on(self.ctx.scoped(self.ctx.run_program(
            &Program::default(),
            &reads,
            None,
        )))?;
        Ok(join(parts))
    }

    /// An error unless the call was recorded or run: before that its outputs hold nothing.
    fn check_started(&self, what: &str) -> Result<()> {
        if self.started.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        Err(crate::XentError::InvalidArgument(format!(
            "{what}: the call has not run yet; record it into an encoder and submit that first"
        )))
    }

    /// Where each chunk's gradient lies: its own buffer, or over the logits.
    fn grad_sources(&self) -> impl Iterator<Item = (&wgpu::Buffer, u64)> {
        self.chunks.iter().map(|c| {
            let g = c.grad.as_ref().unwrap_or(&c.input.logits);
            (&g.buffer, g.offset)
        })
    }

    pub(crate) fn set_read_grad(&mut self, read: bool) {
        self.read_grad = read;
    }

    /// Records the call's dispatches into `encoder` (after whatever the caller recorded
    /// before, e.g. the pass that wrote the logits). Nothing is submitted or read: the loss
    /// lands in [`PreparedLoss::loss`], the gradient where it was asked to go.
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder) {
        self.started
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.ctx.record(encoder, &self.program, None);
    }

    /// The loss on the device: an f32 scalar for `mean` and `sum`, per position for `none`
    /// (a single-chunk call, as every device call is).
    pub fn loss(&self) -> crate::DeviceTensor {
        let (buffer, shape) = match &self.reduced {
            Some(r) => (r.value.clone(), vec![]),
            None => (self.chunks[0].losses.clone(), self.loss_shape.clone()),
        };
        crate::DeviceTensor::from_parts(buffer, shape, crate::DeviceDType::F32)
    }

    /// Each row's log-sum-exp on the device, shape `[N, d1..dk]` (a single-chunk call, as
    /// every device call is), when the call was prepared with it
    /// ([`crate::DeviceLoss::with_lse`]).
    pub fn lse(&self) -> Option<crate::DeviceTensor> {
        let lse = self.chunks[0].lse.clone()?;
        Some(crate::DeviceTensor::from_parts(
            lse,
            self.lse_shape.clone(),
            crate::DeviceDType::F32,
        ))
    }

    /// Reads the loss of the last submitted [`PreparedLoss::record`] back (waiting for it),
    /// and the device-target error flag: an out-of-range target is reported here, as the
    /// host API reports it.
    pub fn read_loss(&self) -> Result<Output> {
        pollster::block_on(self.read_loss_async())
    }

    /// The async form of [`PreparedLoss::read_loss`].
    pub async fn read_loss_async(&self) -> Result<Output> {
        self.check_started("read_loss")?;
        let mut reads: Vec<(&wgpu::Buffer, u64, &Staging)> = match &self.reduced {
            Some(r) => vec![(&r.value, 0, &self.loss_staging[0])],
            None => row_chunks(&self.chunks)
                .zip(&self.loss_staging)
                .map(|(c, s)| (&c.losses, 0, s))
                .collect(),
        };
        if let Some((flag, staging)) = &self.error {
            reads.push((flag, 0, staging));
        }
        let (mut words, _) = self
            .ctx
            .scoped(self.ctx.run_program(&Program::default(), &reads, None))
            .await?;
        if self.error.is_some() {
            self.check_error(&words.pop().unwrap_or_default())?;
        }
        Ok(Output {
            data: join(words),
            shape: self.loss_shape.clone(),
        })
    }

    /// Number of dispatches in one run.
    pub fn dispatches(&self) -> usize {
        self.program.len()
    }

    /// The label of each dispatch of a run, in order: its kernel, then its shape (e.g.
    /// `CrossEntropyFusedHeld rows=8 C=4096 inner=1`). The dispatch chosen shows here.
    pub fn dispatch_labels(&self) -> Vec<String> {
        self.program.labels()
    }

    pub(crate) async fn run(&self) -> Result<(Results, Option<std::time::Duration>)> {
        self.started
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let mut reads: Vec<(&wgpu::Buffer, u64, &Staging)> = match &self.reduced {
            Some(r) => vec![(&r.value, 0, &self.loss_staging[0])],
            None => row_chunks(&self.chunks)
                .zip(&self.loss_staging)
                .map(|(c, s)| (&c.losses, 0, s))
                .collect(),
        };
        let grad_staging: &[Staging] = if self.read_grad {
            &self.grad_staging
        } else {
            &[]
        };
        reads.extend(
            self.grad_sources()
                .zip(grad_staging)
                .map(|((b, o), s)| (b, o, s)),
        );
        reads.extend(
            row_chunks(&self.chunks)
                .filter_map(|c| c.lse.as_ref())
                .zip(&self.lse_staging)
                .map(|(lse, s)| (lse, 0, s)),
        );
        if let Some((flag, staging)) = &self.error {
            reads.push((flag, 0, staging));
        }
        let (mut words, elapsed) = self
            .ctx
            .run_program(&self.program, &reads, self.timestamps.as_ref())
            .await?;
        if self.error.is_some() {
            self.check_error(&words.pop().unwrap_or_default())?;
        }
        let mut parts = words.into_iter();
        let loss = Output {
            data: join(parts.by_ref().take(self.loss_staging.len()).collect()),
            shape: self.loss_shape.clone(),
        };
        let grad = (self.req.grad != Grad::None && self.read_grad)
            .then(|| join(parts.by_ref().take(grad_staging.len()).collect()));
        let lse = self.req.lse.then(|| join(parts.collect()));
        Ok((Results { loss, grad, lse }, elapsed))
    }

    /// The device-target flag: (first bad row or u32::MAX, its value's low and high words).
    fn check_error(&self, flag: &[f32]) -> Result<()> {
        let word = |i: usize| flag.get(i).map_or(u32::MAX, |f| f.to_bits());
        if word(0) == u32::MAX {
            return Ok(());
        }
        let value = (word(1) as u64 | (word(2) as u64) << 32) as i64;
        Err(crate::XentError::TargetOutOfBounds {
            position: crate::layout::unravel(word(0) as usize, &self.target_shape),
            value,
            classes: self.classes,
            ignore_index: self.ignore_index,
        })
    }
}

impl std::fmt::Debug for PreparedLoss<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedLoss")
            .field("input_shape", &self.input_shape)
            .field("dtype", &self.dtype)
            .field("loss_shape", &self.loss_shape)
            .field("chunks", &self.chunks.len())
            .field("dispatches", &self.program.len())
            .finish_non_exhaustive()
    }
}
