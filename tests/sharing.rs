//! A prepared call shared by threads, by futures joined on one executor, or left by a future
//! dropped mid-run (issue 25, D2 and D3): runs queue one after another on the call's lock,
//! each returns its own batch's results, and a cancelled run leaves the call usable. Every
//! result is compared with the one-shot call and the CPU reference.

mod common;

use common::{assert_close, ctx, widen, Rng};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Context as TaskContext;
use wgpu_xent::{
    cpu, BackwardOptions, Linear, LossAndGrad, LossOptions, PreparedLoss, Target, Tensor, XentError,
};

const N: usize = 48;
const C: usize = 200;

/// Eight batches of `[48, 200]` logits, each with its targets, distinct enough that a loss
/// read from another batch is far from this one's.
fn batches() -> Vec<(Vec<f32>, Vec<i64>)> {
    let mut rng = Rng(25);
    (0..8)
        .map(|b| {
            let x = rng.logits(N * C, 1.0 + b as f32);
            let y = (0..N).map(|i| ((i * 7 + b * 31) % C) as i64).collect();
            (x, y)
        })
        .collect()
}

fn prepared(batch: &(Vec<f32>, Vec<i64>)) -> PreparedLoss {
    let (x, y) = batch;
    let opts = LossOptions::default();
    ctx()
        .prepare_cross_entropy(
            Tensor::new(x, &[N, C]),
            Target::I64(Tensor::new(y, &[N])),
            &opts,
            true,
        )
        .unwrap()
}

fn run(step: &PreparedLoss, (x, y): &(Vec<f32>, Vec<i64>)) -> wgpu_xent::Result<LossAndGrad> {
    step.run_batch(
        Tensor::new(x, &[N, C]),
        Target::I64(Tensor::new(y, &[N])),
        None,
    )
}

/// What every run of batch `b` must give: the CPU reference's loss and gradient, and the
/// one-shot GPU call's bit for bit.
struct Truth {
    cpu: Vec<LossAndGrad>,
    gpu: Vec<LossAndGrad>,
}

