//! The one GPU context: adapter, device, queue and every pipeline, created once.

use super::kernels::{DeviceCaps, Entry, Family, KernelKey, Kernels, RowReduce, Variant};
use crate::error::{Result, XentError};
use crate::options::DType;
use std::future::Future;
use std::sync::Arc;
use wgpu::util::DeviceExt;

/// Options for [`Context::with_options`].
#[derive(Clone, Debug, Default)]
pub struct ContextOptions {
    /// Bind at most this many bytes of a tensor at once (default: the adapter's
    /// `max_storage_buffer_binding_size`). Lowering it exercises chunking on small data.
    pub max_binding_bytes: Option<u64>,
    /// Invocations per workgroup, a power of two (default: `XENT_WORKGROUP_SIZE` from the
    /// environment, else [`Context::default_workgroup_size`]).
    pub workgroup_size: Option<u32>,
    /// Split long rows across workgroups when a call has fewer rows than this (default:
    /// 1024 on GPUs, so that e.g. 64×262144 fills them; 4 on CPU adapters, whose few
    /// threads 64 rows already fill). Raising it exercises the split path on small data.
    pub min_workgroups: Option<u32>,
    /// Keep rows in workgroup memory between the two passes of log_softmax, softmax and the
    /// fused cross_entropy backward, where they fit: one read of the logits instead of two
    /// (default: `XENT_HOLD_ROWS=0|1` from the environment, else on for GPUs and off for CPU
    /// adapters, where workgroup memory is ordinary memory and measured slower).
    pub hold_rows: Option<bool>,
    /// Loop trips one invocation may take in one dispatch (default 16,384): longer rows are
    /// cut into segments. Mesa's software adapters silently stop an invocation's loops after
    /// 65,535 trips in all. Lowering it exercises the segmented paths on small data; at
    /// least 8.
    pub max_loop_trips: Option<u32>,
    /// Read inputs 8 at a time on CPU adapters (default: on, unless `XENT_NO_WIDE_LOADS=1`).
    /// `Some(false)` takes the 4-at-a-time paths GPUs take.
    pub wide_loads: Option<bool>,
    /// Reduce with subgroup operations where the device has `SUBGROUP` (default: on, unless
    /// `XENT_NO_SUBGROUPS=1`) and its subgroups are laid out as the kernels assume.
    pub subgroups: Option<bool>,
    /// The answer of the subgroup layout probe, forced (default: run it). `Some(false)` makes
    /// the context reduce through workgroup memory, as on a device whose subgroups are not
    /// runs of consecutive invocations.
    pub subgroup_layout: Option<bool>,
}

/// A wgpu device with every wgpu-xent pipeline compiled. Create it once and reuse it.
pub struct Context {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    features: wgpu::Features,
    workgroup_size: u32,
    min_workgroups: u32,
    hold_rows: bool,
    max_loop_trips: u32,
    wide: bool,
    /// Subgroup reductions in use: `SUBGROUP`, allowed, and the layout probe passed.
    subgroups: bool,
    /// The layout probe's answer (forced or measured), where subgroups were allowed.
    subgroup_layout: Option<bool>,
    max_binding_bytes: u64,
    kernels: Kernels,
}

impl Context {
    /// The adapter chosen by `WGPU_BACKEND` / `WGPU_ADAPTER_NAME`, with its own limits.
    pub fn new() -> Result<Self> {
        pollster::block_on(Self::new_async(ContextOptions::default()))
    }

    /// As [`Context::new`], with options.
    pub fn with_options(options: ContextOptions) -> Result<Self> {
        pollster::block_on(Self::new_async(options))
    }

