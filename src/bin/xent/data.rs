//! Inputs for `check` and `bench`: generated from a seed, or read from .npy files.

use crate::error::{CliError, Result};
use crate::npy::{self, NpyBytes, NpyFloats, NpyTarget};
use crate::rng::Rng;
use std::io::Read;
use std::path::{Path, PathBuf};
use wgpu_xent::{DType, FloatTensor, Target, Tensor};

/// Owned inputs of one configuration.
pub struct Inputs {
    /// The logits as f32 (widened from `half` when that is set).
    pub x: Vec<f32>,
    /// The logits' 16-bit patterns and dtype, for f16 / bf16 inputs.
    pub half: Option<(Vec<u16>, DType)>,
    pub shape: Vec<usize>,
    pub classes: Vec<i64>,
    pub probs: Option<Vec<f32>>,
    /// The target's own shape (the library checks it against the input's).
    pub tshape: Vec<usize>,
    pub weight: Option<Vec<f32>>,
    /// False when no target was given (log-softmax and softmax need none).
    pub target_given: bool,
    /// The float64 inputs as read; the f32 fields above hold them rounded.
    pub wide: Wide,
}

/// Inputs read from float64 `.npy` files, kept for the CPU reference's f64 path.
#[derive(Clone, Debug, Default)]
pub struct Wide {
    /// The logits (the f64 path runs only when they are float64).
    pub x: Option<Vec<f64>>,
    /// Class probabilities.
    pub probs: Option<Vec<f64>>,
    /// The class weight.
    pub weight: Option<Vec<f64>>,
}

impl Wide {
    /// The flags whose float64 values were rounded to float32, e.g. `["--input", "--weight"]`.
    pub fn flags(&self) -> Vec<&'static str> {
        [
            ("--input", self.x.is_some()),
            ("--target", self.probs.is_some()),
            ("--weight", self.weight.is_some()),
        ]
        .iter()
        .filter(|f| f.1)
        .map(|f| f.0)
        .collect()
    }
}

impl Inputs {
    /// The logits in their own dtype.
    pub fn input(&self) -> FloatTensor<'_> {
        match &self.half {
            Some((bits, DType::F16)) => FloatTensor::F16(Tensor::new(bits, &self.shape)),
            Some((bits, _)) => FloatTensor::BF16(Tensor::new(bits, &self.shape)),
            None => FloatTensor::F32(Tensor::new(&self.x, &self.shape)),
        }
    }

    pub fn target(&self) -> Target<'_> {
        match &self.probs {
            Some(p) => Target::Probs(Tensor::new(p, &self.tshape)),
            None => Target::I64(Tensor::new(&self.classes, &self.tshape)),
        }
    }
}

/// Parses `NxC` or `NxCxD1x..`; refuses a shape whose element count overflows.
pub fn parse_shape(s: &str) -> Result<Vec<usize>> {
    let dims: std::result::Result<Vec<usize>, _> =
        s.to_lowercase().split('x').map(str::parse).collect();
    match dims {
        Ok(d) if d.len() >= 2 => match npy::checked_len(d.iter().map(|&v| v as u64)) {
            Some(n) if n <= isize::MAX as u64 => Ok(d),
            _ => Err(CliError::Arg(format!(
                "--shape {s}: the element count overflows"
            ))),
        },
        _ => Err(CliError::Arg(format!(
            "--shape {s}: expected NxC or NxCxD1x.. (e.g. 1024x32000)"
        ))),
    }
}

/// MemAvailable from /proc/meminfo, in bytes (Linux only).
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Refuses a `shape` that needs more host memory than is available, at `bytes_per_logit`
/// bytes per element (all the arrays a run holds), before anything is allocated.
pub fn check_fits(s: &str, shape: &[usize], bytes_per_logit: u64) -> Result<()> {
    let need = npy::checked_len(shape.iter().map(|&d| d as u64))
        .and_then(|n| n.checked_mul(bytes_per_logit));
    match (need, available_memory()) {
        (None, _) => Err(CliError::Arg(format!(
            "--shape {s}: the element count overflows"
        ))),
        (Some(need), Some(avail)) if need > avail => Err(CliError::Arg(format!(
            "--shape {s} does not fit: it needs about {} MiB of memory, {} MiB are available",
            need >> 20,
            avail >> 20
        ))),
        _ => Ok(()),
    }
}

/// As [`check_fits`], for several arrays `[x, y]` at `bytes_per_elem` bytes each element.
pub fn check_fits_arrays(s: &str, arrays: &[(usize, usize)], bytes_per_elem: u64) -> Result<()> {
    let words = arrays
        .iter()
        .try_fold(0usize, |sum, &(x, y)| x.checked_mul(y)?.checked_add(sum));
    match words {
        Some(w) => check_fits(s, &[w], bytes_per_elem),
        None => Err(CliError::Arg(format!(
            "--shape {s}: the element count overflows"
        ))),
    }
}

