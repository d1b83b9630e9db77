//! The public API of a [`Context`], in one folder. An op is asked for with a call
//! description (`LossCall`, `SoftmaxCall`, `LinearCall`, `MatmulCall`, and the vocabulary
//! shards of shard.rs), which `ctx.prepare(&call)` builds once and `ctx.run(&call)` /
//! `ctx.run_async(&call)` run once; sugar.rs holds the one-line forms of the common calls.
//! Blocking happens here (the sync forms) and in the prepared calls' sync verbs, never in
//! an op. docs/ARCHITECTURE.md follows one call from here to its dispatches.

mod call;
mod linear;
mod loss;
mod shard;
mod softmax;
#[cfg(not(target_arch = "wasm32"))]
mod sugar;

pub use call::{Grad, Input, TargetInput};
#[cfg(not(target_arch = "wasm32"))]
pub use linear::BandwidthCall;
pub use linear::{LinearCall, MatmulCall};
pub use loss::{LossCall, LossKind};
pub use shard::{CrossEntropyShards, LinearShards, ShardedCall, SoftmaxShards};
pub use softmax::SoftmaxCall;

use crate::error::Result;
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::info::{context_info, ContextInfo};
#[cfg(not(target_arch = "wasm32"))]
use crate::gpu::runtime::scope::build_scoped;
use crate::gpu::runtime::scope::scoped;
use std::future::Future;

/// A description of an op that a [`Context`] can build once: `ctx.prepare(&call)`.
pub trait Prepare {
    /// What [`Context::prepare`] gives: the buffers and pipelines made once, to run or
    /// record as often as the data changes.
    type Prepared;
    /// Builds the call: checks, uploads, pipelines. It neither blocks nor opens an error
    /// scope: [`Context::prepare`] and [`Context::prepare_async`] do, once.
    fn build(&self, ctx: &Context) -> Result<Self::Prepared>;
}

/// A call that can also run once and return its results: [`Context::run`] or
/// [`Context::run_async`].
pub trait Call: Prepare {
    /// What one run returns.
    type Output;
    /// Runs the call once. Called by [`Context::run`] and [`Context::run_async`].
    fn run_on(&self, ctx: &Context) -> impl Future<Output = Result<Self::Output>>;
}

/// The generic verbs: every call description goes through these four.
impl Context {
    /// What this context runs on, and how it was tuned.
    pub fn info(&self) -> ContextInfo {
        context_info(self)
    }

    /// Builds `call` once (checks, uploads, pipelines), to run or record it many times.
    ///
    /// ```
    /// use wgpu_xent::{Context, Grad, LossCall, Target, Tensor};
    /// let ctx = Context::new()?;
    /// let x = [0.0f32; 8];
    /// let call = LossCall::cross_entropy(Tensor::new(&x, &[2, 4]), Target::I64(Tensor::new(&[0i64, 3], &[2])))
    ///     .grad(Grad::Returned);
    /// let step = ctx.prepare(&call)?;
    /// let out = step.run()?;
    /// assert!((out.loss.scalar() - 4f32.ln()).abs() < 1e-6);
    /// assert_eq!(out.grad.unwrap().data.len(), 8);
    /// # Ok::<(), wgpu_xent::XentError>(())
    /// ```
    #[cfg(not(target_arch = "wasm32"))]
    pub fn prepare<C: Prepare>(&self, call: &C) -> Result<C::Prepared> {
        build_scoped(self, || call.build(self))
    }

    /// The async form of [`Context::prepare`]: the build inside error scopes, never waiting.
    pub async fn prepare_async<C: Prepare>(&self, call: &C) -> Result<C::Prepared> {
        scoped(self, async { call.build(self) }).await
    }

    /// Runs `call` once and returns its results, blocking this thread until they are read.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run<C: Call>(&self, call: &C) -> Result<C::Output> {
        crate::gpu::runtime::poller::block(call.run_on(self))
    }

    /// The async form of [`Context::run`]: every op has one this way.
    pub async fn run_async<C: Call>(&self, call: &C) -> Result<C::Output> {
        call.run_on(self).await
    }
}