    /// The async form of [`Context::with_options`].
    pub async fn new_async(options: ContextOptions) -> Result<Self> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = choose_adapter(&instance).await?;
        let info = adapter.get_info();
        // The adapter's own limits: wgpu's defaults cap bindings at 128 MiB and buffers at 256 MiB.
        let limits = adapter.limits();
        let mut wanted = Self::WANTED_FEATURES;
        if info.device_type == wgpu::DeviceType::Cpu {
            // Device memory is host memory there: outputs are mapped where the kernel wrote
            // them, without a copy into a staging buffer; and f32 inputs are read 8 at a time
            // through 64-bit integers (shared/dtype_f32_wide.wgsl).
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
    pub fn from_device(
        device: wgpu::Device,
        queue: wgpu::Queue,
        options: ContextOptions,
    ) -> Result<Self> {
        pollster::block_on(Self::from_device_async(device, queue, options))
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
        // The loss kernels bind 8 storage buffers (WebGPU's default limit) and a 64-byte
        // uniform; workgroups are at least 8 invocations on CPU adapters.
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
        let env = super::switches::Switches::from_env()?;
        let workgroup_size = options
            .workgroup_size
            .or(env.workgroup_size)
            .unwrap_or_else(|| Self::default_workgroup_size(&info, &limits));
        if !workgroup_size.is_power_of_two()
            || workgroup_size > limits.max_compute_invocations_per_workgroup
            || workgroup_size > limits.max_compute_workgroup_size_x
        {
            return Err(XentError::InvalidArgument(format!(
                "workgroup size {workgroup_size} must be a power of two within the adapter's limit of {}",
                limits.max_compute_invocations_per_workgroup
            )));
        }
        let max_binding_bytes = options
            .max_binding_bytes
            .unwrap_or(u64::MAX)
            .min(limits.max_storage_buffer_binding_size)
            .min(limits.max_buffer_size);
        let min_workgroups = options.min_workgroups.unwrap_or(match info.device_type {
            wgpu::DeviceType::Cpu => 4,
            _ => 1024,
        });
        let hold_rows = options
            .hold_rows
            .or(env.hold_rows)
            .unwrap_or(info.device_type != wgpu::DeviceType::Cpu);
        let wide = options.wide_loads.unwrap_or(!env.no_wide_loads)
            && info.device_type == wgpu::DeviceType::Cpu;
        let subgroups = options.subgroups.unwrap_or(!env.no_subgroups)
            && features.contains(wgpu::Features::SUBGROUP);
        let max_loop_trips = options
            .max_loop_trips
            .unwrap_or(super::rows::MAX_LOOP_TRIPS);
        if max_loop_trips < 8 {
            return Err(XentError::InvalidArgument(format!(
                "max_loop_trips must be at least 8, got {max_loop_trips}"
            )));
        }
        // The pipelines depend on the subgroup probe's answer, which needs a context to run: a
        // first set of layouts until then.
        let tree = DeviceCaps {
            f16: false,
            reduce: RowReduce::Tree,
        };
        let kernels = Kernels::new(&device, tree, workgroup_size, 0);
        let mut ctx = Self {
            device,
            queue,
            info,
            limits,
            features,
            workgroup_size,
            min_workgroups,
            hold_rows,
            max_loop_trips,
            wide,
            subgroups,
            subgroup_layout: None,
            max_binding_bytes,
            kernels,
        };
        if ctx.subgroups {
            let layout = match options.subgroup_layout {
                Some(forced) => forced,
                None => ctx.probe_subgroup_layout().await?,
            };
            ctx.subgroup_layout = Some(layout);
            ctx.subgroups = layout;
        }
        ctx.kernels = Kernels::new(
            &ctx.device,
            ctx.device_caps(),
            ctx.workgroup_size,
            ctx.hold_vec4s(),
        );
        ctx.build_pipelines().await?;
        Ok(ctx)
    }

    /// Optional features used where present: timestamps for `xent bench`, and native f16
    /// reads (`SHADER_F16`; without it f16 is unpacked from u32 words).
    const WANTED_FEATURES: wgpu::Features = wgpu::Features::TIMESTAMP_QUERY
        .union(wgpu::Features::SHADER_F16)
        .union(wgpu::Features::SUBGROUP);

    /// How rows are reduced on this device: subgroup operations (`SUBGROUP`) or a tree in
    /// workgroup memory.
    pub fn reduction_path(&self) -> &'static str {
        match self.device_caps().reduce {
            RowReduce::Shuffle => "subgroup shuffles, no barrier (a workgroup is one subgroup)",
            RowReduce::Subgroup => {
                "subgroup operations (SUBGROUP), tree for rows narrower than a subgroup"
            }
            RowReduce::Tree if self.subgroup_layout == Some(false) => {
                "tree in workgroup memory (the device's subgroups are not runs of consecutive invocations)"
            }
            RowReduce::Tree => "tree in workgroup memory",
        }
    }

    /// The subgroup layout probe's answer (shaders/probe_subgroups.wgsl), or the one forced
    /// by `ContextOptions::subgroup_layout`; `None` where subgroups are not used at all.
    pub fn subgroup_layout(&self) -> Option<bool> {
        self.subgroup_layout
    }

