//! cross_entropy and nll_loss on host data, forward and fused forward + backward: checks,
//! then one prepared call run once. One submission per call. A call is planned (`plan`: pure
//! policy), its buffers made (`buffers`), its dispatches encoded stage by stage (`encode`),
//! and the result is a `PreparedLoss` (`prepared`).

mod buffers;
mod encode;
mod plan;
mod prepared;

pub(crate) use buffers::ChunkInputs;
pub(crate) use plan::LossSpec;
pub use prepared::PreparedLoss;

use super::context::Context;
use crate::error::Result;
use crate::options::{
    BackwardOptions, Logits, LossAndGrad, LossOptions, Output, Reduction, Target, Tensor,
};
pub(crate) use crate::problem::Loss;
use crate::problem::{check_loss, rows_shape, LossProblem};

/// Where the gradient goes, if anywhere.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grad {
    None,
    /// A new buffer the size of the logits.
    OutOfPlace,
    /// Over the logits' own buffer: nothing else the size of N×C is allocated.
    InPlace,
}

/// What one call computes.
#[derive(Clone, Copy)]
pub(crate) struct Request {
    pub loss: Loss,
    pub grad: Grad,
    pub grad_output: f32,
    pub lse: bool,
}

impl Request {
    /// The loss alone.
    pub fn forward(loss: Loss) -> Self {
        Self {
            loss,
            grad: Grad::None,
            grad_output: 1.0,
            lse: false,
        }
    }

    /// The loss and its gradient, going to `grad`.
    pub fn backward(loss: Loss, grad: Grad, b: &BackwardOptions) -> Self {
        Self {
            loss,
            grad,
            grad_output: b.grad_output,
            lse: b.return_lse,
        }
    }
}

/// What one call returns: the loss, then the gradient and lse when asked for.
pub(crate) struct Results {
    pub loss: Output,
    pub grad: Option<Vec<f32>>,
    pub lse: Option<Vec<f32>>,
}

impl Context {
    /// `torch.nn.functional.cross_entropy(input, target, weight, ignore_index, reduction,
    /// label_smoothing)`, fused: log_softmax is never materialised.
    pub fn cross_entropy<'i>(
        &self,
        input: impl Into<Logits<'i>>,
        target: Target,
        opts: &LossOptions,
    ) -> Result<Output> {
        let input: Logits = input.into();
        pollster::block_on(self.cross_entropy_async(input, target, opts))
    }

    /// The async form of [`Context::cross_entropy`].
    pub async fn cross_entropy_async<'i>(
        &self,
        input: impl Into<Logits<'i>>,
        target: Target<'_>,
        opts: &LossOptions<'_>,
    ) -> Result<Output> {
        let input: Logits = input.into();
        let req = Request::forward(Loss::CrossEntropy);
        Ok(self.run(input, target, opts, req).await?.loss)
    }

    /// [`Context::cross_entropy`] and the per-row log-sum-exp (shape `[N, d1..dk]`).
    pub fn cross_entropy_with_lse<'i>(
        &self,
        input: impl Into<Logits<'i>>,
        target: Target,
        opts: &LossOptions,
    ) -> Result<(Output, Output)> {
        let input: Logits = input.into();
        let req = Request {
            lse: true,
            ..Request::forward(Loss::CrossEntropy)
        };
        let r = pollster::block_on(self.run(input, target, opts, req))?;
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
    pub fn cross_entropy_backward<'i>(
        &self,
        input: impl Into<Logits<'i>>,
        target: Target,
        opts: &LossOptions,
        backward: &BackwardOptions,
    ) -> Result<LossAndGrad> {
        let input: Logits = input.into();
        pollster::block_on(self.cross_entropy_backward_async(input, target, opts, backward))
    }

    /// The async form of [`Context::cross_entropy_backward`].
    pub async fn cross_entropy_backward_async<'i>(
        &self,
        input: impl Into<Logits<'i>>,
        target: Target<'_>,
        opts: &LossOptions<'_>,
        backward: &BackwardOptions,
    ) -> Result<LossAndGrad> {
        let input: Logits = input.into();
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
        let input = Logits::F32(Tensor::new(&*logits, shape));
        let mut r = pollster::block_on(self.run(input, target, opts, req))?;
        if let Some(grad) = r.grad.take() {
            logits.copy_from_slice(&grad);
        }
        Ok(r.into_loss_and_grad(shape))
    }

    /// `torch.nn.functional.nll_loss(input, target, weight, ignore_index, reduction)`.
    pub fn nll_loss<'i>(
        &self,
        input: impl Into<Logits<'i>>,
        target: Target,
        opts: &LossOptions,
    ) -> Result<Output> {
        let input: Logits = input.into();
        pollster::block_on(self.nll_loss_async(input, target, opts))
    }

    /// The async form of [`Context::nll_loss`].
    pub async fn nll_loss_async<'i>(
        &self,
        input: impl Into<Logits<'i>>,
        target: Target<'_>,
        opts: &LossOptions<'_>,
    ) -> Result<Output> {
        let input: Logits = input.into();
        let req = Request::forward(Loss::Nll);
        Ok(self.run(input, target, opts, req).await?.loss)
    }

    /// `nll_loss` and d(loss)/d(input) (it reads no logits: the gradient is `-w[y]/D` at y).
    pub fn nll_loss_backward<'i>(
        &self,
        input: impl Into<Logits<'i>>,
        target: Target,
        opts: &LossOptions,
        backward: &BackwardOptions,
    ) -> Result<LossAndGrad> {
        let input: Logits = input.into();
        let req = Request {
            lse: false,
            ..Request::backward(Loss::Nll, Grad::OutOfPlace, backward)
        };
        let r = pollster::block_on(self.run(input, target, opts, req))?;
        Ok(r.into_loss_and_grad(input.shape()))
    }

    async fn run(
        &self,
        input: Logits<'_>,
        target: Target<'_>,
        opts: &LossOptions<'_>,
        req: Request,
    ) -> Result<Results> {
        let problem = check_loss(req.loss, input.shape(), input.len(), &target, opts)?;
        if problem.layout.rows() == 0 {
            return Ok(Results {
                loss: empty_loss(&problem, opts.reduction),
                grad: (req.grad != Grad::None).then(Vec::new),
                lse: req.lse.then(Vec::new),
            });
        }
        let spec = LossSpec::host(&problem, &input, target.shape());
        self.scoped(async {
            let plan = self.build_loss(&spec, self.host_inputs(&input, &problem)?, opts, req)?;
            plan.run().await.map(|(r, _)| r)
        })
        .await
    }
}

