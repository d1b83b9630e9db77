//! Readbacks whose future was dropped mid-flight (cancelled): what they left mapped is unmapped
//! before the context's next submission, so the next run of the same call works.
//!
//! A dropped readback may have started maps that are still pending. Unmapping such a buffer at
//! once would race wgpu: while the device maps it the buffer briefly looks unmapped, the unmap
//! is refused, and the map then lands, leaving the buffer mapped into the next submission
//! ("still mapped"). So each map keeps a [`MapDone`] its callback sets, a dropped readback
//! hands its unread maps to the context ([`Cancelled`]), and the next readback first waits for
//! each of them to finish and unmaps what mapped ([`Context::settle`]).

use super::context::Context;
use crate::error::Result;
use futures_intrusive::sync::ManualResetEvent;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The outcome of one `map_async`, set by its callback.
pub(crate) struct MapDone {
    event: ManualResetEvent,
    ok: AtomicBool,
}

impl MapDone {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            event: ManualResetEvent::new(false),
            ok: AtomicBool::new(false),
        })
    }

    /// The callback to give `map_async`.
    pub fn callback(
        self: &Arc<Self>,
    ) -> impl FnOnce(std::result::Result<(), wgpu::BufferAsyncError>) + Send + 'static {
        let done = self.clone();
        move |r| {
            done.ok.store(r.is_ok(), Ordering::Release);
            done.event.set();
        }
    }

    /// Waits for the callback; whether the buffer was mapped.
    pub async fn mapped(&self) -> bool {
        self.event.wait().await;
        self.ok.load(Ordering::Acquire)
    }
}

/// A map that a dropped readback started and never read.
pub(crate) struct Unsettled {
    pub buffer: wgpu::Buffer,
    pub submission: wgpu::SubmissionIndex,
    pub done: Arc<MapDone>,
}

/// A context's unsettled maps, oldest first.
#[derive(Default)]
pub(crate) struct Cancelled(Mutex<Vec<Arc<Unsettled>>>);

impl Cancelled {
    pub fn push(&self, map: Unsettled) {
        self.list().push(Arc::new(map));
    }

    fn first(&self) -> Option<Arc<Unsettled>> {
        self.list().first().cloned()
    }

    /// Takes `map` off the list; whether it was there (one settler unmaps it, never two).
    fn remove(&self, map: &Arc<Unsettled>) -> bool {
        let mut list = self.list();
        let at = list.iter().position(|m| Arc::ptr_eq(m, map));
        at.map(|i| list.remove(i)).is_some()
    }

    fn list(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Unsettled>>> {
        // A plain list: a panic elsewhere leaves it valid.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Context {
    /// Waits for every unsettled map to finish, and unmaps the buffers it mapped. Each map
    /// stays listed until it is settled, so a settle that is itself dropped loses none.
    pub(crate) async fn settle(&self) -> Result<()> {
        let cancelled = &self.shared.cancelled;
        while let Some(map) = cancelled.first() {
            self.wait_for(map.submission.clone())?;
            let mapped = map.done.mapped().await;
            if cancelled.remove(&map) && mapped {
                map.buffer.unmap();
            }
        }
        Ok(())
    }
}
