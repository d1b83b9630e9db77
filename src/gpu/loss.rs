//! Launchers for `shaders/loss.wgsl` and `shaders/grad.wgsl`: cross_entropy and nll_loss,
//! forward and fused forward + backward. One submission per call.

use super::chunks;
use super::context::Context;
use super::kernels::{Family, Kernel};
use super::program::{join, Program};
use super::readback::Staging;
use super::reduce::Reduced;
use super::rows;
use super::timestamps::Timestamps;
use crate::error::Result;
use crate::layout::{check_loss, LossProblem, Targets, IGNORED};
use crate::options::{
    BackwardOptions, Logits, LossAndGrad, LossOptions, Output, Reduction, Target, Tensor,
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
    lanes: u32,
    _pad: u32,
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
    pub fn cross_entropy<'i>(
        &self,
        input: impl Into<Logits<'i>>,
        target: Target,
        opts: &LossOptions,
    ) -> Result<Output> {
        let input: Logits = input.into();
        pollster::block_on(self.cross_entropy_async(input, target, opts))
    }

    /// The async form of [`Context::cross_entropy`].
    pub async fn cross_entropy_async<'i>(
        &self,
        input: impl Into<Logits<'i>>,
        target: Target<'_>,
        opts: &LossOptions<'_>,
    ) -> Result<Output> {
        let input: Logits = input.into();
        let req = Request {
            loss: Loss::CrossEntropy,
            grad: Grad::None,
            grad_output: 1.0,
            lse: false,
        };
        Ok(self.run(input, target, opts, req).await?.loss)
    }

    /// [`Context::cross_entropy`] and the per-row log-sum-exp (shape `[N, d1..dk]`).
    pub fn cross_entropy_with_lse<'i>(
        &self,
        input: impl Into<Logits<'i>>,
        target: Target,
        opts: &LossOptions,
    ) -> Result<(Output, Output)> {
        let input: Logits = input.into();
        let req = Request {
            loss: Loss::CrossEntropy,
            grad: Grad::None,
            grad_output: 1.0,
            lse: true,
        };
        let r = pollster::block_on(self.run(input, target, opts, req))?;
        let shape = r.loss_shape_for_rows(input.shape());
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
    pub fn cross_entropy_backward<'i>(
        &self,
        input: impl Into<Logits<'i>>,
        target: Target,
        opts: &LossOptions,
        backward: &BackwardOptions,
    ) -> Result<LossAndGrad> {
        let input: Logits = input.into();
        pollster::block_on(self.cross_entropy_backward_async(input, target, opts, backward))
    }

    /// The async form of [`Context::cross_entropy_backward`].
    pub async fn cross_entropy_backward_async<'i>(
        &self,
        input: impl Into<Logits<'i>>,
        target: Target<'_>,
        opts: &LossOptions<'_>,
        backward: &BackwardOptions,
    ) -> Result<LossAndGrad> {
        let input: Logits = input.into();
        let req = Request {
            loss: Loss::CrossEntropy,
            grad: Grad::OutOfPlace,
            grad_output: backward.grad_output,
            lse: backward.return_lse,
        };
        let r = self.run(input, target, opts, req).await?;
        Ok(r.into_loss_and_grad(input.shape()))
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
        let input = Logits::F32(Tensor::new(&*logits, shape));
        let mut r = pollster::block_on(self.run(input, target, opts, req))?;
        if let Some(grad) = r.grad.take() {
            logits.copy_from_slice(&grad);
        }
        Ok(r.into_loss_and_grad(shape))
    }

    /// `torch.nn.functional.nll_loss(input, target, weight, ignore_index, reduction)`.
    pub fn nll_loss<'i>(
        &self,
        input: impl Into<Logits<'i>>,
        target: Target,
        opts: &LossOptions,
    ) -> Result<Output> {
        let input: Logits = input.into();
        pollster::block_on(self.nll_loss_async(input, target, opts))
    }

    /// The async form of [`Context::nll_loss`].
    pub async fn nll_loss_async<'i>(
        &self,
        input: impl Into<Logits<'i>>,
        target: Target<'_>,
        opts: &LossOptions<'_>,
    ) -> Result<Output> {
        let input: Logits = input.into();
        let req = Request {
            loss: Loss::Nll,
            grad: Grad::None,
            grad_output: 1.0,
            lse: false,
        };
        Ok(self.run(input, target, opts, req).await?.loss)
    }

    /// `nll_loss` and d(loss)/d(input) (it reads no logits: the gradient is -w[y]/D at y).
    pub fn nll_loss_backward<'i>(
        &self,
        input: impl Into<Logits<'i>>,
        target: Target,
        opts: &LossOptions,
        backward: &BackwardOptions,
    ) -> Result<LossAndGrad> {
        let input: Logits = input.into();
        let req = Request {
            loss: Loss::Nll,
            grad: Grad::OutOfPlace,
            grad_output: backward.grad_output,
            lse: false,
        };
        let r = pollster::block_on(self.run(input, target, opts, req))?;
        Ok(r.into_loss_and_grad(input.shape()))
    }

    async fn run(
        &self,
        input: Logits<'_>,
        target: Target<'_>,
        opts: &LossOptions<'_>,
        req: Request,
    ) -> Result<Results> {
        let problem = check_loss(req.loss.name(), input.shape(), input.len(), &target, opts)?;
        if problem.layout.rows() == 0 {
            return Ok(Results {
                loss: empty_loss(&problem, opts.reduction),
                grad: (req.grad != Grad::None).then(Vec::new),
                lse: req.lse.then(Vec::new),
            });
        }
        self.scoped(async {
            let plan = self.build_loss(&input, &problem, opts, req)?;
            plan.run().await.map(|(r, _)| r)
        })
        .await
    }

    /// Uploads the inputs and builds every buffer, bind group and dispatch of one call.
    fn build_loss(
        &self,
        input: &Logits<'_>,
        problem: &LossProblem,
        opts: &LossOptions<'_>,
        req: Request,
    ) -> Result<PreparedLoss<'_>> {
        let layout = &problem.layout;
        let dtype = input.dtype();
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
        // A writable binding may not share its buffer with any other binding.
        let dummy_rw = self.upload::<f32>("unused (writable)", &[])?;
        let mut program = Program::default();
        let lanes = rows::lanes(layout, self.workgroup_size());
        let row_groups = |rows: usize| rows::workgroups(rows, lanes, self.workgroup_size());

        // Every chunk's inputs and per-row outputs.
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
                    lanes,
                    _pad: 0,
                },
            );
            let (targets, probs) = match &problem.targets {
                Targets::Classes(t) => (self.upload("targets", &t[rows.clone()])?, None),
                Targets::Probs(p) => (
                    self.upload::<i32>("targets", &[])?,
                    Some(self.upload("probs", &p[elems.clone()])?),
                ),
            };
            bufs.push(ChunkBuffers {
                params,
                logits: self.upload("logits", input.bytes(elems.clone()))?,
                targets,
                probs,
                losses: self.output("losses", rows.len())?,
                dens: self.output("dens", rows.len())?,
                stats: self.output("stats", rows.len() * 4)?,
                grad: match req.grad {
                    Grad::OutOfPlace => Some(self.output("grad", elems.len().div_ceil(4) * 4)?),
                    _ => None,
                },
                rows: rows.len(),
                elems: elems.len(),
            });
        }
        let forward_bind = |b: &ChunkBuffers| {
            self.bind(
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
            )
        };
        let label = |kernel: Kernel, b: &ChunkBuffers| {
            format!(
                "{kernel:?} rows={} C={} inner={}",
                b.rows, layout.classes, layout.inner
            )
        };
        let one = self.upload("unit scale", &[1.0f32])?;
        let dens: Vec<_> = bufs.iter().map(|b| (&b.dens, &b.dens, b.rows)).collect();
        let losses: Vec<_> = bufs.iter().map(|b| (&b.losses, &b.dens, b.rows)).collect();
        let reduced = match (req.loss, req.grad) {
            (Loss::CrossEntropy, Grad::OutOfPlace | Grad::InPlace) => {
                // D first, from the targets alone; then one dispatch per row does the
                // loss and the gradient; then the loss is reduced.
                let scale = match opts.reduction {
                    Reduction::None => None,
                    r => {
                        for b in &bufs {
                            let groups = (b.rows as u64).div_ceil(self.workgroup_size() as u64);
                            self.push_typed(
                                &mut program,
                                Kernel::RowDens,
                                dtype,
                                forward_bind(b),
                                groups,
                                label(Kernel::RowDens, b),
                            )?;
                        }
                        Some(self.push_reduction(&mut program, &dens, r)?)
                    }
                };
                let kernel = match req.grad {
                    Grad::InPlace => Kernel::CrossEntropyFusedInPlace,
                    _ => Kernel::CrossEntropyFused,
                };
                for b in &bufs {
                    let bind = self.bind(
                        Family::Grad,
                        &[
                            &b.params,
                            &b.logits,
                            &b.targets,
                            b.probs.as_ref().unwrap_or(&dummy),
                            &weight,
                            &b.losses,
                            scale.as_ref().map_or(&one, |r| &r.den),
                            b.grad.as_ref().unwrap_or(&dummy_rw),
                            &b.stats,
                        ],
                    );
                    self.push_typed(
                        &mut program,
                        kernel,
                        dtype,
                        bind,
                        row_groups(b.rows),
                        label(kernel, b),
                    )?;
                }
                match opts.reduction {
                    Reduction::None => None,
                    r => Some(self.push_reduction(&mut program, &losses, r)?),
                }
            }
            _ => {
                let kernel = match req.loss {
                    Loss::CrossEntropy => Kernel::CrossEntropyRows,
                    Loss::Nll => Kernel::NllRows,
                };
                for b in &bufs {
                    let groups = match kernel {
                        Kernel::NllRows => (b.rows as u64).div_ceil(self.workgroup_size() as u64),
                        _ => row_groups(b.rows),
                    };
                    self.push_typed(
                        &mut program,
                        kernel,
                        dtype,
                        forward_bind(b),
                        groups,
                        label(kernel, b),
                    )?;
                }
                let reduced = match opts.reduction {
                    Reduction::None => None,
                    r => Some(self.push_reduction(&mut program, &losses, r)?),
                };
                if req.grad != Grad::None {
                    // nll_loss: the gradient needs only D and the targets.
                    for b in &bufs {
                        let bind = self.bind(
                            Family::Grad,
                            &[
                                &b.params,
                                &b.logits,
                                &b.targets,
                                &dummy,
                                &weight,
                                &b.losses,
                                reduced.as_ref().map_or(&one, |r| &r.den),
                                b.grad.as_ref().unwrap_or(&dummy_rw),
                                &b.stats,
                            ],
                        );
                        self.push_typed(
                            &mut program,
                            Kernel::NllGrad,
                            dtype,
                            bind,
                            row_groups(b.rows),
                            label(Kernel::NllGrad, b),
                        )?;
                    }
                }
                reduced
            }
        };
        drop(dens);
        drop(losses);

        // Staging buffers, made once and reused by every run.
        let loss_staging = match &reduced {
            Some(_) => vec![self.staging(4)],
            None => bufs
                .iter()
                .map(|b| self.staging(b.rows as u64 * 4))
                .collect(),
        };
        let grad_staging = match req.grad {
            Grad::None => vec![],
            _ => bufs
                .iter()
                .map(|b| self.staging(b.elems as u64 * 4))
                .collect(),
        };
        let lse_staging = match req.lse {
            true => bufs
                .iter()
                .map(|b| self.staging(b.rows as u64 * 16))
                .collect(),
            false => vec![],
        };
        Ok(PreparedLoss {
            ctx: self,
            program,
            reduced,
            chunks: bufs,
            loss_staging,
            grad_staging,
            lse_staging,
            timestamps: self.timestamp_queries(),
            loss_shape: match opts.reduction {
                Reduction::None => problem.out_shape.clone(),
                _ => vec![],
            },
            input_shape: vec![],
            req,
            read_grad: true,
        })
    }
}

