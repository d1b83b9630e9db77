//! The WGSL kernels: one source file per family under `shaders/`, a typed name per entry
//! point, and the explicit bind-group layout each family is written against.

use crate::options::DType;

/// The shared prelude: workgroup size, online log-sum-exp, row slots.
const SHARED: &str = include_str!("../../shaders/shared/lse.wgsl");
/// Tree reductions through workgroup memory, included in every shader.
const REDUCE_TREE: &str = include_str!("../../shaders/shared/reduce_tree.wgsl");
/// The workgroup reductions as the trees (no `SUBGROUP`).
const REDUCE_PLAIN: &str = include_str!("../../shaders/shared/reduce_plain.wgsl");
/// The workgroup reductions through subgroup operations (`SUBGROUP`), trees for narrow rows.
const REDUCE_SUBGROUP: &str = include_str!("../../shaders/shared/reduce_subgroup.wgsl");
/// The workgroup reductions as subgroup shuffles, where a workgroup is one subgroup.
const REDUCE_SHUFFLE: &str = include_str!("../../shaders/shared/reduce_shuffle.wgsl");

/// The device capabilities a shader's source depends on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ShaderCaps {
    /// Read f16 as WGSL `f16` (`SHADER_F16`).
    pub f16: bool,
    /// Reduce with subgroup operations (`SUBGROUP`).
    pub subgroups: bool,
    /// A workgroup is exactly one subgroup (with `subgroups`): reduce with shuffles alone, no
    /// barrier.
    pub one_subgroup: bool,
    /// Read inputs 8 at a time (CPU adapters): f32 as `vec4<u64>` (`SHADER_INT64`), f16 and
    /// bf16 as `vec4<u32>`. The in-place gradient then also writes f32 8 at a time.
    pub wide_in: bool,
    /// Write the f32 output (softmax's y, the gradient) 8 values a store as `vec4<u64>`.
    pub wide_out: bool,
}
/// How a kernel's input array is declared: its dtype and whether it is read 8 at a time (CPU
/// adapters; f32 as `vec4<u64>` with `SHADER_INT64` in bindings of whole 32-byte units, f16 and
/// bf16 as `vec4<u32>` in bindings of whole 16-byte units).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct InputKind {
    pub dtype: DType,
    pub wide: bool,
    /// The output is written 8 values a store (`vec4<u64>`): contiguous rows of C % 4 == 0
    /// in a buffer of whole 32-byte units.
    pub wide_out: bool,
    /// The loss families' `GENERAL` override: false for a call with class targets and no
    /// label smoothing, z-loss or softcap, whose pipelines then drop that code.
    pub general: bool,
}

impl From<DType> for InputKind {
    fn from(dtype: DType) -> Self {
        Self {
            dtype,
            wide: false,
            wide_out: false,
            general: true,
        }
    }
}

/// Rows kept in workgroup memory between two passes, for the families that read rows.
const HOLD: &str = include_str!("../../shaders/shared/hold.wgsl");
/// The online log-sum-exp of a lane's pairs, appended to the input of the families that read
/// rows (`NAME_lse_pairs`).
const LSE_PAIRS: &str = include_str!("../../shaders/shared/lse_pairs.wgsl");
/// The loss parameters and input bindings, shared by the forward and backward families.
const LOSS_INPUTS: &str = include_str!("../../shaders/shared/loss_inputs.wgsl");

