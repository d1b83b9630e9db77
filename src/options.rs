//! Host-side tensors and loss options, shared by the GPU path and the CPU reference.

use crate::error::{Result, XentError};
use std::str::FromStr;

/// A borrowed, contiguous (row-major) tensor on the host.
#[derive(Clone, Copy, Debug)]
pub struct Tensor<'a, T> {
    /// Elements in row-major order; `data.len()` is the product of `shape`.
    pub data: &'a [T],
    /// The shape; `&[]` is a scalar.
    pub shape: &'a [usize],
}

impl<'a, T> Tensor<'a, T> {
    /// Wraps `data` with `shape`. The length is checked when an op uses it.
    pub fn new(data: &'a [T], shape: &'a [usize]) -> Self {
        Self { data, shape }
    }

    /// Checks that the data holds exactly `prod(shape)` elements.
    pub(crate) fn check_len(&self, what: &str) -> Result<usize> {
        let n = crate::layout::numel(self.shape)?;
        if n != self.data.len() {
            return Err(XentError::InvalidShape(format!(
                "{what} has shape {:?} ({n} elements) but {} elements of data",
                self.shape,
                self.data.len()
            )));
        }
        Ok(n)
    }
}

/// The element type of a tensor, on the host and on the device: logits, probabilities and
/// weights are f32, f16 or bf16 (16-bit types as their bit patterns); class targets are
/// i32, u32 or i64.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE f32.
    #[default]
    F32,
    /// IEEE half, stored as its 16-bit pattern (`u16`).
    F16,
    /// bfloat16, stored as its 16-bit pattern (`u16`): the top half of an f32.
    BF16,
    /// i32 class targets.
    I32,
    /// u32 class targets.
    U32,
    /// i64 class targets (read by the kernels as pairs of 32-bit words).
    I64,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F16 | DType::BF16 => 2,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::I64 => 8,
        }
    }

    /// True for f32, f16 and bf16.
    pub fn is_float(self) -> bool {
        self.float().is_some()
    }

    /// Widens one 16-bit pattern of f16 or bf16 to f32 (exactly); any other dtype reads the
    /// pattern as bf16.
    pub fn widen(self, bits: u16) -> f32 {
        match self {
            DType::F16 => half::f16::from_bits(bits).to_f32(),
            _ => f32::from_bits((bits as u32) << 16),
        }
    }

    /// The floating-point dtypes, which kernels read and write.
    pub(crate) fn float(self) -> Option<Float> {
        match self {
            DType::F32 => Some(Float::F32),
            DType::F16 => Some(Float::F16),
            DType::BF16 => Some(Float::BF16),
            DType::I32 | DType::U32 | DType::I64 => None,
        }
    }
}

/// The floating-point subset of [`DType`]: what a kernel's logits, gradient or outputs are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) enum Float {
    #[default]
    F32,
    F16,
    BF16,
}

impl Float {
    /// Bytes per element.
    pub fn size(self) -> usize {
        DType::from(self).size()
    }
}

impl From<Float> for DType {
    fn from(f: Float) -> Self {
        match f {
            Float::F32 => DType::F32,
            Float::F16 => DType::F16,
            Float::BF16 => DType::BF16,
        }
    }
}

/// A float tensor on the host (logits, hidden states, weights): f32, or the 16-bit patterns
/// of f16 / bf16 values.
/// A `Tensor<f32>` converts into it, so every op takes f32 tensors directly.
#[derive(Clone, Copy, Debug)]
pub enum FloatTensor<'a> {
    /// f32 values.
    F32(Tensor<'a, f32>),
    /// f16 bit patterns.
    F16(Tensor<'a, u16>),
    /// bf16 bit patterns.
    BF16(Tensor<'a, u16>),
}

impl<'a> From<Tensor<'a, f32>> for FloatTensor<'a> {
    fn from(t: Tensor<'a, f32>) -> Self {
        FloatTensor::F32(t)
    }
}

/// f16 values as `half::f16`: the same bits as [`FloatTensor::F16`], without a copy.
impl<'a> From<Tensor<'a, half::f16>> for FloatTensor<'a> {
    fn from(t: Tensor<'a, half::f16>) -> Self {
        FloatTensor::F16(Tensor::new(bytemuck::cast_slice(t.data), t.shape))
    }
}

/// bf16 values as `half::bf16`: the same bits as [`FloatTensor::BF16`], without a copy.
impl<'a> From<Tensor<'a, half::bf16>> for FloatTensor<'a> {
    fn from(t: Tensor<'a, half::bf16>) -> Self {
        FloatTensor::BF16(Tensor::new(bytemuck::cast_slice(t.data), t.shape))
    }
}