/// The buffers of one chunk of rows.
struct ChunkBuffers {
    params: wgpu::Buffer,
    logits: wgpu::Buffer,
    targets: wgpu::Buffer,
    probs: Option<wgpu::Buffer>,
    losses: wgpu::Buffer,
    dens: wgpu::Buffer,
    stats: wgpu::Buffer,
    /// The out-of-place gradient; `None` when there is none or it goes over `logits`.
    grad: Option<wgpu::Buffer>,
    rows: usize,
    elems: usize,
}

/// A loss call whose inputs are on the device and whose buffers, bind groups, dispatches and
/// staging buffers are built: each [`PreparedLoss::run`] is one submission and one readback.
/// Built by [`Context::prepare_cross_entropy`].
pub struct PreparedLoss<'a> {
    ctx: &'a Context,
    program: Program,
    reduced: Option<Reduced>,
    chunks: Vec<ChunkBuffers>,
    loss_staging: Vec<Staging>,
    grad_staging: Vec<Staging>,
    lse_staging: Vec<Staging>,
    timestamps: Option<Timestamps>,
    loss_shape: Vec<usize>,
    input_shape: Vec<usize>,
    req: Request,
    /// Whether each run reads the gradient back (the host API) or leaves it on the device.
    read_grad: bool,
}

