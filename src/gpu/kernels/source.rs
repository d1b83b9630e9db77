//! The WGSL composer: each family's source from its file under `shaders/` and the shared
//! snippets it needs, and the explicit bind-group layout each family is written against.

use super::key::Variant;
use crate::options::Float;

/// The shared prelude: workgroup size, online log-sum-exp, scalar helpers.
const SHARED: &str = include_str!("../../../shaders/shared/lse.wgsl");
/// Tree reductions through workgroup memory, included in every shader.
const REDUCE_TREE: &str = include_str!("../../../shaders/shared/reduce_tree.wgsl");
/// The workgroup reductions as the trees (no `SUBGROUP`).
const REDUCE_PLAIN: &str = include_str!("../../../shaders/shared/reduce_plain.wgsl");
/// The workgroup reductions through subgroup operations (`SUBGROUP`), trees for narrow rows.
const REDUCE_SUBGROUP: &str = include_str!("../../../shaders/shared/reduce_subgroup.wgsl");
/// The workgroup reductions as subgroup shuffles, where a workgroup is one subgroup.
const REDUCE_SHUFFLE: &str = include_str!("../../../shaders/shared/reduce_shuffle.wgsl");

/// How a row's lanes reduce on a device (shared/reduce_*.wgsl).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum RowReduce {
    /// A tree in workgroup memory.
    Tree,
    /// Subgroup operations, merged through workgroup memory (`SUBGROUP`).
    Subgroup,
    /// Subgroup shuffles alone, no barrier: a workgroup is exactly one subgroup.
    Shuffle,
}

/// What the device lets every shader use, fixed per context.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct DeviceCaps {
    /// Read f16 as WGSL `f16` (`SHADER_F16`).
    pub f16: bool,
    pub reduce: RowReduce,
}

/// How rows are walked: slots, segments, spans and pairs, for the families that read rows.
const ROWS: &str = include_str!("../../../shaders/shared/rows.wgsl");
/// Rows kept in workgroup memory between two passes, for the families that read rows.
const HOLD: &str = include_str!("../../../shaders/shared/hold.wgsl");
const MATMUL_PARAMS: &str = include_str!("../../../shaders/shared/matmul_params.wgsl");
/// The loss parameters and input bindings, shared by the forward and backward families.
const LOSS_INPUTS: &str = include_str!("../../../shaders/shared/loss_inputs.wgsl");
/// The online log-sum-exp of a lane's pairs of logits (`logits_lse_pairs`).
const LSE_PAIRS: &str = include_str!("../../../shaders/io/logits_lse_pairs.wgsl");

/// How the logits of each dtype are read (`InputWord`, `logits_8`, `logits_4`, `logits_1`).
/// Read 8 at a time (`wide`): f32 as `vec4<u64>`, f16 and bf16 as `vec4<u32>`. Otherwise f32
/// as `vec4<f32>`, f16 as WGSL's own `f16` where the device has `SHADER_F16`, and 16-bit values
/// from u32 words, widened by `half_pair`.
fn input_files(dtype: Float, f16_native: bool, wide: bool) -> [&'static str; 2] {
    let words = match wide {
        true => include_str!("../../../shaders/io/input_half_wide.wgsl"),
        false => include_str!("../../../shaders/io/input_half.wgsl"),
    };
    match dtype {
        Float::F32 if wide => [include_str!("../../../shaders/io/input_f32_wide.wgsl"), ""],
        Float::F32 => [include_str!("../../../shaders/io/input_f32.wgsl"), ""],
        Float::F16 if f16_native && !wide => {
            [include_str!("../../../shaders/io/input_f16.wgsl"), ""]
        }
        Float::F16 if wide => [
            include_str!("../../../shaders/io/widen_f16_bits.wgsl"),
            words,
        ],
        Float::F16 => [include_str!("../../../shaders/io/widen_f16.wgsl"), words],
        Float::BF16 => [include_str!("../../../shaders/io/widen_bf16.wgsl"), words],
    }
}

