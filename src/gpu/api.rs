//! Every public operation of a [`Context`], declared in one place: `cross_entropy` and
//! `nll_loss` with their backward and prepared forms, `log_softmax` and `softmax` with theirs,
//! and the device-resident calls. Each delegates to its op (src/gpu/loss/, softmax.rs,
//! device.rs); docs/ARCHITECTURE.md follows one call from here to its dispatches.

use super::context::Context;
use super::device::DeviceLoss;
use super::device_tensor::DeviceTensor;
use super::loss::{Grad, Loss, PreparedLoss, Request};
use super::softmax::PreparedSoftmax;
use crate::error::{Result, XentError};
use crate::gpu::kernels::Entry;
use crate::options::{
    BackwardOptions, DType, FloatTensor, LossAndGrad, LossOptions, Output, Target, Tensor,
};
use crate::problem::rows_shape;

/// cross_entropy and nll_loss on host data: checked, then one prepared call run once.
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
        input: impl Into<FloatTensor<'i>>,
        target: Target,
        opts: &LossOptions,
    ) -> Result<Output> {
        let input: FloatTensor = input.into();
        crate::gpu::poller::block(self.cross_entropy_async(input, target, opts))
    }

    /// The async form of [`Context::cross_entropy`].
    pub async fn cross_entropy_async<'i>(
        &self,
        input: impl Into<FloatTensor<'i>>,
        target: Target<'_>,
        opts: &LossOptions<'_>,
    ) -> Result<Output> {
        let input: FloatTensor = input.into();
        let req = Request::forward(Loss::CrossEntropy);
        Ok(self.run(input, target, opts, req).await?.loss)
    }

    /// [`Context::cross_entropy`] and the per-row log-sum-exp (shape `[N, d1..dk]`).
    pub fn cross_entropy_with_lse<'i>(
        &self,
        input: impl Into<FloatTensor<'i>>,
        target: Target,
        opts: &LossOptions,
    ) -> Result<(Output, Output)> {
        let input: FloatTensor = input.into();
        let req = Request {
            lse: true,
            ..Request::forward(Loss::CrossEntropy)
        };
        let r = crate::gpu::poller::block(self.run(input, target, opts, req))?;
        let shape = rows_shape(input.shape());
        Ok((
            r.loss,
            Output {
                data: r.lse.unwrap_or_default(),
                shape,
            },
        ))
    }

    /// The fused forward + backward of `cross_entropy`: the loss and d(loss)/d(input), with
    /// PyTorch autograd's convention. Reads the logits twice and writes the gradient once.
    /// For a training loop, prepare the call once instead ([`Context::prepare_cross_entropy`]
    /// and [`PreparedLoss::run_batch`]; the README's training example).
    ///
    /// ```
    /// use wgpu_xent::{BackwardOptions, Context, LossOptions, Target, Tensor};
    /// let ctx = Context::new()?;
    /// let logits = [0.0f32; 6];
    /// let target = Target::I64(Tensor::new(&[1i64, -100], &[2]));
    /// let opts = LossOptions::default();
    /// let out = ctx.cross_entropy_backward(
    ///     Tensor::new(&logits, &[2, 3]), target, &opts, &BackwardOptions::default())?;
    /// let grad = out.grad.unwrap().data; // mean over the one counted row
    /// assert!((grad[1] - (1.0 / 3.0 - 1.0)).abs() < 1e-6 && grad[3] == 0.0);
    /// # Ok::<(), wgpu_xent::XentError>(())
    /// ```
    pub fn cross_entropy_backward<'i>(
        &self,
        input: impl Into<FloatTensor<'i>>,
        target: Target,
        opts: &LossOptions,
        backward: &BackwardOptions,
    ) -> Result<LossAndGrad> {
        let input: FloatTensor = input.into();
        crate::gpu::poller::block(self.cross_entropy_backward_async(input, target, opts, backward))
    }

    /// The async form of [`Context::cross_entropy_backward`].
    pub async fn cross_entropy_backward_async<'i>(
        &self,
        input: impl Into<FloatTensor<'i>>,
        target: Target<'_>,
        opts: &LossOptions<'_>,
        backward: &BackwardOptions,
    ) -> Result<LossAndGrad> {
        let input: FloatTensor = input.into();
        let req = Request::backward(Loss::CrossEntropy, Grad::OutOfPlace, backward);
        let r = self.run(input, target, opts, req).await?;
        Ok(r.into_loss_and_grad(input.shape()))
    }

    /// As [`Context::cross_entropy_backward`], with the gradient written over `logits`, on the
    /// device too: the GPU holds one N×C buffer for both. `LossAndGrad::grad` is `None`.
    pub fn cross_entropy_backward_in_place(
        &self,
        logits: &mut [f32],
        shape: &[usize],
        target: Target,
        opts: &LossOptions,
        backward: &BackwardOptions,
    ) -> Result<LossAndGrad> {
        let req = Request::backward(Loss::CrossEntropy, Grad::InPlace, backward);
        let input = FloatTensor::F32(Tensor::new(&*logits, shape));
        let mut r = crate::gpu::poller::block(self.run(input, target, opts, req))?;
        if let Some(grad) = r.grad.take() {
            logits.copy_from_slice(&grad);
        }
        Ok(r.into_loss_and_grad(shape))
    }

    /// `torch.nn.functional.nll_loss(input, target, weight, ignore_index, reduction)`.
    pub fn nll_loss<'i>(
        &self,
        input: impl Into<FloatTensor<'i>>,
        target: Target,
        opts: &LossOptions,
    ) -> Result<Output> {
        let input: FloatTensor = input.into();
        crate::gpu::poller::block(self.nll_loss_async(input, target, opts))
    }

    /// The async form of [`Context::nll_loss`].
    pub async fn nll_loss_async<'i>(
        &self,
        input: impl Into<FloatTensor<'i>>,
        target: Target<'_>,
        opts: &LossOptions<'_>,
    ) -> Result<Output> {
        let input: FloatTensor = input.into();
        let req = Request::forward(Loss::Nll);
        Ok(self.run(input, target, opts, req).await?.loss)
    }

    /// `nll_loss` and d(loss)/d(input) (it reads no logits: the gradient is `-w[y]/D` at y).
    pub fn nll_loss_backward<'i>(
        &self,
        input: impl Into<FloatTensor<'i>>,
        target: Target,
        opts: &LossOptions,
        backward: &BackwardOptions,
    ) -> Result<LossAndGrad> {
        let input: FloatTensor = input.into();
        let req = Request {
            lse: false,
            ..Request::backward(Loss::Nll, Grad::OutOfPlace, backward)
        };
        let r = crate::gpu::poller::block(self.run(input, target, opts, req))?;
        Ok(r.into_loss_and_grad(input.shape()))
    }

    /// Uploads a `cross_entropy` call once, so that it can be run many times without any
    /// upload or allocation: a training loop ([`PreparedLoss::run_batch`]: new logits,
    /// targets and weights, and batches of up to this many rows), or the benchmark's timed
    /// loop ([`PreparedLoss::run_timed`]). `grad` adds the fused backward (out of place).
    ///
    /// ```
    /// use wgpu_xent::{Context, LossOptions, Target, Tensor};
    /// let ctx = Context::new()?;
    /// let x = [0.0f32; 8];
    /// let step = ctx.prepare_cross_entropy(
    ///     Tensor::new(&x, &[2, 4]), Target::I64(Tensor::new(&[0i64, 0], &[2])),
    ///     &LossOptions::default(), true)?;
    /// // A shorter batch through the same call: one row.
    /// let out = step.run_batch(Tensor::new(&x[..4], &[1, 4]), Target::I64(Tensor::new(&[3i64], &[1])), None)?;
    /// assert!((out.loss.scalar() - 4f32.ln()).abs() < 1e-6);
    /// # Ok::<(), wgpu_xent::XentError>(())
    /// ```
    pub fn prepare_cross_entropy<'i>(
        &self,
        input: impl Into<FloatTensor<'i>>,
        target: Target,
        opts: &LossOptions,
        grad: bool,
    ) -> Result<PreparedLoss> {
        let input: FloatTensor = input.into();
        let grad = if grad { Grad::OutOfPlace } else { Grad::None };
        let req = Request {
            grad,
            ..Request::forward(Loss::CrossEntropy)
        };
        self.prepare(Loss::CrossEntropy, input, target, opts, req)
    }

    /// As [`Context::prepare_cross_entropy`] with the fused backward writing the gradient over
    /// the uploaded logits (f32): every run then starts from the previous run's gradient, which
    /// is what a benchmark of the in-place path needs and a training loop replaces with
    /// [`PreparedLoss::write_logits`].
    pub fn prepare_cross_entropy_in_place(
        &self,
        input: Tensor<f32>,
        target: Target,
        opts: &LossOptions,
    ) -> Result<PreparedLoss> {
        let req = Request {
            grad: Grad::InPlace,
            ..Request::forward(Loss::CrossEntropy)
        };
        self.prepare(
            Loss::CrossEntropy,
            FloatTensor::F32(input),
            target,
            opts,
            req,
        )
    }

    /// As [`Context::prepare_cross_entropy`] for `nll_loss` (forward).
    pub fn prepare_nll_loss<'i>(
        &self,
        input: impl Into<FloatTensor<'i>>,
        target: Target,
        opts: &LossOptions,
    ) -> Result<PreparedLoss> {
        let input: FloatTensor = input.into();
        let req = Request::forward(Loss::Nll);
        self.prepare(Loss::Nll, input, target, opts, req)
    }
}