impl<'a> FloatTensor<'a> {
    /// The shape.
    pub fn shape(&self) -> &'a [usize] {
        match self {
            FloatTensor::F32(t) => t.shape,
            FloatTensor::F16(t) | FloatTensor::BF16(t) => t.shape,
        }
    }

    /// The dtype.
    pub fn dtype(&self) -> DType {
        self.float().into()
    }

    pub(crate) fn float(&self) -> Float {
        match self {
            FloatTensor::F32(_) => Float::F32,
            FloatTensor::F16(_) => Float::F16,
            FloatTensor::BF16(_) => Float::BF16,
        }
    }

    /// Number of elements held.
    pub fn len(&self) -> usize {
        match self {
            FloatTensor::F32(t) => t.data.len(),
            FloatTensor::F16(t) | FloatTensor::BF16(t) => t.data.len(),
        }
    }

    /// True when no elements are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The raw bytes of elements `range`.
    pub(crate) fn bytes(&self, range: std::ops::Range<usize>) -> &'a [u8] {
        match self {
            FloatTensor::F32(t) => bytemuck::cast_slice(&t.data[range]),
            FloatTensor::F16(t) | FloatTensor::BF16(t) => bytemuck::cast_slice(&t.data[range]),
        }
    }

    /// The values as f32 (borrowed for f32, widened exactly for 16-bit dtypes).
    pub fn to_f32(&self) -> std::borrow::Cow<'a, [f32]> {
        match self {
            FloatTensor::F32(t) => std::borrow::Cow::Borrowed(t.data),
            FloatTensor::F16(t) | FloatTensor::BF16(t) => {
                let dtype = self.dtype();
                std::borrow::Cow::Owned(t.data.iter().map(|&b| dtype.widen(b)).collect())
            }
        }
    }

    /// Checks that the data holds exactly `prod(shape)` elements.
    pub(crate) fn check_len(&self) -> Result<usize> {
        let n = crate::layout::numel(self.shape())?;
        if n != self.len() {
            return Err(XentError::InvalidShape(format!(
                "input has shape {:?} ({n} elements) but {} elements of data",
                self.shape(),
                self.len()
            )));
        }
        Ok(n)
    }
}

/// The target of `cross_entropy` / `nll_loss`.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// Class indices, as PyTorch takes them.
    I64(Tensor<'a, i64>),
    /// Class indices as `i32`.
    I32(Tensor<'a, i32>),
    /// Class indices as `u32`.
    U32(Tensor<'a, u32>),
    /// Class probabilities with the input's shape (`cross_entropy` only).
    Probs(Tensor<'a, f32>),
}

impl Target<'_> {
    /// The target's shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            Target::I64(t) => t.shape,
            Target::I32(t) => t.shape,
            Target::U32(t) => t.shape,
            Target::Probs(t) => t.shape,
        }
    }

    /// PyTorch's name for the target's dtype, as its messages give it.
    pub(crate) fn dtype_name(&self) -> &'static str {
        match self {
            Target::I64(_) => "Long",
            Target::I32(_) => "Int",
            Target::U32(_) => "UInt32",
            Target::Probs(_) => "Float",
        }
    }
}

/// How per-position losses are combined, as PyTorch's `reduction`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// One loss per position, shape `[N, d1..dk]`.
    None,
    /// `Σ ℓ_n / Σ_n w[y_n]·m_n`: the weighted mean (the default).
    #[default]
    Mean,
    /// Σ ℓ_n.
    Sum,
}

impl FromStr for Reduction {
    type Err = XentError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Reduction::None),
            "mean" => Ok(Reduction::Mean),
            "sum" => Ok(Reduction::Sum),
            _ => Err(XentError::InvalidArgument(format!(
                "{s} is not a valid value for reduction (expected none, mean or sum)"
            ))),
        }
    }
}

/// PyTorch's default `ignore_index`.
pub const DEFAULT_IGNORE_INDEX: i64 = -100;

/// The options of `cross_entropy` and `nll_loss`, with PyTorch's defaults.
#[derive(Clone, Copy, Debug)]
pub struct LossOptions<'a> {
    /// Per-class weight, shape `[C]`.
    pub weight: Option<&'a [f32]>,
    /// Targets equal to this contribute nothing (default -100). It may be a valid class.
    pub ignore_index: i64,
    /// `none`, `mean` (default) or `sum`.
    pub reduction: Reduction,
    /// ε in [0, 1]: loss = (1 - ε)·nll + (ε / C)·smoothing term. `cross_entropy` only.
    pub label_smoothing: f32,
    /// z-loss scale: adds `z_loss · lse²` per counted row (PaLM, Liger-Kernel). 0 is off.
    /// `cross_entropy` only.
    pub z_loss: f32,
    /// Logit soft-capping: logits become `cap · tanh(x / cap)` before anything else.
    /// `cross_entropy` only.
    pub softcap: Option<f32>,
}

impl Default for LossOptions<'_> {
    fn default() -> Self {
        Self {
            weight: None,
            ignore_index: DEFAULT_IGNORE_INDEX,
            reduction: Reduction::Mean,
            label_smoothing: 0.0,
            z_loss: 0.0,
            softcap: None,
        }
    }
}

/// A result on the host: f32 values and PyTorch's output shape (`[]` for `mean` and `sum`).
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    /// Values in row-major order.
    pub data: Vec<f32>,
    /// PyTorch's output shape.
    pub shape: Vec<usize>,
}

impl Output {
    /// The single value of a scalar output (`mean` or `sum`), or the first element.
    pub fn scalar(&self) -> f32 {
        self.data.first().copied().unwrap_or(f32::NAN)
    }
}

/// Options of the fused forward + backward.
#[derive(Clone, Copy, Debug)]
pub struct BackwardOptions {
    /// The upstream gradient g, d(objective)/d(loss) (default 1). For `none` it multiplies
    /// the gradient of the summed losses.
    pub grad_output: f32,
}

impl Default for BackwardOptions {
    fn default() -> Self {
        Self { grad_output: 1.0 }
    }
}

/// The result of a fused forward + backward.
#[derive(Clone, Debug, PartialEq)]
pub struct LossAndGrad {
    /// The loss, as the forward op returns it.
    pub loss: Output,
    /// d(loss)/d(input), the input's shape, when asked for and read back (a host call's
    /// `Grad::Returned` or `Grad::InPlace`); `None` otherwise.
    pub grad: Option<Output>,
    /// The per-row log-sum-exp, shape `[N, d1..dk]`, when asked for.
    pub lse: Option<Output>,
}