impl Truth {
    fn of(batches: &[(Vec<f32>, Vec<i64>)]) -> Self {
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

    fn check(&self, what: &str, b: usize, got: &LossAndGrad) {
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

#[test]
fn one_prepared_loss_shared_by_three_threads_returns_each_batch_its_own_results() {
    let data = Arc::new(batches());
    let truth = Arc::new(Truth::of(&data));
    let step = Arc::new(prepared(&data[0]));
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let (data, truth, step) = (data.clone(), truth.clone(), step.clone());
            std::thread::spawn(move || {
                for k in 0..40 {
                    let b = (k * 3 + t) % data.len();
                    let got = run(&step, &data[b]).expect("a shared run succeeds");
                    truth.check(&format!("thread {t}, run {k}, batch {b}"), b, &got);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("no thread panics");
    }
}

#[test]
fn futures_joined_on_one_prepared_loss_each_return_their_own_batch() {
    let data = batches();
    let truth = Truth::of(&data);
    let step = prepared(&data[0]);
    let runs = data.iter().map(|(x, y)| {
        step.run_batch_async(
            Tensor::new(x, &[N, C]),
            Target::I64(Tensor::new(y, &[N])),
            None,
        )
    });
    let got = pollster::block_on(futures::future::join_all(runs));
    for (b, got) in got.into_iter().enumerate() {
        truth.check(
            &format!("joined batch {b}"),
            b,
            &got.expect("a joined run succeeds"),
        );
    }
}

/// Polls `future` `polls` times with a waker that does nothing, then drops it: a run
/// cancelled at that point (before it started, after it submitted, or while it waits for its
/// readback).
fn poll_then_drop<F: Future>(future: F, polls: usize) {
    let waker = futures::task::noop_waker();
    let mut cx = TaskContext::from_waker(&waker);
    let mut future: Pin<Box<F>> = Box::pin(future);
    for _ in 0..polls {
        if future.as_mut().poll(&mut cx).is_ready() {
            return;
        }
    }
}

#[test]
fn a_dropped_run_batch_leaves_the_call_usable() {
    let data = batches();
    let truth = Truth::of(&data);
    let step = prepared(&data[0]);
    for polls in 0..4 {
        let (x, y) = &data[1];
        let future = step.run_batch_async(
            Tensor::new(x, &[N, C]),
            Target::I64(Tensor::new(y, &[N])),
            None,
        );
        poll_then_drop(future, polls);
        let b = 2 + polls;
        let what = format!("after a run dropped at poll {polls}");
        truth.check(&what, b, &run(&step, &data[b]).expect("the next run works"));
        // And the async form too.
        let (x, y) = &data[b];
        let next = step.run_batch_async(
            Tensor::new(x, &[N, C]),
            Target::I64(Tensor::new(y, &[N])),
            None,
        );
        truth.check(&what, b, &pollster::block_on(next).unwrap());
    }
}

#[test]
fn a_dropped_read_loss_leaves_the_device_call_usable() {
    let c = ctx();
    let data = batches();
    let truth = Truth::of(&data);
    let (x, y) = &data[3];
    let logits = wgpu_xent::DeviceTensor::from_host(c, x, &[N, C], wgpu_xent::DType::F32).unwrap();
    let target = wgpu_xent::DeviceTensor::from_host(c, y, &[N], wgpu_xent::DType::I64).unwrap();
    let opts = LossOptions::default();
    let step = c
        .prepare_cross_entropy_device(wgpu_xent::DeviceLoss::new(&logits, &target), &opts)
        .unwrap();
    let record = || {
        let mut encoder = c.device().create_command_encoder(&Default::default());
        step.record(&mut encoder);
        c.queue().submit([encoder.finish()]);
    };
    let want = &truth.cpu[3].loss.data;
    for polls in 0..4 {
        record();
        poll_then_drop(step.read_loss_async(), polls);
        record();
        let what = format!("read_loss after one dropped at poll {polls}");
        assert_close(
            &what,
            &step.read_loss().unwrap().data,
            &widen(want),
            1e-5,
            1e-5,
        );
        let again = pollster::block_on(step.read_loss_async()).unwrap();
        assert_close(&what, &again.data, &widen(want), 1e-5, 1e-5);
    }
}

#[test]
fn a_dropped_softmax_run_leaves_the_call_usable() {
    let data = batches();
    let x = &data[4].0;
    let step = ctx()
        .prepare_softmax(Tensor::new(x, &[N, C]), 1, true)
        .unwrap();
    let want = cpu::log_softmax(Tensor::new(x, &[N, C]), 1).unwrap();
    for polls in 0..4 {
        let mut out = vec![0f32; N * C];
        poll_then_drop(step.run_into_async(&mut out), polls);
        let what = format!("log_softmax after a run dropped at poll {polls}");
        step.run_into(&mut out).expect("the next run works");
        assert_close(&what, &out, &widen(&want.data), 1e-5, 1e-5);
        pollster::block_on(step.run_into_async(&mut out)).unwrap();
        assert_close(&what, &out, &widen(&want.data), 1e-5, 1e-5);
        let (timed, _) = step.run_timed().unwrap();
        assert_close(&what, &timed.data, &widen(&want.data), 1e-5, 1e-5);
    }
}

#[test]
fn a_blocking_run_while_a_future_of_its_thread_holds_the_call_is_an_error_not_a_hang() {
    let data = batches();
    let truth = Truth::of(&data);
    let step = prepared(&data[0]);
    let (x, y) = &data[5];
    let waker = futures::task::noop_waker();
    let mut cx = TaskContext::from_waker(&waker);
    let mut future = Box::pin(step.run_batch_async(
        Tensor::new(x, &[N, C]),
        Target::I64(Tensor::new(y, &[N])),
        None,
    ));
    if future.as_mut().poll(&mut cx).is_pending() {
        // The pending future holds the lock: a blocking run on this thread cannot wait for it.
        match run(&step, &data[6]) {
            Err(XentError::Busy(_)) => {}
            other => panic!("expected Busy, got {other:?}"),
        }
        assert!(matches!(step.set_batch(N), Err(XentError::Busy(_))));
        truth.check("the pending run", 5, &pollster::block_on(future).unwrap());
    }
    truth.check("a later run", 6, &run(&step, &data[6]).unwrap());
}

#[test]
fn a_blocking_run_behind_a_queued_future_of_its_thread_is_an_error_not_a_hang() {
    // Future `a` runs, then makes a blocking call; future `b`, joined beside it, waits for
    // the lock meanwhile, and can only go on once `a` returns. The blocking call is Busy (or,
    // where `a`'s run finished before `b` first asked, an ordinary run): never a hang.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let data = batches();
        let truth = Truth::of(&data);
        let step = prepared(&data[0]);
        let run_async = |b: usize| {
            let (x, y) = &data[b];
            step.run_batch_async(
                Tensor::new(x, &[N, C]),
                Target::I64(Tensor::new(y, &[N])),
                None,
            )
        };
        let a = async {
            let first = run_async(5).await;
            (first, run(&step, &data[6]))
        };
        let ((first, blocking), second) =
            pollster::block_on(futures::future::join(a, run_async(7)));
        truth.check("a's run", 5, &first.unwrap());
        truth.check("b's run", 7, &second.unwrap());
        match blocking {
            Err(XentError::Busy(_)) => {}
            other => truth.check("the blocking run", 6, &other.unwrap()),
        }
        tx.send(()).unwrap();
    });
    rx.recv_timeout(std::time::Duration::from_secs(120))
        .expect("the joined runs finish (else a panic above, or a blocking call waiting for its own thread's future)");
}

#[test]
fn prepared_softmax_linear_and_shard_calls_shared_by_threads_agree_with_the_cpu() {
    let c = ctx();
    let mut rng = Rng(26);
    let (n, d, classes) = (16, 24, 300);
    let x = Arc::new(rng.logits(n * d, 1.0));
    let w = Arc::new(rng.logits(classes * d, 0.5));
    let y: Arc<Vec<i64>> = Arc::new((0..n).map(|i| (i * 37 % classes) as i64).collect());
    let opts = LossOptions::default();
    let (x_shape, w_shape, y_shape, l_shape) = ([n, d], [classes, d], [n], [n, classes]);
    let linear = || Linear::new(Tensor::new(&x[..], &x_shape), Tensor::new(&w[..], &w_shape));
    let target = || Target::I64(Tensor::new(&y[..], &y_shape));
    // The one-shot call's results, which a prepared run repeats bit for bit.
    let want = c
        .linear_cross_entropy_backward(linear(), target(), &opts)
        .unwrap();
    let lin = Arc::new(
        c.prepare_linear_cross_entropy(linear(), target(), &opts, true)
            .unwrap(),
    );
    // One linear shard of every class: its gradients are the whole call's.
    let lin_shard = Arc::new(
        c.prepare_linear_cross_entropy_shard(
            wgpu_xent::LinearShard {
                input: Tensor::new(&x[..], &x_shape),
                weight: Tensor::new(&w[..], &w_shape),
                bias: None,
                first_class: 0,
                classes,
            },
            target(),
            &opts,
            true,
        )
        .unwrap(),
    );
    let logits = Arc::new(rng.logits(n * classes, 2.0));
    let soft = Arc::new(
        c.prepare_softmax(Tensor::new(&logits[..], &l_shape), 1, false)
            .unwrap(),
    );
    let soft_want = cpu::softmax(Tensor::new(&logits[..], &l_shape), 1).unwrap();
    let shard = Arc::new(
        c.prepare_cross_entropy_shard(
            wgpu_xent::VocabShard {
                logits: Tensor::new(&logits[..], &l_shape),
                first_class: 0,
                classes,
            },
            target(),
            &opts,
            true,
        )
        .unwrap(),
    );
    let ce_want = cpu::cross_entropy_backward(
        Tensor::new(&logits[..], &l_shape),
        target(),
        &opts,
        &BackwardOptions::default(),
    )
    .unwrap();
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let (lin, soft, shard) = (lin.clone(), soft.clone(), shard.clone());
            let lin_shard = lin_shard.clone();
            let (want, soft_want, ce_want) = (want.clone(), soft_want.clone(), ce_want.clone());
            std::thread::spawn(move || {
                for k in 0..10 {
                    let what = format!("thread {t}, run {k}");
                    let got = lin.run().expect("a shared linear run succeeds");
                    assert_eq!(got, want, "{what}: linear_cross_entropy");
                    let merged = lin_shard.partials().expect("shared linear partials");
                    let g = lin_shard.grads(&merged).expect("shared linear shard grads");
                    let want_dx = widen(&want.grad_input.as_ref().unwrap().data);
                    assert_close(&what, &g.input.data, &want_dx, 1e-6, 1e-4);
                    let (s, _) = soft.run_timed().expect("a shared softmax run succeeds");
                    assert_close(&what, &s.data, &widen(&soft_want.data), 1e-6, 1e-5);
                    let merged = shard.partials().expect("shared partials");
                    let g = shard.grad(&merged).expect("a shared shard gradient");
                    // One shard of all the classes: the whole gradient.
                    let want_g = widen(&ce_want.grad.as_ref().unwrap().data);
                    assert_close(&what, &g.data, &want_g, 1e-6, 1e-4);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("no thread panics");
    }
}

#[test]
fn one_context_shared_by_threads_and_joined_futures_agrees_with_the_cpu() {
    let data = Arc::new(batches());
    let truth = Arc::new(Truth::of(&data));
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let (data, truth) = (data.clone(), truth.clone());
            std::thread::spawn(move || {
                let opts = LossOptions::default();
                let b = BackwardOptions::default();
                for k in 0..8 {
                    let i = (k + t) % data.len();
                    let (x, y) = &data[i];
                    let (input, target) =
                        (Tensor::new(x, &[N, C]), Target::I64(Tensor::new(y, &[N])));
                    let what = format!("thread {t}, call {k}, batch {i}");
                    let got = ctx()
                        .cross_entropy_backward(input, target, &opts, &b)
                        .unwrap();
                    truth.check(&what, i, &got);
                    let joined = pollster::block_on(futures::future::join(
                        ctx().cross_entropy_backward_async(input, target, &opts, &b),
                        ctx().log_softmax_async(input, 1),
                    ));
                    truth.check(&what, i, &joined.0.unwrap());
                    let want = cpu::log_softmax(input, 1).unwrap();
                    assert_close(
                        &what,
                        &joined.1.unwrap().data,
                        &widen(&want.data),
                        1e-5,
                        1e-5,
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("no thread panics");
    }
}
