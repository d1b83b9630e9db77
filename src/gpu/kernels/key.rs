//! One typed key per pipeline: the WGSL entry point and every choice its source and override
//! constants depend on. The entry's name, its family (file and bind layout) and the constants
//! are derived from the key's fields, never found by name.

use crate::options::Float;

/// A WGSL entry point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Entry {
    /// `log_softmax` in softmax.wgsl.
    LogSoftmax,
    /// `softmax` in softmax.wgsl.
    Softmax,
    /// `log_softmax_backward` in softmax.wgsl.
    LogSoftmaxBackward,
    /// `softmax_backward` in softmax.wgsl.
    SoftmaxBackward,
    /// `softmax_partials` in softmax.wgsl: (m, s) of each segment of a split row.
    SoftmaxPartials,
    /// `log_softmax_segments` in softmax.wgsl: one workgroup per segment of a split row.
    LogSoftmaxSegments,
    /// `softmax_segments` in softmax.wgsl.
    SoftmaxSegments,
    /// `log_softmax_backward_partials` in softmax.wgsl: Σ gy of each segment.
    LogSoftmaxBackwardPartials,
    /// `softmax_backward_partials` in softmax.wgsl: Σ gy · out of each segment.
    SoftmaxBackwardPartials,
    /// `log_softmax_backward_segments` in softmax.wgsl.
    LogSoftmaxBackwardSegments,
    /// `softmax_backward_segments` in softmax.wgsl.
    SoftmaxBackwardSegments,
    /// `cross_entropy_rows` in loss.wgsl: `lanes` invocations per row.
    CrossEntropyRows,
    /// `nll_rows` in loss.wgsl: one invocation per row.
    NllRows,
    /// `row_dens` in loss.wgsl: each row's share of the mean's denominator; flags bad targets.
    RowDens,
    /// `report_error` in loss.wgsl: one invocation, after `row_dens`.
    ReportError,
    /// `cross_entropy_partials` in loss.wgsl: one workgroup per segment of a split row.
    CrossEntropyPartials,
    /// `cross_entropy_merge` in loss.wgsl: one invocation per split row.
    CrossEntropyMerge,
    /// `cross_entropy_grad_segments` in grad.wgsl: one workgroup per segment of a split row.
    CrossEntropyGradSegments,
    /// `cross_entropy_fused` in grad.wgsl: loss and gradient of each row in one dispatch.
    CrossEntropyFused,
    /// `nll_grad` in grad.wgsl: 4 elements an invocation.
    NllGrad,
    /// `dens_total` in grad.wgsl: D from the targets alone, by one workgroup.
    DensTotal,
    /// `reduce_block` in reduce.wgsl: WG·ITEMS values per workgroup.
    ReduceBlock,
    /// `finalize` in reduce.wgsl: one invocation.
    ReduceFinalize,
    /// `reduce_single` in reduce.wgsl: every value by one workgroup, then finalize's rule.
    ReduceSingle,
    /// `read_sum` in bandwidth.wgsl.
    ReadSum,
    /// `write_fill` in bandwidth.wgsl.
    WriteFill,
    /// `pack_half` in convert.wgsl: one invocation per output word.
    PackHalf,
    /// `widen_half` in convert.wgsl: one value an invocation.
    WidenHalf,
    /// `gather` in convert.wgsl: every stride-th f32, one invocation each.
    Gather,
    /// `matmul` in matmul.wgsl: an 8 × 8 block of C per invocation.
    Matmul,
    /// `matmul_lanes` in matmul_lanes.wgsl: one subgroup per 16 × 64 block of C (CPU
    /// adapters with subgroups of 8 and `SHADER_INT64`).
    MatmulLanes,
}

