//! The `ndarray` feature: views in any layout give what their row-major copies give, and
//! outputs come back as arrays of the right shape.

mod common;

use ndarray::{s, Array2, Axis};
use wgpu_xent::ndarray::NdInput;
use wgpu_xent::{LossOptions, Target, Tensor};

#[test]
fn views_in_any_layout_and_arrays_out() {
    let ctx = common::ctx();
    let mut rng = common::Rng(9);
    let (n, c) = (6, 50);
    let x = Array2::from_shape_vec((c, n), rng.logits(n * c, 3.0)).unwrap();
    let xt = x.t(); // [n, c], column-major: copied
    let input = NdInput::new(xt);
    assert!(input.is_copy());
    let row_major: Vec<f32> = xt.iter().copied().collect();
    let want = ctx
        .log_softmax(Tensor::new(&row_major, &[n, c]), 1)
        .unwrap();
    let got = ctx
        .log_softmax(input.tensor(), 1)
        .unwrap()
        .into_array()
        .unwrap();
    assert_eq!(got.shape(), &[n, c]);
    assert_eq!(got.iter().copied().collect::<Vec<_>>(), want.data);

    // A standard-layout view is borrowed; a stepped slice is copied.
    let owned = Array2::from_shape_vec((n, c), row_major.clone()).unwrap();
    assert!(!NdInput::new(owned.view()).is_copy());
    let stepped = owned.slice(s![..;2, ..]);
    let stepped_in = NdInput::new(stepped);
    assert!(stepped_in.is_copy());
    assert_eq!(stepped_in.tensor().shape, &[n / 2, c]);

    // Targets too; a scalar loss is a 0-d array.
    let y = ndarray::Array1::from_iter((0..n as i64).map(|i| i * 3));
    let t = NdInput::new(y.view());
    let loss = ctx
        .cross_entropy(
            input.tensor(),
            Target::I64(t.tensor()),
            &LossOptions::default(),
        )
        .unwrap()
        .into_array()
        .unwrap();
    assert_eq!(loss.ndim(), 0);
    let rows = got.map_axis(Axis(1), |r| r.iter().map(|v| v.exp()).sum::<f32>());
    assert!(rows.iter().all(|s| (s - 1.0).abs() < 1e-5));
}
