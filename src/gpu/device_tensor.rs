//! Tensors that live in wgpu buffers, the caller's own or ours (`DeviceTensor`): wrapped
//! without a copy, checked once, bound where they lie.

use super::buffers::{wide_unit, Bound};
use super::context::Context;
use crate::error::{Result, XentError};
use crate::options::DType;

/// The bytes a binding must cover beyond the data: kernels read logits and probabilities
/// four elements at a time.
fn granule(dtype: DType) -> u64 {
    match dtype {
        DType::F32 => 16,
        DType::F16 | DType::BF16 => 8,
        _ => 4,
    }
}

/// Bytes of `shape` elements of `dtype`, or `InvalidShape` when that overflows.
fn byte_len(shape: &[usize], dtype: DType) -> Result<usize> {
    crate::layout::numel(shape)?
        .checked_mul(dtype.size())
        .ok_or_else(|| XentError::InvalidShape(format!("shape {shape:?} of {dtype:?} overflows")))
}

/// A tensor in a wgpu buffer: the buffer, a byte offset, a shape and a dtype. Wrapping a
/// buffer copies nothing.
#[derive(Clone, Debug)]
pub struct DeviceTensor {
    buffer: wgpu::Buffer,
    offset: u64,
    shape: Vec<usize>,
    dtype: DType,
}

impl DeviceTensor {
    /// Wraps `shape` elements of `dtype` at byte `offset` of `buffer`, after checking that
    /// the buffer can be bound as storage there: STORAGE usage, an offset aligned to the
    /// device's `min_storage_buffer_offset_alignment`, and room for the data rounded up to
    /// whole groups of four logits (16 bytes for f32, 8 for f16/bf16), within one binding.
    pub fn from_buffer(
        ctx: &Context,
        buffer: &wgpu::Buffer,
        offset: u64,
        shape: &[usize],
        dtype: DType,
    ) -> Result<Self> {
        let bytes = byte_len(shape, dtype)?;
        let t = Self {
            buffer: buffer.clone(),
            offset,
            shape: shape.to_vec(),
            dtype,
        };
        if !buffer.usage().contains(wgpu::BufferUsages::STORAGE) {
            return Err(XentError::InvalidArgument(format!(
                "the buffer's usage {:?} lacks STORAGE",
                buffer.usage()
            )));
        }
        let align = ctx.limits().min_storage_buffer_offset_alignment as u64;
        if !offset.is_multiple_of(align) {
            return Err(XentError::InvalidArgument(format!(
                "offset {offset} is not a multiple of the device's min_storage_buffer_offset_alignment ({align})"
            )));
        }
        let need = (bytes as u64).div_ceil(granule(dtype)).max(1) * granule(dtype);
        if offset
            .checked_add(need)
            .is_none_or(|end| end > buffer.size())
        {
            return Err(XentError::InvalidShape(format!(
                "shape {shape:?} of {dtype:?} needs {need} bytes from offset {offset} (the data rounded up to {} bytes), but the buffer has {}",
                granule(dtype),
                buffer.size()
            )));
        }
        if need > ctx.max_binding_bytes() {
            return Err(XentError::Unsupported(format!(
                "a device tensor must fit one binding ({} bytes); this one needs {need}: split it, or use the host API, which chunks",
                ctx.max_binding_bytes()
            )));
        }
        Ok(t)
    }

    /// Uploads `data` (any plain type matching `dtype`'s size) into a new buffer of ours.
    pub fn from_host<T: bytemuck::Pod>(
        ctx: &Context,
        data: &[T],
        shape: &[usize],
        dtype: DType,
    ) -> Result<Self> {
        let bytes = byte_len(shape, dtype)?;
        if std::mem::size_of_val(data) != bytes {
            return Err(XentError::InvalidShape(format!(
                "shape {shape:?} of {dtype:?} is {bytes} bytes; the data is {}",
                std::mem::size_of_val(data)
            )));
        }
        let buffer = ctx.upload("device tensor", data)?;
        Self::from_buffer(ctx, &buffer, 0, shape, dtype)
    }