impl Entry {
    /// Every entry point, in the order the context builds their f32 pipelines.
    pub const ALL: [Entry; 31] = [
        Entry::LogSoftmax,
        Entry::Softmax,
        Entry::LogSoftmaxBackward,
        Entry::SoftmaxBackward,
        Entry::SoftmaxPartials,
        Entry::LogSoftmaxSegments,
        Entry::SoftmaxSegments,
        Entry::LogSoftmaxBackwardPartials,
        Entry::SoftmaxBackwardPartials,
        Entry::LogSoftmaxBackwardSegments,
        Entry::SoftmaxBackwardSegments,
        Entry::CrossEntropyRows,
        Entry::NllRows,
        Entry::RowDens,
        Entry::ReportError,
        Entry::CrossEntropyPartials,
        Entry::CrossEntropyMerge,
        Entry::CrossEntropyGradSegments,
        Entry::CrossEntropyFused,
        Entry::NllGrad,
        Entry::DensTotal,
        Entry::ReduceBlock,
        Entry::ReduceFinalize,
        Entry::ReduceSingle,
        Entry::ReadSum,
        Entry::WriteFill,
        Entry::PackHalf,
        Entry::WidenHalf,
        Entry::Gather,
        Entry::Matmul,
        Entry::MatmulLanes,
    ];

    /// The family (file and bind layout) it belongs to.
    /// Whether the kernel reads only a loss call's targets and weights, never its logits
    /// (D's shares, the target check, and the reductions of them): such dispatches may run
    /// before the logits exist (linear_cross_entropy's chunks, src/gpu/ops/linear/chunks.rs).
    pub fn targets_only(self) -> bool {
        use Entry::*;
        matches!(
            self,
            RowDens | ReportError | ReduceBlock | ReduceFinalize | ReduceSingle
        )
    }

    pub fn family(self) -> super::Family {
        use super::Family;
        use Entry::*;
        match self {
            LogSoftmax
            | Softmax
            | LogSoftmaxBackward
            | SoftmaxBackward
            | SoftmaxPartials
            | LogSoftmaxSegments
            | SoftmaxSegments
            | LogSoftmaxBackwardPartials
            | SoftmaxBackwardPartials
            | LogSoftmaxBackwardSegments
            | SoftmaxBackwardSegments => Family::Softmax,
            CrossEntropyRows | NllRows | RowDens | ReportError | CrossEntropyPartials
            | CrossEntropyMerge => Family::Loss,
            CrossEntropyGradSegments | CrossEntropyFused | NllGrad | DensTotal => Family::Grad,
            ReduceBlock | ReduceFinalize | ReduceSingle => Family::Reduce,
            ReadSum | WriteFill => Family::Bandwidth,
            PackHalf | WidenHalf | Gather => Family::Convert,
            Matmul => Family::Matmul,
            MatmulLanes => Family::MatmulLanes,
        }
    }

    /// The WGSL function's name.
    pub fn name(self) -> &'static str {
        use Entry::*;
        match self {
            LogSoftmax => "log_softmax",
            Softmax => "softmax",
            LogSoftmaxBackward => "log_softmax_backward",
            SoftmaxBackward => "softmax_backward",
            SoftmaxPartials => "softmax_partials",
            LogSoftmaxSegments => "log_softmax_segments",
            SoftmaxSegments => "softmax_segments",
            LogSoftmaxBackwardPartials => "log_softmax_backward_partials",
            SoftmaxBackwardPartials => "softmax_backward_partials",
            LogSoftmaxBackwardSegments => "log_softmax_backward_segments",
            SoftmaxBackwardSegments => "softmax_backward_segments",
            CrossEntropyRows => "cross_entropy_rows",
            NllRows => "nll_rows",
            RowDens => "row_dens",
            ReportError => "report_error",
            CrossEntropyPartials => "cross_entropy_partials",
            CrossEntropyMerge => "cross_entropy_merge",
            CrossEntropyGradSegments => "cross_entropy_grad_segments",
            CrossEntropyFused => "cross_entropy_fused",
            NllGrad => "nll_grad",
            DensTotal => "dens_total",
            ReduceBlock => "reduce_block",
            ReduceFinalize => "finalize",
            ReduceSingle => "reduce_single",
            ReadSum => "read_sum",
            WriteFill => "write_fill",
            PackHalf => "pack_half",
            WidenHalf => "widen_half",
            Gather => "gather",
            Matmul => "matmul",
            MatmulLanes => "matmul_lanes",
        }
    }

    /// Whether it writes its family's f32 output row by row (softmax's y, the fused
    /// gradient, the write roofline), which may then be declared 8 values a store.
    fn writes_rows(self) -> bool {
        use Entry::*;
        matches!(
            self,
            LogSoftmax
                | Softmax
                | LogSoftmaxSegments
                | SoftmaxSegments
                | CrossEntropyFused
                | CrossEntropyGradSegments
                | WriteFill
        )
    }
}

