//! The one readback helper: copy into MAP_READ buffers, submit once, map, poll that
//! submission only, and hand back the bytes. Async at the core; ops block on it with pollster.

use super::context::Context;
use crate::error::{Result, XentError};

/// A mappable buffer that receives a copy of the first `size` bytes of a storage buffer.
/// It can be reused across submissions.
pub(crate) struct Staging {
    buffer: wgpu::Buffer,
    size: u64,
}

impl Context {
    /// A reusable mappable buffer of `size` bytes.
    pub(crate) fn staging(&self, size: u64) -> Staging {
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("xent staging"),
            size: size.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Staging { buffer, size }
    }

    /// Records a copy of `staging.size` bytes of `src`, from byte `offset`, into `staging`.
    pub(crate) fn copy_to(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        src: &wgpu::Buffer,
        offset: u64,
        staging: &Staging,
    ) {
        if staging.size > 0 {
            encoder.copy_buffer_to_buffer(src, offset, &staging.buffer, 0, staging.size);
        }
    }

    /// Submits `encoder` and returns the staged buffers' contents as 32-bit words (f32), in
    /// order, copied once from the mapped memory.
    pub(crate) async fn submit_and_read(
        &self,
        encoder: wgpu::CommandEncoder,
        staged: &[&Staging],
    ) -> Result<Vec<Vec<f32>>> {
        let submission = self.queue.submit(Some(encoder.finish()));
        let mut receivers = Vec::with_capacity(staged.len());
        for s in staged {
            let (tx, rx) = futures_intrusive::channel::shared::oneshot_channel();
            s.buffer
                .slice(..s.size.max(4))
                .map_async(wgpu::MapMode::Read, move |r| {
                    tx.send(r).ok();
                });
            receivers.push(rx);
        }
        // Blocks in the driver until this submission is done: no busy loop.
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(submission),
                timeout: None,
            })
            .map_err(|e| XentError::Readback(e.to_string()))?;
        let mut out = Vec::with_capacity(staged.len());
        for (s, rx) in staged.iter().zip(receivers) {
            rx.receive()
                .await
                .ok_or_else(|| XentError::Readback("map callback dropped".into()))?
                .map_err(|e| XentError::Readback(e.to_string()))?;
            let view = s
                .buffer
                .slice(..s.size.max(4))
                .get_mapped_range()
                .map_err(|e| XentError::Readback(e.to_string()))?;
            // Mapped ranges are at least 4-byte aligned, so the cast cannot fail.
            out.push(bytemuck::cast_slice::<u8, f32>(&view[..s.size as usize]).to_vec());
            drop(view);
            s.buffer.unmap();
        }
        Ok(out)
    }
}
