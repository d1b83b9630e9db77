//! Reading a prepared loss call's results back: the gradient of its last run, the loss of
//! its last recorded submission (with the device-target check), each under the call's lock.

use super::buffers::row_chunks;
use super::prepared::PreparedLoss;
use crate::error::Result;
use crate::gpu::runtime::program::{join, Program};
use crate::gpu::runtime::program::{run_program, run_program_into};
use crate::gpu::runtime::readback::Staging;
#[cfg(not(target_arch = "wasm32"))]
use crate::gpu::runtime::run_lock::run_locked;
use crate::gpu::runtime::run_lock::run_locked_async;
use crate::options::Output;

impl PreparedLoss {
    /// Reads back the gradient of the last run (empty unless prepared with a `Grad`).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_grad(&self) -> Result<Vec<f32>> {
        self.check_started("read_grad")?;
        run_locked(&self.ctx, &self.lock, self.read_grad_held())
    }

    /// The async form of [`PreparedLoss::read_grad`].
    pub async fn read_grad_async(&self) -> Result<Vec<f32>> {
        self.check_started("read_grad")?;
        run_locked_async(&self.ctx, &self.lock, self.read_grad_held()).await
    }

    /// Copies the gradient of the last run into `out` (the logits' length), memory the
    /// caller reuses: no fresh pages to fault in, as a new `Vec` would have.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_grad_into(&self, out: &mut [f32]) -> Result<()> {
        self.check_started("read_grad_into")?;
        let reads = self.grad_reads();
        let empty = Program::default();
        let read = run_program_into(&self.ctx, &empty, &reads, out);
        run_locked(&self.ctx, &self.lock, read)
    }

    /// The async form of [`PreparedLoss::read_grad_into`].
    pub async fn read_grad_into_async(&self, out: &mut [f32]) -> Result<()> {
        self.check_started("read_grad_into")?;
        let reads = self.grad_reads();
        let empty = Program::default();
        let read = run_program_into(&self.ctx, &empty, &reads, out);
        run_locked_async(&self.ctx, &self.lock, read).await
    }

    /// `read_grad` by a caller that holds the run lock.
    async fn read_grad_held(&self) -> Result<Vec<f32>> {
        let reads = self.grad_reads();
        let empty = Program::default();
        let (parts, _) = run_program(&self.ctx, &empty, &reads, None).await?;
        Ok(join(parts))
    }

    /// Each chunk's gradient and its staging buffer, as a readback takes them.
    fn grad_reads(&self) -> Vec<(&wgpu::Buffer, u64, &Staging)> {
        self.grad_sources()
            .zip(&self.grad_staging)
            .map(|((b, o), s)| (b, o, s))
            .collect()
    }

    /// An error unless the call was recorded or run: before that its outputs hold nothing.
    pub(super) fn check_started(&self, what: &str) -> Result<()> {
        if self.started.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        Err(crate::XentError::InvalidArgument(format!(
            "{what}: the call has not run yet; record it into an encoder and submit that first"
        )))
    }

    /// Where each chunk's gradient lies: its own buffer, or over the logits.
    pub(super) fn grad_sources(&self) -> impl Iterator<Item = (&wgpu::Buffer, u64)> {
        self.chunks.iter().map(|c| {
            let g = c.grad.as_ref().unwrap_or(&c.input.logits);
            (&g.buffer, g.offset)
        })
    }

    /// Reads the loss of the last submitted [`PreparedLoss::record`] back (waiting for it),
    /// and the device-target error flag: an out-of-range target is reported here, as the
    /// host API reports it.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_loss(&self) -> Result<Output> {
        self.check_started("read_loss")?;
        run_locked(&self.ctx, &self.lock, self.read_loss_held())
    }

    /// The async form of [`PreparedLoss::read_loss`].
    pub async fn read_loss_async(&self) -> Result<Output> {
        self.check_started("read_loss")?;
        run_locked_async(&self.ctx, &self.lock, self.read_loss_held()).await
    }

    /// The loss (reduced, or each chunk's rows) and its staging buffers, as a readback
    /// takes them.
    pub(super) fn loss_reads(&self) -> Vec<(&wgpu::Buffer, u64, &Staging)> {
        match &self.reduced {
            Some(r) => vec![(&r.value, 0, &self.loss_staging[0])],
            None => row_chunks(&self.chunks)
                .zip(&self.loss_staging)
                .map(|(c, s)| (&c.losses, 0, s))
                .collect(),
        }
    }

    /// `read_loss` by a caller that holds the run lock.
    async fn read_loss_held(&self) -> Result<Output> {
        let mut reads = self.loss_reads();
        if let Some((flag, staging)) = &self.error {
            reads.push((flag, 0, staging));
        }
        let empty = Program::default();
        let (mut words, _) = run_program(&self.ctx, &empty, &reads, None).await?;
        if self.error.is_some() {
            self.check_error(&words.pop().unwrap_or_default())?;
        }
        Ok(Output {
            data: join(words),
            shape: self.loss_shape.clone(),
        })
    }

    /// The device-target flag: (first bad row or u32::MAX, its value's low and high words).
    pub(super) fn check_error(&self, flag: &[f32]) -> Result<()> {
        self.flag_error(flag, 0, &self.target_shape)
    }

    /// The device-target flag buffer (device class targets only).
    pub(crate) fn error_flag(&self) -> Option<&wgpu::Buffer> {
        self.error.as_ref().map(|(b, _)| b)
    }

    /// The flag's error, if any, for a call whose rows are rows `first_row..` of a target of
    /// `shape` (linear_cross_entropy's chunks).
    pub(crate) fn flag_error(&self, flag: &[f32], first_row: usize, shape: &[usize]) -> Result<()> {
        let word = |i: usize| flag.get(i).map_or(u32::MAX, |f| f.to_bits());
        if word(0) == u32::MAX {
            return Ok(());
        }
        let value = (word(1) as u64 | (word(2) as u64) << 32) as i64;
        Err(crate::XentError::TargetOutOfBounds {
            position: crate::layout::unravel(first_row + word(0) as usize, shape),
            value,
            classes: self.classes,
            ignore_index: self.ignore_index,
        })
    }
}
