//! A prepared loss run on new batches: new logits, targets and class weights written into its
//! buffers, and batches of fewer rows than it was prepared for, with the same pipelines.
//!
//! A smaller batch sets the kernels' row count (`LossParams::rows`, the first word of each
//! chunk's uniform) and zeroes the per-row losses and denominators past it, so the reductions,
//! which keep the prepared row count, add exact zeros: the sums are those of the batch alone.

use super::plan::ROWS_OFFSET;
use super::prepared::PreparedLoss;
use super::{empty_loss, Grad, Results};
use crate::error::{Result, XentError};
#[cfg(not(target_arch = "wasm32"))]
use crate::gpu::runtime::run_lock::run_locked;
use crate::gpu::runtime::run_lock::run_locked_async;
use crate::options::{FloatTensor, LossAndGrad, LossOptions, Output, Reduction, Target};
use crate::problem::{check_loss, LossProblem, Targets};
use std::sync::atomic::Ordering;

impl PreparedLoss {
    /// Runs the call on a new batch and reads back everything it was prepared for: the loss,
    /// and the gradient and each row's lse when asked for.
    ///
    /// `input` has the prepared shape, or fewer rows along its first dim (the last, shorter
    /// batch of an epoch), in the prepared dtype; `target` matches it as in the one-shot call.
    /// `weight` replaces the class weights of a call prepared with `LossOptions::weight`
    /// (`None` keeps the last ones). Each batch is checked as the one-shot call checks it,
    /// with the same errors; no buffer or pipeline is made.
    ///
    /// The result equals the one-shot call's on the same batch bit for bit, whenever the
    /// one-shot call walks the rows the same way: always when a row fits one workgroup's walk
    /// (no split rows) and the prepared rows fit one binding.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run_batch<'i>(
        &self,
        input: impl Into<FloatTensor<'i>>,
        target: Target,
        weight: Option<&[f32]>,
    ) -> Result<LossAndGrad> {
        let run = self.run_batch_held(input.into(), target, weight);
        run_locked(&self.ctx, &self.lock, run)
    }

    /// The async form of [`PreparedLoss::run_batch`].
    pub async fn run_batch_async<'i>(
        &self,
        input: impl Into<FloatTensor<'i>>,
        target: Target<'_>,
        weight: Option<&[f32]>,
    ) -> Result<LossAndGrad> {
        let run = self.run_batch_held(input.into(), target, weight);
        run_locked_async(&self.ctx, &self.lock, run).await
    }

    /// `run_batch` by a caller that holds the run lock, inside its error scopes.
    async fn run_batch_held(
        &self,
        input: FloatTensor<'_>,
        target: Target<'_>,
        weight: Option<&[f32]>,
    ) -> Result<LossAndGrad> {
        let (outer, problem) = self.write_batch(&input, &target, weight)?;
        let results = match problem.layout.rows() {
            // Nothing to run: what the one-shot call returns for no rows.
            0 => Results {
                loss: empty_loss(&problem, self.batch.options.reduction),
                grad: (self.req.grad != Grad::None).then(Vec::new),
                lse: self.req.lse.then(Vec::new),
            },
            _ => self.run_reading(true, false).await?.0,
        };
        Ok(self.cut(results, outer, input.shape(), problem.out_shape))
    }

    /// Checks a batch and writes it into the call's buffers (a batch of no rows: only its
    /// weights); returns its rows along dim 0 and the checked problem.
    fn write_batch(
        &self,
        input: &FloatTensor,
        target: &Target,
        weight: Option<&[f32]>,
    ) -> Result<(usize, LossProblem)> {
        let host = &self.batch;
        if !host.uploaded {
            return Err(XentError::Unsupported(
                "run_batch writes a batch into the call's own buffers: a call on device tensors \
                 reads yours (write them, set_batch, record)"
                    .into(),
            ));
        }
        if weight.is_some() && !host.weighted {
            return Err(XentError::InvalidArgument(
                "new class weights for a call prepared without LossOptions::weight".into(),
            ));
        }
        if input.float() != self.dtype {
            return Err(XentError::InvalidArgument(format!(
                "the batch is {:?}; the call was prepared for {:?} logits",
                input.dtype(),
                crate::DType::from(self.dtype)
            )));
        }
        let opts = LossOptions {
            weight,
            ..host.options
        };
        let problem = check_loss(self.req.loss, input.shape(), input.len(), target, &opts)?;
        let (layout, prepared) = (problem.layout, host.layout);
        if layout.classes != prepared.classes
            || layout.inner != prepared.inner
            || layout.outer > prepared.outer
            || input.shape().len() != self.input_shape.len()
        {
            return Err(XentError::InvalidShape(format!(
                "a batch of shape {:?} does not fit a call prepared for {:?}: it may only have fewer rows along dim 0",
                input.shape(),
                self.input_shape
            )));
        }
        if layout.rows() > 0 && layout.outer < prepared.outer && self.chunks.len() > 1 {
            return Err(XentError::Unsupported(format!(
                "a smaller batch than prepared needs the call to fit one binding; this one is {} chunks",
                self.chunks.len()
            )));
        }
        // Checked whole: nothing is written for a batch that is refused.
        if let Some(w) = weight {
            self.write_weights(w);
        }
        if layout.rows() == 0 {
            return Ok((layout.outer, problem));
        }
        self.write_inputs(input, &problem.targets);
        self.set_rows(layout.outer)?;
        Ok((layout.outer, problem))
    }

    /// The batch's logits and targets into each chunk's buffers, from its first element.
    fn write_inputs(&self, input: &FloatTensor, targets: &Targets) {
        let queue = self.ctx.queue();
        let total = input.len();
        let rows_total = match targets {
            Targets::Classes(t) => t.len(),
            Targets::Probs(_) => 0,
        };
        for c in &self.chunks {
            let i = &c.input;
            let elems = i.elems.start.min(total)..i.elems.end.min(total);
            let logits = &i.logits;
            queue.write_buffer(&logits.buffer, logits.offset, input.bytes(elems.clone()));
            match (targets, &i.probs) {
                (Targets::Classes(t), _) => {
                    let rows = i.rows.start.min(rows_total)..i.rows.end.min(rows_total);
                    let words: &[u8] = bytemuck::cast_slice(&t[rows]);
                    queue.write_buffer(&i.targets.buffer, i.targets.offset, words);
                }
                (Targets::Probs(p), Some(probs)) => {
                    let words: &[u8] = bytemuck::cast_slice(&p[elems]);
                    queue.write_buffer(&probs.buffer, probs.offset, words);
                }
                (Targets::Probs(_), None) => {}
            }
        }
    }

    /// New class weights, and W = Σ w (the smoothing term's), summed as the one-shot call
    /// sums it.
    fn write_weights(&self, weight: &[f32]) {
        let queue = self.ctx.queue();
        let w = &self.batch.weight;
        queue.write_buffer(&w.buffer, w.offset, bytemuck::cast_slice(weight));
        let total = weight.iter().map(|&v| v as f64).sum::<f64>() as f32;
        queue.write_buffer(&self.batch.scale, 4, bytemuck::bytes_of(&total));
    }

    /// Makes the kernels walk the first `outer` rows along dim 0 (at most the prepared
    /// count): for a device call whose buffers hold a smaller batch, before recording it.
    /// The loss of the rows past it is zero, and their gradient is not written.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn set_batch(&self, outer: usize) -> Result<()> {
        let _run = self.lock.wait("set_batch")?;
        self.set_rows(outer)
    }

    /// `set_batch`, by a run that holds the lock.
    pub(super) fn set_rows(&self, outer: usize) -> Result<()> {
        let prepared = self.batch.layout;
        if outer == 0 || outer > prepared.outer {
            return Err(XentError::InvalidShape(format!(
                "a batch of {outer} rows; the call was prepared for 1 to {}",
                prepared.outer
            )));
        }
        if outer < prepared.outer && self.chunks.len() > 1 {
            return Err(XentError::Unsupported(
                "a smaller batch than prepared needs the call to fit one binding".into(),
            ));
        }
        if self.batch.outer.swap(outer, Ordering::Relaxed) == outer {
            return Ok(());
        }
        let queue = self.ctx.queue();
        let (rows, all) = (outer * prepared.inner, prepared.rows());
        for c in self.chunks.iter().filter(|c| c.input.seg_first == 0) {
            queue.write_buffer(&c.params, ROWS_OFFSET, bytemuck::bytes_of(&(rows as u32)));
            let zeros = vec![0u8; (all - rows) * 4];
            queue.write_buffer(&c.losses, rows as u64 * 4, &zeros);
            queue.write_buffer(&c.dens, rows as u64 * 4, &zeros);
        }
        Ok(())
    }

    /// The results of a batch of `outer` rows, cut from the prepared buffers' contents.
    fn cut(&self, r: Results, outer: usize, shape: &[usize], out_shape: Vec<usize>) -> LossAndGrad {
        let layout = self.batch.layout;
        let rows = outer * layout.inner;
        let elems = rows * layout.classes;
        let loss = match self.batch.options.reduction {
            Reduction::None => Output {
                data: r.loss.data[..rows.min(r.loss.data.len())].to_vec(),
                shape: out_shape,
            },
            _ => r.loss,
        };
        let cut = |mut v: Vec<f32>, n: usize| {
            v.truncate(n);
            v
        };
        Results {
            loss,
            grad: r.grad.map(|g| cut(g, elems)),
            lse: r.lse.map(|l| cut(l, rows)),
        }
        .into_loss_and_grad(shape)
    }
}

/// A prepared call's options and the buffers a new batch's class weights go into.
pub(super) struct Batch {
    /// The options it was prepared with, less the weights.
    pub options: LossOptions<'static>,
    /// Whether it was prepared with host class weights (then each batch may bring new ones).
    pub weighted: bool,
    /// Whether its inputs were uploaded into buffers of ours (a host call): only then may a
    /// batch be written over them.
    pub uploaded: bool,
    pub layout: crate::layout::RowLayout,
    /// The batch the kernels walk now: `layout.outer` or fewer (`PreparedLoss::set_batch`).
    pub outer: std::sync::atomic::AtomicUsize,
    pub weight: crate::gpu::runtime::buffers::Bound,
    /// D and W (the gradient's scale); W is written from host weights.
    pub scale: wgpu::Buffer,
}
