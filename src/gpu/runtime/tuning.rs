//! The tuning of one device, resolved once when a [`crate::gpu::Context`] is made: the adapter's
//! defaults, then [`ContextOptions`] (which [`ContextOptions::from_env`] fills from the
//! `XENT_*` variables, only when asked).
//! Software-adapter choices (8-wide loads, one-subgroup workgroups) live here and nowhere
//! else; a GPU takes the portable path.

use crate::error::{Result, XentError};

/// Options for [`crate::gpu::Context::with_options`].
#[derive(Clone, Debug, Default)]
pub struct ContextOptions {
    /// Bind at most this many bytes of a tensor at once (default: the adapter's
    /// `max_storage_buffer_binding_size`). Lowering it exercises chunking on small data.
    pub max_binding_bytes: Option<u64>,
    /// Invocations per workgroup, a power of two (default:
    /// [`Tuning::default_workgroup_size`]).
    pub workgroup_size: Option<u32>,
    /// Split long rows across workgroups when a call has fewer rows than this (default:
    /// 1024 on GPUs, so that e.g. 64×262144 fills them; 4 on CPU adapters, whose few
    /// threads 64 rows already fill). Raising it exercises the split path on small data.
    pub min_workgroups: Option<u32>,
    /// Keep rows in workgroup memory between the two passes of log_softmax, softmax and the
    /// fused cross_entropy backward, where they fit: one read of the logits instead of two
    /// (default: on for GPUs and off for CPU adapters, where workgroup memory is ordinary
    /// memory and measured slower).
    pub hold_rows: Option<bool>,
    /// Loop trips one invocation may take in one dispatch (default 16,384): longer rows are
    /// cut into segments. Mesa's software adapters silently stop an invocation's loops after
    /// 65,535 trips in all. Lowering it exercises the segmented paths on small data; at
    /// least 8.
    pub max_loop_trips: Option<u32>,
    /// Read inputs 8 at a time on CPU adapters (default: on).
    /// `Some(false)` takes the 4-at-a-time paths GPUs take.
    pub wide_loads: Option<bool>,
    /// Reduce with subgroup operations where the device has `SUBGROUP` (default: on) and its
    /// subgroups are laid out as the kernels assume.
    pub subgroups: Option<bool>,
    /// Run matrix products on matmul_lanes.wgsl (default: on where it runs: CPU adapters with
    /// `SHADER_INT64` and subgroups of exactly 8, subgroups allowed). `Some(false)` takes
    /// matmul.wgsl, as GPUs and GL do.
    pub lane_matmul: Option<bool>,
    /// The answer of the subgroup layout probe, forced (default: run it). `Some(false)` makes
    /// the context reduce through workgroup memory, as on a device whose subgroups are not
    /// runs of consecutive invocations.
    pub subgroup_layout: Option<bool>,
}

/// The choices every kernel and row walk follow on one device (`xent info` prints them).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tuning {
    /// Invocations per workgroup of every kernel, a power of two.
    pub workgroup_size: u32,
    /// Calls with fewer contiguous rows than this split them across workgroups.
    pub min_workgroups: u32,
    /// Rows kept in workgroup memory between two passes, where they fit.
    pub hold_rows: bool,
    /// Loop trips one invocation may take in one dispatch.
    pub max_loop_trips: u32,
    /// Inputs read 8 at a time (CPU adapters).
    pub wide_loads: bool,
    /// Subgroup reductions: `SUBGROUP`, allowed, and the layout probe passed.
    pub subgroups: bool,
    /// The most bytes of one tensor bound at once.
    pub max_binding_bytes: u64,
    /// Matrix products on matmul_lanes.wgsl (CPU adapters with `SHADER_INT64` and
    /// subgroups of 8): 8 floats a load, A shared across the lanes.
    pub lane_matmul: bool,
}