impl Context {
    /// Uploads a `cross_entropy` call once, so that it can be run many times without any
    /// upload or allocation: the benchmark's timed loop, or a loop that only replaces the
    /// logits with [`PreparedLoss::write_logits`]. `grad` adds the fused backward (out of place).
    pub fn prepare_cross_entropy<'i>(
        &self,
        input: impl Into<Logits<'i>>,
        target: Target,
        opts: &LossOptions,
        grad: bool,
    ) -> Result<PreparedLoss<'_>> {
        let input: Logits = input.into();
        let req = Request {
            loss: Loss::CrossEntropy,
            grad: if grad { Grad::OutOfPlace } else { Grad::None },
            grad_output: 1.0,
            lse: false,
        };
        self.prepare(Loss::CrossEntropy, input, target, opts, req)
    }

    /// As [`Context::prepare_cross_entropy`] for `nll_loss` (forward).
    pub fn prepare_nll_loss<'i>(
        &self,
        input: impl Into<Logits<'i>>,
        target: Target,
        opts: &LossOptions,
    ) -> Result<PreparedLoss<'_>> {
        let input: Logits = input.into();
        let req = Request {
            loss: Loss::Nll,
            grad: Grad::None,
            grad_output: 1.0,
            lse: false,
        };
        self.prepare(Loss::Nll, input, target, opts, req)
    }

    fn prepare<'i>(
        &self,
        loss: Loss,
        input: impl Into<Logits<'i>>,
        target: Target,
        opts: &LossOptions,
        req: Request,
    ) -> Result<PreparedLoss<'_>> {
        let input: Logits = input.into();
        let problem = check_loss(loss.name(), input.shape(), input.len(), &target, opts)?;
        if problem.layout.rows() == 0 {
            return Err(crate::XentError::InvalidShape(
                "nothing to prepare: the batch is empty".into(),
            ));
        }
        let mut plan = pollster::block_on(
            self.scoped(async { self.build_loss(&input, &problem, opts, req) }),
        )?;
        plan.input_shape = input.shape().to_vec();
        plan.read_grad = false;
        Ok(plan)
    }
}

