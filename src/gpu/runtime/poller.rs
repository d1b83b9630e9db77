//! Who waits in the driver for a submission to finish. A blocking call (`block`) waits on its
//! own thread, at once. An async call hands the submission to the context's poller thread and
//! awaits wgpu's map callbacks, so its future never blocks the executor: calls joined on one
//! executor all submit before any of them waits, and their GPU work overlaps.

use crate::error::Result;
#[cfg(not(target_arch = "wasm32"))]
use crate::error::XentError;
use std::cell::Cell;
#[cfg(not(target_arch = "wasm32"))]
use std::future::Future;
use std::sync::mpsc;
use std::sync::Mutex;

thread_local! {
    /// Set while a blocking call runs its future on this thread.
    static BLOCKING: Cell<bool> = const { Cell::new(false) };
}

/// Runs an op's future to completion on this thread, which also waits in the driver itself
/// (no hand-off to the poller: the lowest latency). Not in a browser, where nothing blocks.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn block<F: Future>(future: F) -> F::Output {
    let before = BLOCKING.with(|b| b.replace(true));
    let out = pollster::block_on(future);
    BLOCKING.with(|b| b.set(before));
    out
}

/// Whether the current thread runs a blocking call.
pub(crate) fn blocking() -> bool {
    BLOCKING.with(|b| b.get())
}

/// A thread that waits in the driver for each submission sent to it, in order, which fires
/// the map callbacks that async calls await. It starts with the first async call (a context
/// used only through blocking calls has none) and ends when its context (every clone) is gone.
pub(crate) struct Poller {
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    device: wgpu::Device,
    running: Mutex<Option<Running>>,
}

struct Running {
    submissions: mpsc::Sender<wgpu::SubmissionIndex>,
    thread: std::thread::JoinHandle<()>,
}

impl Poller {
    pub(crate) fn new(device: &wgpu::Device) -> Self {
        Self {
            device: device.clone(),
            running: Mutex::new(None),
        }
    }

    /// Has the poller wait for `index`, starting its thread on first use. In a browser there
    /// is no thread and no need of one: WebGPU settles the maps from its own event loop.
    pub(crate) fn wait_for(&self, index: wgpu::SubmissionIndex) -> Result<()> {
        #[cfg(target_arch = "wasm32")]
        {
            let _ = index;
            Ok(())
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let mut running = self
                .running
                .lock()
                .map_err(|_| XentError::Readback("the poller's lock is poisoned".into()))?;
            if running.is_none() {
                *running = Some(self.start()?);
            }
            running
                .as_ref()
                .and_then(|r| r.submissions.send(index).ok())
                .ok_or_else(|| XentError::Readback("the poller thread has stopped".into()))
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn start(&self) -> Result<Running> {
        let (submissions, rx) = mpsc::channel::<wgpu::SubmissionIndex>();
        let device = self.device.clone();
        let thread = std::thread::Builder::new()
            .name("wgpu-xent poller".into())
            .spawn(move || {
                while let Ok(index) = rx.recv() {
                    // A lost device fails the waiting maps, which report it.
                    let _ = device.poll(wgpu::PollType::Wait {
                        submission_index: Some(index),
                        timeout: None,
                    });
                }
            })
            .map_err(|e| XentError::Unsupported(format!("starting the poller thread: {e}")))?;
        Ok(Running {
            submissions,
            thread,
        })
    }
}

impl Drop for Poller {
    /// Ends the thread and waits for it, so that its clone of the device is released here,
    /// before the context's own, and never races the process's exit.
    fn drop(&mut self) {
        let running = match self.running.get_mut() {
            Ok(r) => r.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(Running {
            submissions,
            thread,
        }) = running
        {
            drop(submissions);
            let _ = thread.join();
        }
    }
}
