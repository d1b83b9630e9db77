//! `linear_cross_entropy` in f64: the logits `input @ linear_weight.T + linear_bias` in full,
//! `cross_entropy` on them ([`super::wide::cross_entropy`]), and the three products of the
//! backward. The reference the GPU's chunked path is checked against, not a fast path.
//!
//! ```
//! use wgpu_xent::cpu::{linear::linear_cross_entropy, wide::{WideOptions, WideTarget}};
//! use wgpu_xent::{Target, Tensor};
//! let (x, w, t) = ([1.0f64, 2.0], [0.5f64, -0.5, 1.0, 0.0, 0.0, 1.0], [2i64]);
//! let target = WideTarget::Classes(Target::I64(Tensor::new(&t, &[1])));
//! let out = linear_cross_entropy(
//!     Tensor::new(&x, &[1, 2]), Tensor::new(&w, &[3, 2]), None, target, &WideOptions::default(), true,
//! )?;
//! assert_eq!(out.grad_linear_weight.unwrap().shape, vec![3, 2]);
//! # Ok::<(), wgpu_xent::XentError>(())
//! ```

use super::wide::{cross_entropy, WideOptions, WideOutput, WideTarget};
use crate::error::Result;
use crate::linear::LinearProblem;
use crate::options::Tensor;

/// `linear_cross_entropy`'s results in f64 (gradients of the summed losses for `none`).
#[derive(Clone, Debug, PartialEq)]
pub struct WideLinearOutput {
    /// The loss, as `cross_entropy` returns it.
    pub loss: WideOutput,
    /// d loss / d input, the input's shape.
    pub grad_input: Option<WideOutput>,
    /// d loss / d linear_weight, `[C, D]`.
    pub grad_linear_weight: Option<WideOutput>,
    /// d loss / d linear_bias, `[C]`, when a bias was given.
    pub grad_linear_bias: Option<WideOutput>,
    /// Each row's log-sum-exp (after softcap), `[N]` or `[]`.
    pub lse: Option<WideOutput>,
}

/// `torch.nn.functional.linear_cross_entropy` in float64 (PyTorch's reference path), with
/// the gradients when `grad`.
pub fn linear_cross_entropy(
    input: Tensor<f64>,
    linear_weight: Tensor<f64>,
    linear_bias: Option<Tensor<f64>>,
    target: WideTarget,
    opts: &WideOptions,
    grad: bool,
) -> Result<WideLinearOutput> {
    let p = LinearProblem::new(
        input.shape,
        linear_weight.shape,
        linear_bias.map(|b| b.shape),
    )?;
    input.check_len("input")?;
    linear_weight.check_len("linear_weight")?;
    if let Some(b) = &linear_bias {
        b.check_len("linear_bias")?;
    }
    let (n, d, c) = (p.rows, p.features, p.classes);
    let (x, w) = (input.data, linear_weight.data);
    let mut logits = vec![0f64; n * c];
    for (r, row) in logits.chunks_mut(c.max(1)).enumerate().take(n) {
        for (k, v) in row.iter_mut().enumerate() {
            let dot: f64 = (0..d).map(|i| x[r * d + i] * w[k * d + i]).sum();
            *v = dot + linear_bias.map_or(0.0, |b| b.data[k]);
        }
    }
    let shape = p.logits_shape();
    let out = cross_entropy(Tensor::new(&logits, &shape), target, opts, grad, true)?;
    let Some(g) = out.grad else {
        return Ok(WideLinearOutput {
            loss: out.loss,
            grad_input: None,
            grad_linear_weight: None,
            grad_linear_bias: None,
            lse: out.lse,
        });
    };
    let g = g.data;
    let mut dx = vec![0f64; n * d];
    let mut dw = vec![0f64; c * d];
    for r in 0..n {
        for k in 0..c {
            let gk = g[r * c + k];
            for i in 0..d {
                dx[r * d + i] += gk * w[k * d + i];
                dw[k * d + i] += gk * x[r * d + i];
            }
        }
    }
    let db: Vec<f64> = (0..c).map(|k| (0..n).map(|r| g[r * c + k]).sum()).collect();
    Ok(WideLinearOutput {
        loss: out.loss,
        grad_input: Some(WideOutput {
            data: dx,
            shape: p.input_shape(),
        }),
        grad_linear_weight: Some(WideOutput {
            data: dw,
            shape: vec![c, d],
        }),
        grad_linear_bias: linear_bias.map(|_| WideOutput {
            data: db,
            shape: vec![c],
        }),
        lse: out.lse,
    })
}
