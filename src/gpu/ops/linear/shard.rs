//! One vocabulary shard of a `linear_cross_entropy` on host tensors: the rows' hidden states
//! `[N, D]` and a slice `[Cs, D]` of the classifier (and of its bias), classes
//! `first_class ..` of C. From it come the shard's partials; from every shard's merged, its
//! slices of the weight's and bias's gradients and its share of the input's (`G · W_s`,
//! which the caller sums over the shards).
//!
//! The fused device shard (src/gpu/ops/linear/shard_device.rs) over our uploads of the
//! tensors, class targets or this shard's probabilities `[N, Cs]`, read back by the host
//! adapter (src/gpu/ops/shard_host.rs). The logits are held `budget` bytes at a time, never
//! whole; a row longer than one workgroup walks is cut into segments, as the whole row's
//! plan cuts it.

use super::chunks::{linear_chunk_rows, ChunkTargets, Tensors};
use super::host_grads;
use super::matmul::Operand;
use super::shard_device::{linear_shard_core, stats_rows};
use crate::error::{Result, XentError};
use crate::gpu::api::Grad;
use crate::gpu::ops::loss::shard::check_shard_target;
use crate::gpu::ops::loss::shard_kernels::{host_split, ShardRows};
use crate::gpu::ops::loss::{check_classes, LossSpec};
use crate::gpu::ops::shard_host::PreparedHostShard;
use crate::gpu::runtime::buffers::upload;
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::device_tensor::DeviceTensor;
use crate::gpu::runtime::program::Program;
use crate::linear::LinearProblem;
use crate::options::{DType, FloatTensor, LossOptions, Output, Target, Tensor};
use crate::problem::{Targets, IGNORED};

/// A shard of a `linear_cross_entropy`, in f32.
#[derive(Clone, Copy, Debug)]
pub struct LinearShard<'a> {
    /// The hidden states `[N, D]`, the same on every shard.
    pub input: Tensor<'a, f32>,
    /// This shard's rows `[Cs, D]` of the classifier weight.
    pub linear_weight: Tensor<'a, f32>,
    /// This shard's slice `[Cs]` of the bias.
    pub linear_bias: Option<Tensor<'a, f32>>,
    /// The first of its classes: it holds `first_class .. first_class + Cs` of C.
    pub first_class: usize,
    /// C, the classes of all shards together.
    pub classes: usize,
    /// The targets over all C: class indices `[N]`, or this shard's probabilities `[N, Cs]`.
    pub target: Target<'a>,
    /// PyTorch's loss options (`weight`: all C classes).
    pub options: LossOptions<'a>,
    /// `Grad::Returned`: [`PreparedLinearShard::grad`] may follow the partials; `Grad::None`.
    pub grad: Grad<'a>,
    /// The most bytes of logits held at once
    /// ([`crate::DEFAULT_LINEAR_BUDGET`], for one).
    pub budget: usize,
}

/// A shard's gradients: its share of d loss / d input (summed over the shards, it is the
/// input's gradient), and its own slices of the weight's and the bias's.
#[derive(Clone, Debug)]
pub struct LinearShardGrads {
    /// Its share `[N, D]` of d loss / d input: summed over the shards, the input's gradient.
    pub grad_input: Output,
    /// Its slice `[Cs, D]` of the weight's gradient.
    pub grad_linear_weight: Output,
    /// Its slice `[Cs]` of the bias's gradient, when there is a bias.
    pub grad_linear_bias: Option<Output>,
}

/// A [`LinearShard`] prepared on one context: [`PreparedHostShard::partials`], then, with
/// every shard's merged, [`PreparedHostShard::grad`], its [`LinearShardGrads`].
pub type PreparedLinearShard = PreparedHostShard<LinearShardGrads>;

