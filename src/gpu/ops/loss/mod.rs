//! cross_entropy and nll_loss on host data, forward and fused forward + backward: checks,
//! then one prepared call run once. One submission per call. A call is planned (`plan`: pure
//! policy), its buffers made (`buffers`), its dispatches encoded stage by stage (`encode`),
//! and the result is a `PreparedLoss` (`prepared`).

mod batch;
pub(crate) mod buffers;
pub(crate) mod encode;
pub(crate) mod plan;
mod prepared;
mod read;
pub(crate) mod shard;
pub(crate) mod shard_device;
pub(crate) mod shard_kernels;
mod shards;

pub(crate) use buffers::ChunkInputs;
#[cfg(test)]
pub(crate) use encode::NLL_GRAD_VALUES;
pub(crate) use plan::LossSpec;
pub use prepared::PreparedLoss;
pub(crate) use shard::check_classes;
pub use shard::{PreparedShard, VocabShard};
pub use shard_device::{DeviceShard, PreparedShardDevice};
pub(crate) use shards::run_sharded;

use crate::error::Result;
use crate::gpu::ops::loss::buffers::host_inputs;
use crate::gpu::ops::loss::encode::build_loss;
use crate::gpu::runtime::context::Context;
use crate::options::{FloatTensor, LossAndGrad, LossOptions, Output, Reduction, Target};
pub(crate) use crate::problem::Loss;
use crate::problem::{check_loss, rows_shape, LossProblem};

/// Where the gradient goes, if anywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// Recorded inside a larger program (linear_cross_entropy's chunks): nothing is read
    /// back through the call itself, so it makes no staging buffers or timestamp queries.
    pub embedded: bool,
}

impl Request {
    /// The loss alone.
    pub fn forward(loss: Loss) -> Self {
        Self {
            loss,
            grad: Grad::None,
            grad_output: 1.0,
            lse: false,
            embedded: false,
        }
    }
}

/// What one call returns: the loss, then the gradient and lse when asked for.
pub(crate) struct Results {
    pub loss: Output,
    pub grad: Option<Vec<f32>>,
    pub lse: Option<Vec<f32>>,
}

/// A host call run once: checked, built, run and read (the caller opens the error scopes).
pub(crate) async fn run_loss(
    ctx: &Context,
    input: FloatTensor<'_>,
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
    let plan = build_loss(ctx, &spec, host_inputs(ctx, &input, &problem)?, opts, req)?;
    plan.run_results().await.map(|(r, _)| r)
}

/// A host call built once (`ctx.prepare(&LossCall)`).
pub(crate) fn prepare_loss(
    ctx: &Context,
    input: FloatTensor,
    target: Target,
    opts: &LossOptions,
    req: Request,
) -> Result<PreparedLoss> {
    let problem = check_loss(req.loss, input.shape(), input.len(), &target, opts)?;
    if problem.layout.rows() == 0 {
        return Err(crate::XentError::InvalidShape(
            "nothing to prepare: the batch is empty".into(),
        ));
    }
    let spec = LossSpec::host(&problem, &input, target.shape());
    build_loss(ctx, &spec, host_inputs(ctx, &input, &problem)?, opts, req)
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
