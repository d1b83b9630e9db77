//! `LossCall`: cross_entropy and nll_loss, on host or device tensors, forward or with the
//! fused backward, as one description.

use super::call::{Grad, Input, TargetInput};
use super::{Call, Prepare};
use crate::error::{Result, XentError};
use crate::gpu::ops::device::prepare_device;
use crate::gpu::ops::device::DeviceLoss;
use crate::gpu::ops::loss::{self, Loss, PreparedLoss, Request};
use crate::gpu::ops::loss::{prepare_loss, run_loss};
use crate::gpu::runtime::cancel::settle;
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::device_tensor::DeviceTensor;
use crate::gpu::runtime::scope::scoped;
use crate::options::{LossAndGrad, LossOptions};

/// Which loss a [`LossCall`] computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossKind {
    /// `torch.nn.functional.cross_entropy`: logits in, log_softmax fused.
    CrossEntropy,
    /// `torch.nn.functional.nll_loss`: log-probabilities in, class targets only.
    NllLoss,
}

/// One cross_entropy or nll_loss call: its input and targets (both on the host or both on
/// the device), PyTorch's options, where the gradient goes and whether each row's
/// log-sum-exp is kept.
///
/// ```text
/// LossCall::cross_entropy(logits, targets).options(opts).grad(Grad::Returned).lse(true)
/// ```
#[derive(Clone, Copy, Debug)]
pub struct LossCall<'a> {
    /// cross_entropy or nll_loss.
    pub kind: LossKind,
    /// Logits (cross_entropy) or log-probabilities (nll_loss), `[C]`, `[N, C]` or
    /// `[N, C, d1..dk]`.
    pub input: Input<'a>,
    /// Class indices, or probabilities of the input's shape (cross_entropy).
    pub target: TargetInput<'a>,
    /// `weight`, `ignore_index`, `reduction`, `label_smoothing`, `z_loss`, `softcap`.
    pub options: LossOptions<'a>,
    /// Class weights `[C]` on the device (device calls), read on every run: instead of
    /// `options.weight`, not with it.
    pub device_weight: Option<&'a DeviceTensor>,
    /// Where the gradient goes (the fused backward), if anywhere.
    pub grad: Grad<'a>,
    /// The upstream gradient g = d(objective)/d(loss) (default 1), host calls.
    pub grad_output: f32,
    /// Keep each row's log-sum-exp (cross_entropy): returned, or on the device.
    pub lse: bool,
}

impl<'a> LossCall<'a> {
    /// `cross_entropy(input, target)`, forward, default options.
    pub fn cross_entropy(input: impl Into<Input<'a>>, target: impl Into<TargetInput<'a>>) -> Self {
        Self::new(LossKind::CrossEntropy, input.into(), target.into())
    }

    /// `nll_loss(input, target)`, forward, default options.
    pub fn nll_loss(input: impl Into<Input<'a>>, target: impl Into<TargetInput<'a>>) -> Self {
        Self::new(LossKind::NllLoss, input.into(), target.into())
    }

    fn new(kind: LossKind, input: Input<'a>, target: TargetInput<'a>) -> Self {
        Self {
            kind,
            input,
            target,
            options: LossOptions::default(),
            device_weight: None,
            grad: Grad::None,
            grad_output: 1.0,
            lse: false,
        }
    }

    /// With these options.
    #[must_use = "returns the updated description"]
    pub fn options(self, options: LossOptions<'a>) -> Self {
        Self { options, ..self }
    }

    /// With the gradient going to `grad`.
    #[must_use = "returns the updated description"]
    pub fn grad(self, grad: Grad<'a>) -> Self {
        Self { grad, ..self }
    }

    /// With the upstream gradient `g`.
    #[must_use = "returns the updated description"]
    pub fn grad_output(self, g: f32) -> Self {
        Self {
            grad_output: g,
            ..self
        }
    }

    /// Keeping (or not) each row's log-sum-exp.
    #[must_use = "returns the updated description"]
    pub fn lse(self, lse: bool) -> Self {
        Self { lse, ..self }
    }

    /// With class weights on the device.
    #[must_use = "returns the updated description"]
    pub fn device_weight(self, weight: &'a DeviceTensor) -> Self {
        Self {
            device_weight: Some(weight),
            ..self
        }
    }

    fn loss(&self) -> Loss {
        match self.kind {
            LossKind::CrossEntropy => Loss::CrossEntropy,
            LossKind::NllLoss => Loss::Nll,
        }
    }

