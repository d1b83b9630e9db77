//! `ndarray` interop (feature `ndarray`): any view in, `ArrayD` out.
//!
//! The kernels read row-major, contiguous data. A view in that layout is borrowed as it is;
//! any other (a transposed view, a slice with steps, a column-major array) is copied into it
//! once, when the [`NdInput`] is made.
//!
//! ```
//! use ndarray::array;
//! use wgpu_xent::{ndarray::NdInput, Context};
//! let ctx = Context::new()?;
//! let x = array![[1.0f32, 2.0], [3.0, 4.0]];
//! let xt = NdInput::new(x.t()); // transposed: copied into row-major order
//! let out = ctx.log_softmax(xt.tensor(), 1)?.into_array()?;
//! assert_eq!(out.shape(), &[2, 2]);
//! # Ok::<(), wgpu_xent::XentError>(())
//! ```

use crate::error::{Result, XentError};
use crate::options::{Output, Tensor};
use ndarray::{ArrayD, ArrayView, CowArray, Dimension, IxDyn};

/// An ndarray view as an op's input, in row-major contiguous layout (borrowed, or copied
/// once when the view is in another layout).
pub struct NdInput<'a, T> {
    array: CowArray<'a, T, IxDyn>,
}

impl<'a, T: Clone> NdInput<'a, T> {
    /// Borrows `view` when it is row-major and contiguous; copies it into that layout
    /// otherwise.
    pub fn new<D: Dimension>(view: ArrayView<'a, T, D>) -> Self {
        let view = view.into_dyn();
        let array = match view.is_standard_layout() {
            true => CowArray::from(view),
            false => CowArray::from(view.as_standard_layout().into_owned()),
        };
        Self { array }
    }

    /// Whether making it copied the data.
    pub fn is_copy(&self) -> bool {
        self.array.is_owned()
    }

    /// The tensor an op takes (`Tensor<f32>` converts into `FloatTensor`).
    pub fn tensor(&self) -> Tensor<'_, T> {
        let data = self
            .array
            .as_slice()
            .expect("an NdInput is in standard layout by construction");
        Tensor::new(data, self.array.shape())
    }
}

impl Output {
    /// The result as an `ArrayD` of its shape (`[]` for a scalar loss), without a copy.
    pub fn into_array(self) -> Result<ArrayD<f32>> {
        ArrayD::from_shape_vec(IxDyn(&self.shape), self.data)
            .map_err(|e| XentError::InvalidShape(format!("output to ndarray: {e}")))
    }
}
