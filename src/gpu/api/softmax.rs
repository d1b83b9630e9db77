//! `SoftmaxCall`: log_softmax and softmax along any dim, and their backward passes, on host
//! or device tensors, as one description.

use super::call::Input;
use super::{Call, Prepare};
use crate::error::{Result, XentError};
use crate::gpu::kernels::Entry;
use crate::gpu::ops::softmax::PreparedSoftmax;
use crate::gpu::ops::softmax::{build_softmax, softmax_device, softmax_family};
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::scope::scoped;
use crate::options::{DType, FloatTensor, Output, Tensor};

/// One log_softmax or softmax call along `dim`, or its backward pass.
///
/// ```text
/// SoftmaxCall::log_softmax(x, -1)                        // the forward
/// SoftmaxCall::log_softmax(out, -1).backward(grad_out)   // d/dx, given out and d/d(out)
/// ```
#[derive(Clone, Copy, Debug)]
pub struct SoftmaxCall<'a> {
    /// log_softmax when true, softmax when false.
    pub log: bool,
    /// The input of the forward; the forward's output for the backward.
    pub input: Input<'a>,
    /// The dim the rows run along (negative counts from the end).
    pub dim: i64,
    /// The upstream gradient d(objective)/d(output), f32 of the input's shape and on the
    /// same side (host or device): the backward pass, `grad - exp(out)·Σ grad` for
    /// log_softmax, `out·(grad - Σ grad·out)` for softmax.
    pub backward: Option<Input<'a>>,
    /// The dtype of a device call's output: f32 (default), or f16 / bf16 rounded to
    /// nearest even.
    pub output: DType,
}

impl<'a> SoftmaxCall<'a> {
    /// `log_softmax(input, dim)`.
    pub fn log_softmax(input: impl Into<Input<'a>>, dim: i64) -> Self {
        Self::new(true, input.into(), dim)
    }

    /// `softmax(input, dim)`.
    pub fn softmax(input: impl Into<Input<'a>>, dim: i64) -> Self {
        Self::new(false, input.into(), dim)
    }

    fn new(log: bool, input: Input<'a>, dim: i64) -> Self {
        Self {
            log,
            input,
            dim,
            backward: None,
            output: DType::F32,
        }
    }

    /// The backward pass: the input is the forward's output, `grad` the upstream gradient.
    #[must_use = "returns the updated description"]
    pub fn backward(self, grad: impl Into<Input<'a>>) -> Self {
        Self {
            backward: Some(grad.into()),
            ..self
        }
    }

    /// The upstream gradient of a host call, f32: `None` for the forward.
    fn host_backward(&self) -> Result<Option<Tensor<'a, f32>>> {
        match self.backward {
            None => Ok(None),
            Some(Input::Host(FloatTensor::F32(g))) => Ok(Some(g)),
            Some(_) => Err(XentError::InvalidArgument(
                "a host softmax backward takes the upstream gradient as an f32 host tensor".into(),
            )),
        }
    }

    /// A device call's output in `dtype` (f32, f16 or bf16).
    #[must_use = "returns the updated description"]
    pub fn output(self, dtype: DType) -> Self {
        Self {
            output: dtype,
            ..self
        }
    }

    fn entry(&self) -> Entry {
        match (self.log, self.backward.is_some()) {
            (true, false) => Entry::LogSoftmax,
            (false, false) => Entry::Softmax,
            (true, true) => Entry::LogSoftmaxBackward,
            (false, true) => Entry::SoftmaxBackward,
        }
    }
}

impl Prepare for SoftmaxCall<'_> {
    type Prepared = PreparedSoftmax;

    fn build(&self, ctx: &Context) -> Result<PreparedSoftmax> {
        match self.input {
            Input::Host(x) => {
                if self.output != DType::F32 {
                    return Err(XentError::InvalidArgument(
                        "a host softmax call returns f32; `output` is a device call's dtype".into(),
                    ));
                }
                build_softmax(ctx, self.entry(), x, self.dim, self.host_backward()?)
            }
            Input::Device(x) => {
                let gy =
                    match self.backward {
                        None => None,
                        Some(Input::Device(g)) => Some(g),
                        Some(Input::Host(_)) => return Err(XentError::InvalidArgument(
                            "a device softmax backward takes the upstream gradient on the device"
                                .into(),
                        )),
                    };
                let out = self.output.float().ok_or_else(|| {
                    XentError::InvalidArgument(format!(
                        "softmax output must be f32, f16 or bf16, not {:?}",
                        self.output
                    ))
                })?;
                softmax_device(ctx, x, self.dim, self.entry(), gy, out)
            }
        }
    }
}

impl Call for SoftmaxCall<'_> {
    type Output = Output;

    async fn run_on(&self, ctx: &Context) -> Result<Output> {
        match self.input {
            Input::Host(x) => {
                scoped(
                    ctx,
                    softmax_family(ctx, self.entry(), x, self.dim, self.host_backward()?),
                )
                .await
            }
            Input::Device(_) if self.output != DType::F32 => Err(XentError::InvalidArgument(
                "a 16-bit softmax output stays on the device: prepare the call, record it and \
                 use its output()"
                    .into(),
            )),
            Input::Device(_) => ctx.prepare_async(self).await?.run_async().await,
        }
    }
}
