//! The sharing rule of prepared calls: one run at a time.
//!
//! A prepared call owns the buffers its runs write and read back (inputs, outputs, staging),
//! so two runs in flight at once would read each other's results or map a buffer twice. Its
//! methods take `&self`, so that a call can live in an `Arc` or beside the model it trains;
//! each method that writes the call's buffers, submits its work or reads its results takes the
//! call's `RunLock` first and holds it to the end of its readback. Runs from several threads,
//! or futures joined on one executor, so queue one after another, each with its own results.
//! The lock is taken per method: a sequence of them (`write_logits`, then `run_timed`) is the
//! caller's to keep together. The lock is async (a waiting future yields), fair (first come,
//! first served), and released when a run's future is dropped; what that run left mapped is
//! settled before the next submission (src/gpu/runtime/cancel.rs), so a cancelled run leaves the call
//! usable.
//!
//! A blocking method waits for runs on other threads. It never waits behind a future of its
//! own thread, holding the lock or queued for it, which could only go on once the method
//! returned: that is an `XentError::Busy`. A future is counted on the thread that first polled
//! it, so an executor that moves futures between threads may see `Busy` where waiting was
//! possible.

use crate::error::Result;
#[cfg(not(target_arch = "wasm32"))]
use crate::error::XentError;
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::scope::scoped;
use futures_intrusive::sync::{Mutex, MutexGuard};
use std::future::Future;
use std::thread::{self, ThreadId};

/// One prepared call's lock: held by each of its runs, from its first write to its last read.
pub(crate) struct RunLock {
    mutex: Mutex<()>,
    /// The thread of each run holding the lock or waiting for it (a thread once per run).
    threads: std::sync::Mutex<Vec<ThreadId>>,
}

/// A held [`RunLock`]; dropping it lets the next run in.
pub(crate) struct RunGuard<'a> {
    _held: MutexGuard<'a, ()>,
    _mark: Mark<'a>,
}

/// A run's thread in [`RunLock::threads`], from its first wait until it lets go.
struct Mark<'a>(&'a RunLock, ThreadId);

impl Default for RunLock {
    fn default() -> Self {
        Self {
            mutex: Mutex::new((), true),
            threads: Default::default(),
        }
    }
}

impl RunLock {
    /// Waits for the runs before this one to finish.
    pub async fn hold(&self) -> RunGuard<'_> {
        let mark = Mark::new(self);
        let held = self.mutex.lock().await;
        RunGuard {
            _held: held,
            _mark: mark,
        }
    }

    /// Blocks until the runs of other threads are done; an error when a run of this thread
    /// (an unfinished future) holds the lock or waits for it.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn wait(&self, what: &str) -> Result<RunGuard<'_>> {
        if let Some(held) = self.mutex.try_lock() {
            return Ok(RunGuard {
                _held: held,
                _mark: Mark::new(self),
            });
        }
        if self.threads().contains(&thread::current().id()) {
            return Err(XentError::Busy(what.into()));
        }
        Ok(pollster::block_on(self.hold()))
    }

    fn threads(&self) -> std::sync::MutexGuard<'_, Vec<ThreadId>> {
        // A plain list: a panic elsewhere leaves it valid.
        self.threads.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<'a> Mark<'a> {
    fn new(lock: &'a RunLock) -> Self {
        let id = thread::current().id();
        lock.threads().push(id);
        Mark(lock, id)
    }
}

impl Drop for Mark<'_> {
    fn drop(&mut self) {
        let mut threads = self.0.threads();
        if let Some(at) = threads.iter().position(|&t| t == self.1) {
            threads.remove(at);
        }
    }
}

/// How every prepared call runs: its sync verbs through `run_locked`, its async ones through
/// `run_locked_async`, the one place each blocks (the sync form) and opens error scopes.
/// A prepared call's blocking run: `work` under the call's lock and the error scopes.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn run_locked<T>(
    ctx: &Context,
    lock: &RunLock,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let _run = lock.wait("a blocking run")?;
    crate::gpu::runtime::poller::block(scoped(ctx, work))
}

/// The async form of `run_locked`: it waits for the lock and the GPU without
/// blocking the thread.
pub(crate) async fn run_locked_async<T>(
    ctx: &Context,
    lock: &RunLock,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let _run = lock.hold().await;
    scoped(ctx, work).await
}

/// A run that holds no call's lock (a sharded call's pass), inside the error scopes.
pub(crate) async fn run_scoped<T>(
    ctx: &Context,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    scoped(ctx, work).await
}
