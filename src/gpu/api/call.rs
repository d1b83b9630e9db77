//! What every call description is made of: an input on the host or the device, targets on
//! either, and the one way to ask for a gradient.

use crate::error::{Result, XentError};
use crate::gpu::runtime::device_tensor::DeviceTensor;
use crate::options::{FloatTensor, Target, Tensor};

/// A float input: host data (f32, or f16 / bf16 bit patterns) or a tensor on the device.
/// Every tensor-like value converts into it with `.into()`.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// Host data, uploaded when the call is prepared.
    Host(FloatTensor<'a>),
    /// A tensor already on the device, read on every run.
    Device(&'a DeviceTensor),
}

impl<'a> From<FloatTensor<'a>> for Input<'a> {
    fn from(t: FloatTensor<'a>) -> Self {
        Input::Host(t)
    }
}

impl<'a> From<Tensor<'a, f32>> for Input<'a> {
    fn from(t: Tensor<'a, f32>) -> Self {
        Input::Host(t.into())
    }
}

impl<'a> From<Tensor<'a, half::f16>> for Input<'a> {
    fn from(t: Tensor<'a, half::f16>) -> Self {
        Input::Host(t.into())
    }
}

impl<'a> From<Tensor<'a, half::bf16>> for Input<'a> {
    fn from(t: Tensor<'a, half::bf16>) -> Self {
        Input::Host(t.into())
    }
}

impl<'a> From<&'a DeviceTensor> for Input<'a> {
    fn from(t: &'a DeviceTensor) -> Self {
        Input::Device(t)
    }
}

/// The targets of a loss call: host class indices or probabilities, or a device tensor.
#[derive(Clone, Copy, Debug)]
pub enum TargetInput<'a> {
    /// Host targets, checked when the call is prepared.
    Host(Target<'a>),
    /// Targets on the device: class indices (i32, u32, i64) checked by the kernels, or f32
    /// probabilities of the input's shape.
    Device(&'a DeviceTensor),
}

impl<'a> From<Target<'a>> for TargetInput<'a> {
    fn from(t: Target<'a>) -> Self {
        TargetInput::Host(t)
    }
}

impl<'a> From<&'a DeviceTensor> for TargetInput<'a> {
    fn from(t: &'a DeviceTensor) -> Self {
        TargetInput::Device(t)
    }
}

/// Where a call's gradient goes, if anywhere: the one way to ask for it.
#[derive(Clone, Copy, Debug, Default)]
pub enum Grad<'a> {
    /// The forward alone.
    #[default]
    None,
    /// Computed and read back with the results (host inputs).
    Returned,
    /// Written over the input itself: one buffer the input's size for both. Host inputs get
    /// it read back as with `Returned`; device inputs have it in their own buffer.
    InPlace,
    /// Written into these device tensors (device inputs), one per differentiable input in
    /// the call's order: the loss's input; or linear_cross_entropy's input, weight and
    /// (optionally) bias.
    Into(&'a [&'a DeviceTensor]),
}

impl<'a> Grad<'a> {
    /// Whether a host call (`what`) returns its gradient: `None` or `Returned`.
    pub(crate) fn returned(self, what: &str) -> Result<bool> {
        match self {
            Grad::None => Ok(false),
            Grad::Returned => Ok(true),
            g => Err(XentError::InvalidArgument(format!(
                "{what} returns its gradient (Grad::Returned), not {g:?}"
            ))),
        }
    }

    /// The tensors a device call (`what`) writes its gradients into, `counts` of them:
    /// `None`, or `Into`.
    pub(crate) fn tensors(
        self,
        what: &str,
        counts: std::ops::RangeInclusive<usize>,
    ) -> Result<Option<&'a [&'a DeviceTensor]>> {
        match self {
            Grad::None => Ok(None),
            Grad::Into(t) if counts.contains(&t.len()) => Ok(Some(t)),
            g => Err(XentError::InvalidArgument(format!(
                "{what} writes its gradients into {} to {} device tensors (Grad::Into), not {g:?}",
                counts.start(),
                counts.end()
            ))),
        }
    }
}