/// How an input array of each dtype is declared and read (`NAME_8`, `NAME_4`, `NAME_1`). Read
/// 8 at a time (`wide`): f32 as `vec4<u64>`, f16 and bf16 as `vec4<u32>`. Otherwise f32 as
/// `vec4<f32>`, f16 as WGSL's own `f16` where the device has `SHADER_F16`, and 16-bit values
/// from u32 words.
fn dtype_source(dtype: DType, f16_native: bool, wide: bool) -> String {
    let half = |pair: &str| {
        let words = match wide {
            true => include_str!("../../shaders/shared/dtype_half_wide.wgsl"),
            false => include_str!("../../shaders/shared/dtype_half.wgsl"),
        };
        format!("{pair}\n{words}")
    };
    match dtype {
        DType::F32 if wide => include_str!("../../shaders/shared/dtype_f32_wide.wgsl").into(),
        DType::F32 => include_str!("../../shaders/shared/dtype_f32.wgsl").into(),
        DType::F16 if f16_native && !wide => {
            include_str!("../../shaders/shared/dtype_f16_native.wgsl").into()
        }
        DType::F16 if wide => half(include_str!("../../shaders/shared/half_f16_bits.wgsl")),
        DType::F16 => half(include_str!("../../shaders/shared/half_f16.wgsl")),
        DType::BF16 => half(include_str!("../../shaders/shared/half_bf16.wgsl")),
    }
}

/// How f32 values are written into an array (`NAME_put8`, `NAME_put4`, `NAME_put1`): one file
/// for outputs and for the logits the in-place gradient overwrites. `wide`: the array is
/// `vec4<u64>`, written 8 values a store.
fn put_source(dtype: DType, wide: bool) -> &'static str {
    match dtype {
        DType::F32 if wide => include_str!("../../shaders/shared/put_f32_wide.wgsl"),
        DType::F32 => include_str!("../../shaders/shared/put_f32.wgsl"),
        _ => include_str!("../../shaders/shared/put_half.wgsl"),
    }
}

/// A family of kernels: one `.wgsl` file and one bind-group layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// `shaders/softmax.wgsl`: log_softmax and softmax, and their backward passes.
    Softmax,
    /// `shaders/loss.wgsl`: per-row cross_entropy and nll_loss.
    Loss,
    /// `shaders/grad.wgsl`: cross_entropy forward + backward fused, nll_loss backward.
    Grad,
    /// `shaders/reduce.wgsl`: the deterministic loss reduction.
    Reduce,
    /// `shaders/bandwidth.wgsl`: the read-bandwidth roofline.
    Bandwidth,
    /// `shaders/convert.wgsl`: f32 results packed into f16 / bf16.
    Convert,
}

impl Family {
    /// Every family.
    pub const ALL: [Family; 6] = [
        Family::Softmax,
        Family::Loss,
        Family::Grad,
        Family::Reduce,
        Family::Bandwidth,
        Family::Convert,
    ];

