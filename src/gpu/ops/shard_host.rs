//! A shard on host tensors: a shard prepared on the device (src/gpu/ops/loss/shard_device.rs)
//! over our uploads, and the readback around it. The partials `[2, N·K, 4]` are read and
//! decoded into one [`Partial`] a row; the merged statistics are written back over them;
//! the gradients are read. The one host adapter of the protocol: a `cross_entropy` shard
//! (src/gpu/ops/loss/shard.rs) and a `linear_cross_entropy` one (src/gpu/ops/linear/shard.rs)
//! differ only in what they upload and how their gradients are assembled.

use crate::error::{Result, XentError};
use crate::gpu::ops::loss::PreparedShardDevice;
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::program::run_program;
use crate::gpu::runtime::readback::{staging_for, Staging};
#[cfg(not(target_arch = "wasm32"))]
use crate::gpu::runtime::run_lock::run_locked;
use crate::gpu::runtime::run_lock::{run_locked_async, RunLock};
use crate::shard::{Partial, ShardStep};
use std::sync::atomic::{AtomicBool, Ordering};

/// How a shard's gradient buffers, read back in order, become its gradient `G`.
pub(crate) type Assemble<G> = Box<dyn Fn(Vec<Vec<f32>>) -> G + Send + Sync>;

/// A host shard prepared on one context: [`PreparedHostShard::partials`], then, with every
/// shard's partials merged, [`PreparedHostShard::grad`]. `G` is its gradient:
/// [`crate::Output`] for a `cross_entropy` shard ([`crate::PreparedShard`]),
/// [`crate::LinearShardGrads`] for a `linear_cross_entropy` one
/// ([`crate::PreparedLinearShard`]).
pub struct PreparedHostShard<G> {
    ctx: Context,
    /// The shard on our uploads (`None` for a shard of no rows), with the staging of its
    /// partials.
    device: Option<(PreparedShardDevice, Staging)>,
    /// What the gradient's run reads: each gradient buffer, where it starts, its staging and
    /// its floats.
    reads: Vec<(wgpu::Buffer, u64, Staging, usize)>,
    /// The floats of each gradient, in order (zeros for a shard of no rows).
    lens: Vec<usize>,
    assemble: Assemble<G>,
    rows: usize,
    grad: bool,
    /// Whether the partials have run (the gradient reads what they left).
    ran: AtomicBool,
    /// Held by each run (src/gpu/runtime/run_lock.rs).
    lock: RunLock,
}

/// A gradient buffer of a host shard: the buffer, where it starts, and its floats.
pub(crate) type GradBuffer = (wgpu::Buffer, u64, usize);

impl<G> PreparedHostShard<G> {
    /// `device` (`None` without rows) read back: its gradient, when `grad`, from `grads`
    /// (`lens` floats each without rows), put together by `assemble`.
    pub(crate) fn new(
        ctx: &Context,
        (rows, device): (usize, Option<PreparedShardDevice>),
        (grad, grads, lens): (bool, Vec<GradBuffer>, Vec<usize>),
        assemble: Assemble<G>,
    ) -> Self {
        let device = device.map(|d| {
            let (out, segments) = d.all_partials();
            let bytes = (rows * segments * 32) as u64;
            let staging = staging_for(ctx, out, 0, bytes);
            (d, staging)
        });
        let reads = grads
            .into_iter()
            .map(|(b, at, len)| {
                let staging = staging_for(ctx, &b, at, (len * 4) as u64);
                (b, at, staging, len)
            })
            .collect();
        Self {
            ctx: ctx.clone(),
            device,
            reads,
            lens,
            assemble,
            rows,
            grad,
            ran: false.into(),
            lock: Default::default(),
        }
    }

    /// Runs the shard's forward and returns each row's [`Partial`] over its classes.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn partials(&self) -> Result<Vec<Partial>> {
        run_locked(&self.ctx, &self.lock, self.partials_held())
    }

    /// The async form of [`PreparedHostShard::partials`].
    pub async fn partials_async(&self) -> Result<Vec<Partial>> {
        run_locked_async(&self.ctx, &self.lock, self.partials_held()).await
    }

    /// The shard's gradient (upstream gradient 1; of the summed losses for `none`), from
    /// every shard's partials merged in shard order.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn grad(&self, merged: &[Partial]) -> Result<G> {
        run_locked(&self.ctx, &self.lock, self.grad_held(merged))
    }

    /// The async form of [`PreparedHostShard::grad`].
    pub async fn grad_async(&self, merged: &[Partial]) -> Result<G> {
        run_locked_async(&self.ctx, &self.lock, self.grad_held(merged)).await
    }

    /// `partials` by a caller that holds the run lock, inside its error scopes.
    async fn partials_held(&self) -> Result<Vec<Partial>> {
        let Some((device, staging)) = &self.device else {
            return Ok(vec![]);
        };
        let (out, segments) = device.all_partials();
        let (program, _) = device.programs();
        let (words, _) = run_program(&self.ctx, program, &[(out, 0, staging)], None).await?;
        self.ran.store(true, Ordering::Relaxed);
        Ok(Partial::read_planes(&words[0], self.rows, segments))
    }

    /// `grad` by a caller that holds the run lock, inside its error scopes.
    async fn grad_held(&self, merged: &[Partial]) -> Result<G> {
        if !self.grad {
            return Err(XentError::InvalidArgument(
                "the shard was prepared without its gradient".into(),
            ));
        }
        if merged.len() != self.rows {
            return Err(XentError::InvalidShape(format!(
                "{} merged rows for a shard of {} rows",
                merged.len(),
                self.rows
            )));
        }
        let Some((device, _)) = &self.device else {
            return Ok((self.assemble)(
                self.lens.iter().map(|&l| vec![0.0; l]).collect(),
            ));
        };
        if !self.ran.load(Ordering::Relaxed) {
            self.partials_held().await?;
        }
        let (out, segments) = device.all_partials();
        let stats = Partial::merged_words(merged, segments);
        self.ctx
            .queue()
            .write_buffer(out, 0, bytemuck::cast_slice(&stats));
        let Some(program) = device.programs().1 else {
            unreachable!("a host shard with its gradient has its program")
        };
        let reads: Vec<_> = self.reads.iter().map(|(b, at, s, _)| (b, *at, s)).collect();
        let (words, _) = run_program(&self.ctx, program, &reads, None).await?;
        let words = words
            .into_iter()
            .zip(&self.reads)
            .map(|(mut data, (_, _, _, len))| {
                data.truncate(*len);
                data
            })
            .collect();
        Ok((self.assemble)(words))
    }
}

impl<G> ShardStep for PreparedHostShard<G> {
    type Stat = Partial;
    type Grad = G;

    fn empty(&self) -> Partial {
        Partial::EMPTY
    }

    fn merge(&self, stat: Partial, later: Partial) -> Partial {
        stat.merge(later)
    }

    async fn partials(&self) -> Result<Vec<Partial>> {
        self.partials_async().await
    }

    async fn grad(&self, merged: &[Partial]) -> Result<G> {
        self.grad_async(merged).await
    }
}
