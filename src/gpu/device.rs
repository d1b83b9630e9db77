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

use super::buffers::Bound;
use super::context::Context;
use super::device_tensor::{DeviceDType, DeviceTensor};
use super::loss::{ChunkInputs, Grad, Loss, LossSpec, PreparedLoss, Request};
use crate::error::{Result, XentError};
use crate::options::{DType, LossOptions};
use crate::problem::check_loss_shapes;

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
    pub(crate) fn prepare_device(
        &self,
        loss: Loss,
        call: DeviceLoss,
        opts: &LossOptions,
    ) -> Result<PreparedLoss<'_>> {
        if loss == Loss::Nll && matches!(call.grad, DeviceGrad::InPlace) {
            return Err(XentError::Unsupported(
                "nll_loss writes its gradient into a tensor of its own (DeviceGrad::Into)".into(),
            ));
        }
        if loss == Loss::Nll && call.lse {
            return Err(XentError::InvalidArgument(
                "nll_loss computes no log-sum-exp: its input is already log-probabilities".into(),
            ));
        }
        let (spec, grad) = device_spec(loss, &call, opts)?;
        let (logits, target) = (call.logits, call.target);
        let probs = spec.probs;
        let inputs = vec![ChunkInputs {
            logits: logits.input_bound(self),
            targets: if probs {
                Bound::whole(self.upload::<i32>("targets", &[])?)
            } else {
                target.bound()
            },
            probs: probs.then(|| target.bound()),
            rows: 0..spec.layout.rows(),
            elems: 0..logits.len(),
            seg_first: 0,
            classes: 0..spec.layout.classes,
        }];
        let req = Request {
            loss,
            grad,
            grad_output: 1.0,
            lse: call.lse,
        };
        let mut plan =
            pollster::block_on(self.scoped(async { self.build_loss(&spec, inputs, opts, req) }))?;
        plan.set_read_grad(false);
        Ok(plan)
    }
}

/// A device call checked into a `LossSpec`, and where its gradient goes.
fn device_spec(loss: Loss, call: &DeviceLoss, opts: &LossOptions) -> Result<(LossSpec, Grad)> {
    let (logits, target) = (call.logits, call.target);
    let dtype = logits.dtype().logits().ok_or_else(|| {
        XentError::InvalidArgument(format!(
            "logits must be f32, f16 or bf16, not {:?}",
            logits.dtype()
        ))
    })?;
    let probs = target.dtype() == DeviceDType::F32;
    let target_words = match target.dtype() {
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
    let shape = logits.shape();
    let problem = check_loss_shapes(loss, shape, logits.len(), target.shape(), probs, opts)?;
    if problem.layout.rows() == 0 {
        return Err(XentError::InvalidShape(
            "nothing to prepare: the batch is empty".into(),
        ));
    }
    if let Some(w) = call.weight {
        check_device_weight(w, problem.layout.classes, opts)?;
    }
    let (grad, grad_into, grad_pack) = device_grad(call, dtype)?;
    let spec = LossSpec {
        layout: problem.layout,
        input_shape: shape.to_vec(),
        out_shape: problem.out_shape,
        target_shape: target.shape().to_vec(),
        dtype,
        probs,
        target_words,
        unsigned_targets: target.dtype() == DeviceDType::U32,
        ignore_index,
        check_targets: !probs,
        grad_into,
        grad_pack,
        weight: call.weight.map(|w| w.bound()),
    };
    Ok((spec, grad))
}

/// Class weights on the device: f32 `[C]`, and not also in `LossOptions::weight`.
fn check_device_weight(w: &DeviceTensor, classes: usize, opts: &LossOptions) -> Result<()> {
    if opts.weight.is_some() {
        return Err(XentError::InvalidArgument(
            "weights given twice: as a device tensor and in LossOptions::weight".into(),
        ));
    }
    if w.dtype() != DeviceDType::F32 {
        return Err(XentError::InvalidArgument(format!(
            "weights must be f32, not {:?}",
            w.dtype()
        )));
    }
    if w.shape() != [classes] {
        return Err(XentError::WeightShape {
            classes,
            shape: w.shape().to_vec(),
        });
    }
    Ok(())
}

/// Where a device call's gradient goes. A 16-bit gradient (in place over 16-bit logits, or
/// into a 16-bit tensor) is computed in f32 and packed, rounded to nearest even.
fn device_grad(call: &DeviceLoss, dtype: DType) -> Result<(Grad, GradInto, GradPack)> {
    let logits = call.logits;
    Ok(match call.grad {
        DeviceGrad::None => (Grad::None, None, None),
        DeviceGrad::InPlace if dtype == DType::F32 => (Grad::InPlace, None, None),
        DeviceGrad::InPlace => (Grad::OutOfPlace, None, Some((logits.bound(), dtype))),
        DeviceGrad::Into(g) => match g.dtype().logits() {
            Some(DType::F32) if g.shape() == logits.shape() => {
                (Grad::OutOfPlace, Some(g.bound()), None)
            }
            Some(half) if g.shape() == logits.shape() => {
                (Grad::OutOfPlace, None, Some((g.bound(), half)))
            }
            _ => {
                return Err(XentError::InvalidShape(format!(
                "the gradient must be f32, f16 or bf16 of the logits' shape {:?}, not {:?} {:?}",
                logits.shape(),
                g.dtype(),
                g.shape()
            )))
            }
        },
    })
}

type GradInto = Option<Bound>;
type GradPack = Option<(Bound, DType)>;
