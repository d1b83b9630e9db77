//! The one readback helper: copy into MAP_READ buffers, submit once, map, poll that
//! submission only, and hand back the bytes. Async at the core; ops block on it with pollster.

use super::context::Context;
use crate::error::{Result, XentError};

/// A pending copy of a storage buffer's first `size` bytes into a mappable buffer.
pub(crate) struct Staged {
    buffer: wgpu::Buffer,
    size: u64,
}

impl Context {
    /// Records a copy of the first `size` bytes of `src` into a fresh mappable buffer.
    pub(crate) fn stage(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        src: &wgpu::Buffer,
        size: u64,
    ) -> Staged {
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("xent staging"),
            size: size.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        if size > 0 {
            encoder.copy_buffer_to_buffer(src, 0, &buffer, 0, size);
        }
        Staged { buffer, size }
    }

    /// Submits `encoder` and returns the staged buffers' contents as f32, in order.
    pub(crate) async fn submit_and_read(
        &self,
        encoder: wgpu::CommandEncoder,
        staged: Vec<Staged>,
    ) -> Result<Vec<Vec<f32>>> {
        let submission = self.queue.submit(Some(encoder.finish()));
        let mut receivers = Vec::with_capacity(staged.len());
        for s in &staged {
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
            let values: Vec<f32> = bytemuck::cast_slice(&view[..s.size as usize]).to_vec();
            drop(view);
            s.buffer.unmap();
            out.push(values);
        }
        Ok(out)
    }
}