/// log_softmax and softmax along any dim, and their backward passes.
impl Context {
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
    pub fn log_softmax<'i>(&self, x: impl Into<FloatTensor<'i>>, dim: i64) -> Result<Output> {
        crate::gpu::poller::block(self.log_softmax_async(x, dim))
    }

    /// `torch.nn.functional.softmax(x, dim)`.
    pub fn softmax<'i>(&self, x: impl Into<FloatTensor<'i>>, dim: i64) -> Result<Output> {
        crate::gpu::poller::block(self.softmax_async(x, dim))
    }

    /// The async form of [`Context::log_softmax`].
    pub async fn log_softmax_async<'i>(
        &self,
        x: impl Into<FloatTensor<'i>>,
        dim: i64,
    ) -> Result<Output> {
        self.softmax_family(Entry::LogSoftmax, x.into(), dim, None)
            .await
    }

    /// The async form of [`Context::softmax`].
    pub async fn softmax_async<'i>(
        &self,
        x: impl Into<FloatTensor<'i>>,
        dim: i64,
    ) -> Result<Output> {
        self.softmax_family(Entry::Softmax, x.into(), dim, None)
            .await
    }

    /// `log_softmax`'s backward: `grad_out - exp(out) · Σ grad_out` along `dim`, given the
    /// forward output `out` and the upstream gradient `grad_out` (same shape).
    pub fn log_softmax_backward(
        &self,
        grad_out: Tensor<f32>,
        out: Tensor<f32>,
        dim: i64,
    ) -> Result<Output> {
        crate::gpu::poller::block(self.softmax_family(
            Entry::LogSoftmaxBackward,
            out.into(),
            dim,
            Some(grad_out),
        ))
    }

    /// `softmax`'s backward: `out · (grad_out - Σ grad_out · out)` along `dim`.
    pub fn softmax_backward(
        &self,
        grad_out: Tensor<f32>,
        out: Tensor<f32>,
        dim: i64,
    ) -> Result<Output> {
        crate::gpu::poller::block(self.softmax_family(
            Entry::SoftmaxBackward,
            out.into(),
            dim,
            Some(grad_out),
        ))
    }

    /// As [`Context::log_softmax`] (or `softmax`, when `log` is false), written into `out`
    /// (the input's length): memory the caller reuses across calls, so a large output skips
    /// the page faults of a fresh `Vec` (see the README's figures).
    pub fn softmax_into<'i>(
        &self,
        x: impl Into<FloatTensor<'i>>,
        dim: i64,
        log: bool,
        out: &mut [f32],
    ) -> Result<()> {
        let x = x.into();
        if x.is_empty() && out.is_empty() {
            crate::layout::RowLayout::for_dim(x.shape(), dim)?;
            return Ok(());
        }
        self.prepare_softmax(x, dim, log)?.run_into(out)
    }

    /// Uploads a `log_softmax` (or `softmax`, when `log` is false) once, to run it many times.
    pub fn prepare_softmax<'i>(
        &self,
        x: impl Into<FloatTensor<'i>>,
        dim: i64,
        log: bool,
    ) -> Result<PreparedSoftmax> {
        let entry = if log {
            Entry::LogSoftmax
        } else {
            Entry::Softmax
        };
        let x = x.into();
        crate::gpu::poller::block(self.scoped(async { self.build_softmax(entry, x, dim, None) }))
    }

    /// `log_softmax` (or `softmax`, when `log` is false) of a tensor on the device (f32, f16
    /// or bf16, within one binding), into an f32 tensor of ours: record it into your encoder
    /// with [`PreparedSoftmax::record`] and use [`PreparedSoftmax::output`] on the device.
    pub fn prepare_softmax_device(
        &self,
        x: &DeviceTensor,
        dim: i64,
        log: bool,
    ) -> Result<PreparedSoftmax> {
        self.prepare_softmax_device_as(x, dim, log, DType::F32)
    }
}

