//! What a [`Context`] runs on and how it was tuned, in one value (`xent info` prints it).

use crate::gpu::kernels::RowReduce;
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::tuning::Tuning;
use crate::options::Float;

/// The adapter, its limits and features, the resolved [`Tuning`], and in words how each
/// kind of input is read and each row reduced on it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ContextInfo {
    /// The adapter's name, backend, type and driver.
    pub adapter: wgpu::AdapterInfo,
    /// The device's limits.
    pub limits: wgpu::Limits,
    /// The device's enabled features.
    pub features: wgpu::Features,
    /// Every choice the kernels follow on this device.
    pub tuning: Tuning,
    /// The subgroup layout probe's answer (shaders/probe_subgroups.wgsl), or the one forced
    /// by `ContextOptions::subgroup_layout`; `None` where subgroups are not used at all.
    pub subgroup_layout: Option<bool>,
    /// How rows are reduced: subgroup operations or a tree in workgroup memory.
    pub reduction_path: &'static str,
    /// How f32 inputs are read.
    pub f32_path: &'static str,
    /// How f16 inputs are read when not 8 at a time.
    pub f16_path: &'static str,
    /// How f16 and bf16 inputs are read.
    pub half_path: &'static str,
    /// Whether rows read twice are held in workgroup memory.
    pub hold_path: String,
}

/// What this context runs on, and how it was tuned.
pub(crate) fn context_info(ctx: &Context) -> ContextInfo {
    ContextInfo {
        adapter: ctx.adapter_info().clone(),
        limits: ctx.limits().clone(),
        features: ctx.features(),
        tuning: ctx.tuning().clone(),
        subgroup_layout: ctx.subgroup_layout(),
        reduction_path: reduction_path(ctx),
        f32_path: f32_path(ctx),
        f16_path: f16_path(ctx),
        half_path: half_path(ctx),
        hold_path: hold_path(ctx),
    }
}

/// How rows are reduced on this device: subgroup operations (`SUBGROUP`) or a tree in
/// workgroup memory.
fn reduction_path(ctx: &Context) -> &'static str {
    match ctx.device_caps().reduce {
        RowReduce::Shuffle => "subgroup shuffles, no barrier (a workgroup is one subgroup)",
        RowReduce::Subgroup => {
            "subgroup operations (SUBGROUP), tree for rows narrower than a subgroup"
        }
        RowReduce::Tree if ctx.subgroup_layout() == Some(false) => {
            "tree in workgroup memory (the device's subgroups are not runs of consecutive invocations)"
        }
        RowReduce::Tree => "tree in workgroup memory",
    }
}

/// How f16 inputs are read on this device when not 8 at a time (`half_path`):
/// "native f16 (SHADER_F16)" or "unpack2x16float from u32".
fn f16_path(ctx: &Context) -> &'static str {
    if ctx.features().contains(wgpu::Features::SHADER_F16) {
        "native f16 (SHADER_F16)"
    } else {
        "unpack2x16float from u32"
    }
}

/// How f32 inputs are read (`xent info` prints it).
fn f32_path(ctx: &Context) -> &'static str {
    if ctx.wide_f32() {
        "8 at a time as vec4<u64> (SHADER_INT64, CPU adapter), where the binding allows; row outputs of C % 4 == 0 written the same way"
    } else {
        "4 at a time as vec4<f32>"
    }
}

/// How f16 and bf16 inputs are read (`xent info` prints it).
fn half_path(ctx: &Context) -> &'static str {
    if ctx.wide_loads(Float::F16) {
        "8 at a time as vec4<u32> (CPU adapter), where the binding allows"
    } else {
        "4 at a time"
    }
}

/// Where log_softmax, softmax and the fused backward take their second read of a row
/// from (`xent info` prints it).
fn hold_path(ctx: &Context) -> String {
    match ctx.hold_vec4s() {
        0 => "from memory (rows not held: off on CPU adapters, where it measured slower)".into(),
        v => format!(
            "from workgroup memory where the rows fit ({v} vec4s: up to {} classes a row), else from memory",
            (v - 1) * 4 + 3
        ),
    }
}
