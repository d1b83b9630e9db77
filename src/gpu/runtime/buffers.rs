//! The buffer factory of a [`Context`]: storage buffers from host data, outputs, uniforms,
//! bind groups, and the byte ranges kernels bind (`Bound`).

use crate::error::{Result, XentError};
use crate::gpu::kernels::Family;
use crate::gpu::runtime::context::Context;
use crate::options::Float;
use wgpu::util::DeviceExt;

/// Creates a storage buffer holding `data`.
pub(crate) fn upload<T: bytemuck::Pod>(
    ctx: &Context,
    label: &str,
    data: &[T],
) -> Result<wgpu::Buffer> {
    let bytes: &[u8] = bytemuck::cast_slice(data);
    // Padded to whole 32-byte units (kernels read f32 inputs 4 or 8 values at a time);
    // never zero-sized, which is not a valid binding.
    let size = (bytes.len() as u64).div_ceil(32).max(1) * 32;
    check_buffer_size(ctx, label, size)?;
    let buffer = ctx.shared.device.create_buffer(&wgpu::BufferDescriptor {
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
pub(crate) fn output(ctx: &Context, label: &str, len: usize) -> Result<wgpu::Buffer> {
    // Whole 32-byte units, which outputs written 8 values a store need.
    let size = (len.max(1).div_ceil(8) * 32) as u64;
    check_buffer_size(ctx, label, size)?;
    Ok(ctx.shared.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    }))
}

/// As `output`, for a large result the host reads back (log_softmax's output,
/// a gradient): on CPU adapters with `MAPPABLE_PRIMARY_BUFFERS` it is mappable itself, so
/// `staging_for` reads it in place, saving a copy as large as the result.
pub(crate) fn host_output(ctx: &Context, label: &str, len: usize) -> Result<wgpu::Buffer> {
    if !maps_outputs(ctx) {
        return output(ctx, label, len);
    }
    let size = (len.max(1).div_ceil(8) * 32) as u64;
    check_buffer_size(ctx, label, size)?;
    Ok(ctx.shared.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::MAP_READ,
        mapped_at_creation: false,
    }))
}

/// Whether large outputs are mapped where they are written (CPU adapters).
fn maps_outputs(ctx: &Context) -> bool {
    ctx.adapter_info().device_type == wgpu::DeviceType::Cpu
        && ctx
            .features()
            .contains(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS)
}

/// Creates a uniform buffer from a `#[repr(C)]` parameter struct.
pub(crate) fn uniform<T: bytemuck::Pod>(ctx: &Context, label: &str, params: &T) -> wgpu::Buffer {
    ctx.shared
        .device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::bytes_of(params),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        })
}

fn check_buffer_size(ctx: &Context, label: &str, size: u64) -> Result<()> {
    if size > ctx.limits().max_buffer_size {
        return Err(XentError::OutOfMemory(format!(
            "{label} needs a buffer of {size} bytes; the adapter's max_buffer_size is {}",
            ctx.limits().max_buffer_size
        )));
    }
    Ok(())
}

/// Binds `buffers` to bindings 0, 1, 2, ... of `family`'s layout.
pub(crate) fn bind(ctx: &Context, family: Family, buffers: &[&dyn Bindable]) -> wgpu::BindGroup {
    debug_assert_eq!(buffers.len(), family.binding_count());
    let entries: Vec<wgpu::BindGroupEntry> = buffers
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupEntry {
            binding: i as u32,
            resource: b.resource(),
        })
        .collect();
    ctx.shared
        .device
        .create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("xent bind group"),
            layout: ctx.kernels().bind_layout(family),
            entries: &entries,
        })
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

/// Bytes of 8 values of `dtype`: a binding read 8 at a time must cover whole units.
pub(crate) fn wide_unit(dtype: Float) -> u64 {
    8 * dtype.size() as u64
}
