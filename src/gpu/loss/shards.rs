//! cross_entropy over logits given as vocabulary shards `[N, Cs_k]` (classes in shard order),
//! on one context: each shard's rows are split-row segments of their own (their partials
//! written at the shard's slots), merged per row in shard order, and each shard gets its own
//! slice of the gradient. The contract is `cpu::shard`'s.

use super::buffers::ChunkInputs;
use super::plan::{LossPlan, LossSpec};
use super::{Grad, Loss, Request};
use crate::error::{Result, XentError};
use crate::geometry::rows::Split;
use crate::gpu::buffers::Bound;
use crate::gpu::context::Context;
use crate::options::{Logits, LossOptions, Output, Target, Tensor};
use crate::problem::{check_loss, Targets};

impl Context {
    pub(crate) fn run_sharded(
        &self,
        shards: &[Tensor<f32>],
        target: Target,
        opts: &LossOptions,
        grad: bool,
    ) -> Result<(Output, Option<Vec<Output>>)> {
        let n = match shards.first().map(|s| s.shape) {
            Some(&[n, _]) => n,
            _ => {
                return Err(XentError::InvalidShape(
                    "shards are [N, Cs] tensors, at least one".into(),
                ))
            }
        };
        let mut sizes = vec![];
        for s in shards {
            match s.shape {
                &[rows, cs] if rows == n && cs > 0 => sizes.push(cs),
                other => {
                    return Err(XentError::InvalidShape(format!(
                        "every shard is [{n}, Cs] with Cs > 0, got {other:?}"
                    )))
                }
            }
            s.check_len("shard")?;
        }
        let c: usize = sizes.iter().sum();
        let shape = [n, c];
        let problem = check_loss(Loss::CrossEntropy, &shape, n * c, &target, opts)?;
        let whole = Logits::F32(Tensor::new(&[], &shape));
        let spec = LossSpec::host(&problem, &whole, target.shape());
        let req = Request {
            grad: if grad { Grad::OutOfPlace } else { Grad::None },
            ..Request::forward(Loss::CrossEntropy)
        };
        let prepared = crate::gpu::poller::block(self.scoped(async {
            let variant =
                self.variant(spec.dtype, shards.iter().map(|s| (s.data.len() * 4) as u64));
            let tuning = self.walk_tuning();
            let plan = LossPlan::new(&spec, opts, req, variant, &tuning)?;
            // Each shard is whole segments of `len` classes; the row's segments are theirs.
            let len = plan.walk.split.len.max(1);
            let segments: Vec<u32> = sizes.iter().map(|&s| (s as u32).div_ceil(len)).collect();
            let split = Split {
                segments: segments.iter().sum(),
                len,
            };
            let plan = plan.split_into(split, tuning.workgroup_size);
            let inputs = self.shard_inputs(shards, &sizes, &segments, &problem)?;
            self.build_planned(&spec, plan, inputs, opts, req)
        }))?;
        let (out, _) = crate::gpu::poller::block(self.scoped(prepared.run()))?;
        let grads = out.grad.map(|g| {
            let mut at = 0;
            sizes
                .iter()
                .map(|&cs| {
                    let data = g[at..at + n * cs].to_vec();
                    at += n * cs;
                    Output {
                        data,
                        shape: vec![n, cs],
                    }
                })
                .collect()
        });
        Ok((out.loss, grads))
    }

    /// Each shard as a chunk of all rows over its classes, its segments after the previous
    /// shards' (so the rows' partials land in shard order).
    fn shard_inputs(
        &self,
        shards: &[Tensor<f32>],
        sizes: &[usize],
        segments: &[u32],
        problem: &crate::problem::LossProblem,
    ) -> Result<Vec<ChunkInputs>> {
        let (n, c) = (problem.layout.rows(), problem.layout.classes);
        let targets = match &problem.targets {
            Targets::Classes(t) => Bound::whole(self.upload("targets", t)?),
            Targets::Probs(_) => Bound::whole(self.upload::<i32>("targets", &[])?),
        };
        let (mut c0, mut seg) = (0, 0);
        let mut inputs = vec![];
        for (s, (&cs, &k)) in shards.iter().zip(sizes.iter().zip(segments)) {
            let probs = match &problem.targets {
                Targets::Probs(p) => {
                    let slice: Vec<f32> = (0..n)
                        .flat_map(|r| p[r * c + c0..r * c + c0 + cs].to_vec())
                        .collect();
                    Some(Bound::whole(self.upload("probs", &slice)?))
                }
                Targets::Classes(_) => None,
            };
            inputs.push(ChunkInputs {
                logits: Bound::whole(self.upload("shard logits", s.data)?),
                targets: targets.clone(),
                probs,
                rows: 0..n,
                elems: 0..n * cs,
                seg_first: seg,
                classes: c0..c0 + cs,
            });
            c0 += cs;
            seg += k;
        }
        Ok(inputs)
    }
}