impl Tuning {
    /// Checks the limits wgpu-xent needs, then resolves every choice.
    pub(crate) fn resolve(
        info: &wgpu::AdapterInfo,
        limits: &wgpu::Limits,
        features: wgpu::Features,
        options: &ContextOptions,
    ) -> Result<Self> {
        check_limits(limits)?;
        let cpu = info.device_type == wgpu::DeviceType::Cpu;
        let workgroup_size = options
            .workgroup_size
            .unwrap_or_else(|| Self::default_workgroup_size(info, limits));
        if !workgroup_size.is_power_of_two()
            || workgroup_size > limits.max_compute_invocations_per_workgroup
            || workgroup_size > limits.max_compute_workgroup_size_x
        {
            return Err(XentError::InvalidArgument(format!(
                "workgroup size {workgroup_size} must be a power of two within the adapter's limit of {}",
                limits.max_compute_invocations_per_workgroup
            )));
        }
        let max_loop_trips = options
            .max_loop_trips
            .unwrap_or(crate::geometry::rows::MAX_LOOP_TRIPS);
        if max_loop_trips < 8 {
            return Err(XentError::InvalidArgument(format!(
                "max_loop_trips must be at least 8, got {max_loop_trips}"
            )));
        }
        let subgroups =
            features.contains(wgpu::Features::SUBGROUP) && options.subgroups.unwrap_or(true);
        // matmul_lanes.wgsl is one subgroup of 8 lanes reading vec4<u64>: a design for
        // lavapipe, whose loads cost per instruction (docs in the shader).
        let lane_matmul = cpu
            && subgroups
            && features.contains(wgpu::Features::SHADER_INT64)
            && info.subgroup_min_size == 8
            && info.subgroup_max_size == 8
            && options.lane_matmul.unwrap_or(true);
        Ok(Self {
            workgroup_size,
            // CPU adapters' few threads are filled by a few rows already.
            min_workgroups: options.min_workgroups.unwrap_or(if cpu { 4 } else { 1024 }),
            // Workgroup memory is ordinary memory on CPU adapters, where holding measured
            // slower.
            hold_rows: options.hold_rows.unwrap_or(!cpu),
            max_loop_trips,
            wide_loads: cpu && options.wide_loads.unwrap_or(true),
            subgroups,
            max_binding_bytes: options
                .max_binding_bytes
                .unwrap_or(u64::MAX)
                .min(limits.max_storage_buffer_binding_size)
                .min(limits.max_buffer_size),
            lane_matmul,
        })
    }

    /// The workgroup size used unless one is given: CPU adapters (lavapipe, llvmpipe) run a
    /// workgroup on one thread as a loop over 8-wide SIMD lanes and every barrier splits that
    /// loop, so they want small workgroups: one SIMD vector, 8 (measured fastest:
    /// docs/PERFORMANCE.md). GPUs want enough to hide latency.
    pub fn default_workgroup_size(info: &wgpu::AdapterInfo, limits: &wgpu::Limits) -> u32 {
        let wanted = match info.device_type {
            wgpu::DeviceType::Cpu => 8,
            _ => 256,
        };
        wanted
            .min(limits.max_compute_invocations_per_workgroup)
            .min(limits.max_compute_workgroup_size_x)
    }

    /// vec4s of workgroup memory the held kernels keep rows in (0 when rows are not held):
    /// what the device allows, less the reductions' 8 bytes per invocation and a margin.
    pub(crate) fn hold_vec4s(&self, limits: &wgpu::Limits) -> usize {
        if !self.hold_rows {
            return 0;
        }
        let bytes = limits.max_compute_workgroup_storage_size as usize;
        bytes.saturating_sub(16 * self.workgroup_size as usize + 256) / 16
    }
}

/// The limits the kernels need: the loss kernels bind 8 storage buffers (WebGPU's default
/// limit) and an 80-byte uniform; workgroups are at least 8 invocations on CPU adapters.
fn check_limits(limits: &wgpu::Limits) -> Result<()> {
    let needs = [
        (
            "max_storage_buffers_per_shader_stage",
            limits.max_storage_buffers_per_shader_stage,
            8,
        ),
        ("max_bind_groups", limits.max_bind_groups, 1),
        (
            "max_compute_invocations_per_workgroup",
            limits.max_compute_invocations_per_workgroup,
            8,
        ),
        (
            "max_compute_workgroup_storage_size",
            limits.max_compute_workgroup_storage_size,
            2048,
        ),
    ];
    for (name, has, need) in needs {
        if has < need {
            return Err(XentError::Unsupported(format!(
                "the device's {name} is {has}; wgpu-xent needs at least {need}"
            )));
        }
    }
    Ok(())
}
