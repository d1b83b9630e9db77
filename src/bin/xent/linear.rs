//! linear-cross-entropy for `eval` and `check`: its inputs (the hidden states, the classifier
//! weight and bias, the targets and the class weight), read from `.npy` or generated, and run
//! on the GPU or the f64 CPU reference.

use crate::data::{self, Inputs, Operand, Synth};
use crate::error::{CliError, Result};
use crate::ops::{wide_probs_and_weight, widen};
use crate::rng::Rng;
use std::path::{Path, PathBuf};
use wgpu_xent::cpu::linear::{linear_cross_entropy, WideLinearOutput};
use wgpu_xent::cpu::wide::{WideOptions, WideOutput, WideTarget};
use wgpu_xent::{Context, DType, Linear, LinearOutput, LossOptions, Output, Target, Tensor};
use wgpu_xent::{Grad, LinearShards};

/// The inputs of one linear-cross-entropy.
pub struct LinearInputs {
    /// The hidden states `[N, D]` or `[D]` (as the logits of the other ops), the targets and
    /// the class weight.
    pub inputs: Inputs,
    /// The classifier weight `[C, D]`.
    pub linear_weight: Operand,
    /// The classifier bias `[C]`.
    pub linear_bias: Option<Operand>,
}

/// The files of one linear-cross-entropy, as `eval` (and `check --input`) name them.
pub struct LinearFiles<'a> {
    pub input: &'a PathBuf,
    pub linear_weight: Option<&'a PathBuf>,
    pub linear_bias: Option<&'a PathBuf>,
    pub target: Option<&'a PathBuf>,
    pub weight: Option<&'a PathBuf>,
    /// The storage of input, linear weight and bias (bf16: uint16 bit patterns); `None`:
    /// each file's own.
    pub dtype: Option<DType>,
}

/// Reads the files, each once; `-` (stdin) may stand for one of them.
pub fn read(f: &LinearFiles) -> Result<LinearInputs> {
    let Some(linear_weight) = f.linear_weight else {
        return Err(CliError::Arg(
            "linear-cross-entropy needs --linear-weight (the classifier weight [C, D])".into(),
        ));
    };
    if f.target.is_none() {
        return Err(CliError::Arg("linear-cross-entropy needs --target".into()));
    }
    let files = [
        Some(f.input),
        Some(linear_weight),
        f.linear_bias,
        f.target,
        f.weight,
    ];
    let stdin = files
        .iter()
        .flatten()
        .filter(|p| p.as_path() == Path::new("-"));
    if stdin.count() > 1 {
        return Err(CliError::Arg(
            "stdin (`-`) can be read for one of --input, --linear-weight, --linear-bias, \
             --target and --weight only"
                .into(),
        ));
    }
    let inputs = data::read(f.input, f.dtype, f.target, f.weight)?;
    let linear_weight = data::read_operand(linear_weight, f.dtype)?;
    let linear_bias = match f.linear_bias {
        Some(path) => Some(data::read_operand(path, f.dtype)?),
        None => None,
    };
    Ok(LinearInputs {
        inputs,
        linear_weight,
        linear_bias,
    })
}

/// Generated inputs of `n` rows, `d` features and `c` classes, rounded to `dtype`: hidden
/// states uniform in [-1, 1), a weight uniform in ±4/√D (logits of standard deviation about
/// 1.3), a bias uniform in [-1, 1) when `bias`; targets uniform over the classes (a fraction
/// ignored) or probabilities normalised per row, and class weights in [0.2, 1.2), as
/// `data::synthesize` draws them.
pub fn synthesize(
    (n, d, c): (usize, usize, usize),
    s: &Synth,
    dtype: DType,
    bias: bool,
) -> LinearInputs {
    let mut rng = Rng::new(s.seed);
    let mut uniform = |len: usize, scale: f32| -> Vec<f32> {
        (0..len)
            .map(|_| (rng.uniform() * 2.0 - 1.0) * scale)
            .collect()
    };
    let operand = |v: Vec<f32>, shape: Vec<usize>| {
        let (x, half) = data::round_to(v, dtype);
        Operand {
            x,
            half,
            wide: None,
            shape,
        }
    };
    let x = operand(uniform(n * d, 1.0), vec![n, d]);
    let linear_weight = operand(uniform(c * d, 4.0 / (d.max(1) as f32).sqrt()), vec![c, d]);
    let linear_bias = bias.then(|| operand(uniform(c, 1.0), vec![c]));
    let classes = (0..n)
        .map(|_| match c == 0 || rng.uniform() < s.ignore_frac {
            true => s.ignore_index,
            false => rng.below(c) as i64,
        })
        .collect();
    let probs = s.probs.then(|| {
        let mut p: Vec<f32> = (0..n * c).map(|_| rng.uniform() + 1e-3).collect();
        for row in p.chunks_mut(c.max(1)) {
            let sum: f32 = row.iter().sum();
            row.iter_mut().for_each(|v| *v /= sum);
        }
        p
    });
    let weight = s
        .weighted
        .then(|| (0..c).map(|_| rng.uniform() + 0.2).collect());
    let tshape = if s.probs { vec![n, c] } else { vec![n] };
    let inputs = Inputs {
        x: x.x,
        half: x.half,
        shape: x.shape,
        classes,
        probs,
        tshape,
        weight,
        target_given: true,
        wide: Default::default(),
    };
    LinearInputs {
        inputs,
        linear_weight,
        linear_bias,
    }
}