/// Options of generated data.
pub struct Synth {
    pub seed: u64,
    pub weighted: bool,
    pub ignore_frac: f32,
    pub ignore_index: i64,
    pub probs: bool,
}

/// Logits uniform in [-4, 4), targets uniform over the classes (a fraction ignored),
/// probabilities normalised per position, weights in [0.2, 1.2).
pub fn synthesize(shape: &[usize], s: &Synth) -> Inputs {
    let mut rng = Rng::new(s.seed);
    let (n, c) = (shape[0], shape[1]);
    let inner: usize = shape[2..].iter().product();
    let x: Vec<f32> = (0..n * c * inner)
        .map(|_| rng.uniform() * 8.0 - 4.0)
        .collect();
    let classes = (0..n * inner)
        .map(|_| {
            // With no class at all (C = 0), every target is ignored: there is none to draw.
            if c == 0 || rng.uniform() < s.ignore_frac {
                s.ignore_index
            } else {
                (rng.next_u64() % c as u64) as i64
            }
        })
        .collect();
    let probs = s.probs.then(|| {
        let mut p: Vec<f32> = (0..x.len()).map(|_| rng.uniform() + 1e-3).collect();
        for o in 0..n {
            for i in 0..inner {
                let at = |k: usize| o * c * inner + k * inner + i;
                let sum: f32 = (0..c).map(|k| p[at(k)]).sum();
                (0..c).for_each(|k| p[at(k)] /= sum);
            }
        }
        p
    });
    let weight = s
        .weighted
        .then(|| (0..c).map(|_| rng.uniform() + 0.2).collect());
    let tshape = match probs {
        Some(_) => shape.to_vec(),
        None => std::iter::once(n)
            .chain(shape[2..].iter().copied())
            .collect(),
    };
    Inputs {
        x,
        half: None,
        shape: shape.to_vec(),
        classes,
        probs,
        tshape,
        weight,
        target_given: true,
        wide: Wide::default(),
    }
}

/// Reads a `.npy` file once, into memory: a path, or `-` for stdin.
fn load(path: &Path) -> Result<NpyBytes> {
    if path != Path::new("-") {
        return NpyBytes::read(path);
    }
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut bytes)
        .map_err(|e| CliError::reading("- (stdin)", e))?;
    Ok(NpyBytes::new("- (stdin)", bytes))
}

/// Logits widened to f32, and their 16-bit patterns and dtype for f16 / bf16.
type Logits16 = (npy::NpyArray<f32>, Option<(Vec<u16>, DType)>);

/// The logits as f32 (rounded from float64), and their float64 values.
fn logits_f64(file: &NpyBytes) -> Result<(npy::NpyArray<f32>, Vec<f64>)> {
    let wide = file.f64()?;
    let x = npy::NpyArray {
        data: narrow(&wide.data),
        shape: wide.shape,
    };
    Ok((x, wide.data))
}

/// f64 values rounded to f32.
fn narrow(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&v| v as f32).collect()
}

/// The logits in `dtype` (f32, or widened with their 16-bit patterns kept).
fn logits(file: &NpyBytes, dtype: DType) -> Result<Logits16> {
    let bits = match dtype {
        DType::F32 => return Ok((file.f32()?, None)),
        DType::F16 => file.f16_bits()?,
        _ => file.u16()?,
    };
    let wide = bits.data.iter().map(|&b| dtype.widen(b)).collect();
    let x = npy::NpyArray {
        data: wide,
        shape: bits.shape,
    };
    Ok((x, Some((bits.data, dtype))))
}

/// Reads `--input` (float32, float64 or float16 `<f2`; or, for `dtype` bf16, uint16 bit
/// patterns), `--target` (int64/int32/uint32 classes or float32/float64 probabilities) and `--weight`
/// (float16, float32 or float64 `[C]`), each once (`-` is stdin, for one of them at most).
/// Without `dtype`, the file's own dtype decides. Float64 values are kept in `wide` and
/// rounded to f32 in the other fields.
pub fn read(
    input: &PathBuf,
    dtype: Option<DType>,
    target: Option<&PathBuf>,
    weight: Option<&PathBuf>,
) -> Result<Inputs> {
    let stdin = [Some(input), target, weight]
        .iter()
        .filter(|p| p.is_some_and(|p| p.as_path() == Path::new("-")))
        .count();
    if stdin > 1 {
        return Err(CliError::Arg(
            "stdin (`-`) can be read for one of --input, --target and --weight only".into(),
        ));
    }
    let x = read_operand(input, dtype)?;
    let mut wide = Wide {
        x: x.wide,
        ..Wide::default()
    };
    let (classes, probs, tshape) = match target.map(|p| load(p)?.target()).transpose()? {
        Some(NpyTarget::I64(t)) => (t.data, None, t.shape),
        Some(NpyTarget::I32(t)) => (t.data.iter().map(|&v| v as i64).collect(), None, t.shape),
        Some(NpyTarget::U32(t)) => (t.data.iter().map(|&v| v as i64).collect(), None, t.shape),
        Some(NpyTarget::F32(t)) => (vec![], Some(t.data), t.shape),
        Some(NpyTarget::F64(t)) => {
            let p = narrow(&t.data);
            wide.probs = Some(t.data);
            (vec![], Some(p), t.shape)
        }
        None => (vec![], None, vec![]),
    };
    let weight = match weight {
        Some(path) => Some(read_weight(path, &mut wide)?),
        None => None,
    };
    Ok(Inputs {
        x: x.x,
        half: x.half,
        shape: x.shape,
        classes,
        probs,
        tshape,
        weight,
        target_given: target.is_some(),
        wide,
    })
}

