//! What tests/sharing.rs and tests/cancel.rs share: eight batches for one prepared call, and
//! what each batch's run must return.
#![allow(dead_code)]

use crate::common::{assert_close, ctx, widen, Rng};
use wgpu_xent::{
    cpu, BackwardOptions, Grad, LossAndGrad, LossCall, LossOptions, PreparedLoss, Target, Tensor,
};

pub const N: usize = 48;
pub const C: usize = 200;

/// Eight batches of `[48, 200]` logits, each with its targets, distinct enough that a loss
/// read from another batch is far from this one's.
pub fn batches() -> Vec<(Vec<f32>, Vec<i64>)> {
    let mut rng = Rng(25);
    (0..8)
        .map(|b| {
            let x = rng.logits(N * C, 1.0 + b as f32);
            let y = (0..N).map(|i| ((i * 7 + b * 31) % C) as i64).collect();
            (x, y)
        })
        .collect()
}

pub fn prepared(batch: &(Vec<f32>, Vec<i64>)) -> PreparedLoss {
    let (x, y) = batch;
    let opts = LossOptions::default();
    let call = LossCall::cross_entropy(Tensor::new(x, &[N, C]), Target::I64(Tensor::new(y, &[N])))
        .options(opts)
        .grad(Grad::Returned);
    ctx().prepare(&call).unwrap()
}

pub fn run(step: &PreparedLoss, (x, y): &(Vec<f32>, Vec<i64>)) -> wgpu_xent::Result<LossAndGrad> {
    step.run_batch(
        Tensor::new(x, &[N, C]),
        Target::I64(Tensor::new(y, &[N])),
        None,
    )
}

/// What every run of batch `b` must give: the CPU reference's loss and gradient, and the
/// one-shot GPU call's bit for bit.
pub struct Truth {
    pub cpu: Vec<LossAndGrad>,
    pub gpu: Vec<LossAndGrad>,
}

impl Truth {
    pub fn of(batches: &[(Vec<f32>, Vec<i64>)]) -> Self {
        let opts = LossOptions::default();
        let b = BackwardOptions::default();
        let each = |f: &dyn Fn(Tensor<f32>, Target) -> LossAndGrad| {
            batches
                .iter()
                .map(|(x, y)| f(Tensor::new(x, &[N, C]), Target::I64(Tensor::new(y, &[N]))))
                .collect()
        };
        Truth {
            cpu: each(&|x, t| cpu::cross_entropy_backward(x, t, &opts, &b).unwrap()),
            gpu: each(&|x, t| ctx().cross_entropy_backward(x, t, &opts, &b).unwrap()),
        }
    }

    pub fn check(&self, what: &str, b: usize, got: &LossAndGrad) {
        let (cpu, gpu) = (&self.cpu[b], &self.gpu[b]);
        assert_close(what, &got.loss.data, &widen(&cpu.loss.data), 1e-5, 1e-5);
        let (g, want) = (got.grad.as_ref().unwrap(), gpu.grad.as_ref().unwrap());
        assert_eq!(
            got.loss.data[0].to_bits(),
            gpu.loss.data[0].to_bits(),
            "{what}: loss"
        );
        assert!(
            g.data == want.data,
            "{what}: the gradient is not batch {b}'s"
        );
    }
}

/// Runs `f(t)` on `threads` threads at once, each borrowing the caller's data; a panic on any
/// of them is the test's.
pub fn on_threads(threads: usize, f: impl Fn(usize) + Sync) {
    std::thread::scope(|s| {
        for t in 0..threads {
            let f = &f;
            s.spawn(move || f(t));
        }
    });
}
