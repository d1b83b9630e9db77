//! Outputs written into memory the caller reuses: the same values as the returned `Vec`s.

mod common;

use common::{ctx, Rng};
use wgpu_xent::{LossOptions, Target, Tensor};

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
            ctx.softmax_into(Tensor::new(&x, &shape), dim, log, &mut out)
                .unwrap();
            assert_eq!(out, want.data, "log {log} dim {dim}");
            let prepared = ctx
                .prepare_softmax(Tensor::new(&x, &shape), dim, log)
                .unwrap();
            out.fill(f32::NAN);
            prepared.run_into(&mut out).unwrap();
            assert_eq!(out, want.data, "prepared, log {log} dim {dim}");
        }
    }
    let err = ctx
        .softmax_into(Tensor::new(&x, &shape), 1, true, &mut out[1..])
        .unwrap_err();
    assert!(err.to_string().contains("holds"), "{err}");
    let err = ctx
        .softmax_into(Tensor::new(&x, &shape), 2, true, &mut out)
        .unwrap_err();
    assert!(err.to_string().contains("Dimension out of range"), "{err}");
    ctx.softmax_into(Tensor::<f32>::new(&[], &[0, 3]), 1, true, &mut [])
        .unwrap();
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
        .prepare_cross_entropy(
            Tensor::new(&x, &shape),
            Target::I64(Tensor::new(&y, &rows)),
            &LossOptions::default(),
            true,
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