    /// The complete WGSL source for inputs of `dtype`: the shared prelude, the declaration
    /// of the input array in that dtype, then the family's own file. `f16_native` reads f16
    /// through `enable f16;` (the device must have `SHADER_F16`).
    pub fn source(self, dtype: DType, caps: ShaderCaps) -> String {
        let f16_native = caps.f16;
        let (prelude, own) = match self {
            Family::Softmax => ("", include_str!("../../shaders/softmax.wgsl")),
            Family::Loss => (LOSS_INPUTS, include_str!("../../shaders/loss.wgsl")),
            Family::Grad => (LOSS_INPUTS, include_str!("../../shaders/grad.wgsl")),
            Family::Reduce => ("", include_str!("../../shaders/reduce.wgsl")),
            Family::Bandwidth => ("", include_str!("../../shaders/bandwidth.wgsl")),
            Family::Convert => ("", include_str!("../../shaders/convert.wgsl")),
        };
        // The logits are read-only for the forward, writable for the fused backward (which
        // can put the gradient over them).
        let rows = |name: &str, access: &str| {
            let decl = dtype_source(dtype, f16_native, caps.wide_in);
            format!("{decl}\n{LSE_PAIRS}")
                .replace("NAME", name)
                .replace("ACCESS", access)
        };
        let input = match self {
            Family::Softmax => rows("x", "read"),
            Family::Loss => rows("logits", "read"),
            // Read-write for the in-place gradient, which is wide only where its stores are
            // safe (`Context::pipeline`).
            Family::Grad => format!(
                "{}\n{}",
                rows("logits", "read_write"),
                put_source(dtype, caps.wide_in).replace("NAME", "logits")
            ),
            // The read roofline reads f32 exactly as the loss kernels read their logits.
            Family::Bandwidth => dtype_source(DType::F32, false, caps.wide_in)
                .replace("NAME", "src")
                .replace("ACCESS", "read"),
            Family::Reduce | Family::Convert => String::new(),
        };
        let input = input.replace("BINDING", "1");
        // The f32 output of the families that write one row by row: softmax's y, the gradient.
        let output = |name: &str, binding: u32| {
            let elem = if caps.wide_out {
                "vec4<u64>"
            } else {
                "vec4<f32>"
            };
            let decl = format!(
                "@group(0) @binding({binding}) var<storage, read_write> {name}: array<{elem}>;"
            );
            format!("{decl}\n{}", put_source(DType::F32, caps.wide_out)).replace("NAME", name)
        };
        let output = match self {
            Family::Softmax => output("y", 2),
            Family::Grad => output("grad", 7),
            Family::Bandwidth => output("dst", 3),
            _ => String::new(),
        };
        let hold = match self {
            Family::Softmax | Family::Loss | Family::Grad => HOLD,
            _ => "",
        };
        // `enable` directives must come before any declaration.
        let enable = if dtype == DType::F16 && f16_native && !caps.wide_in && !input.is_empty() {
            "enable f16;\n"
        } else {
            ""
        };
        let reduce = match (caps.subgroups, caps.one_subgroup) {
            (true, true) => REDUCE_SHUFFLE,
            (true, false) => REDUCE_SUBGROUP,
            (false, _) => REDUCE_PLAIN,
        };
        format!(
            "{enable}{SHARED}\n{REDUCE_TREE}\n{reduce}\n{input}\n{output}\n{hold}\n{prelude}\n{own}"
        )
    }

    /// Binding 0 is the uniform parameters; then storage buffers, read-only or not.
    /// Keep in sync with the binding table in each shader's header.
    fn storage_bindings(self) -> &'static [bool] {
        // true = read_write
        match self {
            Family::Softmax => &[false, true, false, true],
            Family::Loss => &[false, false, false, false, true, true, true, true],
            Family::Grad => &[true, false, false, false, true, false, true, true],
            Family::Reduce => &[false, false, true, true],
            Family::Bandwidth => &[false, true, true],
            Family::Convert => &[false, true],
        }
    }

    /// Number of bindings, the uniform included.
    pub fn binding_count(self) -> usize {
        1 + self.storage_bindings().len()
    }

    pub(crate) fn layout_entries(self) -> Vec<wgpu::BindGroupLayoutEntry> {
        let uniform = wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let storage =
            self.storage_bindings()
                .iter()
                .enumerate()
                .map(|(i, &rw)| wgpu::BindGroupLayoutEntry {
                    binding: 1 + i as u32,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage { read_only: !rw },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                });
        std::iter::once(uniform).chain(storage).collect()
    }
}

