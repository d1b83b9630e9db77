//! The WGSL composer: each family's source from its file under `shaders/` and the shared
//! snippets it needs, and the explicit bind-group layout each family is written against.

use super::key::Variant;
use crate::options::DType;

/// The shared prelude: workgroup size, online log-sum-exp, row slots.
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

/// Rows kept in workgroup memory between two passes, for the families that read rows.
const HOLD: &str = include_str!("../../../shaders/shared/hold.wgsl");
/// The online log-sum-exp of a lane's pairs, appended to the input of the families that read
/// rows (`NAME_lse_pairs`).
const LSE_PAIRS: &str = include_str!("../../../shaders/shared/lse_pairs.wgsl");
/// The loss parameters and input bindings, shared by the forward and backward families.
const LOSS_INPUTS: &str = include_str!("../../../shaders/shared/loss_inputs.wgsl");

/// How an input array of each dtype is declared and read (`NAME_8`, `NAME_4`, `NAME_1`). Read
/// 8 at a time (`wide`): f32 as `vec4<u64>`, f16 and bf16 as `vec4<u32>`. Otherwise f32 as
/// `vec4<f32>`, f16 as WGSL's own `f16` where the device has `SHADER_F16`, and 16-bit values
/// from u32 words.
fn dtype_source(dtype: DType, f16_native: bool, wide: bool) -> String {
    let half = |pair: &str| {
        let words = match wide {
            true => include_str!("../../../shaders/shared/dtype_half_wide.wgsl"),
            false => include_str!("../../../shaders/shared/dtype_half.wgsl"),
        };
        format!("{pair}\n{words}")
    };
    match dtype {
        DType::F32 if wide => include_str!("../../../shaders/shared/dtype_f32_wide.wgsl").into(),
        DType::F32 => include_str!("../../../shaders/shared/dtype_f32.wgsl").into(),
        DType::F16 if f16_native && !wide => {
            include_str!("../../../shaders/shared/dtype_f16_native.wgsl").into()
        }
        DType::F16 if wide => half(include_str!("../../../shaders/shared/half_f16_bits.wgsl")),
        DType::F16 => half(include_str!("../../../shaders/shared/half_f16.wgsl")),
        DType::BF16 => half(include_str!("../../../shaders/shared/half_bf16.wgsl")),
    }
}

/// How f32 values are written into an array (`NAME_put8`, `NAME_put4`, `NAME_put1`): one file
/// for outputs and for the logits the in-place gradient overwrites. `wide`: the array is
/// `vec4<u64>`, written 8 values a store.
fn put_source(dtype: DType, wide: bool) -> &'static str {
    match dtype {
        DType::F32 if wide => include_str!("../../../shaders/shared/put_f32_wide.wgsl"),
        DType::F32 => include_str!("../../../shaders/shared/put_f32.wgsl"),
        _ => include_str!("../../../shaders/shared/put_half.wgsl"),
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

    /// The complete WGSL source for a variant's input and output: the shared prelude, the
    /// declaration of the input array in its dtype, then the family's own file. `caps.f16`
    /// reads f16 through `enable f16;` (the device must have `SHADER_F16`).
    pub fn source(self, v: Variant, caps: DeviceCaps) -> String {
        let (dtype, f16_native) = (v.dtype, caps.f16);
        let (prelude, own) = match self {
            Family::Softmax => ("", include_str!("../../../shaders/softmax.wgsl")),
            Family::Loss => (LOSS_INPUTS, include_str!("../../../shaders/loss.wgsl")),
            Family::Grad => (LOSS_INPUTS, include_str!("../../../shaders/grad.wgsl")),
            Family::Reduce => ("", include_str!("../../../shaders/reduce.wgsl")),
            Family::Bandwidth => ("", include_str!("../../../shaders/bandwidth.wgsl")),
            Family::Convert => ("", include_str!("../../../shaders/convert.wgsl")),
        };
        // The logits are read-only for the forward, writable for the fused backward (which
        // can put the gradient over them).
        let rows = |name: &str, access: &str| {
            let decl = dtype_source(dtype, f16_native, v.wide_in);
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
                put_source(dtype, v.wide_in).replace("NAME", "logits")
            ),
            // The read roofline reads f32 exactly as the loss kernels read their logits.
            Family::Bandwidth => dtype_source(DType::F32, false, v.wide_in)
                .replace("NAME", "src")
                .replace("ACCESS", "read"),
            Family::Reduce | Family::Convert => String::new(),
        };
        let input = input.replace("BINDING", "1");
        // The f32 output of the families that write one row by row: softmax's y, the gradient.
        let output = |name: &str, binding: u32| {
            let elem = if v.wide_out { "vec4<u64>" } else { "vec4<f32>" };
            let decl = format!(
                "@group(0) @binding({binding}) var<storage, read_write> {name}: array<{elem}>;"
            );
            format!("{decl}\n{}", put_source(DType::F32, v.wide_out)).replace("NAME", name)
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
        let enable = if dtype == DType::F16 && f16_native && !v.wide_in && !input.is_empty() {
            "enable f16;\n"
        } else {
            ""
        };
        let reduce = match caps.reduce {
            RowReduce::Shuffle => REDUCE_SHUFFLE,
            RowReduce::Subgroup => REDUCE_SUBGROUP,
            RowReduce::Tree => REDUCE_PLAIN,
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

/// Values each `reduce_block` workgroup sums: `WG * ITEMS` (keep ITEMS in sync with reduce.wgsl).
pub(crate) fn reduce_block_len(workgroup_size: u32) -> u64 {
    const ITEMS: u64 = 4;
    workgroup_size as u64 * ITEMS
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
            (io(DType::F32, false), caps(false, tree)),
            (io(DType::F32, false), caps(false, sub)),
            (io(DType::F32, true), caps(true, shuffle)),
            (io(DType::F16, true), caps(true, shuffle)),
            (io(DType::BF16, true), caps(true, shuffle)),
            (io(DType::F16, false), caps(false, tree)),
            (io(DType::F16, false), caps(true, sub)),
            (io(DType::BF16, false), caps(false, sub)),
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
}
