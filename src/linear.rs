//! `linear_cross_entropy`'s user types, and their check into one problem: the classifier
//! projection `input @ linear_weight.T + linear_bias` whose logits go to `cross_entropy`.

use crate::error::{Result, XentError};
use crate::options::{FloatTensor, Output};

/// The default bound on the logits held at once (`Linear::budget`): 64 MiB.
pub const DEFAULT_LINEAR_BUDGET: usize = 64 << 20;

/// The projection of `linear_cross_entropy`: `input` `[N, D]` or `[D]`, `linear_weight`
/// `[C, D]` and optionally `linear_bias` `[C]`, each f32, f16 or bf16 (accumulated in f32).
///
/// ```
/// use wgpu_xent::{Linear, Tensor};
/// let (x, w, b) = ([1.0f32, 2.0], [0.5f32, -0.5, 1.0, 0.0, 0.0, 1.0], [0.0f32, 0.1, 0.2]);
/// let linear = Linear::new(Tensor::new(&x, &[1, 2]), Tensor::new(&w, &[3, 2]))
///     .bias(Tensor::new(&b, &[3]))
///     .budget(1 << 20);
/// assert_eq!(linear.problem()?.classes, 3);
/// # Ok::<(), wgpu_xent::XentError>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Linear<'a> {
    /// The hidden states, `[N, D]` or `[D]`.
    pub input: FloatTensor<'a>,
    /// The classifier weight, `[C, D]`.
    pub linear_weight: FloatTensor<'a>,
    /// The classifier bias, `[C]`.
    pub linear_bias: Option<FloatTensor<'a>>,
    /// The most bytes of f32 logits (and their gradient, over them) held at once: the rows
    /// are processed in chunks of `budget / (4 C)` rows (at least one).
    pub budget: usize,
    /// Whether the call also returns each row's log-sum-exp (`LinearOutput::lse`).
    pub lse: bool,
}

impl<'a> Linear<'a> {
    /// `input` `[N, D]` or `[D]` and `linear_weight` `[C, D]`, no bias, the default budget.
    pub fn new(
        input: impl Into<FloatTensor<'a>>,
        linear_weight: impl Into<FloatTensor<'a>>,
    ) -> Self {
        Self {
            input: input.into(),
            linear_weight: linear_weight.into(),
            linear_bias: None,
            budget: DEFAULT_LINEAR_BUDGET,
            lse: false,
        }
    }

    /// Adds the bias `[C]`.
    #[must_use = "returns the updated description"]
    pub fn bias(self, linear_bias: impl Into<FloatTensor<'a>>) -> Self {
        Self {
            linear_bias: Some(linear_bias.into()),
            ..self
        }
    }

    /// Sets the most bytes of logits held at once.
    #[must_use = "returns the updated description"]
    pub fn budget(self, bytes: usize) -> Self {
        Self {
            budget: bytes,
            ..self
        }
    }

    /// Returns (or not) each row's log-sum-exp of its logits (after softcap): `[N]`, or `[]`
    /// unbatched.
    #[must_use = "returns the updated description"]
    pub fn lse(self, lse: bool) -> Self {
        Self { lse, ..self }
    }

    /// Checks the shapes, with PyTorch's messages.
    pub fn problem(&self) -> Result<LinearProblem> {
        self.input.check_len()?;
        self.linear_weight.check_len()?;
        if let Some(b) = &self.linear_bias {
            b.check_len()?;
        }
        LinearProblem::new(
            self.input.shape(),
            self.linear_weight.shape(),
            self.linear_bias.map(|b| b.shape()),
        )
    }
}

/// A checked `linear_cross_entropy`: N rows (1 for an unbatched `[D]` input) of D features,
/// C classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearProblem {
    /// Rows of the input.
    pub rows: usize,
    /// Features: the input's and the weight's last dimension.
    pub features: usize,
    /// Classes: the weight's first dimension.
    pub classes: usize,
    /// Whether the input is `[D]` (the loss's logits are then `[C]`).
    pub unbatched: bool,
}

impl LinearProblem {
    /// Checks `input` `[N, D]` / `[D]`, `linear_weight` `[C, D]`, `linear_bias` `[C]`.
    pub fn new(input: &[usize], weight: &[usize], bias: Option<&[usize]>) -> Result<Self> {
        let (rows, features, unbatched) = match input {
            [d] => (1, *d, true),
            [n, d] => (*n, *d, false),
            s => {
                return Err(XentError::InvalidShape(format!(
                    "linear_cross_entropy: expected input to be 1-D or 2-D, got {}-D {s:?}",
                    s.len()
                )))
            }
        };
        let [classes, wd] = weight else {
            return Err(XentError::InvalidShape(format!(
                "linear_cross_entropy: expected linear_weight to be 2-D [C, D], got {weight:?}"
            )));
        };
        if *wd != features {
            return Err(XentError::InvalidShape(format!(
                "expected equal input and linear_weight last dimensions (in_features), got {features} and {wd}, respectively"
            )));
        }
        if let Some(b) = bias.filter(|b| *b != [*classes]) {
            let got: Vec<String> = b.iter().map(|v| v.to_string()).collect();
            let comma = if b.len() == 1 { "," } else { "" };
            return Err(XentError::InvalidShape(format!(
                "expected linear_bias shape ({classes},), got ({}{comma})",
                got.join(", ")
            )));
        }
        Ok(Self {
            rows,
            features,
            classes: *classes,
            unbatched,
        })
    }

    /// The shape of the logits the loss sees: `[N, C]`, or `[C]` unbatched.
    pub fn logits_shape(&self) -> Vec<usize> {
        match self.unbatched {
            true => vec![self.classes],
            false => vec![self.rows, self.classes],
        }
    }

    /// The shape of the per-row outputs (losses for `none`, lse): `[N]`, or `[]` unbatched.
    pub fn rows_shape(&self) -> Vec<usize> {
        match self.unbatched {
            true => vec![],
            false => vec![self.rows],
        }
    }

    /// The input's shape.
    pub fn input_shape(&self) -> Vec<usize> {
        match self.unbatched {
            true => vec![self.features],
            false => vec![self.rows, self.features],
        }
    }

    /// Rows per chunk under `budget` bytes of f32 logits: at least 1, at most N.
    pub fn chunk_rows(&self, budget: usize) -> usize {
        (budget / (4 * self.classes.max(1))).clamp(1, self.rows.max(1))
    }
}

/// `linear_cross_entropy`'s results: the loss, and with the backward the gradients of the
/// loss (of the summed losses for `none`) with respect to each input, in f32.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearOutput {
    /// The loss, as `cross_entropy` returns it.
    pub loss: Output,
    /// d loss / d input, the input's shape.
    pub grad_input: Option<Output>,
    /// d loss / d linear_weight, `[C, D]`.
    pub grad_linear_weight: Option<Output>,
    /// d loss / d linear_bias, `[C]` (when a bias was given).
    pub grad_linear_bias: Option<Output>,
    /// Each row's log-sum-exp, `[N]` or `[]` (when asked for with `Linear::lse`).
    pub lse: Option<Output>,
}
