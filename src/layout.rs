//! Shape checking and the `[outer, C, inner]` view that every kernel works on.
//!
//! A contiguous tensor is viewed as `[outer, C, inner]` around its class axis. A *row* is
//! the C values `x[o, 0..C, i]` at flat index `o·C·inner + c·inner + i`, and row
//! `r = o·inner + i`. For `[N, C]` that is the usual row; for `[N, C, d1..dk]` the class
//! axis is strided by `inner = d1·…·dk`, and the rows are the loss positions in the order
//! of the target `[N, d1..dk]`.

use crate::error::{Result, XentError};

/// The number of elements of `shape`, or `InvalidShape` when the product overflows `usize`
/// (a `.npy` header or a caller can claim any shape).
pub fn numel(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| {
            XentError::InvalidShape(format!(
                "shape {shape:?} has more elements than this machine can address"
            ))
        })
}

/// The `[outer, C, inner]` view of a tensor around its class axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowLayout {
    /// Product of the dims before the class axis.
    pub outer: usize,
    /// Size of the class axis, C.
    pub classes: usize,
    /// Product of the dims after the class axis: the stride between classes.
    pub inner: usize,
}

impl RowLayout {
    /// Number of rows, `outer · inner`.
    pub fn rows(&self) -> usize {
        self.outer * self.inner
    }

    /// Number of elements, `outer · C · inner`.
    pub fn len(&self) -> usize {
        self.outer * self.classes * self.inner
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Flat index of class 0 of row `r`.
    pub fn row_base(&self, r: usize) -> usize {
        (r / self.inner) * self.classes * self.inner + r % self.inner
    }

    /// The view for softmax ops along `dim` (negative dims count from the end, as in PyTorch).
    pub fn for_dim(shape: &[usize], dim: i64) -> Result<Self> {
        numel(shape)?;
        // PyTorch treats a 0-d tensor as having one dim of size 1 here.
        let rank = shape.len().max(1) as i64;
        if dim < -rank || dim >= rank {
            return Err(XentError::DimOutOfRange {
                dim,
                low: -rank,
                high: rank - 1,
            });
        }
        if shape.is_empty() {
            return Ok(Self {
                outer: 1,
                classes: 1,
                inner: 1,
            });
        }
        let d = if dim < 0 { dim + rank } else { dim } as usize;
        Ok(Self {
            outer: shape[..d].iter().product(),
            classes: shape[d],
            inner: shape[d + 1..].iter().product(),
        })
    }
}

/// The multi-index of flat position `i` in `shape`.
pub fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for (k, &d) in shape.iter().enumerate().rev() {
        if d > 0 {
            idx[k] = i % d;
            i /= d;
        }
    }
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_views_the_class_axis() {
        let l = RowLayout::for_dim(&[2, 3, 4, 5], 1).unwrap();
        assert_eq!((l.outer, l.classes, l.inner), (2, 3, 20));
        assert_eq!(l.row_base(21), 60 + 1);
        let l = RowLayout::for_dim(&[2, 3, 4], -1).unwrap();
        assert_eq!((l.outer, l.classes, l.inner), (6, 4, 1));
        assert!(matches!(
            RowLayout::for_dim(&[2, 3], 2),
            Err(XentError::DimOutOfRange {
                low: -2,
                high: 1,
                ..
            })
        ));
    }
}
