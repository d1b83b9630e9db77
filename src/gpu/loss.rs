//! Launchers for `shaders/loss.wgsl` and `shaders/grad.wgsl`: cross_entropy and nll_loss,
//! forward and fused forward + backward. One submission per call.

use super::chunks;
use super::context::Context;
use super::kernels::{Family, Kernel};
use crate::error::Result;
use crate::layout::{check_loss, LossProblem, Targets, IGNORED};
use crate::options::{
    BackwardOptions, LossAndGrad, LossOptions, Output, Reduction, Target, Tensor,
};

/// Keep in sync with `LossParams` in shaders/shared/loss_inputs.wgsl.
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
    grad_output: f32,
    weight_sum: f32,
    _pad: [u32; 2],
}

const HAS_WEIGHT: u32 = 1;
const PROB_TARGETS: u32 = 2;

/// cross_entropy or nll_loss.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Loss {
    CrossEntropy,
    Nll,
}

impl Loss {
    fn name(self) -> &'static str {
        match self {
            Loss::CrossEntropy => "cross_entropy",
            Loss::Nll => "nll_loss",
        }
    }
}

/// Where the gradient goes, if anywhere.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Grad {
    None,
    /// A new buffer the size of the logits.
    OutOfPlace,
    /// Over the logits' own buffer: nothing else the size of N×C is allocated.
    InPlace,
}

/// What one call computes.
#[derive(Clone, Copy)]
struct Request {
    loss: Loss,
    grad: Grad,
    grad_output: f32,
    lse: bool,
}