impl PreparedLoss<'_> {
    /// Runs the call: one submission, then the loss read back (the gradient stays on the
    /// device; see [`PreparedLoss::read_grad`]). Returns the loss and, when the adapter has
    /// timestamp queries, the GPU time of the compute pass.
    pub fn run_timed(&self) -> Result<(LossAndGrad, Option<std::time::Duration>)> {
        pollster::block_on(self.ctx.scoped(self.run()))
            .map(|(r, t)| (r.into_loss_and_grad(&self.input_shape), t))
    }

    /// Replaces the logits (same shape) with `data`: a queue write, no allocation.
    pub fn write_logits(&self, data: &[f32]) -> Result<()> {
        let total: usize = self.chunks.iter().map(|c| c.elems).sum();
        if data.len() != total {
            return Err(crate::XentError::InvalidShape(format!(
                "write_logits: expected {total} values, got {}",
                data.len()
            )));
        }
        let mut at = 0;
        for c in &self.chunks {
            self.ctx.queue.write_buffer(
                &c.logits,
                0,
                bytemuck::cast_slice(&data[at..at + c.elems]),
            );
            at += c.elems;
        }
        Ok(())
    }

    /// Reads back the gradient of the last run (empty unless prepared with `grad`).
    pub fn read_grad(&self) -> Result<Vec<f32>> {
        let reads: Vec<_> = self
            .chunks
            .iter()
            .map(|c| c.grad.as_ref().unwrap_or(&c.logits))
            .zip(&self.grad_staging)
            .collect();
        let (parts, _) = pollster::block_on(self.ctx.scoped(self.ctx.run_program(
            &Program::default(),
            &reads,
            None,
        )))?;
        Ok(join(parts))
    }

    /// Number of dispatches in one run.
    pub fn dispatches(&self) -> usize {
        self.program.len()
    }

    async fn run(&self) -> Result<(Results, Option<std::time::Duration>)> {
        let mut reads: Vec<(&wgpu::Buffer, &Staging)> = match &self.reduced {
            Some(r) => vec![(&r.value, &self.loss_staging[0])],
            None => self
                .chunks
                .iter()
                .map(|c| &c.losses)
                .zip(&self.loss_staging)
                .collect(),
        };
        let grad_staging: &[Staging] = if self.read_grad {
            &self.grad_staging
        } else {
            &[]
        };
        reads.extend(
            self.chunks
                .iter()
                .map(|c| c.grad.as_ref().unwrap_or(&c.logits))
                .zip(grad_staging),
        );
        reads.extend(self.chunks.iter().map(|c| &c.stats).zip(&self.lse_staging));
        let (words, elapsed) = self
            .ctx
            .run_program(&self.program, &reads, self.timestamps.as_ref())
            .await?;
        let mut parts = words.into_iter();
        let loss = Output {
            data: join(parts.by_ref().take(self.loss_staging.len()).collect()),
            shape: self.loss_shape.clone(),
        };
        let grad = (self.req.grad != Grad::None && self.read_grad)
            .then(|| join(parts.by_ref().take(grad_staging.len()).collect()));
        // stats are (M, S, Q, lse) per row.
        let lse = self.req.lse.then(|| {
            parts
                .flat_map(|s| s.chunks(4).map(|v| v[3]).collect::<Vec<_>>())
                .collect()
        });
        Ok((Results { loss, grad, lse }, elapsed))
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