/// How the f32 result is written (`ResultWord`, `result_put8`, `result_put4`, `result_put1`):
/// 8 values a store as `vec4<u64>` (`wide`), or as vec4s.
fn result_file(wide: bool) -> &'static str {
    match wide {
        true => include_str!("../../../shaders/io/result_f32_wide.wgsl"),
        false => include_str!("../../../shaders/io/result_f32.wgsl"),
    }
}

/// How the in-place gradient writes over the logits (`logits_put8`, ...): f32 logits as they
/// are read; 16-bit logits never (the host refuses it), by stubs.
fn logits_put_file(dtype: Float, wide: bool) -> &'static str {
    match dtype {
        Float::F32 if wide => include_str!("../../../shaders/io/logits_put_f32_wide.wgsl"),
        Float::F32 => include_str!("../../../shaders/io/logits_put_f32.wgsl"),
        _ => include_str!("../../../shaders/io/logits_put_none.wgsl"),
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
    /// `shaders/matmul.wgsl`: the matrix products of linear_cross_entropy.
    Matmul,
    /// `shaders/matmul_lanes.wgsl`: the same products, as CPU adapters run them fastest.
    MatmulLanes,
}

impl Family {
    /// Every family.
    pub const ALL: [Family; 8] = [
        Family::Softmax,
        Family::Loss,
        Family::Grad,
        Family::Reduce,
        Family::Bandwidth,
        Family::Convert,
        Family::Matmul,
        Family::MatmulLanes,
    ];

    /// The complete WGSL source for a variant: the shared prelude and reductions, the files
    /// that read the logits and write the result in the variant's dtype and widths, then the
    /// family's own file. Every function a kernel calls is spelled out in one of these files;
    /// nothing is renamed. `caps.f16` reads f16 through `enable f16;` (`SHADER_F16`).
    pub fn source(self, v: Variant, caps: DeviceCaps) -> String {
        let (own, prelude, reads_rows, result) = match self {
            Family::Softmax => (
                include_str!("../../../shaders/softmax.wgsl"),
                "",
                true,
                true,
            ),
            Family::Loss => (
                include_str!("../../../shaders/loss.wgsl"),
                LOSS_INPUTS,
                true,
                false,
            ),
            Family::Grad => (
                include_str!("../../../shaders/grad.wgsl"),
                LOSS_INPUTS,
                true,
                true,
            ),
            Family::Reduce => (
                include_str!("../../../shaders/reduce.wgsl"),
                "",
                false,
                false,
            ),
            Family::Bandwidth => (
                include_str!("../../../shaders/bandwidth.wgsl"),
                "",
                false,
                true,
            ),
            Family::Convert => (
                include_str!("../../../shaders/convert.wgsl"),
                "",
                false,
                false,
            ),
            Family::Matmul => (
                include_str!("../../../shaders/matmul.wgsl"),
                "",
                false,
                false,
            ),
            Family::MatmulLanes => (
                include_str!("../../../shaders/matmul_lanes.wgsl"),
                "",
                false,
                false,
            ),
        };
        let mut parts = vec![SHARED, REDUCE_TREE];
        parts.push(match caps.reduce {
            RowReduce::Shuffle => REDUCE_SHUFFLE,
            RowReduce::Subgroup => REDUCE_SUBGROUP,
            RowReduce::Tree => REDUCE_PLAIN,
        });
        // The read roofline reads f32 exactly as the loss kernels read their logits.
        let dtype = if self == Family::Bandwidth {
            Float::F32
        } else {
            v.dtype
        };
        let native_f16 = dtype == Float::F16 && caps.f16 && !v.wide_in;
        if reads_rows || self == Family::Bandwidth {
            parts.extend(input_files(dtype, caps.f16, v.wide_in));
        }
        if reads_rows {
            parts.extend([ROWS, LSE_PAIRS, HOLD]);
        }
        if result {
            parts.push(result_file(v.wide_out));
        }
        if self == Family::Grad {
            parts.push(logits_put_file(dtype, v.wide_in));
        }
        if matches!(self, Family::Matmul | Family::MatmulLanes) {
            parts.push(MATMUL_PARAMS);
        }
        parts.extend([prelude, own]);
        // `enable` directives must come before any declaration.
        let enable = if native_f16 && reads_rows {
            "enable f16;\n"
        } else {
            ""
        };
        format!("{enable}{}", parts.join("\n"))
    }

