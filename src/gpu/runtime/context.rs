//! The one GPU context: adapter, device, queue and every pipeline, created once.

use crate::error::{Result, XentError};
use crate::gpu::kernels::{DeviceCaps, Entry, KernelKey, Kernels, RowReduce, Variant};
use crate::gpu::runtime::adapter::choose_adapter;
use crate::gpu::runtime::buffers::wide_unit;
use crate::gpu::runtime::probe::probe_subgroup_layout;
use crate::gpu::runtime::scope::scoped;
use crate::gpu::runtime::tuning::{ContextOptions, Tuning};
use crate::options::Float;
use std::sync::Arc;

/// A wgpu device with every wgpu-xent pipeline compiled. Create it once and reuse it.
///
/// Cloning is cheap: the clones share one device, queue and pipeline cache (an `Arc`), so a
/// `Context` can sit beside its prepared calls in a struct, or be sent to another thread.
#[derive(Clone)]
pub struct Context {
    pub(crate) shared: std::sync::Arc<Shared>,
}

/// What the clones of one [`Context`] share.
pub(crate) struct Shared {
    /// Waits for the submissions of async calls (src/gpu/runtime/poller.rs). First, so that it is
    /// dropped (its thread joined) before the device.
    pub(crate) poller: crate::gpu::runtime::poller::Poller,
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    /// Maps left by readbacks whose futures were dropped (src/gpu/runtime/cancel.rs).
    pub(crate) cancelled: crate::gpu::runtime::cancel::Cancelled,
    /// In a browser, where a call's error scopes stay pushed across its awaits: one scoped
    /// call at a time on this device, so that scopes pop in the order they were pushed.
    #[cfg(target_arch = "wasm32")]
    pub(crate) scopes: futures_intrusive::sync::Mutex<()>,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    features: wgpu::Features,
    tuning: Tuning,
    /// The layout probe's answer (forced or measured), where subgroups were allowed.
    subgroup_layout: Option<bool>,
    kernels: Kernels,
}

