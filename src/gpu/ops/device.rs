//! A loss call on device tensors (a `LossCall` whose input and targets are `DeviceTensor`s,
//! src/gpu/api/loss.rs), built into a `PreparedLoss` recorded into the caller's encoder.
//!
//! ```text
//! let logits = DeviceTensor::from_buffer(&ctx, &my_logits, 0, &[n, c], DType::F32)?;
//! let targets = DeviceTensor::from_buffer(&ctx, &my_targets, 0, &[n], DType::I64)?;
//! let step = ctx.prepare(&LossCall::cross_entropy(&logits, &targets).grad(Grad::InPlace))?;
//! step.record(&mut encoder);          // joins the caller's own submission
//! queue.submit([encoder.finish()]);
//! let loss = step.read_loss()?;       // the one scalar read back
//! ```

use crate::error::{Result, XentError};
use crate::gpu::ops::loss::encode::build_loss;
use crate::gpu::ops::loss::{ChunkInputs, Grad, Loss, LossSpec, PreparedLoss, Request};
use crate::gpu::runtime::buffers::upload;
use crate::gpu::runtime::buffers::Bound;
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::device_tensor::{Access, DeviceTensor};
use crate::gpu::runtime::program::Program;
use crate::options::{DType, Float, LossOptions};
use crate::problem::check_loss_shapes;

/// The device tensors of one loss call: the logits and targets, and optionally the class
/// weights, where the gradient goes and whether each row's lse is kept.
///
/// ```text
/// DeviceLoss::new(&logits, &targets).weight(&w).grad_in_place().with_lse()
/// ```
#[derive(Clone, Copy, Debug)]
pub(crate) struct DeviceLoss<'a> {
    logits: &'a DeviceTensor,
    target: &'a DeviceTensor,
    weight: Option<&'a DeviceTensor>,
    grad: Grad,
    grad_into: Option<&'a DeviceTensor>,
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
            grad: Grad::None,
            grad_into: None,
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

    /// Also computes the gradient, over the logits themselves: one N×C buffer for both.
    /// 16-bit logits get it computed in f32 and rounded to nearest even. cross_entropy only.
    pub fn grad_in_place(self) -> Self {
        Self {
            grad: Grad::InPlace,
            grad_into: None,
            ..self
        }
    }

    /// Also computes the gradient, into this f32, f16 or bf16 tensor of the logits' shape.
    pub fn grad_into(self, grad: &'a DeviceTensor) -> Self {
        Self {
            grad: Grad::OutOfPlace,
            grad_into: Some(grad),
            ..self
        }
    }

    /// Keeps each row's log-sum-exp on the device ([`PreparedLoss::lse`]); cross_entropy only.
    pub fn with_lse(self) -> Self {
        Self { lse: true, ..self }
    }
}

pub(crate) fn prepare_device(
    ctx: &Context,
    loss: Loss,
    call: DeviceLoss,
    opts: &LossOptions,
) -> Result<PreparedLoss> {
    prepare_device_scaled(ctx, loss, call, opts, None)
}

/// As `prepare_device`; `embedded` with the upstream gradient `grad_output`: for a call
/// recorded inside a larger program (linear_cross_entropy's chunks), which reads nothing
/// back through it.
pub(crate) fn prepare_device_scaled(
    ctx: &Context,
    loss: Loss,
    call: DeviceLoss,
    opts: &LossOptions,
    embedded: Option<f32>,
) -> Result<PreparedLoss> {
    if loss == Loss::Nll && call.grad == Grad::InPlace {
        return Err(XentError::Unsupported(
            "nll_loss writes its gradient into a tensor of its own (Grad::Into(&[&grad]))".into(),
        ));
    }
    if loss == Loss::Nll && call.lse {
        return Err(XentError::InvalidArgument(
            "nll_loss computes no log-sum-exp: its input is already log-probabilities".into(),
        ));
    }
    let mut staged = Program::default();
    let (spec, grad) = device_spec(ctx, loss, &call, opts, &mut staged)?;
    let (logits, target) = (call.logits, call.target);
    let probs = spec.probs;
    let logits_access = match grad {
        Grad::InPlace => Access::ReadWrite,
        _ => Access::Read,
    };
    let inputs = vec![ChunkInputs {
        logits: logits.grouped(ctx, &mut staged, logits_access)?,
        targets: if probs {
            Bound::whole(upload::<i32>(ctx, "targets", &[])?)
        } else {
            target.bound()
        },
        probs: match probs {
            true => Some(target.grouped(ctx, &mut staged, Access::Read)?),
            false => None,
        },
        rows: 0..spec.layout.rows(),
        elems: 0..logits.len(),
        seg_first: 0,
        classes: 0..spec.layout.classes,
    }];
    let req = Request {
        loss,
        grad,
        grad_output: embedded.unwrap_or(1.0),
        lse: call.lse,
        embedded: embedded.is_some(),
    };
    let mut plan = build_loss(ctx, &spec, inputs, opts, req)?;
    plan.stage(staged);
    Ok(plan)
}

