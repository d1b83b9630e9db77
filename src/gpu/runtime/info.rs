//! What a [`Context`] runs on and how it was tuned, in one value (`xent info` prints it).

use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::tuning::Tuning;

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
        reduction_path: ctx.reduction_path(),
        f32_path: ctx.f32_path(),
        f16_path: ctx.f16_path(),
        half_path: ctx.half_path(),
        hold_path: ctx.hold_path(),
    }
}
