//! The one readback helper: copy into MAP_READ buffers, submit once (after settling what a
//! cancelled readback left mapped: src/gpu/runtime/cancel.rs), map, poll that submission, and hand
//! back the bytes. Async at the core; ops block on it with pollster.

use crate::error::{Result, XentError};
use crate::gpu::runtime::cancel::settle;
use crate::gpu::runtime::cancel::{Cancelled, MapDone, Unsettled};
use crate::gpu::runtime::context::Context;
use std::sync::{Arc, Mutex};

/// A mappable buffer that receives a copy of the first `size` bytes of a storage buffer,
/// or that storage buffer itself when it is mappable (`direct`: nothing to copy). It can be
/// reused across submissions.
pub(crate) struct Staging {
    buffer: wgpu::Buffer,
    size: u64,
    direct: bool,
    /// The map started and not yet read: its submission and outcome. A readback dropped
    /// before its read leaves it here, and [`Release`] hands it to the context to settle.
    pending: Mutex<Option<(wgpu::SubmissionIndex, Arc<MapDone>)>>,
}

/// A reusable mappable buffer of `size` bytes.
pub(crate) fn staging(ctx: &Context, size: u64) -> Staging {
    let buffer = ctx.shared.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("xent staging"),
        size: size.max(4),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    Staging {
        buffer,
        size,
        direct: false,
        pending: Mutex::new(None),
    }
}

/// What reads back `size` bytes of `src` from byte `offset`: `src` itself when it is
/// mappable (`host_output`) and read from its start, else a staging buffer.
pub(crate) fn staging_for(ctx: &Context, src: &wgpu::Buffer, offset: u64, size: u64) -> Staging {
    if offset == 0 && src.usage().contains(wgpu::BufferUsages::MAP_READ) {
        Staging {
            buffer: src.clone(),
            size,
            direct: true,
            pending: Mutex::new(None),
        }
    } else {
        staging(ctx, size)
    }
}

/// Records a copy of `staging.size` bytes of `src`, from byte `offset`, into `staging`.
pub(crate) fn copy_to(
    encoder: &mut wgpu::CommandEncoder,
    src: &wgpu::Buffer,
    offset: u64,
    staging: &Staging,
) {
    if staging.direct {
        // Read where it lies; a direct staging is only made for its own buffer.
        debug_assert!(offset == 0 && *src == staging.buffer);
    } else if staging.size > 0 {
        encoder.copy_buffer_to_buffer(src, offset, &staging.buffer, 0, staging.size);
    }
}

/// Submits `encoder` and returns the staged buffers' contents as 32-bit words (f32), in
/// order, copied once from the mapped memory.
pub(crate) async fn submit_and_read(
    ctx: &Context,
    encoder: wgpu::CommandEncoder,
    staged: &[&Staging],
) -> Result<Vec<Vec<f32>>> {
    let _release = Release(staged, &ctx.shared.cancelled);
    submit_and_map(ctx, encoder, staged).await?;
    staged.iter().map(|s| s.read(host_copy)).collect()
}

/// As `submit_and_read`, with the staged buffers' words copied, one after the
/// other, into `out`, which must hold exactly all of them: memory the caller reuses, so
/// no fresh pages are touched.
pub(crate) async fn submit_and_read_into(
    ctx: &Context,
    encoder: wgpu::CommandEncoder,
    staged: &[&Staging],
    out: &mut [f32],
) -> Result<()> {
    let total: u64 = staged.iter().map(|s| s.size / 4).sum();
    if total != out.len() as u64 {
        return Err(XentError::InvalidShape(format!(
            "the output holds {} values; the result is {total}",
            out.len()
        )));
    }
    let _release = Release(staged, &ctx.shared.cancelled);
    submit_and_map(ctx, encoder, staged).await?;
    let mut at = 0;
    for s in staged {
        let n = (s.size / 4) as usize;
        s.read(|words| copy_into(&mut out[at..at + n], words))?;
        at += n;
    }
    Ok(())
}

