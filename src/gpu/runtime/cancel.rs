//! Readbacks whose future was dropped mid-flight (cancelled): what they left mapped is unmapped
//! before the context's next submission, so the next run of the same call works.
//!
//! A dropped readback may have started maps that are still pending. Unmapping such a buffer at
//! once would race wgpu: while the device maps it the buffer briefly looks unmapped, the unmap
//! is refused, and the map then lands, leaving the buffer mapped into the next submission
//! ("still mapped"). So each map keeps a [`MapDone`] its callback sets, a dropped readback
//! hands its unread maps to the context ([`Cancelled`]), and the next readback first waits for
//! each of them to finish and unmaps what mapped (`settle`).

use crate::error::Result;
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::program::record;
use crate::gpu::runtime::program::Program;
use crate::gpu::runtime::readback::wait_for;
use futures_intrusive::sync::ManualResetEvent;
use std::sync::{Arc, Mutex};

/// The outcome of one `map_async`, set by its callback (or, should wgpu drop the callback
/// uncalled, by its drop: a failed map, never a wait without end).
pub(crate) struct MapDone {
    event: ManualResetEvent,
    error: Mutex<Option<String>>,
}

/// What the callback owns: it reports the outcome once, when called or dropped.
struct Report(Option<Arc<MapDone>>);

impl Report {
    fn send(&mut self, error: Option<String>) {
        if let Some(done) = self.0.take() {
            *done.error() = error;
            done.event.set();
        }
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        self.send(Some("the map callback was dropped".into()));
    }
}

impl MapDone {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            event: ManualResetEvent::new(false),
            error: Mutex::new(None),
        })
    }

    /// The callback to give `map_async`.
    pub fn callback(
        self: &Arc<Self>,
    ) -> impl FnOnce(std::result::Result<(), wgpu::BufferAsyncError>) + Send + 'static {
        let mut report = Report(Some(self.clone()));
        move |r| report.send(r.err().map(|e| e.to_string()))
    }

    /// Waits for the callback: `Ok` once the buffer is mapped, else what wgpu said.
    pub async fn mapped(&self) -> std::result::Result<(), String> {
        self.event.wait().await;
        self.error().clone().map_or(Ok(()), Err)
    }

    fn error(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.error.lock().unwrap_or_else(|e| e.into_inner())
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

    #[cfg(not(target_arch = "wasm32"))]
    pub fn is_empty(&self) -> bool {
        self.list().is_empty()
    }

    /// Takes `map` off the list and unmaps its buffer if it `mapped`, both under the list's
    /// lock: one settler unmaps it, never two, and no one finds the list empty before the
    /// buffer is free.
    fn settle(&self, map: &Arc<Unsettled>, mapped: bool) {
        let mut list = self.list();
        if let Some(at) = list.iter().position(|m| Arc::ptr_eq(m, map)) {
            list.remove(at);
            if mapped {
                map.buffer.unmap();
            }
        }
    }

    fn list(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Unsettled>>> {
        // A plain list: a panic elsewhere leaves it valid.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Waits for every unsettled map to finish, and unmaps the buffers it mapped. Each map
/// stays listed until it is settled, so a settle that is itself dropped loses none.
pub(crate) async fn settle(ctx: &Context) -> Result<()> {
    let cancelled = &ctx.shared.cancelled;
    while let Some(map) = cancelled.first() {
        wait_for(ctx, map.submission.clone())?;
        let mapped = map.done.mapped().await.is_ok();
        cancelled.settle(&map, mapped);
    }
    Ok(())
}

/// Records `program` into the caller's encoder, which the caller submits: after
/// settling, blocking, what a dropped run left mapped (only then is there a wait, for
/// that run's submission). A failed settle shows at the caller's submission.
pub(crate) fn record_settled(ctx: &Context, encoder: &mut wgpu::CommandEncoder, program: &Program) {
    // In a browser nothing may block: the next submission of an async call settles them.
    #[cfg(target_arch = "wasm32")]
    let _ = ctx;
    #[cfg(not(target_arch = "wasm32"))]
    if !ctx.shared.cancelled.is_empty() {
        let _ = crate::gpu::runtime::poller::block(settle(ctx));
    }
    record(encoder, program, None);
}
