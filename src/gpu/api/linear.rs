//! `LinearCall` (linear_cross_entropy on host tensors), `DeviceLinear` (on device tensors)
//! and `MatmulCall` (the product it is built on) as call descriptions.

use super::call::Grad;
use super::{Call, Prepare};
use crate::error::{Result, XentError};
#[cfg(not(target_arch = "wasm32"))]
use crate::gpu::ops::bandwidth::build_bandwidth;
use crate::gpu::ops::linear::build_linear;
use crate::gpu::ops::linear::device::build_linear_device;
use crate::gpu::ops::linear::device::DeviceLinear;
use crate::gpu::ops::linear::matmul_prepared::build_matmul;
use crate::gpu::ops::linear::{PreparedLinear, PreparedMatmul};
use crate::gpu::runtime::context::Context;
use crate::linear::{Linear, LinearOutput};
use crate::options::{LossOptions, Output, Target, Tensor};

/// `linear_cross_entropy(input, weight, bias, target)` on host tensors: the classifier head
/// fused with the loss, its `[N, C]` logits never whole in memory.
///
/// ```text
/// LinearCall::new(Linear::new(x, w).bias(b), target).options(opts).grad(Grad::Returned)
/// ```
#[derive(Clone, Copy, Debug)]
pub struct LinearCall<'a> {
    /// The hidden states, the classifier's weight and bias, the logits' budget and whether
    /// each row's lse is kept.
    pub linear: Linear<'a>,
    /// Class indices `[N]` or probabilities `[N, C]`.
    pub target: Target<'a>,
    /// PyTorch's loss options.
    pub options: LossOptions<'a>,
    /// `Grad::Returned` for the gradients of the input, weight and bias; `Grad::None`.
    pub grad: Grad<'a>,
}

impl<'a> LinearCall<'a> {
    /// The forward, default options.
    pub fn new(linear: Linear<'a>, target: Target<'a>) -> Self {
        Self {
            linear,
            target,
            options: LossOptions::default(),
            grad: Grad::None,
        }
    }

    /// With these options.
    #[must_use = "returns the updated description"]
    pub fn options(self, options: LossOptions<'a>) -> Self {
        Self { options, ..self }
    }

    /// With the gradients (`Grad::Returned`) or without.
    #[must_use = "returns the updated description"]
    pub fn grad(self, grad: Grad<'a>) -> Self {
        Self { grad, ..self }
    }

    fn returns_grad(&self) -> Result<bool> {
        match self.grad {
            Grad::None => Ok(false),
            Grad::Returned => Ok(true),
            g => Err(XentError::InvalidArgument(format!(
                "a host linear_cross_entropy returns its gradients (Grad::Returned), not {g:?}: the device form (DeviceLinear) writes them into tensors"
            ))),
        }
    }
}

impl Prepare for LinearCall<'_> {
    type Prepared = PreparedLinear;

    fn build(&self, ctx: &Context) -> Result<PreparedLinear> {
        let grad = self.returns_grad()?;
        build_linear(ctx, self.linear, self.target, &self.options, grad)
    }
}

impl Call for LinearCall<'_> {
    type Output = LinearOutput;

    async fn run_on(&self, ctx: &Context) -> Result<LinearOutput> {
        ctx.prepare_async(self).await?.run_async().await
    }
}

impl Prepare for DeviceLinear<'_> {
    type Prepared = PreparedLinear;

    fn build(&self, ctx: &Context) -> Result<PreparedLinear> {
        build_linear_device(ctx, *self)
    }
}

impl Call for DeviceLinear<'_> {
    type Output = LinearOutput;

    /// One run: built, submitted, and the loss and lse read back; the gradients stay in
    /// their device tensors.
    async fn run_on(&self, ctx: &Context) -> Result<LinearOutput> {
        ctx.prepare_async(self).await?.run_async().await
    }
}

/// The matrix product `a @ b.T` of f32 `a [M, K]` and `b [N, K]`.
#[derive(Clone, Copy, Debug)]
pub struct MatmulCall<'a> {
    /// `[M, K]`.
    pub a: Tensor<'a, f32>,
    /// `[N, K]`.
    pub b: Tensor<'a, f32>,
}

impl<'a> MatmulCall<'a> {
    /// `a @ b.T`.
    pub fn new(a: Tensor<'a, f32>, b: Tensor<'a, f32>) -> Self {
        Self { a, b }
    }
}

impl Prepare for MatmulCall<'_> {
    type Prepared = PreparedMatmul;

    fn build(&self, ctx: &Context) -> Result<PreparedMatmul> {
        build_matmul(ctx, self.a, self.b)
    }
}

impl Call for MatmulCall<'_> {
    type Output = Output;

    async fn run_on(&self, ctx: &Context) -> Result<Output> {
        ctx.prepare_async(self).await?.run_async().await
    }
}

#[cfg(not(target_arch = "wasm32"))]
/// The adapter's own copy, read and write kernels over `bytes` (a binding at most): the
/// roofline each op's bytes are measured against (`xent bench`).
#[derive(Clone, Copy, Debug)]
pub struct BandwidthCall {
    /// Bytes each kernel moves.
    pub bytes: u64,
}

#[cfg(not(target_arch = "wasm32"))]
impl Prepare for BandwidthCall {
    type Prepared = crate::gpu::ops::bandwidth::PreparedBandwidth;

    fn build(&self, ctx: &Context) -> Result<Self::Prepared> {
        build_bandwidth(ctx, self.bytes)
    }
}