impl Context {
    /// The adapter chosen by `WGPU_BACKEND` / `WGPU_ADAPTER_NAME`, with its own limits.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new() -> Result<Self> {
        crate::gpu::runtime::poller::block(Self::new_async(ContextOptions::default()))
    }

    /// As [`Context::new`], with options.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn with_options(options: ContextOptions) -> Result<Self> {
        crate::gpu::runtime::poller::block(Self::new_async(options))
    }

    /// The async form of [`Context::with_options`].
    pub async fn new_async(options: ContextOptions) -> Result<Self> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = choose_adapter(&instance).await?;
        Self::on_adapter(&adapter, options).await
    }

    /// A device of its own on `adapter`, every pipeline compiled.
    pub(crate) async fn on_adapter(
        adapter: &wgpu::Adapter,
        options: ContextOptions,
    ) -> Result<Self> {
        let info = adapter.get_info();
        // The adapter's own limits: wgpu's defaults cap bindings at 128 MiB and buffers at 256 MiB.
        let limits = adapter.limits();
        let mut wanted = Self::WANTED_FEATURES;
        if info.device_type == wgpu::DeviceType::Cpu {
            // Device memory is host memory there: outputs are mapped where the kernel wrote
            // them, without a copy into a staging buffer; and f32 inputs are read 8 at a time
            // through 64-bit integers (shaders/io/input_f32_wide.wgsl).
            wanted |= wgpu::Features::MAPPABLE_PRIMARY_BUFFERS | wgpu::Features::SHADER_INT64;
        }
        let features = adapter.features() & wanted;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("wgpu-xent"),
                required_features: features,
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| XentError::RequestDevice {
                adapter: info.name.clone(),
                detail: e.to_string(),
            })?;
        // Errors outside an error scope would otherwise panic inside wgpu.
        device.on_uncaptured_error(std::sync::Arc::new(|e| {
            eprintln!("wgpu-xent: uncaptured wgpu error: {e}");
        }));
        Self::assemble(device, queue, info, limits, features, options).await
    }

    /// Uses a device and queue the caller already has (its own model or renderer), so that
    /// its buffers can be used directly ([`crate::DeviceTensor`]). Checks the limits
    /// wgpu-xent needs and names any that fall short. `TIMESTAMP_QUERY` is used if enabled.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_device(
        device: wgpu::Device,
        queue: wgpu::Queue,
        options: ContextOptions,
    ) -> Result<Self> {
        crate::gpu::runtime::poller::block(Self::from_device_async(device, queue, options))
    }

    /// The async form of [`Context::from_device`].
    pub async fn from_device_async(
        device: wgpu::Device,
        queue: wgpu::Queue,
        options: ContextOptions,
    ) -> Result<Self> {
        let info = device.adapter_info();
        let limits = device.limits();
        let features = device.features()
            & (Self::WANTED_FEATURES
                | wgpu::Features::MAPPABLE_PRIMARY_BUFFERS
                | wgpu::Features::SHADER_INT64);
        Self::assemble(device, queue, info, limits, features, options).await
    }

    async fn assemble(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
        limits: wgpu::Limits,
        features: wgpu::Features,
        options: ContextOptions,
    ) -> Result<Self> {
        let tuning = Tuning::resolve(&info, &limits, features, &options)?;
        // The pipelines depend on the subgroup probe's answer, which needs a context to run: a
        // first set of layouts until then.
        let tree = DeviceCaps {
            f16: false,
            reduce: RowReduce::Tree,
        };
        let kernels = Kernels::new(&device, tree, tuning.workgroup_size, 0);
        let poller = crate::gpu::runtime::poller::Poller::new(&device);
        let mut shared = Shared {
            device,
            queue,
            info,
            limits,
            features,
            tuning,
            subgroup_layout: None,
            kernels,
            poller,
            cancelled: Default::default(),
            #[cfg(target_arch = "wasm32")]
            scopes: futures_intrusive::sync::Mutex::new((), true),
        };
        if shared.tuning.subgroups {
            let layout = match options.subgroup_layout {
                Some(forced) => forced,
                None => {
                    let probing = Self {
                        shared: std::sync::Arc::new(shared),
                    };
                    let layout = probe_subgroup_layout(&probing).await?;
                    shared = std::sync::Arc::into_inner(probing.shared).ok_or_else(|| {
                        XentError::Unsupported("the subgroup probe kept the context".into())
                    })?;
                    layout
                }
            };
            shared.subgroup_layout = Some(layout);
            shared.tuning.subgroups = layout;
        }
        let mut ctx = Self {
            shared: std::sync::Arc::new(shared),
        };
        let kernels = Kernels::new(
            &ctx.shared.device,
            ctx.device_caps(),
            ctx.shared.tuning.workgroup_size,
            ctx.hold_vec4s(),
        );
        if let Some(shared) = std::sync::Arc::get_mut(&mut ctx.shared) {
            shared.kernels = kernels;
        }
        ctx.build_pipelines().await?;
        Ok(ctx)
    }

    /// Optional features used where present: timestamps for `xent bench`, and native f16
    /// reads (`SHADER_F16`; without it f16 is unpacked from u32 words).
    const WANTED_FEATURES: wgpu::Features = wgpu::Features::TIMESTAMP_QUERY
        .union(wgpu::Features::SHADER_F16)
        .union(wgpu::Features::SUBGROUP);

    /// The subgroup layout probe's answer (shaders/probe_subgroups.wgsl), or the one forced
    /// by `ContextOptions::subgroup_layout`; `None` where subgroups are not used at all.
    pub(crate) fn subgroup_layout(&self) -> Option<bool> {
        self.shared.subgroup_layout
    }

    /// What the shaders may use on this device.
    pub(crate) fn device_caps(&self) -> DeviceCaps {
        // One subgroup a workgroup only where the size is fixed: a device free to pick another
        // at run time could split a workgroup into several subgroups.
        let wg = self.shared.tuning.workgroup_size;
        let one =
            self.shared.info.subgroup_min_size == wg && self.shared.info.subgroup_max_size == wg;
        DeviceCaps {
            f16: self.shared.features.contains(wgpu::Features::SHADER_F16),
            reduce: match (self.shared.tuning.subgroups, one) {
                (true, true) => RowReduce::Shuffle,
                (true, false) => RowReduce::Subgroup,
                (false, _) => RowReduce::Tree,
            },
        }
    }

    /// Whether f32 inputs may be read, and outputs written, 8 at a time (`vec4<u64>`): on CPU
    /// adapters with `SHADER_INT64`, unless turned off (`ContextOptions::wide_loads`).
    pub(crate) fn wide_f32(&self) -> bool {
        self.wide_loads(Float::F32)
    }

    /// Whether inputs of `dtype` may be read 8 at a time, unless turned off:
    /// on CPU adapters, which pay per load instruction; f32 as `vec4<u64>` needs
    /// `SHADER_INT64`, f16 and bf16 as `vec4<u32>` nothing.
    pub(crate) fn wide_loads(&self, dtype: Float) -> bool {
        self.shared.tuning.wide_loads
            && (dtype != Float::F32 || self.shared.features.contains(wgpu::Features::SHADER_INT64))
    }

    /// How an input of `dtype` bound at `sizes` bytes (one per chunk) is declared: read 8 at
    /// a time where the device gains from it and every binding covers whole units of 8
    /// values ([`wide_unit`]).
    pub(crate) fn variant(&self, dtype: Float, sizes: impl IntoIterator<Item = u64>) -> Variant {
        Variant {
            dtype,
            wide_in: self.wide_loads(dtype)
                && sizes
                    .into_iter()
                    .all(|s| s.is_multiple_of(wide_unit(dtype))),
            wide_out: false,
            general: true,
        }
    }

    /// `kind` with the f32 output written 8 values a store where that is safe and pays:
    /// contiguous rows (`inner == 1`) whose length in each output is a multiple of 4 (each
    /// row starts and ends on a vec4, so no single value is written into a u64 shared with
    /// another invocation), in outputs bound at whole 32-byte units. `outputs` gives each
    /// output's row length (its classes: a vocabulary shard's own) and size in bytes.
    pub(crate) fn with_wide_output(
        &self,
        kind: Variant,
        inner: usize,
        outputs: impl IntoIterator<Item = (usize, u64)>,
    ) -> Variant {
        Variant {
            wide_out: self.wide_f32()
                && inner == 1
                && outputs
                    .into_iter()
                    .all(|(row, size)| row.is_multiple_of(4) && size.is_multiple_of(32)),
            ..kind
        }
    }

    /// Compiles the f32 pipeline of every entry point (other variants on first use).
    async fn build_pipelines(&mut self) -> Result<()> {
        scoped(self, async {
            // matmul_lanes.wgsl only where it runs: it needs SHADER_INT64 and SUBGROUP.
            let lanes = self.shared.tuning.lane_matmul;
            for entry in Entry::ALL
                .into_iter()
                .filter(|&e| lanes || e != Entry::MatmulLanes)
            {
                self.pipeline(KernelKey::new(entry, Float::F32.into()));
            }
            Ok(())
        })
        .await
    }

    /// The kernels: bind layouts and the pipeline cache.
    pub(crate) fn kernels(&self) -> &Kernels {
        &self.shared.kernels
    }

    /// The compiled pipeline of `key`, compiled on first use and cached.
    pub(crate) fn pipeline(&self, key: KernelKey) -> Arc<wgpu::ComputePipeline> {
        self.shared.kernels.pipeline(&self.shared.device, key)
    }

    /// The adapter's name, backend, type and driver.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.shared.info
    }

    /// The limits the device was created with (the adapter's own).
    pub(crate) fn limits(&self) -> &wgpu::Limits {
        &self.shared.limits
    }

    /// The optional features enabled on the device.
    pub(crate) fn features(&self) -> wgpu::Features {
        self.shared.features
    }

    /// Invocations per workgroup of every kernel.
    pub(crate) fn workgroup_size(&self) -> u32 {
        self.shared.tuning.workgroup_size
    }

    /// The choices every kernel and row walk follow on this device, resolved once.
    pub(crate) fn tuning(&self) -> &Tuning {
        &self.shared.tuning
    }

    /// vec4s of workgroup memory the held kernels keep rows in (0 when rows are not held).
    pub(crate) fn hold_vec4s(&self) -> usize {
        self.shared.tuning.hold_vec4s(&self.shared.limits)
    }

    /// The choices the row geometry depends on (src/geometry/rows.rs).
    pub(crate) fn walk_tuning(&self) -> crate::geometry::rows::WalkTuning {
        let t = &self.shared.tuning;
        crate::geometry::rows::WalkTuning {
            workgroup_size: t.workgroup_size,
            min_workgroups: t.min_workgroups,
            max_loop_trips: t.max_loop_trips,
            hold_vec4s: self.hold_vec4s(),
            max_binding_elems: crate::geometry::chunks::max_binding_elems(t.max_binding_bytes),
        }
    }

    /// The most bytes of one tensor bound at once; larger tensors are split into chunks.
    pub(crate) fn max_binding_bytes(&self) -> u64 {
        self.shared.tuning.max_binding_bytes
    }

    /// The wgpu device.
    pub fn device(&self) -> &wgpu::Device {
        &self.shared.device
    }

    /// The wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.shared.queue
    }
}