impl LinearInputs {
    /// The first `rows` rows of a batched `[N, D]` problem (all of it when it has fewer), to
    /// validate a large one on.
    pub fn head(&self, rows: usize) -> LinearInputs {
        let inp = &self.inputs;
        let (n, d) = (inp.shape[0], inp.shape.get(1).copied().unwrap_or(0));
        let c = self.linear_weight.shape[0];
        let r = rows.min(n);
        let half = inp.half.as_ref().map(|(b, t)| (b[..r * d].to_vec(), *t));
        let probs = inp.probs.as_ref().map(|p| p[..r * c].to_vec());
        let tshape = match probs {
            Some(_) => vec![r, c],
            None => vec![r],
        };
        let inputs = Inputs {
            x: inp.x[..r * d].to_vec(),
            half,
            shape: vec![r, d],
            classes: inp.classes[..r.min(inp.classes.len())].to_vec(),
            probs,
            tshape,
            weight: inp.weight.clone(),
            target_given: true,
            wide: Default::default(),
        };
        let copy = |o: &Operand| Operand {
            x: o.x.clone(),
            half: o.half.clone(),
            wide: None,
            shape: o.shape.clone(),
        };
        LinearInputs {
            inputs,
            linear_weight: copy(&self.linear_weight),
            linear_bias: self.linear_bias.as_ref().map(copy),
        }
    }

    /// Whether the hidden states were float64 (the CPU reference then writes float64).
    pub fn is_wide(&self) -> bool {
        self.inputs.wide.x.is_some()
    }

    /// The flags whose float64 values are rounded to float32 outside the f64 path.
    pub fn wide_flags(&self) -> Vec<&'static str> {
        let mut flags = self.inputs.wide.flags();
        for (flag, o) in [
            ("--linear-weight", Some(&self.linear_weight)),
            ("--linear-bias", self.linear_bias.as_ref()),
        ] {
            if o.is_some_and(|o| o.wide.is_some()) {
                flags.push(flag);
            }
        }
        flags
    }
}

/// Runs on the GPU, with the three gradients when `grad`.
pub fn run_gpu(
    ctx: &Context,
    li: &LinearInputs,
    opts: &LossOptions,
    grad: bool,
) -> Result<LinearOutput> {
    let (linear, target) = call(li);
    if grad {
        return Ok(ctx.linear_cross_entropy_backward(linear, target, opts)?);
    }
    Ok(LinearOutput {
        loss: ctx.linear_cross_entropy(linear, target, opts)?,
        grad_input: None,
        grad_linear_weight: None,
        grad_linear_bias: None,
        lse: None,
    })
}

/// Runs the op with the classes split over `devices` (`--shards`).
pub fn run_sharded(
    devices: &[Context],
    li: &LinearInputs,
    opts: &LossOptions,
    grad: bool,
) -> Result<LinearOutput> {
    let (linear, target) = call(li);
    Ok(Context::run_sharded(
        devices,
        &LinearShards {
            linear,
            target,
            options: *opts,
            grad: if grad { Grad::Returned } else { Grad::None },
        },
    )?)
}

/// The library's call of `li`.
fn call(li: &LinearInputs) -> (Linear<'_>, wgpu_xent::Target<'_>) {
    let mut linear = Linear::new(li.inputs.input(), li.linear_weight.logits());
    if let Some(b) = &li.linear_bias {
        linear = linear.bias(b.logits());
    }
    (linear, li.inputs.target())
}

/// Runs the f64 CPU reference. `wide`: on the float64 values as read (the f64 path), else on
/// the float32 values the GPU sees, widened exactly. The class weight of `opts` is the
/// inputs'.
pub fn run_cpu(
    li: &LinearInputs,
    opts: &WideOptions,
    grad: bool,
    wide: bool,
) -> Result<WideLinearOutput> {
    let inp = &li.inputs;
    let values = |o: &Operand| if wide { o.f64() } else { widen(&o.x) };
    let x = match (wide, &inp.wide.x) {
        (true, Some(x)) => x.clone(),
        _ => widen(&inp.x),
    };
    let w = values(&li.linear_weight);
    let b = li.linear_bias.as_ref().map(values);
    let (probs, weight) = match wide {
        true => wide_probs_and_weight(inp),
        false => (
            inp.probs.as_deref().map(widen),
            inp.weight.as_deref().map(widen),
        ),
    };
    let target = match &probs {
        Some(p) => WideTarget::Probs(Tensor::new(p, &inp.tshape)),
        None => WideTarget::Classes(Target::I64(Tensor::new(&inp.classes, &inp.tshape))),
    };
    let opts = WideOptions {
        weight: weight.as_deref(),
        ..*opts
    };
    let bias = match (&b, &li.linear_bias) {
        (Some(b), Some(o)) => Some(Tensor::new(b, &o.shape)),
        _ => None,
    };
    Ok(linear_cross_entropy(
        Tensor::new(&x, &inp.shape),
        Tensor::new(&w, &li.linear_weight.shape),
        bias,
        target,
        &opts,
        grad,
    )?)
}

/// The f64 results rounded to f32.
pub fn narrow(r: WideLinearOutput) -> LinearOutput {
    let f = |o: WideOutput| Output {
        data: o.data.iter().map(|&v| v as f32).collect(),
        shape: o.shape,
    };
    LinearOutput {
        loss: f(r.loss),
        grad_input: r.grad_input.map(f),
        grad_linear_weight: r.grad_linear_weight.map(f),
        grad_linear_bias: r.grad_linear_bias.map(f),
        lse: None,
    }
}

/// Parses `NxDxC` (or, for matmul, `MxNxK`): three sizes.
pub fn parse_shape3(s: &str, form: &str) -> Result<(usize, usize, usize)> {
    match data::parse_shape(s).ok().as_deref() {
        Some(&[a, b, c]) => Ok((a, b, c)),
        _ => Err(CliError::Arg(format!(
            "--shape {s}: expected {form} (e.g. 256x1024x32000)"
        ))),
    }
}
