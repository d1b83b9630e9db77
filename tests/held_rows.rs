//! Rows held in workgroup memory between the two passes (shared/hold.wgsl): chosen where a
//! workgroup's rows fit, and equal to the CPU reference and to the read-twice kernels. On by
//! default on GPUs only; these tests force it on and off, so they run on CPU adapters too.

mod common;

use common::{assert_close, assert_loss_and_grad, widen};
use wgpu_xent::{
    cpu, BackwardOptions, Context, ContextOptions, Grad, LossCall, LossOptions, Reduction,
    SoftmaxCall, Target, Tensor,
};

fn context(hold_rows: bool) -> Context {
    Context::with_options(ContextOptions {
        hold_rows: Some(hold_rows),
        // Few rows are otherwise split across workgroups, which holds nothing.
        min_workgroups: Some(1),
        ..wgpu_xent::ContextOptions::from_env().unwrap()
    })
    .expect("the held-row tests need an adapter")
}

fn logits(n: usize) -> Vec<f32> {
    common::Rng(7).logits(n, 4.0)
}

/// Shapes whose rows fit (every class count here is under the smallest capacity, 1984
/// vec4s of lavapipe's 32 KiB), from several rows per workgroup to one; a row that does not
/// fit keeps the read-twice kernel.
const SHAPES: [(usize, usize); 6] = [(33, 1), (17, 5), (9, 130), (5, 1001), (3, 4097), (2, 7000)];

#[test]
fn held_softmax_matches_the_reference_and_the_read_twice_kernel() {
    let (held, twice) = (context(true), context(false));
    fn softmax(x: Tensor<f32>, log: bool) -> SoftmaxCall {
        match log {
            true => SoftmaxCall::log_softmax(x, 1),
            false => SoftmaxCall::softmax(x, 1),
        }
    }
    for (n, c) in SHAPES {
        let x = logits(n * c);
        let shape = [n, c];
        for log in [true, false] {
            let p = held
                .prepare(&softmax(Tensor::new(&x, &shape), log))
                .unwrap();
            let labels = p.dispatch_labels();
            assert!(labels[0].contains("SoftmaxHeld"), "{n}x{c}: {labels:?}");
            assert!(p.holds_rows());
            let (ours, _) = p.run_timed().unwrap();
            let reference = match log {
                true => cpu::log_softmax(Tensor::new(&x, &shape), 1).unwrap(),
                false => cpu::softmax(Tensor::new(&x, &shape), 1).unwrap(),
            };
            let what = format!("held softmax (log {log}) {n}x{c}");
            assert_close(&what, &ours.data, &widen(&reference.data), 1e-5, 1e-5);
            let t = twice
                .prepare(&softmax(Tensor::new(&x, &shape), log))
                .unwrap();
            assert!(!t.dispatch_labels()[0].contains("Held") && !t.holds_rows());
            let (other, _) = t.run_timed().unwrap();
            assert_close(&what, &ours.data, &widen(&other.data), 1e-6, 1e-6);
        }
    }
    // Too long to hold: the read-twice kernel.
    let (n, c) = (2, 40000);
    let x = logits(n * c);
    let p = held
        .prepare(&SoftmaxCall::log_softmax(Tensor::new(&x, &[n, c]), 1))
        .unwrap();
    assert!(!p.dispatch_labels()[0].contains("Held") && !p.holds_rows());
}

#[test]
fn held_fused_backward_matches_the_reference_in_and_out_of_place() {
    let (held, twice) = (context(true), context(false));
    for (n, c) in SHAPES {
        let x = logits(n * c);
        let shape = [n, c];
        let t: Vec<i64> = (0..n as i64)
            .map(|i| if i % 3 == 2 { -100 } else { (i * 7) % c as i64 })
            .collect();
        let w: Vec<f32> = (0..c).map(|k| 0.5 + (k % 3) as f32).collect();
        for eps in [0.0, 0.1] {
            let opts = LossOptions {
                weight: Some(&w),
                label_smoothing: eps,
                reduction: Reduction::Mean,
                ..Default::default()
            };
            let tshape = [n];
            let target = || Target::I64(Tensor::new(&t, &tshape));
            let b = BackwardOptions::default();
            let reference =
                cpu::cross_entropy_backward(Tensor::new(&x, &shape), target(), &opts, &b).unwrap();
            let what = format!("held fused {n}x{c} eps {eps}");
            let returned = |x| {
                LossCall::cross_entropy(x, target())
                    .options(opts)
                    .grad(Grad::Returned)
            };
            let p = held.prepare(&returned(Tensor::new(&x, &shape))).unwrap();
            assert!(
                p.dispatch_labels()
                    .iter()
                    .any(|l| l.contains("CrossEntropyFusedHeld")),
                "{what}: {:?}",
                p.dispatch_labels()
            );
            let (ours, _) = p.run_timed().unwrap();
            let grad = p.read_grad().unwrap();
            assert_loss_and_grad(
                &what,
                (&ours.loss.data, &grad),
                reference,
                (1e-6, 1e-5),
                (1e-7, 1e-4),
            );
            // In place: bitwise the out-of-place gradient.
            let in_place = LossCall::cross_entropy(Tensor::new(&x, &shape), target())
                .options(opts)
                .grad(Grad::InPlace);
            let p = held.prepare(&in_place).unwrap();
            p.run_timed().unwrap();
            let in_place = p.read_grad().unwrap();
            assert!(in_place
                .iter()
                .zip(&grad)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
            let q = twice.prepare(&returned(Tensor::new(&x, &shape))).unwrap();
            q.run_timed().unwrap();
            assert_close(&what, &q.read_grad().unwrap(), &widen(&grad), 1e-9, 1e-5);
        }
    }
}