/// Calls over tensors already on the device, recorded into the caller's encoder.
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
    ) -> Result<PreparedLoss> {
        self.prepare_device(Loss::CrossEntropy, call, opts)
    }

    /// As [`Context::prepare_cross_entropy_device`] for `nll_loss` (the input holds
    /// log-probabilities; class targets only). Its gradient is `-(g/D)·w[y]` at the target,
    /// written into a tensor of its own ([`DeviceLoss::grad_into`]).
    pub fn prepare_nll_loss_device(
        &self,
        call: DeviceLoss,
        opts: &LossOptions,
    ) -> Result<PreparedLoss> {
        self.prepare_device(Loss::Nll, call, opts)
    }

    /// As [`Context::prepare_softmax_device`], with the output in `out`: f32, or f16 / bf16
    /// rounded to nearest even (half the bytes for whatever reads it next).
    pub fn prepare_softmax_device_as(
        &self,
        x: &DeviceTensor,
        dim: i64,
        log: bool,
        out: DType,
    ) -> Result<PreparedSoftmax> {
        let out = out.float().ok_or_else(|| {
            XentError::InvalidArgument(format!(
                "softmax output must be f32, f16 or bf16, not {out:?}"
            ))
        })?;
        self.softmax_device(x, dim, log, out)
    }
}