/// Submits `encoder` (after settling what cancelled readbacks left mapped), then maps
/// every staged buffer once the submission is done.
async fn submit_and_map(
    ctx: &Context,
    encoder: wgpu::CommandEncoder,
    staged: &[&Staging],
) -> Result<()> {
    settle(ctx).await?;
    let submission = ctx.shared.queue.submit(Some(encoder.finish()));
    let mut maps = Vec::with_capacity(staged.len());
    for s in staged {
        let done = MapDone::new();
        s.buffer
            .slice(..s.size.max(4))
            .map_async(wgpu::MapMode::Read, done.callback());
        *s.pending() = Some((submission.clone(), done.clone()));
        maps.push(done);
    }
    wait_for(ctx, submission)?;
    for done in maps {
        done.mapped().await.map_err(XentError::Readback)?;
    }
    Ok(())
}

/// Has the device finish `submission` and fire its map callbacks: here, at once, in a
/// blocking call (no busy loop); on the poller thread for an async one.
pub(crate) fn wait_for(ctx: &Context, submission: wgpu::SubmissionIndex) -> Result<()> {
    if crate::gpu::runtime::poller::blocking() {
        ctx.shared
            .device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(submission),
                timeout: None,
            })
            .map(|_| ())
            .map_err(|e| XentError::Readback(e.to_string()))
    } else {
        ctx.shared.poller.wait_for(submission)
    }
}

impl Staging {
    /// Hands the mapped words to `f`, then unmaps.
    fn read<T>(&self, f: impl FnOnce(&[f32]) -> T) -> Result<T> {
        let view = self
            .buffer
            .slice(..self.size.max(4))
            .get_mapped_range()
            .map_err(|e| XentError::Readback(e.to_string()))?;
        // Mapped ranges are at least 4-byte aligned, so the cast cannot fail.
        let out = f(bytemuck::cast_slice(&view[..self.size as usize]));
        drop(view);
        self.buffer.unmap();
        *self.pending() = None;
        Ok(out)
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Option<(wgpu::SubmissionIndex, Arc<MapDone>)>> {
        // A plain value: a panic elsewhere leaves it valid.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Hands the context, when dropped, whatever map its readback started and did not read:
/// nothing after a read that finished, the maps of one whose future was dropped mid-flight
/// (cancelled) or that failed. The next readback settles them (src/gpu/runtime/cancel.rs).
struct Release<'a>(&'a [&'a Staging], &'a Cancelled);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        for s in self.0 {
            if let Some((submission, done)) = s.pending().take() {
                let buffer = s.buffer.clone();
                self.1.push(Unsettled {
                    buffer,
                    submission,
                    done,
                });
            }
        }
    }
}

/// Copies `src` into `out` (the same length), from every core when it is large.
fn copy_into(out: &mut [f32], src: &[f32]) {
    use rayon::prelude::*;
    const PARALLEL_FROM: usize = 1 << 20;
    const PIECE: usize = 1 << 18;
    if src.len() < PARALLEL_FROM {
        out.copy_from_slice(src);
        return;
    }
    out.par_chunks_mut(PIECE)
        .zip(src.par_chunks(PIECE))
        .for_each(|(o, s)| o.copy_from_slice(s));
}

/// Copies `src` into a new `Vec`. A large output (log_softmax's N×C, a gradient) lands in
/// freshly mapped memory, and first-touch page faults, not the copy, are its cost
/// (docs/PERFORMANCE.md). So large copies ask for transparent huge pages (Linux `madvise`, a
/// hint) and fault in the pages from every core.
fn host_copy(src: &[f32]) -> Vec<f32> {
    const PARALLEL_FROM: usize = 1 << 20;
    if src.len() < PARALLEL_FROM {
        return src.to_vec();
    }
    // Zeroed by the allocator without touching the pages (a fresh mapping).
    let mut out = vec![0f32; src.len()];
    advise_huge_pages(&mut out);
    copy_into(&mut out, src);
    out
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(buf: &mut [f32]) {
    const HUGE: usize = 2 << 20;
    let start = buf.as_mut_ptr() as usize;
    let end = start + std::mem::size_of_val(buf);
    let aligned = start.next_multiple_of(HUGE);
    if aligned < end {
        // SAFETY: madvise only advises the kernel about pages of an allocation we own; it
        // neither reads nor writes them, and its failure is harmless (ignored).
        unsafe {
            libc::madvise(
                aligned as *mut libc::c_void,
                end - aligned,
                libc::MADV_HUGEPAGE,
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_buf: &mut [f32]) {}
