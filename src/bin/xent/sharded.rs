//! `--shards N`: an op with its classes split over N devices (`Context::for_shards`: the
//! adapters wgpu finds, in turn; never more devices than classes). The input is viewed as
//! rows × C around its class axis and cut into N class shards, as even as they come; outputs
//! and gradients are put back in the input's layout.
//! - cross-entropy: `Context::run_sharded` over `CrossEntropyShards` (partials merged on the host);
//! - log-softmax, softmax: `Context::run_sharded` over `SoftmaxShards`, forward and backward;
//! - nll-loss reads one value a row, so it needs no merged statistics: each shard takes the
//!   rows whose target it holds (its own weights, the others ignored), and the host adds the
//!   rows up and divides by the mean's D.

use crate::data::Inputs;
use crate::error::{CliError, Result};
use crate::Op;
use wgpu_xent::{
    check_cross_entropy, check_nll_loss, BackwardOptions, Context, LossAndGrad, LossOptions,
    Output, Reduction, Target, Tensor, XentError,
};
use wgpu_xent::{CrossEntropyShards, Grad, SoftmaxShards};

/// The input's view around class axis `dim`: (outer, C, inner).
fn view(shape: &[usize], dim: usize) -> (usize, usize, usize) {
    match shape {
        [] => (1, 1, 1),
        s => (
            s[..dim].iter().product(),
            s[dim],
            s[dim + 1..].iter().product(),
        ),
    }
}

/// The class axis of `shape` for `dim` (negative counts from the end), as PyTorch checks it.
fn class_axis(shape: &[usize], dim: i64) -> Result<usize> {
    let n = shape.len().max(1) as i64;
    match dim {
        d if (-n..n).contains(&d) => Ok(((d + n) % n) as usize),
        d => Err(XentError::DimOutOfRange {
            dim: d,
            low: -n,
            high: n - 1,
        }
        .into()),
    }
}

/// A rows × C view cut into class shards.
pub struct Cut {
    v: (usize, usize, usize),
    bounds: Vec<usize>,
}

impl Cut {
    pub fn new(v: (usize, usize, usize), devices: usize) -> Self {
        Cut {
            v,
            bounds: wgpu_xent::shard::even_bounds(v.1, devices),
        }
    }

    fn rows(&self) -> usize {
        self.v.0 * self.v.2
    }

    pub fn shapes(&self) -> Vec<[usize; 2]> {
        let rows = self.rows();
        self.bounds
            .windows(2)
            .map(|b| [rows, b[1] - b[0]])
            .collect()
    }

    /// Classes `[c0, c1)` of every row of `x` (laid out as the view) as `[rows, c1 - c0]`.
    fn slice(&self, x: &[f32], c0: usize, c1: usize) -> Vec<f32> {
        let (outer, c, inner) = self.v;
        let mut out = Vec::with_capacity(outer * inner * (c1 - c0));
        for o in 0..outer {
            for j in 0..inner {
                out.extend((c0..c1).map(|k| x[(o * c + k) * inner + j]));
            }
        }
        out
    }

    pub fn shards(&self, x: &[f32]) -> Vec<Vec<f32>> {
        self.bounds
            .windows(2)
            .map(|b| self.slice(x, b[0], b[1]))
            .collect()
    }

    /// The shards' outputs `[rows, Cs]` back in the view's layout, as `shape`.
    fn join(&self, parts: &[Output], shape: &[usize]) -> Output {
        let (_, c, inner) = self.v;
        let mut data = vec![0f32; self.rows() * c];
        for (k, part) in parts.iter().enumerate() {
            let (c0, cs) = (self.bounds[k], self.bounds[k + 1] - self.bounds[k]);
            for (r, row) in part.data.chunks(cs.max(1)).enumerate().take(self.rows()) {
                let (o, j) = (r / inner, r % inner);
                for (i, &value) in row.iter().enumerate() {
                    data[(o * c + c0 + i) * inner + j] = value;
                }
            }
        }
        Output {
            data,
            shape: shape.to_vec(),
        }
    }
}

pub fn tensors<'a>(data: &'a [Vec<f32>], shapes: &'a [[usize; 2]]) -> Vec<Tensor<'a, f32>> {
    data.iter()
        .zip(shapes)
        .map(|(x, s)| Tensor::new(x, s))
        .collect()
}

/// `op` of `inp` over class shards on `devices`.
pub fn run(
    devices: &[Context],
    op: Op,
    inp: &Inputs,
    opts: &LossOptions,
    (grad, dim): (bool, i64),
) -> Result<LossAndGrad> {
    match op {
        Op::CrossEntropy => cross_entropy(devices, inp, opts, grad),
        Op::NllLoss => nll_loss(devices, inp, opts, grad),
        Op::LogSoftmax | Op::Softmax => softmax(devices, inp, op == Op::LogSoftmax, grad, dim),
        Op::LinearCrossEntropy => Err(CliError::Arg(
            "linear-cross-entropy takes --linear-weight, not logits".into(),
        )),
    }
}

fn cross_entropy(
    devices: &[Context],
    inp: &Inputs,
    opts: &LossOptions,
    grad: bool,
) -> Result<LossAndGrad> {
    // The whole problem is checked first, so errors read as the unsharded call's.
    let out_shape = check_cross_entropy(&inp.shape, &inp.target(), opts)?;
    let cut = Cut::new(
        view(&inp.shape, inp.shape.len().clamp(1, 2) - 1),
        devices.len(),
    );
    let (xs, shapes) = (cut.shards(&inp.x), cut.shapes());
    let probs = inp.probs.as_ref().map(|p| cut.slice(p, 0, cut.v.1));
    let (whole, row) = ([cut.rows(), cut.v.1], [cut.rows()]);
    let target = match &probs {
        Some(p) => Target::Probs(Tensor::new(p, &whole)),
        None => Target::I64(Tensor::new(&inp.classes, &row)),
    };
    let shards = tensors(&xs, &shapes);
    let (mut loss, grads) = Context::run_sharded(
        devices,
        &CrossEntropyShards {
            shards: &shards,
            target,
            options: *opts,
            grad: if grad { Grad::Returned } else { Grad::None },
        },
    )?;
    if opts.reduction == Reduction::None {
        loss.shape = out_shape;
    }
    Ok(LossAndGrad {
        loss,
        grad: grads.map(|g| cut.join(&g, &inp.shape)),
        lse: None,
    })
}