/// One compute entry point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// `log_softmax` in softmax.wgsl: one workgroup per row.
    LogSoftmax,
    /// `softmax` in softmax.wgsl: one workgroup per row.
    Softmax,
    /// `log_softmax` with `HOLD_ROWS`: rows kept in workgroup memory for the second pass.
    LogSoftmaxHeld,
    /// `softmax` with `HOLD_ROWS`.
    SoftmaxHeld,
    /// `log_softmax_backward` in softmax.wgsl: one workgroup per row.
    LogSoftmaxBackward,
    /// `softmax_backward` in softmax.wgsl: one workgroup per row.
    SoftmaxBackward,
    /// `softmax_partials` in softmax.wgsl: (m, s) of each segment of a split row.
    SoftmaxPartials,
    /// `log_softmax_segments` in softmax.wgsl: one workgroup per segment of a split row.
    LogSoftmaxSegments,
    /// `softmax_segments` in softmax.wgsl: one workgroup per segment of a split row.
    SoftmaxSegments,
    /// `log_softmax_backward_partials` in softmax.wgsl: Σ gy of each segment.
    LogSoftmaxBackwardPartials,
    /// `softmax_backward_partials` in softmax.wgsl: Σ gy · out of each segment.
    SoftmaxBackwardPartials,
    /// `log_softmax_backward_segments` in softmax.wgsl: one workgroup per segment.
    LogSoftmaxBackwardSegments,
    /// `softmax_backward_segments` in softmax.wgsl: one workgroup per segment.
    SoftmaxBackwardSegments,
    /// `cross_entropy_rows` in loss.wgsl: one workgroup per row.
    CrossEntropyRows,
    /// `nll_rows` in loss.wgsl: one invocation per row.
    NllRows,
    /// `row_dens` in loss.wgsl: the mean's denominator share of each row, from the targets,
    /// and the out-of-range flag of device targets.
    RowDens,
    /// `report_error` in loss.wgsl: one invocation, after `row_dens`.
    ReportError,
    /// `cross_entropy_partials` in loss.wgsl: one workgroup per segment of a split row.
    CrossEntropyPartials,
    /// `cross_entropy_merge` in loss.wgsl: one invocation per split row.
    CrossEntropyMerge,
    /// `cross_entropy_grad_segments` in grad.wgsl: one workgroup per segment of a split row.
    CrossEntropyGradSegments,
    /// The same with `IN_PLACE`.
    CrossEntropyGradSegmentsInPlace,
    /// `cross_entropy_fused` in grad.wgsl: loss and gradient of each row in one dispatch.
    CrossEntropyFused,
    /// `cross_entropy_fused` with `IN_PLACE`: the gradient overwrites the logits.
    CrossEntropyFusedInPlace,
    /// `cross_entropy_fused` with `HOLD_ROWS`: rows kept in workgroup memory for the gradient.
    CrossEntropyFusedHeld,
    /// `cross_entropy_fused` with `HOLD_ROWS` and `IN_PLACE`.
    CrossEntropyFusedHeldInPlace,
    /// `nll_grad` in grad.wgsl.
    NllGrad,
    /// `reduce_block` in reduce.wgsl: WG·ITEMS values per workgroup.
    ReduceBlock,
    /// `finalize` in reduce.wgsl: one invocation.
    ReduceFinalize,
    /// `read_sum` in bandwidth.wgsl.
    ReadSum,
    /// `write_fill` in bandwidth.wgsl.
    WriteFill,
    /// `pack_half` in convert.wgsl: one invocation per output word.
    PackHalf,
    /// `gather` in convert.wgsl: every stride-th f32, one invocation each.
    Gather,
}

impl Kernel {
    /// Every kernel, in the order the context builds them.
    pub const ALL: [Kernel; 32] = [
        Kernel::LogSoftmax,
        Kernel::Softmax,
        Kernel::LogSoftmaxHeld,
        Kernel::SoftmaxHeld,
        Kernel::LogSoftmaxBackward,
        Kernel::SoftmaxBackward,
        Kernel::SoftmaxPartials,
        Kernel::LogSoftmaxSegments,
        Kernel::SoftmaxSegments,
        Kernel::LogSoftmaxBackwardPartials,
        Kernel::SoftmaxBackwardPartials,
        Kernel::LogSoftmaxBackwardSegments,
        Kernel::SoftmaxBackwardSegments,
        Kernel::CrossEntropyRows,
        Kernel::NllRows,
        Kernel::RowDens,
        Kernel::ReportError,
        Kernel::CrossEntropyPartials,
        Kernel::CrossEntropyMerge,
        Kernel::CrossEntropyGradSegments,
        Kernel::CrossEntropyGradSegmentsInPlace,
        Kernel::CrossEntropyFused,
        Kernel::CrossEntropyFusedInPlace,
        Kernel::CrossEntropyFusedHeld,
        Kernel::CrossEntropyFusedHeldInPlace,
        Kernel::NllGrad,
        Kernel::ReduceBlock,
        Kernel::ReduceFinalize,
        Kernel::ReadSum,
        Kernel::WriteFill,
        Kernel::PackHalf,
        Kernel::Gather,
    ];