/// `--weight`: float16, float32 or float64 of shape `[C]`, as f32 (float64 kept in `wide`).
fn read_weight(path: &Path, wide: &mut Wide) -> Result<Vec<f32>> {
    let file = load(path)?;
    let (data, shape) = match file.floats("the class weight")? {
        NpyFloats::F16(w) => (
            w.data.iter().map(|&b| DType::F16.widen(b)).collect(),
            w.shape,
        ),
        NpyFloats::F32(w) => (w.data, w.shape),
        NpyFloats::F64(w) => {
            let narrowed = narrow(&w.data);
            wide.weight = Some(w.data);
            (narrowed, w.shape)
        }
    };
    if shape.len() != 1 {
        return Err(CliError::Npy {
            path: file.name().to_string(),
            message: format!("weight must be 1-D of shape [C], got shape {shape:?}"),
        });
    }
    Ok(data)
}

/// Rounds the logits to `dtype` (to nearest even), keeping the f32 copy equal to the rounded
/// values so that the CPU reference sees exactly what the GPU reads.
pub fn quantize(mut inp: Inputs, dtype: DType) -> Inputs {
    let (x, half) = round_to(std::mem::take(&mut inp.x), dtype);
    inp.x = x;
    inp.half = half.or(inp.half);
    inp
}

/// `values` rounded to `dtype` (to nearest even): the rounded values as f32, and their 16-bit
/// patterns for f16 / bf16 (`values` unchanged for the other dtypes).
pub fn round_to(values: Vec<f32>, dtype: DType) -> (Vec<f32>, Option<(Vec<u16>, DType)>) {
    let bits: Vec<u16> = match dtype {
        DType::F32 | DType::I32 | DType::U32 | DType::I64 => return (values, None),
        DType::F16 => values
            .iter()
            .map(|&v| half::f16::from_f32(v).to_bits())
            .collect(),
        DType::BF16 => values
            .iter()
            .map(|&v| half::bf16::from_f32(v).to_bits())
            .collect(),
    };
    let x = bits.iter().map(|&b| dtype.widen(b)).collect();
    (x, Some((bits, dtype)))
}

/// One float array read from `.npy`, as the logits are: f32 values (rounded from float64, or
/// widened from 16-bit), the 16-bit patterns and dtype, the float64 values as read.
pub struct Operand {
    pub x: Vec<f32>,
    pub half: Option<(Vec<u16>, DType)>,
    pub wide: Option<Vec<f64>>,
    pub shape: Vec<usize>,
}

impl Operand {
    /// The values in their own dtype.
    pub fn logits(&self) -> FloatTensor<'_> {
        match &self.half {
            Some((bits, DType::F16)) => FloatTensor::F16(Tensor::new(bits, &self.shape)),
            Some((bits, _)) => FloatTensor::BF16(Tensor::new(bits, &self.shape)),
            None => FloatTensor::F32(Tensor::new(&self.x, &self.shape)),
        }
    }

    /// The values in f64: as read for float64 files, else widened exactly.
    pub fn f64(&self) -> Vec<f64> {
        match &self.wide {
            Some(w) => w.clone(),
            None => self.x.iter().map(|&v| v as f64).collect(),
        }
    }
}

/// Reads a float array as the logits are read: float32, float64 or float16 `<f2` by the
/// file's own dtype, or as `dtype` (bf16: uint16 bit patterns); `-` is stdin.
pub fn read_operand(path: &Path, dtype: Option<DType>) -> Result<Operand> {
    let file = load(path)?;
    let ((x, half), wide) = match (dtype, file.dtype()?.as_str()) {
        (None, "<f8") => {
            let (x, x64) = logits_f64(&file)?;
            ((x, None), Some(x64))
        }
        (None, "<f2") => (logits(&file, DType::F16)?, None),
        (None, _) => (logits(&file, DType::F32)?, None),
        (Some(d), _) => (logits(&file, d)?, None),
    };
    Ok(Operand {
        x: x.data,
        half,
        wide,
        shape: x.shape,
    })
}