impl Context {
    /// Uploads a `cross_entropy` call once, so that it can be run many times without any
    /// upload or allocation: the benchmark's timed loop, or a loop that only replaces the
    /// logits with [`PreparedLoss::write_logits`]. `grad` adds the fused backward (out of place).
    pub fn prepare_cross_entropy<'i>(
        &self,
        input: impl Into<Logits<'i>>,
        target: Target,
        opts: &LossOptions,
        grad: bool,
    ) -> Result<PreparedLoss<'_>> {
        let input: Logits = input.into();
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
    ) -> Result<PreparedLoss<'_>> {
        let req = Request {
            grad: Grad::InPlace,
            ..Request::forward(Loss::CrossEntropy)
        };
        self.prepare(Loss::CrossEntropy, Logits::F32(input), target, opts, req)
    }

    /// As [`Context::prepare_cross_entropy`] for `nll_loss` (forward).
    pub fn prepare_nll_loss<'i>(
        &self,
        input: impl Into<Logits<'i>>,
        target: Target,
        opts: &LossOptions,
    ) -> Result<PreparedLoss<'_>> {
        let input: Logits = input.into();
        let req = Request::forward(Loss::Nll);
        self.prepare(Loss::Nll, input, target, opts, req)
    }

    fn prepare<'i>(
        &self,
        loss: Loss,
        input: impl Into<Logits<'i>>,
        target: Target,
        opts: &LossOptions,
        req: Request,
    ) -> Result<PreparedLoss<'_>> {
        let input: Logits = input.into();
        let problem = check_loss(loss, input.shape(), input.len(), &target, opts)?;
        if problem.layout.rows() == 0 {
            return Err(crate::XentError::InvalidShape(
                "nothing to prepare: the batch is empty".into(),
            ));
        }
        let spec = LossSpec::host(&problem, &input, target.shape());
        let mut plan = pollster::block_on(self.scoped(async {
            self.build_loss(&spec, self.host_inputs(&input, &problem)?, opts, req)
        }))?;
        plan.set_read_grad(false);
        Ok(plan)
    }
}

impl Results {
    pub(crate) fn into_loss_and_grad(self, shape: &[usize]) -> LossAndGrad {
        let rows_shape = rows_shape(shape);
        LossAndGrad {
            loss: self.loss,
            grad: self.grad.map(|data| Output {
                data,
                shape: shape.to_vec(),
            }),
            lse: self.lse.map(|data| Output {
                data,
                shape: rows_shape,
            }),
        }
    }
}

/// No rows: PyTorch's answers without touching the device.
pub(crate) fn empty_loss(problem: &LossProblem, reduction: Reduction) -> Output {
    match reduction {
        Reduction::None => Output {
            data: vec![],
            shape: problem.out_shape.clone(),
        },
        Reduction::Sum => Output {
            data: vec![0.0],
            shape: vec![],
        },
        Reduction::Mean => Output {
            data: vec![f32::NAN],
            shape: vec![],
        },
    }
}