    /// What the shaders may use on this device.
    fn device_caps(&self) -> DeviceCaps {
        // One subgroup a workgroup only where the size is fixed: a device free to pick another
        // at run time could split a workgroup into several subgroups.
        let one = self.info.subgroup_min_size == self.workgroup_size
            && self.info.subgroup_max_size == self.workgroup_size;
        DeviceCaps {
            f16: self.features.contains(wgpu::Features::SHADER_F16),
            reduce: match (self.subgroups, one) {
                (true, true) => RowReduce::Shuffle,
                (true, false) => RowReduce::Subgroup,
                (false, _) => RowReduce::Tree,
            },
        }
    }

    /// Whether f32 inputs may be read, and outputs written, 8 at a time (`vec4<u64>`): on CPU
    /// adapters with `SHADER_INT64`, unless turned off (`ContextOptions::wide_loads`).
    pub(crate) fn wide_f32(&self) -> bool {
        self.wide_loads(DType::F32)
    }

    /// Whether inputs of `dtype` may be read 8 at a time, unless turned off:
    /// on CPU adapters, which pay per load instruction; f32 as `vec4<u64>` needs
    /// `SHADER_INT64`, f16 and bf16 as `vec4<u32>` nothing.
    pub(crate) fn wide_loads(&self, dtype: DType) -> bool {
        self.wide && (dtype != DType::F32 || self.features.contains(wgpu::Features::SHADER_INT64))
    }

    /// How an input of `dtype` bound at `sizes` bytes (one per chunk) is declared: read 8 at
    /// a time where the device gains from it and every binding covers whole units of 8
    /// values ([`wide_unit`]).
    pub(crate) fn variant(&self, dtype: DType, sizes: impl IntoIterator<Item = u64>) -> Variant {
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
    /// contiguous rows of C % 4 == 0 (each row starts and ends on a vec4, so no single value
    /// is written into a u64 shared with another invocation) in outputs bound at `sizes`
    /// bytes, all whole 32-byte units.
    pub(crate) fn with_wide_output(
        &self,
        kind: Variant,
        layout: &crate::layout::RowLayout,
        sizes: impl IntoIterator<Item = u64>,
    ) -> Variant {
        Variant {
            wide_out: self.wide_f32()
                && layout.inner == 1
                && layout.classes.is_multiple_of(4)
                && sizes.into_iter().all(|s| s.is_multiple_of(32)),
            ..kind
        }
    }

    /// How f16 inputs are read on this device when not 8 at a time ([`Context::half_path`]):
    /// "native f16 (SHADER_F16)" or "unpack2x16float from u32".
    pub fn f16_path(&self) -> &'static str {
        if self.features.contains(wgpu::Features::SHADER_F16) {
            "native f16 (SHADER_F16)"
        } else {
            "unpack2x16float from u32"
        }
    }

    /// The workgroup size used unless one is given: CPU adapters (lavapipe, llvmpipe) run a
    /// workgroup on one thread as a loop over 8-wide SIMD lanes and every barrier splits that
    /// loop, so they want small workgroups: one SIMD vector, 8. Four interleaved rounds on
    /// lavapipe gave 8 the lower median kernel time than 16 in 8 of 9 op × shape pairs
    /// (the fused backward at 1024×32000: 84 against 95 ms), and 64 was slower than both.
    /// GPUs want enough to hide latency.
    pub fn default_workgroup_size(info: &wgpu::AdapterInfo, limits: &wgpu::Limits) -> u32 {
        let wanted = match info.device_type {
            wgpu::DeviceType::Cpu => 8,
            _ => 256,
        };
        wanted
            .min(limits.max_compute_invocations_per_workgroup)
            .min(limits.max_compute_workgroup_size_x)
    }

    /// Compiles the f32 pipeline of every entry point (other variants on first use).
    async fn build_pipelines(&mut self) -> Result<()> {
        self.scoped(async {
            for entry in Entry::ALL {
                self.pipeline(KernelKey::new(entry, DType::F32.into()));
            }
            Ok(())
        })
        .await
    }

    /// The compiled pipeline of `key`, compiled on first use and cached.
    pub(crate) fn pipeline(&self, key: KernelKey) -> Arc<wgpu::ComputePipeline> {
        self.kernels.pipeline(&self.device, key)
    }

    /// The adapter's name, backend, type and driver.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// The limits the device was created with (the adapter's own).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// The optional features enabled on the device.
    pub fn features(&self) -> wgpu::Features {
        self.features
    }

    /// Invocations per workgroup of every kernel.
    pub fn workgroup_size(&self) -> u32 {
        self.workgroup_size
    }