fn softmax(
    devices: &[Context],
    inp: &Inputs,
    log: bool,
    grad: bool,
    dim: i64,
) -> Result<LossAndGrad> {
    let cut = Cut::new(
        view(&inp.shape, class_axis(&inp.shape, dim)?),
        devices.len(),
    );
    let (xs, shapes) = (cut.shards(&inp.x), cut.shapes());
    let y = Context::run_sharded(
        devices,
        &SoftmaxShards {
            shards: &tensors(&xs, &shapes),
            log,
            backward: None,
        },
    )?;
    let grad = match grad {
        true => {
            let ones: Vec<Vec<f32>> = y.iter().map(|o| vec![1.0; o.data.len()]).collect();
            let ys: Vec<Vec<f32>> = y.iter().map(|o| o.data.clone()).collect();
            let (gy, out) = (tensors(&ones, &shapes), tensors(&ys, &shapes));
            let g = Context::run_sharded(
                devices,
                &SoftmaxShards {
                    shards: &out,
                    log,
                    backward: Some(&gy),
                },
            )?;
            Some(cut.join(&g, &inp.shape))
        }
        false => None,
    };
    Ok(LossAndGrad {
        loss: cut.join(&y, &inp.shape),
        grad,
        lse: None,
    })
}

fn nll_loss(
    devices: &[Context],
    inp: &Inputs,
    opts: &LossOptions,
    grad: bool,
) -> Result<LossAndGrad> {
    let out_shape = check_nll_loss(&inp.shape, &inp.target(), opts)?;
    let cut = Cut::new(
        view(&inp.shape, inp.shape.len().clamp(1, 2) - 1),
        devices.len(),
    );
    let (xs, shapes) = (cut.shards(&inp.x), cut.shapes());
    let ignored = |y: i64| y == opts.ignore_index;
    let w = |y: i64| opts.weight.map_or(1.0, |w| w[y as usize] as f64);
    let den: f64 = inp
        .classes
        .iter()
        .filter(|&&y| !ignored(y))
        .map(|&y| w(y))
        .sum();
    // Each shard's gradient is -(g/D)·w[y] at its rows' targets, as the unsharded call's:
    // NaN where D = 0 and w[y] = 0, as PyTorch's.
    let backward = BackwardOptions {
        grad_output: match opts.reduction {
            Reduction::Mean => (1.0 / den) as f32,
            _ => 1.0,
        },
    };
    let mut rows = vec![0f64; cut.rows()];
    let mut grads = vec![];
    for (k, b) in cut.bounds.windows(2).enumerate() {
        // The rows whose target lies here, against this shard's classes; the rest ignored.
        let t: Vec<i64> = inp
            .classes
            .iter()
            .map(
                |&y| match !ignored(y) && (b[0] as i64..b[1] as i64).contains(&y) {
                    true => y - b[0] as i64,
                    false => -1,
                },
            )
            .collect();
        let shard_opts = LossOptions {
            weight: opts.weight.map(|w| &w[b[0]..b[1]]),
            ignore_index: -1,
            reduction: Reduction::None,
            ..*opts
        };
        let row = [cut.rows()];
        let (x, target) = (
            Tensor::new(&xs[k], &shapes[k]),
            Target::I64(Tensor::new(&t, &row)),
        );
        let ctx = &devices[k % devices.len()];
        let out = ctx.nll_loss_backward(x, target, &shard_opts, &backward)?;
        rows.iter_mut()
            .zip(&out.loss.data)
            .for_each(|(a, &v)| *a += v as f64);
        grads.extend(out.grad.filter(|_| grad));
    }
    let loss = match opts.reduction {
        Reduction::None => rows.iter().map(|&v| v as f32).collect(),
        Reduction::Sum => vec![rows.iter().sum::<f64>() as f32],
        Reduction::Mean => vec![(rows.iter().sum::<f64>() / den) as f32],
    };
    Ok(LossAndGrad {
        loss: Output {
            data: loss,
            shape: if opts.reduction == Reduction::None {
                out_shape
            } else {
                vec![]
            },
        },
        grad: (grad && !grads.is_empty()).then(|| cut.join(&grads, &inp.shape)),
        lse: None,
    })
}

/// The classes `op` splits over shards: the class axis's length (0 where it has none).
pub fn classes(shape: &[usize], op: Op, dim: i64) -> usize {
    let axis = match op {
        Op::LogSoftmax | Op::Softmax => class_axis(shape, dim).ok(),
        _ => Some(shape.len().clamp(1, 2) - 1),
    };
    axis.and_then(|a| shape.get(a).copied()).unwrap_or(0)
}

/// At most `count` devices for `--shards`, and no more than `classes`, or an error naming
/// the flag.
pub fn devices(count: usize, classes: usize) -> Result<Vec<Context>> {
    if count == 0 {
        return Err(CliError::Arg("--shards takes a count of 1 or more".into()));
    }
    Ok(Context::for_shards(
        count.min(classes.max(1)),
        wgpu_xent::ContextOptions::from_env()?,
    )?)
}
