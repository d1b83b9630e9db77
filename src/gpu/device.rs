//! The device-resident API: tensors that live in wgpu buffers (the caller's own or ours),
//! and loss calls recorded into the caller's command encoder.
//!
//! ```text
//! let logits = DeviceTensor::from_buffer(&ctx, &my_logits, 0, &[n, c], DeviceDType::F32)?;
//! let targets = DeviceTensor::from_buffer(&ctx, &my_targets, 0, &[n], DeviceDType::I64)?;
//! let call = DeviceLoss::new(&logits, &targets).grad(DeviceGrad::InPlace);
//! let step = ctx.prepare_cross_entropy_device(call, &opts)?;
//! step.record(&mut encoder);          // joins the caller's own submission
//! queue.submit([encoder.finish()]);
//! let loss = step.read_loss()?;       // the one scalar read back
//! ```

use super::buffers::{wide_unit, Bound};
use super::context::Context;
use super::loss::{ChunkInputs, Grad, Loss, LossSpec, PreparedLoss, Request};
use crate::error::{Result, XentError};
use crate::layout::check_loss_shapes;
use crate::options::{DType, LossOptions};

/// Element types of device tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceDType {
    /// f32 logits, probabilities, weights or results.
    F32,
    /// f16 logits (16-bit patterns).
    F16,
    /// bf16 logits (16-bit patterns).
    BF16,
    /// i32 class targets.
    I32,
    /// u32 class targets.
    U32,
    /// i64 class targets, read in WGSL as pairs of 32-bit words.
    I64,
}

impl DeviceDType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DeviceDType::F16 | DeviceDType::BF16 => 2,
            DeviceDType::F32 | DeviceDType::I32 | DeviceDType::U32 => 4,
            DeviceDType::I64 => 8,
        }
    }

    /// The bytes a binding must cover beyond the data: kernels read logits and
    /// probabilities four elements at a time.
    fn granule(self) -> u64 {
        match self {
            DeviceDType::F32 => 16,
            DeviceDType::F16 | DeviceDType::BF16 => 8,
            _ => 4,
        }
    }

    fn logits(self) -> Option<DType> {
        match self {
            DeviceDType::F32 => Some(DType::F32),
            DeviceDType::F16 => Some(DType::F16),
            DeviceDType::BF16 => Some(DType::BF16),
            _ => None,
        }
    }
}