    /// Calls with fewer rows than this split their rows across workgroups.
    pub fn min_workgroups(&self) -> u32 {
        self.min_workgroups
    }

    /// How f32 inputs are read (`xent info` prints it).
    pub fn f32_path(&self) -> &'static str {
        if self.wide_f32() {
            "8 at a time as vec4<u64> (SHADER_INT64, CPU adapter), where the binding allows; row outputs of C % 4 == 0 written the same way"
        } else {
            "4 at a time as vec4<f32>"
        }
    }

    /// How f16 and bf16 inputs are read (`xent info` prints it).
    pub fn half_path(&self) -> &'static str {
        if self.wide_loads(DType::F16) {
            "8 at a time as vec4<u32> (CPU adapter), where the binding allows"
        } else {
            "4 at a time"
        }
    }

    /// Where log_softmax, softmax and the fused backward take their second read of a row
    /// from (`xent info` prints it).
    pub fn hold_path(&self) -> String {
        match self.hold_vec4s() {
            0 => "from memory (rows not held: off on CPU adapters, where it measured slower)".into(),
            v => format!(
                "from workgroup memory where the rows fit ({v} vec4s: up to {} classes a row), else from memory",
                (v - 1) * 4 + 3
            ),
        }
    }

    /// vec4s of workgroup memory the held kernels keep rows in (0 when rows are not held):
    /// what the device allows, less the reductions' 8 bytes per invocation and a margin.
    pub(crate) fn hold_vec4s(&self) -> usize {
        if !self.hold_rows {
            return 0;
        }
        let bytes = self.limits.max_compute_workgroup_storage_size as usize;
        bytes.saturating_sub(16 * self.workgroup_size as usize + 256) / 16
    }

    /// The choices the row geometry depends on (src/gpu/rows.rs).
    pub(crate) fn tuning(&self) -> super::rows::Tuning {
        super::rows::Tuning {
            workgroup_size: self.workgroup_size,
            min_workgroups: self.min_workgroups,
            max_loop_trips: self.max_loop_trips,
            hold_vec4s: self.hold_vec4s(),
            max_binding_elems: super::chunks::max_binding_elems(self.max_binding_bytes),
        }
    }

    /// The most bytes of one tensor bound at once; larger tensors are split into chunks.
    pub fn max_binding_bytes(&self) -> u64 {
        self.max_binding_bytes
    }

    /// The wgpu device.
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// Runs `work` inside validation and out-of-memory error scopes, so that wgpu errors come
    /// back as `Err` rather than panics; a scoped wgpu error wins over the work's own result.
    pub(crate) async fn scoped<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let result = work.await;
        let validation = validation.pop().await;
        let oom = oom.pop().await;
        if let Some(e) = oom {
            return Err(XentError::OutOfMemory(e.to_string()));
        }
        if let Some(e) = validation {
            return Err(XentError::Gpu(e.to_string()));
        }
        result
    }

    /// Creates a storage buffer holding `data`.
    pub(crate) fn upload<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> Result<wgpu::Buffer> {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        // Padded to whole 32-byte units (kernels read f32 inputs 4 or 8 values at a time);
        // never zero-sized, which is not a valid binding.
        let size = (bytes.len() as u64).div_ceil(32).max(1) * 32;
        self.check_buffer_size(label, size)?;
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: true,
        });
        if !bytes.is_empty() {
            // Mapped writes come in whole 4-byte words; an odd number of 16-bit values is
            // padded with zeros.
            let words = bytes.len().div_ceil(4) * 4;
            let padded;
            let src = if words == bytes.len() {
                bytes
            } else {
                padded = [bytes, &[0u8; 3][..words - bytes.len()]].concat();
                &padded
            };
            buffer
                .slice(..words as u64)
                .get_mapped_range_mut()
                .map_err(|e| XentError::Gpu(e.to_string()))?
                .copy_from_slice(src);
        }
        buffer.unmap();
        Ok(buffer)
    }

    /// Creates an uninitialised storage buffer of `len` f32 values that can be read back.
    /// Padded to whole vec4s, which kernels may view it as.
    pub(crate) fn output(&self, label: &str, len: usize) -> Result<wgpu::Buffer> {
        // Whole 32-byte units, which outputs written 8 values a store need.
        let size = (len.max(1).div_ceil(8) * 32) as u64;
        self.check_buffer_size(label, size)?;
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        }))
    }

    /// As [`Context::output`], for a large result the host reads back (log_softmax's output,
    /// a gradient): on CPU adapters with `MAPPABLE_PRIMARY_BUFFERS` it is mappable itself, so
    /// [`Context::staging_for`] reads it in place, saving a copy as large as the result.
    pub(crate) fn host_output(&self, label: &str, len: usize) -> Result<wgpu::Buffer> {
        if !self.maps_outputs() {
            return self.output(label, len);
        }
        let size = (len.max(1).div_ceil(8) * 32) as u64;
        self.check_buffer_size(label, size)?;
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::MAP_READ,
            mapped_at_creation: false,
        }))
    }

    /// Whether large outputs are mapped where they are written (CPU adapters).
    fn maps_outputs(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
            && self
                .features
                .contains(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS)
    }

    /// Creates a uniform buffer from a `#[repr(C)]` parameter struct.
    pub(crate) fn uniform<T: bytemuck::Pod>(&self, label: &str, params: &T) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::bytes_of(params),
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }

    fn check_buffer_size(&self, label: &str, size: u64) -> Result<()> {
        if size > self.limits.max_buffer_size {
            return Err(XentError::OutOfMemory(format!(
                "{label} needs a buffer of {size} bytes; the adapter's max_buffer_size is {}",
                self.limits.max_buffer_size
            )));
        }
        Ok(())
    }

    /// Binds `buffers` to bindings 0, 1, 2, ... of `family`'s layout.
    pub(crate) fn bind(&self, family: Family, buffers: &[&dyn Bindable]) -> wgpu::BindGroup {
        debug_assert_eq!(buffers.len(), family.binding_count());
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.resource(),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("xent bind group"),
            layout: self.kernels.bind_layout(family),
            entries: &entries,
        })
    }
}