pub(crate) fn build_linear_shard(
    ctx: &Context,
    shard: LinearShard,
    target: Target,
    opts: &LossOptions,
    grad: bool,
) -> Result<PreparedLinearShard> {
    let (n, d, cs) = check_linear_shard(&shard)?;
    let has_bias = shard.linear_bias.is_some();
    let assemble = Box::new(move |words: Vec<Vec<f32>>| {
        let mut words = words.into_iter();
        let mut next = |shape: Vec<usize>| Output {
            data: words.next().unwrap_or_default(),
            shape,
        };
        LinearShardGrads {
            grad_input: next(vec![n, d]),
            grad_linear_weight: next(vec![cs, d]),
            grad_linear_bias: has_bias.then(|| next(vec![cs])),
        }
    });
    let lens = [Some(n * d), Some(cs * d), has_bias.then_some(cs)];
    let lens: Vec<usize> = lens.into_iter().flatten().collect();
    let problem = check_shard_target(&target, (n, cs, shard.classes), opts)?;
    if n == 0 {
        let no_rows = (grad, vec![], lens);
        return Ok(PreparedHostShard::new(ctx, (0, None), no_rows, assemble));
    }
    // Class targets are checked here, over all C, and the ignored ones marked.
    let opts = LossOptions {
        ignore_index: IGNORED as i64,
        ..*opts
    };
    let p = LinearProblem::new(shard.input.shape, shard.linear_weight.shape, None)?;
    let up = |t: &Tensor<f32>| upload(ctx, "linear shard input", t.data);
    let operand = |buffer| Operand {
        buffer,
        offset: 0,
        major: d,
        step: 1,
    };
    let classes = match &problem.targets {
        Targets::Classes(t) => Some(DeviceTensor::from_host(ctx, t, &[n], DType::I32)?),
        Targets::Probs(_) => None,
    };
    let grads = match grad {
        true => Some(host_grads(ctx, &p, has_bias)?),
        false => None,
    };
    let t = Tensors {
        x: operand(up(&shard.input)?),
        w: operand(up(&shard.linear_weight)?),
        bias: match &shard.linear_bias {
            Some(b) => Some((up(b)?, 0)),
            None => None,
        },
        targets: match (&classes, &problem.targets) {
            (Some(c), _) => ChunkTargets::Classes(c),
            (None, Targets::Probs(probs)) => ChunkTargets::Probs(probs),
            (None, Targets::Classes(_)) => unreachable!("uploaded above"),
        },
        grads: grads.clone(),
        budget: shard.budget,
        lse: false,
    };
    let shape = ShardRows {
        rows: n,
        first_class: shard.first_class,
        shard_classes: cs,
        classes: shard.classes,
    };
    let all = [n, shard.classes];
    let spec = LossSpec::host(&problem, &FloatTensor::F32(Tensor::new(&[], &all)), &[n]);
    let split = host_split(ctx, &spec, &opts, cs)?;
    let segments = split.segments as usize;
    let rows = linear_chunk_rows(ctx, &p, shard.budget)?.min(stats_rows(ctx, segments));
    let parts = ((&t, &p), (split, rows), Program::default());
    let device = linear_shard_core(ctx, (shape, spec), &opts, parts.0, parts.1, parts.2)?;
    let reads = match grads {
        Some((dx, dw, db)) => [Some(dx), Some(dw), db]
            .into_iter()
            .flatten()
            .zip(&lens)
            .map(|((b, at), &len)| (b, (at * 4) as u64, len))
            .collect(),
        None => vec![],
    };
    Ok(PreparedHostShard::new(
        ctx,
        (n, Some(device)),
        (grad, reads, lens),
        assemble,
    ))
}

/// Checks a shard's shapes: `(N, D, Cs)`.
fn check_linear_shard(shard: &LinearShard) -> Result<(usize, usize, usize)> {
    let (n, d, cs) = match (shard.input.shape, shard.linear_weight.shape) {
        (&[n, d], &[cs, dw]) if d == dw => (n, d, cs),
        (x, w) => {
            return Err(XentError::InvalidShape(format!(
                "a linear shard's input is [N, D] and its weight [Cs, D], got {x:?} and {w:?}"
            )))
        }
    };
    shard.input.check_len("input")?;
    shard.linear_weight.check_len("linear_weight")?;
    if let Some(b) = shard.linear_bias {
        if b.shape != [cs] {
            return Err(XentError::InvalidShape(format!(
                "a linear shard's bias is [{cs}], got {:?}",
                b.shape
            )));
        }
        b.check_len("linear_bias")?;
    }
    check_classes(n, shard.first_class, cs, shard.classes)?;
    Ok((n, d, cs))
}
