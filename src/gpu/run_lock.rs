//! The sharing rule of prepared calls: one run at a time.
//!
//! A prepared call owns the buffers its runs write and read back (inputs, outputs, staging),
//! so two runs in flight at once would read each other's results or map a buffer twice. Its
//! methods take `&self`, so that a call can live in an `Arc` or beside the model it trains;
//! every method that writes the call's buffers, submits its work or reads its results takes
//! the call's `RunLock` first and holds it to the end of its readback. Runs from several
//! threads, or futures joined on one executor, so queue one after another, each with its own
//! results. The lock is async (a waiting future yields), fair (first come, first served), and
//! released when a run's future is dropped, as its mapped staging buffers are
//! (src/gpu/readback.rs): a cancelled run leaves the call usable.
//!
//! A blocking method waits for runs on other threads. It never waits for a future of its own
//! thread, which could only go on once the method returned: that is an `XentError::Busy`.

use super::context::Context;
use crate::error::{Result, XentError};
use futures_intrusive::sync::{Mutex, MutexGuard};
use std::future::Future;
use std::thread::{self, ThreadId};

/// One prepared call's lock: held by each of its runs, from its first write to its last read.
pub(crate) struct RunLock {
    mutex: Mutex<()>,
    /// The thread that took the lock, while it is held.
    holder: std::sync::Mutex<Option<ThreadId>>,
}

/// A held [`RunLock`]; dropping it lets the next run in.
pub(crate) struct RunGuard<'a> {
    lock: &'a RunLock,
    _held: MutexGuard<'a, ()>,
}

impl Default for RunLock {
    fn default() -> Self {
        Self {
            mutex: Mutex::new((), true),
            holder: Default::default(),
        }
    }
}

impl RunLock {
    /// Waits for the runs before this one to finish.
    pub async fn hold(&self) -> RunGuard<'_> {
        let held = self.mutex.lock().await;
        self.guard(held)
    }

    /// Blocks until the runs of other threads are done; an error when a run of this thread
    /// (an unfinished future) holds the lock.
    pub fn wait(&self, what: &str) -> Result<RunGuard<'_>> {
        if let Some(held) = self.mutex.try_lock() {
            return Ok(self.guard(held));
        }
        if *self.holder() == Some(thread::current().id()) {
            return Err(XentError::Busy(what.into()));
        }
        Ok(pollster::block_on(self.hold()))
    }

    fn guard<'a>(&'a self, held: MutexGuard<'a, ()>) -> RunGuard<'a> {
        *self.holder() = Some(thread::current().id());
        RunGuard {
            lock: self,
            _held: held,
        }
    }

    fn holder(&self) -> std::sync::MutexGuard<'_, Option<ThreadId>> {
        // The lock guards a plain value: a panic elsewhere leaves it valid.
        self.holder.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        *self.lock.holder() = None;
    }
}

impl Context {
    /// A prepared call's blocking run: `work` under the call's lock and the error scopes.
    pub(crate) fn run_locked<T>(
        &self,
        lock: &RunLock,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let _run = lock.wait("a blocking run")?;
        super::poller::block(self.scoped(work))
    }
}