/// Something that can be bound to a storage or uniform binding.
pub(crate) trait Bindable {
    fn resource(&self) -> wgpu::BindingResource<'_>;
}

impl Bindable for wgpu::Buffer {
    fn resource(&self) -> wgpu::BindingResource<'_> {
        self.as_entire_binding()
    }
}

/// A byte range of a buffer, bound as one binding: a user's buffer at an offset, or a whole
/// buffer of ours.
#[derive(Clone, Debug)]
pub(crate) struct Bound {
    pub buffer: wgpu::Buffer,
    pub offset: u64,
    pub size: u64,
}

impl Bound {
    /// The whole of `buffer`.
    pub fn whole(buffer: wgpu::Buffer) -> Self {
        let size = buffer.size();
        Self {
            buffer,
            offset: 0,
            size,
        }
    }
}

impl Bindable for Bound {
    fn resource(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: self.offset,
            size: std::num::NonZeroU64::new(self.size),
        })
    }
}

/// The adapter named by `WGPU_ADAPTER_NAME` (a case-insensitive part of its name), else
/// wgpu's default. wgpu's own helper panics when the name matches nothing.
async fn choose_adapter(instance: &wgpu::Instance) -> Result<wgpu::Adapter> {
    let Ok(name) = std::env::var("WGPU_ADAPTER_NAME") else {
        let options = wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::from_env().unwrap_or_default(),
            ..Default::default()
        };
        return instance
            .request_adapter(&options)
            .await
            .map_err(|e| XentError::NoAdapter {
                detail: format!("{e}; backends searched: {}", backends_from_env()),
            });
    };
    let adapters = instance.enumerate_adapters(wgpu::Backends::all()).await;
    let names: Vec<String> = adapters
        .iter()
        .map(|a| format!("{:?} ({:?})", a.get_info().name, a.get_info().backend))
        .collect();
    let wanted = name.to_lowercase();
    adapters
        .into_iter()
        .find(|a| a.get_info().name.to_lowercase().contains(&wanted))
        .ok_or_else(|| XentError::NoAdapter {
            detail: format!(
                "WGPU_ADAPTER_NAME={name:?} matches none of the adapters wgpu sees on backends {}: {}",
                backends_from_env(),
                match names.is_empty() {
                    true => "none".to_string(),
                    false => names.join(", "),
                }
            ),
        })
}

fn backends_from_env() -> String {
    std::env::var("WGPU_BACKEND").unwrap_or_else(|_| "all (WGPU_BACKEND unset)".into())
}

/// Bytes of 8 values of `dtype`: a binding read 8 at a time must cover whole units.
pub(crate) fn wide_unit(dtype: DType) -> u64 {
    8 * dtype.size() as u64
}