    /// The family (file and layout) it belongs to.
    pub fn family(self) -> Family {
        match self {
            Kernel::LogSoftmax
            | Kernel::Softmax
            | Kernel::LogSoftmaxHeld
            | Kernel::SoftmaxHeld
            | Kernel::LogSoftmaxBackward
            | Kernel::SoftmaxBackward
            | Kernel::SoftmaxPartials
            | Kernel::LogSoftmaxSegments
            | Kernel::SoftmaxSegments
            | Kernel::LogSoftmaxBackwardPartials
            | Kernel::SoftmaxBackwardPartials
            | Kernel::LogSoftmaxBackwardSegments
            | Kernel::SoftmaxBackwardSegments => Family::Softmax,
            Kernel::CrossEntropyRows
            | Kernel::NllRows
            | Kernel::RowDens
            | Kernel::ReportError
            | Kernel::CrossEntropyPartials
            | Kernel::CrossEntropyMerge => Family::Loss,
            Kernel::CrossEntropyFused
            | Kernel::CrossEntropyFusedInPlace
            | Kernel::CrossEntropyFusedHeld
            | Kernel::CrossEntropyFusedHeldInPlace
            | Kernel::CrossEntropyGradSegments
            | Kernel::CrossEntropyGradSegmentsInPlace
            | Kernel::NllGrad => Family::Grad,
            Kernel::ReduceBlock | Kernel::ReduceFinalize => Family::Reduce,
            Kernel::ReadSum | Kernel::WriteFill => Family::Bandwidth,
            Kernel::PackHalf | Kernel::Gather => Family::Convert,
        }
    }

    /// The WGSL entry point's name.
    pub fn entry_point(self) -> &'static str {
        match self {
            Kernel::LogSoftmax | Kernel::LogSoftmaxHeld => "log_softmax",
            Kernel::Softmax | Kernel::SoftmaxHeld => "softmax",
            Kernel::LogSoftmaxBackward => "log_softmax_backward",
            Kernel::SoftmaxBackward => "softmax_backward",
            Kernel::SoftmaxPartials => "softmax_partials",
            Kernel::LogSoftmaxSegments => "log_softmax_segments",
            Kernel::SoftmaxSegments => "softmax_segments",
            Kernel::LogSoftmaxBackwardPartials => "log_softmax_backward_partials",
            Kernel::SoftmaxBackwardPartials => "softmax_backward_partials",
            Kernel::LogSoftmaxBackwardSegments => "log_softmax_backward_segments",
            Kernel::SoftmaxBackwardSegments => "softmax_backward_segments",
            Kernel::CrossEntropyRows => "cross_entropy_rows",
            Kernel::NllRows => "nll_rows",
            Kernel::RowDens => "row_dens",
            Kernel::ReportError => "report_error",
            Kernel::CrossEntropyPartials => "cross_entropy_partials",
            Kernel::CrossEntropyMerge => "cross_entropy_merge",
            Kernel::CrossEntropyGradSegments | Kernel::CrossEntropyGradSegmentsInPlace => {
                "cross_entropy_grad_segments"
            }
            Kernel::CrossEntropyFused
            | Kernel::CrossEntropyFusedInPlace
            | Kernel::CrossEntropyFusedHeld
            | Kernel::CrossEntropyFusedHeldInPlace => "cross_entropy_fused",
            Kernel::NllGrad => "nll_grad",
            Kernel::ReduceBlock => "reduce_block",
            Kernel::ReduceFinalize => "finalize",
            Kernel::ReadSum => "read_sum",
            Kernel::WriteFill => "write_fill",
            Kernel::PackHalf => "pack_half",
            Kernel::Gather => "gather",
        }
    }
}