    /// The request of a host call, or why there is none.
    fn host_request(&self) -> Result<Request> {
        if self.device_weight.is_some() {
            return Err(XentError::InvalidArgument(
                "device_weight belongs to a device call; a host call takes options.weight".into(),
            ));
        }
        let grad = match self.grad {
            Grad::None => loss::Grad::None,
            Grad::Returned => loss::Grad::OutOfPlace,
            Grad::InPlace => loss::Grad::InPlace,
            Grad::Into(_) => {
                return Err(XentError::InvalidArgument(
                    "Grad::Into writes into device tensors: it needs a device input".into(),
                ))
            }
        };
        self.check_nll(grad)?;
        Ok(Request {
            loss: self.loss(),
            grad,
            grad_output: self.grad_output,
            lse: self.lse,
            embedded: false,
        })
    }

    /// What nll_loss cannot do: its input holds no logits to overwrite or take lse of.
    fn check_nll(&self, grad: loss::Grad) -> Result<()> {
        if self.kind != LossKind::NllLoss {
            return Ok(());
        }
        if grad == loss::Grad::InPlace {
            return Err(XentError::Unsupported(
                "nll_loss writes its gradient into a tensor of its own, not in place".into(),
            ));
        }
        if self.lse {
            return Err(XentError::InvalidArgument(
                "nll_loss computes no log-sum-exp: its input is already log-probabilities".into(),
            ));
        }
        Ok(())
    }

    /// The device form of the call.
    fn device_call(&self, x: &'a DeviceTensor, t: &'a DeviceTensor) -> Result<DeviceLoss<'a>> {
        if self.grad_output != 1.0 {
            return Err(XentError::Unsupported(
                "grad_output scales host calls; a device call's gradient is of the loss itself"
                    .into(),
            ));
        }
        let mut call = DeviceLoss::new(x, t);
        if let Some(w) = self.device_weight {
            call = call.weight(w);
        }
        call =
            match self.grad {
                Grad::None => call,
                Grad::InPlace => call.grad_in_place(),
                Grad::Into(&[g]) => call.grad_into(g),
                Grad::Into(into) => {
                    return Err(XentError::InvalidArgument(format!(
                        "a loss has one gradient: Grad::Into takes one tensor, got {}",
                        into.len()
                    )))
                }
                Grad::Returned => return Err(XentError::InvalidArgument(
                    "a device call keeps its gradient on the device: Grad::InPlace or Grad::Into"
                        .into(),
                )),
            };
        Ok(if self.lse { call.with_lse() } else { call })
    }
}

impl Prepare for LossCall<'_> {
    type Prepared = PreparedLoss;

    fn build(&self, ctx: &Context) -> Result<PreparedLoss> {
        match (self.input, self.target) {
            (Input::Host(x), TargetInput::Host(t)) => {
                prepare_loss(ctx, x, t, &self.options, self.host_request()?)
            }
            (Input::Device(x), TargetInput::Device(t)) => {
                prepare_device(ctx, self.loss(), self.device_call(x, t)?, &self.options)
            }
            _ => Err(mixed()),
        }
    }
}

impl Call for LossCall<'_> {
    type Output = LossAndGrad;

    /// Host calls: the loss, and the gradient and lse when asked for. Device calls: the
    /// loss and the lse read back; the gradient stays where `Grad` put it.
    async fn run_on(&self, ctx: &Context) -> Result<LossAndGrad> {
        match (self.input, self.target) {
            (Input::Host(x), TargetInput::Host(t)) => {
                let req = self.host_request()?;
                let r = scoped(ctx, run_loss(ctx, x, t, &self.options, req)).await?;
                Ok(r.into_loss_and_grad(x.shape()))
            }
            (Input::Device(_), TargetInput::Device(_)) => {
                let step = ctx.prepare_async(self).await?;
                scoped(ctx, submit_once(ctx, |encoder| step.record(encoder))).await?;
                let lse = match step.lse() {
                    Some(lse) => Some(crate::options::Output {
                        data: lse.read_f32_async(ctx).await?,
                        shape: lse.shape().to_vec(),
                    }),
                    None => None,
                };
                Ok(LossAndGrad {
                    loss: step.read_loss_async().await?,
                    grad: None,
                    lse,
                })
            }
            _ => Err(mixed()),
        }
    }
}

fn mixed() -> XentError {
    XentError::InvalidArgument(
        "a call's tensors are all on the host or all on the device, not both".into(),
    )
}

/// A device call run once, inside the caller's error scopes: recorded into a new encoder and
/// submitted (after what dropped runs left mapped is settled, so recording never waits),
/// then its `lse`, where it keeps one, read back.
pub(super) async fn submit_once(
    ctx: &Context,
    record: impl FnOnce(&mut wgpu::CommandEncoder),
) -> Result<()> {
    settle(ctx).await?;
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    record(&mut encoder);
    ctx.queue().submit([encoder.finish()]);
    Ok(())
}