/// How a kernel reads its input and which option code it keeps: what an op chooses per call
/// (`Context::variant`), before [`KernelKey::new`] keeps what the entry can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Variant {
    /// The input's dtype.
    pub dtype: Float,
    /// Inputs read 8 at a time (CPU adapters): f32 as `vec4<u64>`, f16/bf16 as `vec4<u32>`.
    pub wide_in: bool,
    /// The f32 row output written 8 values a store (`vec4<u64>`).
    pub wide_out: bool,
    /// The loss families' `GENERAL` override: false for class targets with no smoothing,
    /// z-loss or softcap, whose pipelines then drop that code.
    pub general: bool,
}

impl From<Float> for Variant {
    fn from(dtype: Float) -> Self {
        Self {
            dtype,
            wide_in: false,
            wide_out: false,
            general: true,
        }
    }
}

/// One pipeline: an entry point and every choice that changes its source or constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct KernelKey {
    pub entry: Entry,
    pub variant: Variant,
    /// `HOLD_ROWS`: rows kept in workgroup memory between the two passes.
    pub held: bool,
    /// `IN_PLACE`: the gradient written over the logits.
    pub in_place: bool,
}

impl KernelKey {
    /// The key of `entry` for a call's `variant`, keeping only what the entry can use, so that
    /// equal pipelines have equal keys:
    /// - families without a typed input (reduce, convert, matmul) compile once, in f32;
    /// - `GENERAL` is a loss-family option;
    /// - only row writers write 8 values a store.
    pub fn new(entry: Entry, variant: Variant) -> Self {
        use super::Family;
        let family = entry.family();
        let variant = match family {
            Family::Reduce | Family::Convert | Family::Matmul | Family::MatmulLanes => {
                Float::F32.into()
            }
            Family::Loss | Family::Grad => variant,
            Family::Softmax | Family::Bandwidth => Variant {
                general: true,
                ..variant
            },
        };
        Self {
            entry,
            variant: Variant {
                wide_out: variant.wide_out && entry.writes_rows(),
                ..variant
            },
            held: false,
            in_place: false,
        }
    }

    /// With rows held in workgroup memory (`HOLD_ROWS`).
    pub fn held(self) -> Self {
        Self { held: true, ..self }
    }

    /// Writing the gradient over the logits (`IN_PLACE`). The logits are then declared 8
    /// values a store only where a row output could be (`wide_out`): no u64 is then shared
    /// between two invocations' elements.
    pub fn in_place(self) -> Self {
        let v = self.variant;
        Self {
            in_place: true,
            variant: Variant {
                wide_in: v.wide_in && v.wide_out,
                wide_out: false,
                ..v
            },
            ..self
        }
    }

    /// The override constants besides `WG` and `HOLD` (set by the cache).
    pub fn constants(&self) -> Vec<(&'static str, f64)> {
        let mut c = vec![];
        if self.in_place {
            c.push(("IN_PLACE", 1.0));
        }
        if self.held {
            c.push(("HOLD_ROWS", 1.0));
        }
        if !self.variant.general {
            c.push(("GENERAL", 0.0));
        }
        c
    }

    /// The dispatch label's kernel name: the entry, then `Held` and `InPlace` where set
    /// (e.g. `CrossEntropyFusedHeld`).
    pub fn label(&self) -> String {
        let held = if self.held { "Held" } else { "" };
        let in_place = if self.in_place { "InPlace" } else { "" };
        format!("{:?}{held}{in_place}", self.entry)
    }
}
