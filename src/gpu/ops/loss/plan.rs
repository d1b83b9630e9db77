//! The policy of one loss call, decided before any buffer exists: what the call computes over
//! (`LossSpec`), which code its pipelines keep, how rows are walked, which stages run
//! (`LossPlan`), and each chunk's kernel parameters (`LossParams`).

use super::buffers::ChunkInputs;
use super::{Grad, Loss, Request};
use crate::geometry::rows::{self, RowPlan, Split, WalkTuning};
use crate::gpu::kernels::uniform;
use crate::gpu::kernels::Variant;
use crate::gpu::runtime::buffers::Bound;
use crate::layout::RowLayout;
use crate::options::{Float, FloatTensor, LossOptions, Reduction};
use crate::problem::{LossProblem, Targets, IGNORED};

/// What a loss call computes over: the layout, the shapes and the kind of targets.
pub(crate) struct LossSpec {
    pub layout: RowLayout,
    pub input_shape: Vec<usize>,
    pub out_shape: Vec<usize>,
    pub target_shape: Vec<usize>,
    pub dtype: Float,
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
    pub grad_pack: Option<(Bound, Float)>,
    /// Class weights on the device (else `LossOptions::weight`, uploaded).
    pub weight: Option<Bound>,
    /// Host data uploaded into buffers of ours: only such a call takes new batches.
    pub uploaded: bool,
}

impl LossSpec {
    /// The spec of a checked host problem.
    pub fn host(problem: &LossProblem, input: &FloatTensor<'_>, target_shape: &[usize]) -> Self {
        Self {
            layout: problem.layout,
            input_shape: input.shape().to_vec(),
            out_shape: problem.out_shape.clone(),
            target_shape: target_shape.to_vec(),
            dtype: input.float(),
            probs: matches!(problem.targets, Targets::Probs(_)),
            target_words: 1,
            unsigned_targets: false,
            ignore_index: IGNORED,
            check_targets: false,
            grad_into: None,
            grad_pack: None,
            weight: None,
            uploaded: true,
        }
    }
}

uniform! {
    /// The uniform of shaders/shared/loss_inputs.wgsl: what each field means is documented there.
    pub(crate) struct LossParams in Loss {
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
}

/// Where `LossParams::rows` lies in the uniform: a smaller batch rewrites it alone.
pub(super) const ROWS_OFFSET: u64 = std::mem::offset_of!(LossParams, rows) as u64;

const HAS_WEIGHT: u32 = 1;
const PROB_TARGETS: u32 = 2;
const UNSIGNED_TARGETS: u32 = 4;

/// The stages and walk of one call.
pub(crate) struct LossPlan {
    /// The logits' variant, `general` set from the options.
    pub variant: Variant,
    /// The rows' walk: split, lanes (1 for nll_loss, which reads one value a row), held.
    pub walk: RowPlan,
    /// cross_entropy with a gradient: loss and gradient in the same pass over each row.
    pub fused: bool,
    /// cross_entropy over split rows: partials, then the merge.
    pub split_rows: bool,
    /// The fused backward needs D from the targets before any logit is read.
    pub needs_d: bool,
    /// W = Σ w is summed from device weights on every run (smoothing's gradient needs it).
    pub sum_weights: bool,
    /// The fused call's batch is small enough for one workgroup to sum (one chunk): D by
    /// `dens_total` and the loss by `reduce_single`, a dispatch each (set by `build_loss`).
    pub single_pass: bool,
    flags: u32,
}

impl LossPlan {
    /// The plan of `req` over `spec`, its logits read as `variant`.
    pub fn new(
        spec: &LossSpec,
        opts: &LossOptions,
        req: Request,
        variant: Variant,
        tuning: &WalkTuning,
    ) -> crate::Result<Self> {
        if req.grad == Grad::InPlace && spec.dtype != Float::F32 {
            return Err(crate::XentError::Unsupported(
                "an in-place gradient needs f32 logits (the gradient is f32)".into(),
            ));
        }
        // Class targets and no option beyond weights: the pipelines without the general code.
        let general = spec.probs
            || opts.label_smoothing != 0.0
            || opts.z_loss != 0.0
            || opts.softcap.is_some();
        let ce = req.loss == Loss::CrossEntropy;
        let fused = ce && req.grad != Grad::None;
        // Long rows, and few rows, of cross_entropy are split across workgroups; the fused
        // backward reads each row twice, the second time from workgroup memory where rows fit.
        let mut walk = rows::plan(&spec.layout, tuning, fused);
        if !ce {
            walk = RowPlan {
                lanes: 1,
                held: false,
                ..walk
            };
        }
        let mut flags = 0;
        if opts.weight.is_some() || spec.weight.is_some() {
            flags |= HAS_WEIGHT;
        }
        if spec.probs {
            flags |= PROB_TARGETS;
        }
        if spec.unsigned_targets {
            flags |= UNSIGNED_TARGETS;
        }
        Ok(Self {
            variant: Variant { general, ..variant },
            walk,
            fused,
            split_rows: ce && walk.split.segments > 1,
            needs_d: fused && opts.reduction != Reduction::None,
            sum_weights: fused && spec.weight.is_some() && opts.label_smoothing > 0.0,
            single_pass: false,
            flags,
        })
    }

    /// This plan over rows split into `segments` (vocabulary shards: each shard whole
    /// segments of its own): the split-row kernels, every lane of a workgroup on one segment,
    /// nothing held.
    pub fn split_into(self, segments: Split, workgroup_size: u32) -> Self {
        Self {
            walk: RowPlan {
                split: segments,
                lanes: workgroup_size,
                held: false,
            },
            split_rows: true,
            ..self
        }
    }

    /// Segments of each row in `input` (all of them, or a run of a row larger than a binding).
    pub fn segments(&self, input: &ChunkInputs) -> u32 {
        let len = self.walk.split.len.max(1) as usize;
        input.classes.len().div_ceil(len).max(1) as u32
    }

    /// The kernels' parameters for one chunk.
    pub fn params(
        &self,
        spec: &LossSpec,
        opts: &LossOptions,
        req: Request,
        input: &ChunkInputs,
    ) -> LossParams {
        let split = self.walk.split;
        LossParams {
            rows: input.rows.len() as u32,
            classes: input.classes.len() as u32,
            inner: spec.layout.inner as u32,
            flags: self.flags,
            ignore_index: spec.ignore_index,
            label_smoothing: opts.label_smoothing,
            z_loss: opts.z_loss,
            softcap: opts.softcap.unwrap_or(0.0),
            grad_output: req.grad_output,
            lanes: self.walk.lanes,
            target_words: spec.target_words,
            row_base: input.rows.start as u32,
            segments: self.segments(input),
            segment_len: split.len,
            seg_first: input.seg_first,
            seg_total: split.segments,
            class_first: input.classes.start as u32,
            total_classes: spec.layout.classes as u32,
            _pad: [0; 2],
        }
    }
}
