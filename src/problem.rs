//! Validation: a loss call's input, target and options checked in PyTorch's order and with
//! its words, into one `LossProblem` (the `[outer, C, inner]` view, the output shape and the
//! normalised targets).

use crate::error::{Result, XentError};
use crate::layout::{numel, unravel, RowLayout};
use crate::options::{LossOptions, Target, Tensor};

/// Target value that marks an ignored position once targets are normalised.
/// Valid classes are `>= 0`, so it cannot collide with one.
pub const IGNORED: i32 = -1;

/// cross_entropy or nll_loss: which checks apply, and the name PyTorch's messages give.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Loss {
    CrossEntropy,
    Nll,
}

impl std::fmt::Display for Loss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Loss::CrossEntropy => "cross_entropy",
            Loss::Nll => "nll_loss",
        })
    }
}

/// The shape of one value per row, `[N, d1..dk]`, for an input `[N, C, d1..dk]` (`[]` for an
/// unbatched `[C]`): PyTorch's `none` output, and the per-row lse.
pub(crate) fn rows_shape(shape: &[usize]) -> Vec<usize> {
    match shape.len() {
        0 | 1 => vec![],
        _ => std::iter::once(shape[0])
            .chain(shape[2..].iter().copied())
            .collect(),
    }
}

/// A checked loss problem: the layout, the output shape and the normalised targets.
#[derive(Clone, Debug)]
pub struct LossProblem {
    /// The input's view around its class axis (dim 1, or dim 0 for an unbatched `[C]`).
    pub layout: RowLayout,
    /// Shape of the `none` output: the target's shape for class targets,
    /// the input's shape without dim 1 for probability targets.
    pub out_shape: Vec<usize>,
    /// The targets, one per row.
    pub targets: Targets,
}

/// Targets after checking.
#[derive(Clone, Debug)]
pub enum Targets {
    /// A class per row in `[0, C)`, or [`IGNORED`].
    Classes(Vec<i32>),
    /// Probabilities with the input's shape (same layout as the logits).
    Probs(Vec<f32>),
}

/// Checks an input of `cross_entropy` / `nll_loss` against its target and options,
/// in PyTorch's order, and normalises the targets.
pub(crate) fn check_loss(
    op: Loss,
    shape: &[usize],
    len: usize,
    target: &Target,
    opts: &LossOptions,
) -> Result<LossProblem> {
    check(op, shape, len, target, opts, true)
}

/// Every check `cross_entropy` makes of its input's shape, its target and its options, in
/// PyTorch's order and words, without running it: `Ok` with the shape of the `none` output.
/// (A sharded caller checks the whole problem before cutting it: [`crate::CrossEntropyShards`].)
pub fn check_cross_entropy(
    input_shape: &[usize],
    target: &Target,
    opts: &LossOptions,
) -> Result<Vec<usize>> {
    check_only(Loss::CrossEntropy, input_shape, target, opts)
}

/// As [`check_cross_entropy`], for `nll_loss`.
pub fn check_nll_loss(
    input_shape: &[usize],
    target: &Target,
    opts: &LossOptions,
) -> Result<Vec<usize>> {
    check_only(Loss::Nll, input_shape, target, opts)
}

/// `op`'s checks of a shape with no data: its element count is taken as the data's.
fn check_only(
    op: Loss,
    shape: &[usize],
    target: &Target,
    opts: &LossOptions,
) -> Result<Vec<usize>> {
    let len = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .unwrap_or(usize::MAX);
    Ok(check_loss(op, shape, len, target, opts)?.out_shape)
}

/// As [`check_loss`] for targets on the device: shapes and options only (the values are
/// checked by the kernels); the returned targets are empty.
pub(crate) fn check_loss_shapes(
    op: Loss,
    shape: &[usize],
    len: usize,
    target_shape: &[usize],
    probs: bool,
    opts: &LossOptions,
) -> Result<LossProblem> {
    let target = match probs {
        true => Target::Probs(Tensor::new(&[], target_shape)),
        false => Target::I64(Tensor::new(&[], target_shape)),
    };
    check(op, shape, len, &target, opts, false)
}

fn check(
    op: Loss,
    shape: &[usize],
    len: usize,
    target: &Target,
    opts: &LossOptions,
    values: bool,
) -> Result<LossProblem> {
    let n = numel(shape)?;
    if n != len {
        return Err(XentError::InvalidShape(format!(
            "input has shape {shape:?} ({n} elements) but {len} elements of data"
        )));
    }
    if shape.is_empty() {
        return Err(XentError::InvalidShape(format!(
            "{op}: expected an input of 1 or more dimensions (got 0)"
        )));
    }
    let layout = RowLayout::for_dim(shape, if shape.len() == 1 { 0 } else { 1 })?;
    let classes = layout.classes;
    check_options(op, opts)?;
    let eps = opts.label_smoothing;
    if let Some(w) = opts.weight {
        if w.len() != classes {
            return Err(XentError::WeightShape {
                classes,
                shape: vec![w.len()],
            });
        }
    }
    if let Target::Probs(t) = target {
        return check_prob_target(op, shape, layout, t, opts, values);
    }
    if op == Loss::Nll && eps != 0.0 {
        return Err(XentError::InvalidArgument(
            "nll_loss has no label_smoothing".into(),
        ));
    }
    let tshape = target.shape();
    // PyTorch takes a target of the input's shape as probabilities, which must be floats.
    if shape.len() > 1 && tshape == shape {
        return Err(XentError::InvalidArgument(format!(
            "Expected floating point type for target with class probabilities, got {}",
            target.dtype_name()
        )));
    }
    let expected = check_class_target_shape(op, shape, tshape)?;
    let targets = match values {
        true => normalise_classes(target, classes, opts.ignore_index)?,
        false => vec![],
    };
    Ok(LossProblem {
        layout,
        out_shape: expected,
        targets: Targets::Classes(targets),
    })
}