    /// Binding 0 is the uniform parameters; then storage buffers, read-only or not.
    /// Keep in sync with the binding table in each shader's header.
    fn storage_bindings(self) -> &'static [bool] {
        // true = read_write
        match self {
            Family::Softmax => &[false, true, false, true],
            Family::Loss => &[false, false, false, false, true, true, true, true],
            Family::Grad => &[true, false, false, false, true, true, true, true],
            Family::Reduce => &[false, false, true, true],
            Family::Bandwidth => &[false, true, true],
            Family::Convert => &[false, true],
            Family::Matmul | Family::MatmulLanes => &[false, false, false, true],
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

/// Values each `reduce_block` invocation adds: ITEMS in shaders/reduce.wgsl (checked by
/// naga below).
const REDUCE_ITEMS: u64 = 4;

/// Values each `reduce_block` workgroup sums: `WG * ITEMS`.
pub(crate) fn reduce_block_len(workgroup_size: u32) -> u64 {
    workgroup_size as u64 * REDUCE_ITEMS
}

#[cfg(test)]
mod tests {
    use super::super::key::Entry;
    use super::*;

    /// Every shader, in every dtype, load and store width and reduction, parses and validates
    /// with naga, with no adapter involved.
    #[test]
    fn every_shader_validates_with_naga() {
        let caps = |f16, reduce| DeviceCaps { f16, reduce };
        let io = |dtype, wide| Variant {
            dtype,
            wide_in: wide,
            wide_out: wide,
            general: true,
        };
        let (tree, sub, shuffle) = (RowReduce::Tree, RowReduce::Subgroup, RowReduce::Shuffle);
        let variants = [
            (io(Float::F32, false), caps(false, tree)),
            (io(Float::F32, false), caps(false, sub)),
            (io(Float::F32, true), caps(true, shuffle)),
            (io(Float::F16, true), caps(true, shuffle)),
            (io(Float::BF16, true), caps(true, shuffle)),
            (io(Float::F16, false), caps(false, tree)),
            (io(Float::F16, false), caps(true, sub)),
            (io(Float::BF16, false), caps(false, sub)),
        ];
        for (family, (v, caps)) in Family::ALL
            .into_iter()
            .flat_map(|f| variants.map(|v| (f, v)))
        {
            let what = format!("{family:?} {v:?} {caps:?}");
            let src = family.source(v, caps);
            let module = naga::front::wgsl::parse_str(&src)
                .unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(&src)));
            naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                naga::valid::Capabilities::all(),
            )
            .validate(&module)
            .unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(&src)));
            for entry in Entry::ALL.iter().filter(|k| k.family() == family) {
                assert!(
                    module.entry_points.iter().any(|ep| ep.name == entry.name()),
                    "{entry:?} has no entry point {}",
                    entry.name()
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

    /// The constants a shader and the Rust that sizes its dispatches both state agree.
    #[test]
    fn shader_constants_match_rust() {
        let v = Variant {
            dtype: Float::F32,
            wide_in: false,
            wide_out: false,
            general: true,
        };
        let caps = DeviceCaps {
            f16: false,
            reduce: RowReduce::Tree,
        };
        let checks = [
            (
                Family::Grad,
                "NLL_VALUES",
                crate::gpu::ops::loss::NLL_GRAD_VALUES,
            ),
            (Family::Reduce, "ITEMS", REDUCE_ITEMS),
        ];
        for (family, name, rust) in checks {
            let module = naga::front::wgsl::parse_str(&family.source(v, caps)).unwrap();
            let (_, c) = module
                .constants
                .iter()
                .find(|(_, c)| c.name.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("{family:?} declares {name}"));
            let value = match module.global_expressions[c.init] {
                naga::Expression::Literal(naga::Literal::U32(v)) => v as u64,
                ref e => panic!("{name} = {e:?}"),
            };
            assert_eq!(value, rust, "{name} in {family:?} against Rust");
        }
    }
}