/// What one call returns: the loss, then the gradient and lse when asked for.
struct Results {
    loss: Output,
    grad: Option<Vec<f32>>,
    lse: Option<Vec<f32>>,
}

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

    /// The async form of [`Context::cross_entropy`].
    pub async fn cross_entropy_async(
        &self,
        input: Tensor<'_, f32>,
        target: Target<'_>,
        opts: &LossOptions<'_>,
    ) -> Result<Output> {
        let req = Request {
            loss: Loss::CrossEntropy,
            grad: Grad::None,
            grad_output: 1.0,
            lse: false,
        };
        Ok(self.run(input, target, opts, req).await?.loss)
    }

    /// [`Context::cross_entropy`] and the per-row log-sum-exp (shape `[N, d1..dk]`).
    pub fn cross_entropy_with_lse(
        &self,
        input: Tensor<f32>,
        target: Target,
        opts: &LossOptions,
    ) -> Result<(Output, Output)> {
        let req = Request {
            loss: Loss::CrossEntropy,
            grad: Grad::None,
            grad_output: 1.0,
            lse: true,
        };
        let r = pollster::block_on(self.run(input, target, opts, req))?;
        let shape = r.loss_shape_for_rows(input.shape);
        Ok((
            r.loss,
            Output {
                data: r.lse.unwrap_or_default(),
                shape,
            },
        ))
    }

    /// The fused forward + backward of `cross_entropy`: the loss and d(loss)/d(input), with
    /// PyTorch autograd's convention. Reads the logits twice and writes the gradient once.
    pub fn cross_entropy_backward(
        &self,
        input: Tensor<f32>,
        target: Target,
        opts: &LossOptions,
        backward: &BackwardOptions,
    ) -> Result<LossAndGrad> {
        pollster::block_on(self.cross_entropy_backward_async(input, target, opts, backward))
    }

    /// The async form of [`Context::cross_entropy_backward`].
    pub async fn cross_entropy_backward_async(
        &self,
        input: Tensor<'_, f32>,
        target: Target<'_>,
        opts: &LossOptions<'_>,
        backward: &BackwardOptions,
    ) -> Result<LossAndGrad> {
        let req = Request {
            loss: Loss::CrossEntropy,
            grad: Grad::OutOfPlace,
            grad_output: backward.grad_output,
            lse: backward.return_lse,
        };
        let r = self.run(input, target, opts, req).await?;
        Ok(r.into_loss_and_grad(input.shape))
    }

    /// As [`Context::cross_entropy_backward`], with the gradient written over `logits`, on the
    /// device too: the GPU holds one N×C buffer for both. `LossAndGrad::grad` is `None`.
    pub fn cross_entropy_backward_in_place(
        &self,
        logits: &mut [f32],
        shape: &[usize],
        target: Target,
        opts: &LossOptions,
        backward: &BackwardOptions,
    ) -> Result<LossAndGrad> {
        let req = Request {
            loss: Loss::CrossEntropy,
            grad: Grad::InPlace,
            grad_output: backward.grad_output,
            lse: backward.return_lse,
        };
        let input = Tensor::new(&*logits, shape);
        let mut r = pollster::block_on(self.run(input, target, opts, req))?;
        if let Some(grad) = r.grad.take() {
            logits.copy_from_slice(&grad);
        }
        Ok(r.into_loss_and_grad(shape))
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

    /// The async form of [`Context::nll_loss`].
    pub async fn nll_loss_async(
        &self,
        input: Tensor<'_, f32>,
        target: Target<'_>,
        opts: &LossOptions<'_>,
    ) -> Result<Output> {
        let req = Request {
            loss: Loss::Nll,
            grad: Grad::None,
            grad_output: 1.0,
            lse: false,
        };
        Ok(self.run(input, target, opts, req).await?.loss)
    }

    /// `nll_loss` and d(loss)/d(input) (it reads no logits: the gradient is -w[y]/D at y).
    pub fn nll_loss_backward(
        &self,
        input: Tensor<f32>,
        target: Target,
        opts: &LossOptions,
        backward: &BackwardOptions,
    ) -> Result<LossAndGrad> {
        let req = Request {
            loss: Loss::Nll,
            grad: Grad::OutOfPlace,
            grad_output: backward.grad_output,
            lse: false,
        };
        let r = pollster::block_on(self.run(input, target, opts, req))?;
        Ok(r.into_loss_and_grad(input.shape))
    }

    async fn run(
        &self,
        input: Tensor<'_, f32>,
        target: Target<'_>,
        opts: &LossOptions<'_>,
        req: Request,
    ) -> Result<Results> {
        let problem = check_loss(req.loss.name(), &input, &target, opts)?;
        if problem.layout.rows() == 0 {
            return Ok(Results {
                loss: empty_loss(&problem, opts.reduction),
                grad: (req.grad != Grad::None).then(Vec::new),
                lse: req.lse.then(Vec::new),
            });
        }
        self.scoped(self.record_and_read(input.data, &problem, opts, req))
            .await
    }

    async fn record_and_read(
        &self,
        input: &[f32],
        problem: &LossProblem,
        opts: &LossOptions<'_>,
        req: Request,
    ) -> Result<Results> {
        let layout = &problem.layout;
        let chunks = chunks::plan(layout, self.max_binding_bytes())?;
        let mut flags = 0;
        if opts.weight.is_some() {
            flags |= HAS_WEIGHT;
        }
        if matches!(problem.targets, Targets::Probs(_)) {
            flags |= PROB_TARGETS;
        }
        let weight_sum = opts
            .weight
            .map_or(layout.classes as f64, |w| w.iter().map(|&v| v as f64).sum());
        let weight = self.upload("weight", opts.weight.unwrap_or(&[]))?;
        let dummy = self.upload::<f32>("unused", &[])?;
        let mut encoder = self.device.create_command_encoder(&Default::default());

        // Forward: one loss, den and stats per row.
        struct ChunkBuffers {
            params: wgpu::Buffer,
            logits: wgpu::Buffer,
            targets: wgpu::Buffer,
            probs: Option<wgpu::Buffer>,
            losses: wgpu::Buffer,
            dens: wgpu::Buffer,
            stats: wgpu::Buffer,
            rows: usize,
            elems: usize,
        }
        let mut bufs = Vec::with_capacity(chunks.len());
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
                    grad_output: req.grad_output,
                    weight_sum: weight_sum as f32,
                    _pad: [0; 2],
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
            let b = ChunkBuffers {
                params,
                logits,
                targets,
                probs,
                losses: self.output("losses", rows.len())?,
                dens: self.output("dens", rows.len())?,
                stats: self.output("stats", rows.len() * 4)?,
                rows: rows.len(),
                elems: elems.len(),
            };
            let bind = self.bind(
                Family::Loss,
                &[
                    &b.params,
                    &b.logits,
                    &b.targets,
                    b.probs.as_ref().unwrap_or(&dummy),
                    &weight,
                    &b.losses,
                    &b.dens,
                    &b.stats,
                ],
            );
            let (kernel, workgroups) = match req.loss {
                Loss::CrossEntropy => (Kernel::CrossEntropyRows, b.rows as u64),
                Loss::Nll => (
                    Kernel::NllRows,
                    (b.rows as u64).div_ceil(self.workgroup_size() as u64),
                ),
            };
            let label = format!(
                "{kernel:?} rows={} C={} inner={}",
                b.rows, layout.classes, layout.inner
            );
            self.dispatch(&mut encoder, kernel, &bind, workgroups, &label)?;
            bufs.push(b);
        }

        // The reduction, on the device; D = 1 for `none`.
        let reduced = match opts.reduction {
            Reduction::None => None,
            r => {
                let parts: Vec<_> = bufs.iter().map(|b| (&b.losses, &b.dens, b.rows)).collect();
                Some(self.record_reduction(&mut encoder, &parts, r)?)
            }
        };
        let one = self.upload("unit scale", &[1.0f32])?;
        let scale = reduced.as_ref().map_or(&one, |r| &r.den);

        // Backward: a second read of the logits, one write of the gradient.
        let mut grads = Vec::new();
        if req.grad != Grad::None {
            for b in &bufs {
                let in_place = req.grad == Grad::InPlace;
                let grad = if in_place {
                    None
                } else {
                    Some(self.output("grad", b.elems)?)
                };
                let (src, dst) = match &grad {
                    Some(g) => (&b.logits, g),
                    None => (&dummy, &b.logits),
                };
                let bind = self.bind(
                    Family::Grad,
                    &[
                        &b.params,
                        src,
                        &b.targets,
                        b.probs.as_ref().unwrap_or(&dummy),
                        &weight,
                        &b.stats,
                        scale,
                        dst,
                    ],
                );
                let kernel = match (req.loss, in_place) {
                    (Loss::Nll, _) => Kernel::NllGrad,
                    (Loss::CrossEntropy, false) => Kernel::CrossEntropyGrad,
                    (Loss::CrossEntropy, true) => Kernel::CrossEntropyGradInPlace,
                };
                self.dispatch(
                    &mut encoder,
                    kernel,
                    &bind,
                    b.rows as u64,
                    &format!("{kernel:?} rows={}", b.rows),
                )?;
                grads.push(grad);
            }
        }

        // One submission; read back the loss, then the gradient and lse chunks.
        let mut staged = Vec::new();
        match &reduced {
            Some(r) => staged.push(self.stage(&mut encoder, &r.value, 4)),
            None => staged.extend(
                bufs.iter()
                    .map(|b| self.stage(&mut encoder, &b.losses, b.rows as u64 * 4)),
            ),
        }
        let loss_parts = staged.len();
        for (b, g) in bufs.iter().zip(&grads) {
            staged.push(self.stage(
                &mut encoder,
                g.as_ref().unwrap_or(&b.logits),
                b.elems as u64 * 4,
            ));
        }
        if req.lse {
            staged.extend(
                bufs.iter()
                    .map(|b| self.stage(&mut encoder, &b.stats, b.rows as u64 * 16)),
            );
        }
        let mut parts = self.submit_and_read(encoder, staged).await?.into_iter();
        let loss = Output {
            data: parts.by_ref().take(loss_parts).collect::<Vec<_>>().concat(),
            shape: match opts.reduction {
                Reduction::None => problem.out_shape.clone(),
                _ => vec![],
            },
        };
        let grad = (req.grad != Grad::None)
            .then(|| parts.by_ref().take(bufs.len()).collect::<Vec<_>>().concat());
        // stats are (M, S, Q, lse) per row.
        let lse = req.lse.then(|| {
            parts
                .flat_map(|s| s.chunks(4).map(|v| v[3]).collect::<Vec<_>>())
                .collect()
        });
        Ok(Results { loss, grad, lse })
    }
}

impl Results {
    /// `[N, d1..dk]` for an input of `shape` (`[]` for an unbatched `[C]`).
    fn loss_shape_for_rows(&self, shape: &[usize]) -> Vec<usize> {
        match shape.len() {
            0 | 1 => vec![],
            _ => std::iter::once(shape[0])
                .chain(shape[2..].iter().copied())
                .collect(),
        }
    }

    fn into_loss_and_grad(self, shape: &[usize]) -> LossAndGrad {
        let rows_shape = self.loss_shape_for_rows(shape);
        LossAndGrad {
            loss: self.loss,
            grad: self.grad.map(|data| Output {
                data,
                shape: shape.to_vec(),
            }),
            lse: self.lse.map(|data| Output {
                data,
                shape: rows_shape,
            }),
        }
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