/// A device call checked into a `LossSpec`, and where its gradient goes; device tensors
/// staged through padded buffers record their copies into `staged`.
fn device_spec(
    ctx: &Context,
    loss: Loss,
    call: &DeviceLoss,
    opts: &LossOptions,
    staged: &mut Program,
) -> Result<(LossSpec, Grad)> {
    let (logits, target) = (call.logits, call.target);
    let dtype = logits.dtype().float().ok_or_else(|| {
        XentError::InvalidArgument(format!(
            "logits must be f32, f16 or bf16, not {:?}",
            logits.dtype()
        ))
    })?;
    let probs = target.dtype() == DType::F32;
    let target_words = match target.dtype() {
        DType::I64 => 2,
        DType::I32 | DType::U32 | DType::F32 => 1,
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
    let (grad, grad_into, grad_pack) = device_grad(ctx, call, dtype, staged)?;
    let spec = LossSpec {
        layout: problem.layout,
        input_shape: shape.to_vec(),
        out_shape: problem.out_shape,
        target_shape: target.shape().to_vec(),
        dtype,
        probs,
        target_words,
        unsigned_targets: target.dtype() == DType::U32,
        ignore_index,
        check_targets: !probs,
        grad_into,
        grad_pack,
        weight: call.weight.map(|w| w.bound()),
        uploaded: false,
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
    if w.dtype() != DType::F32 {
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

/// Where a device call's gradient goes. A 16-bit gradient (in place over 16-bit logits,
/// or into a 16-bit tensor) is computed in f32 and packed, rounded to nearest even.
fn device_grad(
    ctx: &Context,
    call: &DeviceLoss,
    dtype: Float,
    staged: &mut Program,
) -> Result<(Grad, GradInto, GradPack)> {
    let logits = call.logits;
    let into = match (call.grad, call.grad_into) {
        (Grad::None, _) => return Ok((Grad::None, None, None)),
        (Grad::InPlace, _) if dtype == Float::F32 => return Ok((Grad::InPlace, None, None)),
        (Grad::InPlace, _) => return Ok((Grad::OutOfPlace, None, Some((logits.bound(), dtype)))),
        (Grad::OutOfPlace, into) => into,
    };
    match into.map(|g| (g, g.dtype().float())) {
        Some((g, Some(Float::F32))) if g.shape() == logits.shape() => {
            let g = g.grouped(ctx, staged, Access::Write)?;
            Ok((Grad::OutOfPlace, Some(g), None))
        }
        Some((g, Some(half))) if g.shape() == logits.shape() => {
            Ok((Grad::OutOfPlace, None, Some((g.bound(), half))))
        }
        Some((g, _)) => Err(XentError::InvalidShape(format!(
            "the gradient must be f32, f16 or bf16 of the logits' shape {:?}, not {:?} {:?}",
            logits.shape(),
            g.dtype(),
            g.shape()
        ))),
        None => Err(XentError::InvalidArgument(
            "an out-of-place device gradient needs a tensor to go into".into(),
        )),
    }
}

type GradInto = Option<Bound>;
type GradPack = Option<(Bound, Float)>;
