//! One-line forms of the common calls, each `ctx.run(&call)` over its description.

use super::call::{Grad, Input, TargetInput};
use super::linear::{LinearCall, MatmulCall};
use super::loss::LossCall;
use super::softmax::SoftmaxCall;
use crate::error::Result;
use crate::gpu::runtime::context::Context;
use crate::linear::{Linear, LinearOutput};
use crate::options::{BackwardOptions, LossAndGrad, LossOptions, Output, Target, Tensor};

impl Context {
    /// `torch.nn.functional.cross_entropy(input, target, weight, ignore_index, reduction,
    /// label_smoothing)`, fused: log_softmax is never materialised.
    ///
    /// ```
    /// use wgpu_xent::{Context, LossOptions, Target, Tensor};
    /// let ctx = Context::new()?;
    /// let logits = [2.0f32, 0.5, -1.0, 0.1, 0.2, 3.0];
    /// let target = Target::I64(Tensor::new(&[0i64, 2], &[2]));
    /// let loss = ctx.cross_entropy(Tensor::new(&logits, &[2, 3]), target, &LossOptions::default())?;
    /// assert!((loss.scalar() - 0.175456).abs() < 1e-5);
    /// # Ok::<(), wgpu_xent::XentError>(())
    /// ```
    pub fn cross_entropy<'i>(
        &self,
        input: impl Into<Input<'i>>,
        target: impl Into<TargetInput<'i>>,
        opts: &LossOptions<'i>,
    ) -> Result<Output> {
        let call = LossCall::cross_entropy(input, target).options(*opts);
        Ok(self.run(&call)?.loss)
    }

    /// The fused forward + backward of `cross_entropy`: the loss and d(loss)/d(input), with
    /// PyTorch autograd's convention. Reads the logits twice and writes the gradient once.
    pub fn cross_entropy_backward<'i>(
        &self,
        input: impl Into<Input<'i>>,
        target: impl Into<TargetInput<'i>>,
        opts: &LossOptions<'i>,
        backward: &BackwardOptions,
    ) -> Result<LossAndGrad> {
        let call = LossCall::cross_entropy(input, target).options(*opts);
        self.run(&call.grad(Grad::Returned).grad_output(backward.grad_output))
    }

    /// `torch.nn.functional.nll_loss(input, target, weight, ignore_index, reduction)`.
    pub fn nll_loss<'i>(
        &self,
        input: impl Into<Input<'i>>,
        target: impl Into<TargetInput<'i>>,
        opts: &LossOptions<'i>,
    ) -> Result<Output> {
        let call = LossCall::nll_loss(input, target).options(*opts);
        Ok(self.run(&call)?.loss)
    }

    /// `nll_loss` and d(loss)/d(input) (it reads no logits: the gradient is `-w[y]/D` at y).
    pub fn nll_loss_backward<'i>(
        &self,
        input: impl Into<Input<'i>>,
        target: impl Into<TargetInput<'i>>,
        opts: &LossOptions<'i>,
        backward: &BackwardOptions,
    ) -> Result<LossAndGrad> {
        let call = LossCall::nll_loss(input, target).options(*opts);
        self.run(&call.grad(Grad::Returned).grad_output(backward.grad_output))
    }

    /// `torch.nn.functional.log_softmax(x, dim)`.
    ///
    /// ```
    /// use wgpu_xent::{Context, Tensor};
    /// let ctx = Context::new()?;
    /// let x = [1.0f32, 1.0, 2.0, 0.0];
    /// let out = ctx.log_softmax(Tensor::new(&x, &[2, 2]), -1)?;
    /// assert!((out.data[0] - (-std::f32::consts::LN_2)).abs() < 1e-6);
    /// # Ok::<(), wgpu_xent::XentError>(())
    /// ```
    pub fn log_softmax<'i>(&self, x: impl Into<Input<'i>>, dim: i64) -> Result<Output> {
        self.run(&SoftmaxCall::log_softmax(x, dim))
    }

    /// `torch.nn.functional.softmax(x, dim)`.
    pub fn softmax<'i>(&self, x: impl Into<Input<'i>>, dim: i64) -> Result<Output> {
        self.run(&SoftmaxCall::softmax(x, dim))
    }

    /// `log_softmax`'s backward: `grad_out - exp(out) · Σ grad_out` along `dim`, given the
    /// forward output `out` and the upstream gradient `grad_out` (same shape).
    pub fn log_softmax_backward(
        &self,
        grad_out: Tensor<f32>,
        out: Tensor<f32>,
        dim: i64,
    ) -> Result<Output> {
        self.run(&SoftmaxCall::log_softmax(out, dim).backward(grad_out))
    }

    /// `softmax`'s backward: `out · (grad_out - Σ grad_out · out)` along `dim`.
    pub fn softmax_backward(
        &self,
        grad_out: Tensor<f32>,
        out: Tensor<f32>,
        dim: i64,
    ) -> Result<Output> {
        self.run(&SoftmaxCall::softmax(out, dim).backward(grad_out))
    }

    /// `linear_cross_entropy`: `cross_entropy(input @ weight.T + bias, target)` without the
    /// `[N, C]` logits ever whole in memory.
    pub fn linear_cross_entropy(
        &self,
        linear: Linear,
        target: Target,
        opts: &LossOptions,
    ) -> Result<Output> {
        Ok(self
            .run(&LinearCall::new(linear, target).options(*opts))?
            .loss)
    }

    /// `linear_cross_entropy` and the gradients of its input, weight and bias.
    pub fn linear_cross_entropy_backward(
        &self,
        linear: Linear,
        target: Target,
        opts: &LossOptions,
    ) -> Result<LinearOutput> {
        let call = LinearCall::new(linear, target).options(*opts);
        self.run(&call.grad(Grad::Returned))
    }

    /// The matrix product `a @ b.T` of f32 `a [M, K]` and `b [N, K]`.
    pub fn matmul(&self, a: Tensor<f32>, b: Tensor<f32>) -> Result<Output> {
        self.run(&MatmulCall::new(a, b))
    }
}