/// Bytes of `shape` elements of `dtype`, or `InvalidShape` when that overflows.
fn byte_len(shape: &[usize], dtype: DeviceDType) -> Result<usize> {
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
    dtype: DeviceDType,
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
        dtype: DeviceDType,
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
        let need = (bytes as u64).div_ceil(dtype.granule()).max(1) * dtype.granule();
        if offset
            .checked_add(need)
            .is_none_or(|end| end > buffer.size())
        {
            return Err(XentError::InvalidShape(format!(
                "shape {shape:?} of {dtype:?} needs {need} bytes from offset {offset} (the data rounded up to {} bytes), but the buffer has {}",
                dtype.granule(),
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
        dtype: DeviceDType,
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
        Self::zeros_of(ctx, shape, DeviceDType::F32)
    }

    /// A new zeroed tensor of `shape` and `dtype`.
    pub fn zeros_of(ctx: &Context, shape: &[usize], dtype: DeviceDType) -> Result<Self> {
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
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        ctx.copy_to(&mut encoder, &self.buffer, self.offset, &staging);
        let words = pollster::block_on(ctx.scoped(ctx.submit_and_read(encoder, &[&staging])))?;
        let words = words.into_iter().next().unwrap_or_default();
        let halves: &[u16] = bytemuck::cast_slice(&words);
        Ok(halves[..self.len()].to_vec())
    }

    /// Reads an f32 tensor back to the host: one submission, mapped when it is done.
    pub fn read_f32(&self, ctx: &Context) -> Result<Vec<f32>> {
        pollster::block_on(self.read_f32_async(ctx))
    }

    /// The async form of [`DeviceTensor::read_f32`].
    pub async fn read_f32_async(&self, ctx: &Context) -> Result<Vec<f32>> {
        if self.dtype != DeviceDType::F32 {
            return Err(XentError::InvalidArgument(format!(
                "read_f32 of a {:?} tensor",
                self.dtype
            )));
        }
        let staging = ctx.staging((self.len() * 4) as u64);
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
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
    pub fn dtype(&self) -> DeviceDType {
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
    pub(crate) fn from_parts(buffer: wgpu::Buffer, shape: Vec<usize>, dtype: DeviceDType) -> Self {
        Self {
            buffer,
            offset: 0,
            shape,
            dtype,
        }
    }

    fn binding_size(&self) -> u64 {
        let bytes = (self.len() * self.dtype.size()) as u64;
        bytes.div_ceil(self.dtype.granule()).max(1) * self.dtype.granule()
    }

    /// As an input of a kernel: logits are bound in whole units of 8 values where the buffer
    /// has the room (so that they can be read 8 at a time, `Context::input_kind`), else as
    /// `bound`.
    pub(crate) fn input_bound(&self, ctx: &Context) -> Bound {
        let Some(dtype) = self.dtype.logits().filter(|&d| ctx.wide_loads(d)) else {
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

/// Where the fused backward of a device call writes d(loss)/d(logits).
#[derive(Clone, Copy, Debug)]
pub enum DeviceGrad<'a> {
    /// Forward only.
    None,
    /// Over the logits themselves (f32 logits): one N×C buffer for both.
    InPlace,
    /// Into this f32 tensor of the logits' shape.
    Into(&'a DeviceTensor),
}

/// The device tensors of one loss call: the logits and targets, and optionally the class
/// weights, where the gradient goes and whether each row's lse is kept.
///
/// ```text
/// DeviceLoss::new(&logits, &targets).weight(&w).grad(DeviceGrad::InPlace).with_lse()
/// ```
#[derive(Clone, Copy, Debug)]
pub struct DeviceLoss<'a> {
    logits: &'a DeviceTensor,
    target: &'a DeviceTensor,
    weight: Option<&'a DeviceTensor>,
    grad: DeviceGrad<'a>,
    lse: bool,
}

impl<'a> DeviceLoss<'a> {
    /// f32/f16/bf16 logits, and i32/u32/i64 class targets or f32 probabilities of the
    /// logits' shape. Forward only, no weights, no lse.
    pub fn new(logits: &'a DeviceTensor, target: &'a DeviceTensor) -> Self {
        Self {
            logits,
            target,
            weight: None,
            grad: DeviceGrad::None,
            lse: false,
        }
    }

    /// Class weights: an f32 tensor of shape `[C]` on the device, read on every run (so the
    /// caller may change them between runs). Instead of `LossOptions::weight`, not with it.
    pub fn weight(self, weight: &'a DeviceTensor) -> Self {
        Self {
            weight: Some(weight),
            ..self
        }
    }

    /// Also computes the gradient, and where it goes.
    pub fn grad(self, grad: DeviceGrad<'a>) -> Self {
        Self { grad, ..self }
    }

    /// Keeps each row's log-sum-exp on the device ([`PreparedLoss::lse`]); cross_entropy only.
    pub fn with_lse(self) -> Self {
        Self { lse: true, ..self }
    }
}

impl Context {
    /// Builds a `cross_entropy` call over tensors already on the device (see [`DeviceLoss`]).
    /// Weights come from the call's device tensor, or from `opts.weight` (C values, uploaded
    /// once here). Record it into your own encoder with [`PreparedLoss::record`], as often
    /// as the buffers' contents change; the loss stays on the device ([`PreparedLoss::loss`],
    /// and [`PreparedLoss::lse`] when asked for) until [`PreparedLoss::read_loss`].
    ///
    /// A class target out of range cannot be seen from the host: the kernel flags the first
    /// one, and reading the loss returns the same error as the host API, with its position
    /// and value. The tensors must each fit one binding.
    pub fn prepare_cross_entropy_device(
        &self,
        call: DeviceLoss,
        opts: &LossOptions,
    ) -> Result<PreparedLoss<'_>> {
        self.prepare_device(Loss::CrossEntropy, call, opts)
    }

    /// As [`Context::prepare_cross_entropy_device`] for `nll_loss` (the input holds
    /// log-probabilities; class targets only). Its gradient is `-(g/D)·w[y]` at the target,
    /// written into a tensor of its own ([`DeviceGrad::Into`]).
    pub fn prepare_nll_loss_device(
        &self,
        call: DeviceLoss,
        opts: &LossOptions,
    ) -> Result<PreparedLoss<'_>> {
        if matches!(call.grad, DeviceGrad::InPlace) {
            return Err(XentError::Unsupported(
                "nll_loss writes its gradient into a tensor of its own (DeviceGrad::Into)".into(),
            ));
        }
        if call.lse {
            return Err(XentError::InvalidArgument(
                "nll_loss computes no log-sum-exp: its input is already log-probabilities".into(),
            ));
        }
        self.prepare_device(Loss::Nll, call, opts)
    }

    fn prepare_device(
        &self,
        loss: Loss,
        call: DeviceLoss,
        opts: &LossOptions,
    ) -> Result<PreparedLoss<'_>> {
        let DeviceLoss {
            logits,
            target,
            weight,
            grad,
            lse,
        } = call;
        let dtype = logits.dtype.logits().ok_or_else(|| {
            XentError::InvalidArgument(format!(
                "logits must be f32, f16 or bf16, not {:?}",
                logits.dtype
            ))
        })?;
        let probs = target.dtype == DeviceDType::F32;
        let target_words = match target.dtype {
            DeviceDType::I64 => 2,
            DeviceDType::I32 | DeviceDType::U32 | DeviceDType::F32 => 1,
            d => {
                return Err(XentError::InvalidArgument(format!(
                    "targets must be i32, u32, i64 or f32, not {d:?}"
                )))
            }
        };
        let ignore_index = i32::try_from(opts.ignore_index).map_err(|_| {
            XentError::InvalidArgument(format!(
                "ignore_index {} does not fit in 32 bits, which device targets are compared in",
                opts.ignore_index
            ))
        })?;
        let problem = check_loss_shapes(
            loss,
            &logits.shape,
            logits.len(),
            &target.shape,
            probs,
            opts,
        )?;
        if problem.layout.rows() == 0 {
            return Err(XentError::InvalidShape(
                "nothing to prepare: the batch is empty".into(),
            ));
        }
        if let Some(w) = weight {
            if opts.weight.is_some() {
                return Err(XentError::InvalidArgument(
                    "weights given twice: as a device tensor and in LossOptions::weight".into(),
                ));
            }
            let classes = problem.layout.classes;
            if w.dtype != DeviceDType::F32 {
                return Err(XentError::InvalidArgument(format!(
                    "weights must be f32, not {:?}",
                    w.dtype
                )));
            }
            if w.shape != [classes] {
                return Err(XentError::WeightShape {
                    classes,
                    shape: w.shape.clone(),
                });
            }
        }
        // A 16-bit gradient (in place over 16-bit logits, or into a 16-bit tensor) is computed
        // in f32 and packed, rounded to nearest even.
        let (grad, grad_into, grad_pack) = match grad {
            DeviceGrad::None => (Grad::None, None, None),
            DeviceGrad::InPlace if dtype == DType::F32 => (Grad::InPlace, None, None),
            DeviceGrad::InPlace => (Grad::OutOfPlace, None, Some((logits.bound(), dtype))),
            DeviceGrad::Into(g) => {
                if g.shape != logits.shape || g.dtype.logits().is_none() {
                    return Err(XentError::InvalidShape(format!(
                        "the gradient must be f32, f16 or bf16 of the logits' shape {:?}, not {:?} {:?}",
                        logits.shape, g.dtype, g.shape
                    )));
                }
                match g.dtype.logits() {
                    Some(DType::F32) => (Grad::OutOfPlace, Some(g.bound()), None),
                    Some(half) => (Grad::OutOfPlace, None, Some((g.bound(), half))),
                    None => unreachable!("checked above"),
                }
            }
        };
        let spec = LossSpec {
            layout: problem.layout,
            input_shape: logits.shape.clone(),
            out_shape: problem.out_shape.clone(),
            target_shape: target.shape.clone(),
            dtype,
            probs,
            target_words,
            unsigned_targets: target.dtype == DeviceDType::U32,
            ignore_index,
            check_targets: !probs,
            grad_into,
            grad_pack,
            weight: weight.map(|w| w.bound()),
        };
        let inputs = vec![ChunkInputs {
            logits: logits.input_bound(self),
            targets: if probs {
                Bound::whole(self.upload::<i32>("targets", &[])?)
            } else {
                target.bound()
            },
            probs: probs.then(|| target.bound()),
            rows: 0..problem.layout.rows(),
            elems: 0..logits.len(),
            seg_first: 0,
            classes: 0..problem.layout.classes,
        }];
        let req = Request {
            loss,
            grad,
            grad_output: 1.0,
            lse,
        };
        let mut plan =
            pollster::block_on(self.scoped(async { self.build_loss(&spec, inputs, opts, req) }))?;
        plan.set_read_grad(false);
        Ok(plan)
    }
}