/// The options' own domains, and those nll_loss does not take.
fn check_options(op: Loss, opts: &LossOptions) -> Result<()> {
    let eps = opts.label_smoothing;
    if !(0.0..=1.0).contains(&eps) {
        return Err(XentError::InvalidArgument(format!(
            "label_smoothing must be between 0.0 and 1.0. Got: {eps}"
        )));
    }
    if !opts.z_loss.is_finite() {
        return Err(XentError::InvalidArgument(format!(
            "z_loss must be finite. Got: {}",
            opts.z_loss
        )));
    }
    if let Some(cap) = opts.softcap {
        if !(cap.is_finite() && cap > 0.0) {
            return Err(XentError::InvalidArgument(format!(
                "softcap must be a finite value > 0. Got: {cap}"
            )));
        }
    }
    if op == Loss::Nll && (opts.z_loss != 0.0 || opts.softcap.is_some()) {
        return Err(XentError::InvalidArgument(
            "nll_loss takes log-probabilities: z_loss and softcap apply to cross_entropy only"
                .into(),
        ));
    }
    Ok(())
}

/// A class target's shape against the input's, in PyTorch's words; returns `[N, d1..dk]`.
fn check_class_target_shape(op: Loss, shape: &[usize], tshape: &[usize]) -> Result<Vec<usize>> {
    let expected = rows_shape(shape);
    match shape.len() {
        1 if !tshape.is_empty() => {
            return Err(XentError::InvalidShape(format!(
                "{op}: for an unbatched input of shape {shape:?} the target must be 0-d, got shape {tshape:?}"
            )))
        }
        2 if tshape.len() != 1 => {
            return Err(XentError::InvalidShape(format!(
                "{op}: 0D or 1D target tensor expected, multi-target not supported (input {shape:?}, target {tshape:?})"
            )))
        }
        2 if tshape[0] != shape[0] => {
            return Err(XentError::BatchMismatch {
                input: shape[0],
                target: tshape[0],
            })
        }
        4 if tshape != expected.as_slice() => {
            return Err(XentError::ShapeMismatch {
                input: shape.to_vec(),
                target: tshape.to_vec(),
            })
        }
        _ if tshape != expected.as_slice() => {
            return Err(XentError::TargetSize {
                expected,
                got: tshape.to_vec(),
            })
        }
        _ => {}
    }
    Ok(expected)
}

fn check_prob_target(
    op: Loss,
    shape: &[usize],
    layout: RowLayout,
    t: &Tensor<f32>,
    opts: &LossOptions,
    values: bool,
) -> Result<LossProblem> {
    if op != Loss::CrossEntropy {
        return Err(XentError::InvalidArgument(format!(
            "{op}: expected class-index targets (int64, int32 or uint32), got float probabilities"
        )));
    }
    // PyTorch reads a target of any other shape as class indices, which must be integers.
    if t.shape != shape {
        return Err(XentError::InvalidArgument(
            "expected target dtype to be Long or Byte, but got Float".into(),
        ));
    }
    if values {
        t.check_len("target")?;
    }
    if opts.ignore_index >= 0 {
        return Err(XentError::InvalidArgument(
            "ignore_index is not supported for floating point target".into(),
        ));
    }
    let out_shape = rows_shape(shape);
    Ok(LossProblem {
        layout,
        out_shape,
        targets: Targets::Probs(if values { t.data.to_vec() } else { vec![] }),
    })
}

/// Checks every class target and maps it to `i32`, with `ignore_index` mapped to [`IGNORED`].
fn normalise_classes(target: &Target, classes: usize, ignore_index: i64) -> Result<Vec<i32>> {
    fn go<T: Copy + Into<i64>>(
        t: &Tensor<T>,
        classes: usize,
        ignore_index: i64,
    ) -> Result<Vec<i32>> {
        t.check_len("target")?;
        t.data
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let v: i64 = v.into();
                if v == ignore_index {
                    Ok(IGNORED)
                } else if v >= 0 && (v as u64) < classes as u64 {
                    Ok(v as i32)
                } else {
                    Err(XentError::TargetOutOfBounds {
                        position: unravel(i, t.shape),
                        value: v,
                        classes,
                        ignore_index,
                    })
                }
            })
            .collect()
    }
    match target {
        Target::I64(t) => go(t, classes, ignore_index),
        Target::I32(t) => go(t, classes, ignore_index),
        Target::U32(t) => go(t, classes, ignore_index),
        Target::Probs(_) => unreachable!("probability targets are checked separately"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_errors_name_position_value_and_classes() {
        let x = [0.0f32; 6];
        let t = [1i64, 3];
        let err = check_loss(
            Loss::CrossEntropy,
            &[2, 3],
            x.len(),
            &Target::I64(Tensor::new(&t, &[2])),
            &LossOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("Target 3 is out of bounds"), "{err}");
        assert!(err.contains("[1]") && err.contains("[0, 3)"), "{err}");
    }

    #[test]
    fn ignore_index_may_be_a_valid_class() {
        let x = [0.0f32; 6];
        let t = [1i32, 0];
        let p = check_loss(
            Loss::CrossEntropy,
            &[2, 3],
            x.len(),
            &Target::I32(Tensor::new(&t, &[2])),
            &LossOptions {
                ignore_index: 0,
                ..Default::default()
            },
        )
        .unwrap();
        let Targets::Classes(c) = p.targets else {
            panic!()
        };
        assert_eq!(c, vec![1, IGNORED]);
    }
}