    /// A new zeroed f32 tensor of `shape` (e.g. a gradient to write into).
    pub fn zeros(ctx: &Context, shape: &[usize]) -> Result<Self> {
        Self::zeros_of(ctx, shape, DType::F32)
    }

    /// A new zeroed tensor of `shape` and `dtype`.
    pub fn zeros_of(ctx: &Context, shape: &[usize], dtype: DType) -> Result<Self> {
        Self::from_host(ctx, &vec![0u8; byte_len(shape, dtype)?], shape, dtype)
    }

    /// Reads an f16 / bf16 tensor back as its 16-bit patterns.
    pub fn read_u16(&self, ctx: &Context) -> Result<Vec<u16>> {
        if self.dtype.size() != 2 {
            return Err(XentError::InvalidArgument(format!(
                "read_u16 of a {:?} tensor",
                self.dtype
            )));
        }
        let bytes = (self.len() * 2).div_ceil(4) * 4;
        let staging = ctx.staging(bytes as u64);
        let mut encoder = ctx
            .shared
            .device
            .create_command_encoder(&Default::default());
        ctx.copy_to(&mut encoder, &self.buffer, self.offset, &staging);
        let words =
            crate::gpu::poller::block(ctx.scoped(ctx.submit_and_read(encoder, &[&staging])))?;
        let words = words.into_iter().next().unwrap_or_default();
        let halves: &[u16] = bytemuck::cast_slice(&words);
        Ok(halves[..self.len()].to_vec())
    }

    /// Reads an f32 tensor back to the host: one submission, mapped when it is done.
    pub fn read_f32(&self, ctx: &Context) -> Result<Vec<f32>> {
        crate::gpu::poller::block(self.read_f32_async(ctx))
    }

    /// The async form of [`DeviceTensor::read_f32`].
    pub async fn read_f32_async(&self, ctx: &Context) -> Result<Vec<f32>> {
        if self.dtype != DType::F32 {
            return Err(XentError::InvalidArgument(format!(
                "read_f32 of a {:?} tensor",
                self.dtype
            )));
        }
        let staging = ctx.staging((self.len() * 4) as u64);
        let mut encoder = ctx
            .shared
            .device
            .create_command_encoder(&Default::default());
        ctx.copy_to(&mut encoder, &self.buffer, self.offset, &staging);
        let mut parts = ctx
            .scoped(ctx.submit_and_read(encoder, &[&staging]))
            .await?;
        Ok(parts.pop().unwrap_or_default())
    }

    /// The buffer.
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// The byte offset in the buffer.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A whole buffer of ours holding values of `dtype`.
    pub(crate) fn from_parts(buffer: wgpu::Buffer, shape: Vec<usize>, dtype: DType) -> Self {
        Self {
            buffer,
            offset: 0,
            shape,
            dtype,
        }
    }

    fn binding_size(&self) -> u64 {
        let bytes = (self.len() * self.dtype.size()) as u64;
        bytes.div_ceil(granule(self.dtype)).max(1) * granule(self.dtype)
    }

    /// As an input of a kernel: logits are bound in whole units of 8 values where the buffer
    /// has the room (so that they can be read 8 at a time, `Context::input_kind`), else as
    /// `bound`.
    pub(crate) fn input_bound(&self, ctx: &Context) -> Bound {
        let Some(dtype) = self.dtype.float().filter(|&d| ctx.wide_loads(d)) else {
            return self.bound();
        };
        let unit = wide_unit(dtype);
        let wide = ((self.len() * dtype.size()) as u64).div_ceil(unit).max(1) * unit;
        if self.offset + wide <= self.buffer.size() && wide <= ctx.max_binding_bytes() {
            return Bound {
                buffer: self.buffer.clone(),
                offset: self.offset,
                size: wide,
            };
        }
        self.bound()
    }

    pub(crate) fn bound(&self) -> Bound {
        Bound {
            buffer: self.buffer.clone(),
            offset: self.offset,
            size: self.binding_size(),
        }
    }
}
