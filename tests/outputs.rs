//! Outputs written into memory the caller reuses: the same values as the returned `Vec`s.

mod common;

use common::{ctx, Rng};
use wgpu_xent::{Context, Grad, LossCall, LossOptions, SoftmaxCall, Target, Tensor};

/// `log_softmax` (`log`) or `softmax` of `x` along `dim`, written into `out`.
fn softmax_into(
    ctx: &Context,
    x: Tensor<f32>,
    dim: i64,
    log: bool,
    out: &mut [f32],
) -> wgpu_xent::Result<()> {
    ctx.prepare(&softmax_call(x, dim, log))?.run_into(out)
}

/// The call `log_softmax` (`log`) or `softmax` of `x` along `dim`.
fn softmax_call(x: Tensor<f32>, dim: i64, log: bool) -> SoftmaxCall {
    match log {
        true => SoftmaxCall::log_softmax(x, dim),
        false => SoftmaxCall::softmax(x, dim),
    }
}

#[test]
fn softmax_into_equals_the_returned_output() {
    let ctx = ctx();
    let mut rng = Rng(5);
    let (n, c) = (7, 1000);
    let x = rng.logits(n * c, 4.0);
    let shape = [n, c];
    let mut out = vec![f32::NAN; n * c];
    for log in [true, false] {
        for dim in [1, 0] {
            let want = match log {
                true => ctx.log_softmax(Tensor::new(&x, &shape), dim).unwrap(),
                false => ctx.softmax(Tensor::new(&x, &shape), dim).unwrap(),
            };
            softmax_into(ctx, Tensor::new(&x, &shape), dim, log, &mut out).unwrap();
            assert_eq!(out, want.data, "log {log} dim {dim}");
            let prepared = ctx
                .prepare(&softmax_call(Tensor::new(&x, &shape), dim, log))
                .unwrap();
            out.fill(f32::NAN);
            prepared.run_into(&mut out).unwrap();
            assert_eq!(out, want.data, "prepared, log {log} dim {dim}");
        }
    }
    let err = softmax_into(ctx, Tensor::new(&x, &shape), 1, true, &mut out[1..]).unwrap_err();
    assert!(err.to_string().contains("holds"), "{err}");
    let err = softmax_into(ctx, Tensor::new(&x, &shape), 2, true, &mut out).unwrap_err();
    assert!(err.to_string().contains("Dimension out of range"), "{err}");
    softmax_into(ctx, Tensor::<f32>::new(&[], &[0, 3]), 1, true, &mut []).unwrap();
}

#[test]
fn read_grad_into_equals_read_grad() {
    let ctx = ctx();
    let mut rng = Rng(6);
    let (n, c) = (9, 333);
    let x = rng.logits(n * c, 4.0);
    let y: Vec<i64> = (0..n).map(|i| (i * 5 % c) as i64).collect();
    let (shape, rows) = ([n, c], [n]);
    let p = ctx
        .prepare(
            &LossCall::cross_entropy(Tensor::new(&x, &shape), Target::I64(Tensor::new(&y, &rows)))
                .options(LossOptions::default())
                .grad(Grad::Returned),
        )
        .unwrap();
    let mut out = vec![f32::NAN; n * c];
    assert!(
        p.read_grad_into(&mut out).is_err(),
        "nothing to read before a run"
    );
    p.run_timed().unwrap();
    p.read_grad_into(&mut out).unwrap();
    assert_eq!(out, p.read_grad().unwrap());
    assert!(p.read_grad_into(&mut out[..5]).is_err());
}