impl Kernel {
    /// Pipeline-overridable constants besides `WG`.
    pub fn constants(self) -> &'static [(&'static str, f64)] {
        match self {
            Kernel::CrossEntropyFusedInPlace | Kernel::CrossEntropyGradSegmentsInPlace => {
                &[("IN_PLACE", 1.0)]
            }
            Kernel::LogSoftmaxHeld | Kernel::SoftmaxHeld | Kernel::CrossEntropyFusedHeld => {
                &[("HOLD_ROWS", 1.0)]
            }
            Kernel::CrossEntropyFusedHeldInPlace => &[("HOLD_ROWS", 1.0), ("IN_PLACE", 1.0)],
            _ => &[],
        }
    }

    /// Whether the kernel writes over its input (the in-place gradient), which is then
    /// declared 8 at a time only where an output could be (`InputKind::wide_out`).
    pub fn writes_input(self) -> bool {
        self.constants().iter().any(|(name, _)| *name == "IN_PLACE")
    }

    /// Whether the kernel writes its family's f32 output row by row (softmax's y, the fused
    /// gradient), which may then be declared 8 values a store.
    pub fn writes_output(self) -> bool {
        matches!(
            self,
            Kernel::LogSoftmax
                | Kernel::Softmax
                | Kernel::LogSoftmaxHeld
                | Kernel::SoftmaxHeld
                | Kernel::LogSoftmaxSegments
                | Kernel::SoftmaxSegments
                | Kernel::CrossEntropyFused
                | Kernel::CrossEntropyFusedHeld
                | Kernel::CrossEntropyGradSegments
        )
    }

    /// Whether the kernel keeps rows in workgroup memory (`HOLD`, sized by the context).
    pub fn holds_rows(self) -> bool {
        self.constants()
            .iter()
            .any(|(name, _)| *name == "HOLD_ROWS")
    }
}

/// Values each `reduce_block` workgroup sums: `WG * ITEMS` (keep ITEMS in sync with reduce.wgsl).
pub(crate) fn reduce_block_len(workgroup_size: u32) -> u64 {
    const ITEMS: u64 = 4;
    workgroup_size as u64 * ITEMS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shader, in every dtype, parses and validates with naga, with no adapter involved.
    #[test]
    fn every_shader_validates_with_naga() {
        let caps = |f16, subgroups| ShaderCaps {
            f16,
            subgroups,
            one_subgroup: false,
            wide_in: false,
            wide_out: false,
        };
        let wide = ShaderCaps {
            wide_in: true,
            wide_out: true,
            one_subgroup: true,
            ..caps(true, true)
        };
        let variants = [
            (DType::F32, caps(false, false)),
            (DType::F32, caps(false, true)),
            (DType::F32, wide),
            (DType::F16, wide),
            (DType::BF16, wide),
            (DType::F16, caps(false, false)),
            (DType::F16, caps(true, true)),
            (DType::BF16, caps(false, true)),
        ];
        for (family, (dtype, caps)) in Family::ALL
            .into_iter()
            .flat_map(|f| variants.map(|v| (f, v)))
        {
            let src = family.source(dtype, caps);
            let module = naga::front::wgsl::parse_str(&src)
                .unwrap_or_else(|e| panic!("{family:?} {dtype:?}: {}", e.emit_to_string(&src)));
            naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                naga::valid::Capabilities::all(),
            )
            .validate(&module)
            .unwrap_or_else(|e| panic!("{family:?} {dtype:?}: {}", e.emit_to_string(&src)));
            for kernel in Kernel::ALL.iter().filter(|k| k.family() == family) {
                assert!(
                    module
                        .entry_points
                        .iter()
                        .any(|ep| ep.name == kernel.entry_point()),
                    "{kernel:?} has no entry point {}",
                    kernel.entry_point()
                );
            }
            // The binding table in Rust matches the globals the shader declares.
            let bound = module
                .global_variables
                .iter()
                .filter(|(_, g)| g.binding.is_some())
                .count();
            assert_eq!(bound, family.binding_count(), "{family:?}");
        }
    }
}
