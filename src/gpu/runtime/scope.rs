//! wgpu errors as `Err`: validation and out-of-memory error scopes around a call's work.

use crate::error::{Result, XentError};
use crate::gpu::runtime::context::Context;
use std::future::Future;

/// Runs `build` (buffers, bind groups, programs) inside the error scopes, so a GPU error
/// while building (out of memory, a binding past a limit) is an `Err`, not a log line.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn build_scoped<T>(ctx: &Context, build: impl FnOnce() -> Result<T>) -> Result<T> {
    crate::gpu::runtime::poller::block(scoped(ctx, async { build() }))
}

/// Runs `work` inside validation and out-of-memory error scopes, so that wgpu errors come
/// back as `Err` rather than panics; a scoped wgpu error wins over the work's own result.
///
/// The scopes are pushed and popped around each poll of `work`, never held across one of
/// its awaits: wgpu's scopes are a stack on each thread, and async calls joined on one
/// executor interleave their polls (src/gpu/runtime/poller.rs).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn scoped<'a, T: 'a>(
    ctx: &'a Context,
    work: impl Future<Output = Result<T>> + 'a,
) -> impl Future<Output = Result<T>> + 'a {
    let mut work = Box::pin(work);
    let mut first_error: Option<XentError> = None;
    std::future::poll_fn(move |cx| {
        let device = &ctx.shared.device;
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let poll = work.as_mut().poll(cx);
        // Native scopes pop at once: the futures are ready.
        let validation = pollster::block_on(validation.pop());
        let oom = pollster::block_on(oom.pop());
        if first_error.is_none() {
            first_error = match (oom, validation) {
                (Some(e), _) => Some(XentError::OutOfMemory(e.to_string())),
                (None, Some(e)) => Some(XentError::Gpu(e.to_string())),
                (None, None) => None,
            };
        }
        poll.map(|result| match first_error.take() {
            Some(e) => Err(e),
            None => result,
        })
    })
}

/// In a browser, where popping a scope is a promise: the scopes pushed once around the whole
/// of `work`, which holds the device's scope lock meanwhile, so that calls joined on one
/// device run their scoped parts one after another and pop in order. `work` must not open
/// scopes of its own there (it would wait for itself).
#[cfg(target_arch = "wasm32")]
pub(crate) async fn scoped<T>(ctx: &Context, work: impl Future<Output = Result<T>>) -> Result<T> {
    let _one_at_a_time = ctx.shared.scopes.lock().await;
    let device = &ctx.shared.device;
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let result = work.await;
    let validation = validation.pop().await;
    let oom = oom.pop().await;
    match (oom, validation) {
        (Some(e), _) => Err(XentError::OutOfMemory(e.to_string())),
        (None, Some(e)) => Err(XentError::Gpu(e.to_string())),
        (None, None) => result,
    }
}

/// `build(k, context)` for k in `0..count`, each inside the error scopes of its context
/// `contexts[k % len]`: the CPU-side work of a sharded call's shards (their uploads), each
/// on a thread of its own (one after another in a browser). In order; the first error.
#[cfg(target_arch = "wasm32")]
pub(crate) async fn build_each<T>(
    contexts: &[Context],
    count: usize,
    build: impl Fn(usize, &Context) -> Result<T>,
) -> Result<Vec<T>> {
    let mut built = Vec::with_capacity(count);
    for k in 0..count {
        let ctx = &contexts[k % contexts.len()];
        built.push(scoped(ctx, async { build(k, ctx) }).await?);
    }
    Ok(built)
}

/// As the browser's `build_each`, each build on a thread of its own.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) async fn build_each<T: Send>(
    contexts: &[Context],
    count: usize,
    build: impl Fn(usize, &Context) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..count)
            .map(|k| {
                let (ctx, build) = (&contexts[k % contexts.len()], &build);
                s.spawn(move || build_scoped(ctx, || build(k, ctx)))
            })
            .collect();
        handles
            .into_iter()
            // A panic is a bug, not an input error: it goes on as the panic it was.
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}
