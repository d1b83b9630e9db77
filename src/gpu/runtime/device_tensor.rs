//! Tensors that live in wgpu buffers, the caller's own or ours (`DeviceTensor`): wrapped
//! without a copy, checked once, bound where they lie.

use crate::error::{Result, XentError};
use crate::gpu::runtime::buffers::{output, upload};
use crate::gpu::runtime::buffers::{wide_unit, Bound};
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::program::{BufferCopy, Program};
use crate::gpu::runtime::readback::{copy_to, staging, submit_and_read};
use crate::gpu::runtime::scope::scoped;
use crate::options::DType;

/// The bytes of a group of four elements, the unit in which kernels read logits and
/// probabilities and write f32 results.
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
    /// whole 4-byte words (what WebGPU binds), within one binding.
    ///
    /// Exact-size buffers work. Kernels read logits and probabilities (and write f32
    /// gradients) a group of four elements at a time, so where the buffer ends inside the
    /// last group (f32 data not reaching a multiple of 16 bytes, f16/bf16 not reaching 8),
    /// a call stages that tensor through a padded buffer of its own: one more copy of the
    /// tensor in memory, and a device copy in (and out, for an output) on every run. Leave
    /// that much room after the data to avoid it.
    pub fn from_buffer(
        ctx: &Context,
        buffer: &wgpu::Buffer,
        offset: u64,
        shape: &[usize],
        dtype: DType,
    ) -> Result<Self> {
        byte_len(shape, dtype)?;
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
        let need = t.word_bytes();
        if offset
            .checked_add(need)
            .is_none_or(|end| end > buffer.size())
        {
            return Err(XentError::InvalidShape(format!(
                "shape {shape:?} of {dtype:?} needs {need} bytes from offset {offset} (the data rounded up to whole 4-byte words), but the buffer has {}",
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
        let buffer = upload(ctx, "device tensor", data)?;
        Self::from_buffer(ctx, &buffer, 0, shape, dtype)
    }

    /// A new zeroed f32 tensor of `shape` (e.g. a gradient to write into).
    pub fn zeros(ctx: &Context, shape: &[usize]) -> Result<Self> {
        Self::zeros_of(ctx, shape, DType::F32)
    }

    /// A new zeroed tensor of `shape` and `dtype`.
    pub fn zeros_of(ctx: &Context, shape: &[usize], dtype: DType) -> Result<Self> {
        // wgpu zero-initialises every buffer: no host zeros to make and upload.
        let words = byte_len(shape, dtype)?.div_ceil(4);
        let buffer = output(ctx, "device tensor", words)?;
        Self::from_buffer(ctx, &buffer, 0, shape, dtype)
    }

    /// Reads an f16 / bf16 tensor back as its 16-bit patterns.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_u16(&self, ctx: &Context) -> Result<Vec<u16>> {
        if self.dtype.size() != 2 {
            return Err(XentError::InvalidArgument(format!(
                "read_u16 of a {:?} tensor",
                self.dtype
            )));
        }
        let bytes = (self.len() * 2).div_ceil(4) * 4;
        let staging = staging(ctx, bytes as u64);
        let mut encoder = ctx
            .shared
            .device
            .create_command_encoder(&Default::default());
        copy_to(&mut encoder, &self.buffer, self.offset, &staging);
        let words = crate::gpu::runtime::poller::block(scoped(
            ctx,
            submit_and_read(ctx, encoder, &[&staging]),
        ))?;
        let words = words.into_iter().next().unwrap_or_default();
        let halves: &[u16] = bytemuck::cast_slice(&words);
        Ok(halves[..self.len()].to_vec())
    }

    /// Reads an f32 tensor back to the host: one submission, mapped when it is done.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_f32(&self, ctx: &Context) -> Result<Vec<f32>> {
        crate::gpu::runtime::poller::block(self.read_f32_async(ctx))
    }

    /// The async form of [`DeviceTensor::read_f32`].
    pub async fn read_f32_async(&self, ctx: &Context) -> Result<Vec<f32>> {
        if self.dtype != DType::F32 {
            return Err(XentError::InvalidArgument(format!(
                "read_f32 of a {:?} tensor",
                self.dtype
            )));
        }
        let staging = staging(ctx, (self.len() * 4) as u64);
        let mut encoder = ctx
            .shared
            .device
            .create_command_encoder(&Default::default());
        copy_to(&mut encoder, &self.buffer, self.offset, &staging);
        let mut parts = scoped(ctx, submit_and_read(ctx, encoder, &[&staging])).await?;
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

    /// The data's bytes rounded up to whole `unit`s, never zero.
    fn bytes_in(&self, unit: u64) -> u64 {
        let bytes = (self.len() * self.dtype.size()) as u64;
        bytes.div_ceil(unit).max(1) * unit
    }

    /// The data's bytes in whole 4-byte words: what `bound` binds and staging copies.
    fn word_bytes(&self) -> u64 {
        self.bytes_in(4)
    }

    /// The tensor bound where it lies, rounded up to `unit` bytes, if the buffer has them.
    fn bound_in(&self, ctx: &Context, unit: u64) -> Option<Bound> {
        let size = self.bytes_in(unit);
        (self.offset + size <= self.buffer.size() && size <= ctx.max_binding_bytes()).then(|| {
            Bound {
                buffer: self.buffer.clone(),
                offset: self.offset,
                size,
            }
        })
    }

    /// For kernels that read or write the tensor a group of four elements at a time (logits,
    /// probabilities, f32 results), or eight with wide loads where the buffer has room: the
    /// tensor where it lies, or else a padded buffer of ours that `copies` stages it through,
    /// copied in before the dispatches when `access` reads and back out after them when it
    /// writes.
    pub(crate) fn grouped(
        &self,
        ctx: &Context,
        copies: &mut Program,
        access: Access,
    ) -> Result<Bound> {
        let group = granule(self.dtype);
        let unit = match self.dtype.float().filter(|&d| ctx.wide_loads(d)) {
            Some(d) => wide_unit(d),
            None => group,
        };
        if let Some(b) = self
            .bound_in(ctx, unit)
            .or_else(|| self.bound_in(ctx, group))
        {
            return Ok(b);
        }
        let size = self.bytes_in(unit);
        if size > ctx.max_binding_bytes() {
            return Err(XentError::Unsupported(format!(
                "a device tensor must fit one binding ({} bytes) padded to whole groups; this one needs {size}",
                ctx.max_binding_bytes()
            )));
        }
        let scratch = output(ctx, "staged device tensor", (size / 4) as usize)?;
        let copy = |src: &wgpu::Buffer, src_offset, dst: &wgpu::Buffer, dst_offset| BufferCopy {
            src: src.clone(),
            src_offset,
            dst: dst.clone(),
            dst_offset,
            bytes: self.word_bytes(),
        };
        if access != Access::Write {
            copies.copy_in(copy(&self.buffer, self.offset, &scratch, 0));
        }
        if access != Access::Read {
            copies.copy_out(copy(&scratch, 0, &self.buffer, self.offset));
        }
        Ok(Bound::whole(scratch))
    }

    /// The tensor where it lies, in whole 4-byte words: for kernels that read or write it
    /// one element (or one 4-byte word) at a time.
    pub(crate) fn bound(&self) -> Bound {
        Bound {
            buffer: self.buffer.clone(),
            offset: self.offset,
            size: self.word_bytes(),
        }
    }
}

/// What a kernel does with a device tensor it binds (`DeviceTensor::grouped`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
    ReadWrite,
}
