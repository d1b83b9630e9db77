//! Launchers for `shaders/loss.wgsl`: cross_entropy and nll_loss, forward.

use super::chunks;
use super::context::Context;
use super::kernels::{Family, Kernel};
use crate::error::Result;
use crate::layout::{check_loss, LossProblem, Targets, IGNORED};
use crate::options::{LossOptions, Output, Reduction, Target, Tensor};

/// Keep in sync with `LossParams` in shaders/loss.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LossParams {
    rows: u32,
    classes: u32,
    inner: u32,
    flags: u32,
    ignore_index: i32,
    label_smoothing: f32,
    z_loss: f32,
    softcap: f32,
}

const HAS_WEIGHT: u32 = 1;
const PROB_TARGETS: u32 = 2;

impl Context {
    /// `torch.nn.functional.cross_entropy(input, target, weight, ignore_index, reduction,
    /// label_smoothing)`, fused: log_softmax is never materialised.
    pub fn cross_entropy(
        &self,
        input: Tensor<f32>,
        target: Target,
        opts: &LossOptions,
    ) -> Result<Output> {
        pollster::block_on(self.cross_entropy_async(input, target, opts))
    }

    /// `torch.nn.functional.nll_loss(input, target, weight, ignore_index, reduction)`.
    pub fn nll_loss(
        &self,
        input: Tensor<f32>,
        target: Target,
        opts: &LossOptions,
    ) -> Result<Output> {
        pollster::block_on(self.nll_loss_async(input, target, opts))
    }

    /// The async form of [`Context::cross_entropy`].
    pub async fn cross_entropy_async(
        &self,
        input: Tensor<'_, f32>,
        target: Target<'_>,
        opts: &LossOptions<'_>,
    ) -> Result<Output> {
        let problem = check_loss("cross_entropy", &input, &target, opts)?;
        self.loss(Kernel::CrossEntropyRows, input.data, &problem, opts)
            .await
    }

    /// The async form of [`Context::nll_loss`].
    pub async fn nll_loss_async(
        &self,
        input: Tensor<'_, f32>,
        target: Target<'_>,
        opts: &LossOptions<'_>,
    ) -> Result<Output> {
        let problem = check_loss("nll_loss", &input, &target, opts)?;
        self.loss(Kernel::NllRows, input.data, &problem, opts).await
    }

    async fn loss(
        &self,
        kernel: Kernel,
        input: &[f32],
        problem: &LossProblem,
        opts: &LossOptions<'_>,
    ) -> Result<Output> {
        let layout = &problem.layout;
        let rows_total = layout.rows();
        if rows_total == 0 {
            return Ok(empty_loss(problem, opts.reduction));
        }
        let chunks = chunks::plan(layout, self.max_binding_bytes())?;
        let mut flags = 0;
        if opts.weight.is_some() {
            flags |= HAS_WEIGHT;
        }
        if matches!(problem.targets, Targets::Probs(_)) {
            flags |= PROB_TARGETS;
        }
        self.scoped(async {
            let weight = self.upload("weight", opts.weight.unwrap_or(&[]))?;
            let dummy = self.upload::<f32>("unused", &[])?;
            let mut encoder = self.device.create_command_encoder(&Default::default());
            let mut per_chunk = Vec::with_capacity(chunks.len());
            for chunk in &chunks {
                let elems = chunk.elems(layout);
                let rows = chunk.rows(layout);
                let params = self.uniform(
                    "loss params",
                    &LossParams {
                        rows: rows.len() as u32,
                        classes: layout.classes as u32,
                        inner: layout.inner as u32,
                        flags,
                        ignore_index: IGNORED,
                        label_smoothing: opts.label_smoothing,
                        z_loss: opts.z_loss,
                        softcap: opts.softcap.unwrap_or(0.0),
                    },
                );
                let logits = self.upload("logits", &input[elems.clone()])?;
                let (targets, probs) = match &problem.targets {
                    Targets::Classes(t) => (self.upload("targets", &t[rows.clone()])?, None),
                    Targets::Probs(p) => (
                        self.upload::<i32>("targets", &[])?,
                        Some(self.upload("probs", &p[elems.clone()])?),
                    ),
                };
                let losses = self.output("losses", rows.len())?;
                let dens = self.output("dens", rows.len())?;
                let lses = self.output("lses", rows.len())?;
                let bind = self.bind(
                    Family::Loss,
                    &[
                        &params,
                        &logits,
                        &targets,
                        probs.as_ref().unwrap_or(&dummy),
                        &weight,
                        &losses,
                        &dens,
                        &lses,
                    ],
                );
                let workgroups = match kernel {
                    Kernel::NllRows => (rows.len() as u64).div_ceil(self.workgroup_size() as u64),
                    _ => rows.len() as u64,
                };
                let label = format!(
                    "{kernel:?} rows={} C={} inner={}",
                    rows.len(),
                    layout.classes,
                    layout.inner
                );
                self.dispatch(&mut encoder, kernel, &bind, workgroups, &label)?;
                per_chunk.push((losses, dens, rows.len()));
            }
            if opts.reduction == Reduction::None {
                let staged = per_chunk
                    .iter()
                    .map(|(losses, _, rows)| self.stage(&mut encoder, losses, *rows as u64 * 4))
                    .collect();
                let parts = self.submit_and_read(encoder, staged).await?;
                return Ok(Output {
                    data: parts.concat(),
                    shape: problem.out_shape.clone(),
                });
            }
            let parts: Vec<_> = per_chunk.iter().map(|(l, d, r)| (l, d, *r)).collect();
            let reduced = self.record_reduction(&mut encoder, &parts, opts.reduction)?;
            let staged = vec![self.stage(&mut encoder, &reduced.value, 4)];
            let value = self.submit_and_read(encoder, staged).await?;
            Ok(Output {
                data: value.concat(),
                shape: vec![],
            })
        })
        .await
    }
}

/// No rows: PyTorch's answers without touching the device.
pub(crate) fn empty_loss(problem: &LossProblem, reduction: Reduction) -> Output {
    match reduction {
        Reduction::None => Output {
            data: vec![],
            shape: problem.out_shape.clone(),
        },
        Reduction::Sum => Output {
            data: vec![0.0],
            shape: vec![],
        },
        Reduction::Mean => Output {
            data: vec![f32::NAN],
            shape: vec![],
        },
    }
}
