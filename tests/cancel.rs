//! A prepared call left by a future dropped mid-run (issue 25, D3), and a blocking call
//! behind a future of its own thread: the next run works and is correct, and the blocking
//! call is `XentError::Busy`, never a hang. Every test runs under a deadline.

mod common;
mod sharing_common;

use common::{assert_close, ctx, widen, within};
use sharing_common::{batches, prepared, run, Truth, C, N};
use std::future::Future;
use std::pin::Pin;
use std::task::Context as TaskContext;
use wgpu_xent::{cpu, LossCall, LossOptions, SoftmaxCall, Target, Tensor, XentError};

/// Whether a poll can find a run pending: not on wgpu's GL backend, whose submission replays
/// the commands on the calling thread, so a run is often done by the end of its first poll
/// (tests/concurrency.rs).
fn asynchronous() -> bool {
    ctx().adapter_info().backend != wgpu::Backend::Gl
}

/// Polls `future` `polls` times with a waker that does nothing, then drops it: a run
/// cancelled at that point (before it started, after it submitted, or while it waits for its
/// readback).
/// Returns whether it dropped the run unfinished.
fn poll_then_drop<F: Future>(future: F, polls: usize) -> bool {
    let waker = futures::task::noop_waker();
    let mut cx = TaskContext::from_waker(&waker);
    let mut future: Pin<Box<F>> = Box::pin(future);
    for _ in 0..polls {
        if future.as_mut().poll(&mut cx).is_ready() {
            return false;
        }
    }
    polls > 0
}

#[test]
fn a_dropped_run_batch_leaves_the_call_usable() {
    within(300, || {
        let data = batches();
        let truth = Truth::of(&data);
        let step = prepared(&data[0]);
        let mut in_flight = 0;
        for polls in 0..4 {
            let (x, y) = &data[1];
            let future = step.run_batch_async(
                Tensor::new(x, &[N, C]),
                Target::I64(Tensor::new(y, &[N])),
                None,
            );
            in_flight += poll_then_drop(future, polls) as usize;
            let b = 2 + polls;
            let what = format!("after a run dropped at poll {polls}");
            truth.check(&what, b, &run(&step, &data[b]).expect("the next run works"));
            let (x, y) = &data[b];
            let next = step.run_batch_async(
                Tensor::new(x, &[N, C]),
                Target::I64(Tensor::new(y, &[N])),
                None,
            );
            truth.check(&what, b, &pollster::block_on(next).unwrap());
        }
        assert!(
            in_flight > 0 || !asynchronous(),
            "no run was dropped in flight"
        );
    });
}

#[test]
fn a_dropped_read_loss_leaves_the_device_call_usable() {
    within(300, || {
        let c = ctx();
        let data = batches();
        let want = Truth::of(&data).cpu[3].loss.data.clone();
        let (x, y) = &data[3];
        let logits = wgpu_xent::DeviceTensor::from_host(c, x, &[N, C], wgpu_xent::DType::F32);
        let target = wgpu_xent::DeviceTensor::from_host(c, y, &[N], wgpu_xent::DType::I64);
        let (logits, target) = (logits.unwrap(), target.unwrap());
        let opts = LossOptions::default();
        let call = LossCall::cross_entropy(&logits, &target).options(opts);
        let step = c.prepare(&call).unwrap();
        let record = || {
            let mut encoder = c.device().create_command_encoder(&Default::default());
            step.record(&mut encoder);
            c.queue().submit([encoder.finish()]);
        };
        let mut in_flight = 0;
        for polls in 0..4 {
            record();
            in_flight += poll_then_drop(step.read_loss_async(), polls) as usize;
            record();
            let what = format!("read_loss after one dropped at poll {polls}");
            assert_close(
                &what,
                &step.read_loss().unwrap().data,
                &widen(&want),
                1e-5,
                1e-5,
            );
            let again = pollster::block_on(step.read_loss_async()).unwrap();
            assert_close(&what, &again.data, &widen(&want), 1e-5, 1e-5);
        }
        assert!(
            in_flight > 0 || !asynchronous(),
            "no read was dropped in flight"
        );
    });
}

#[test]
fn a_dropped_softmax_run_leaves_the_call_usable() {
    within(300, || {
        let data = batches();
        let x = &data[4].0;
        let step = ctx()
            .prepare(&SoftmaxCall::log_softmax(Tensor::new(x, &[N, C]), 1))
            .unwrap();
        let want = widen(&cpu::log_softmax(Tensor::new(x, &[N, C]), 1).unwrap().data);
        let mut in_flight = 0;
        for polls in 0..4 {
            let mut out = vec![0f32; N * C];
            in_flight += poll_then_drop(step.run_into_async(&mut out), polls) as usize;
            let what = format!("log_softmax after a run dropped at poll {polls}");
            step.run_into(&mut out).expect("the next run works");
            assert_close(&what, &out, &want, 1e-5, 1e-5);
            pollster::block_on(step.run_into_async(&mut out)).unwrap();
            assert_close(&what, &out, &want, 1e-5, 1e-5);
            let (timed, _) = step.run_timed().unwrap();
            assert_close(&what, &timed.data, &want, 1e-5, 1e-5);
        }
        assert!(
            in_flight > 0 || !asynchronous(),
            "no run was dropped in flight"
        );
    });
}

#[test]
fn a_blocking_run_while_a_future_of_its_thread_holds_the_call_is_an_error_not_a_hang() {
    within(300, || {
        let data = batches();
        let truth = Truth::of(&data);
        let step = prepared(&data[0]);
        let waker = futures::task::noop_waker();
        let mut cx = TaskContext::from_waker(&waker);
        let mut held = false;
        // Up to five tries for a first poll that leaves the run pending, holding the lock.
        for _ in 0..5 {
            let (x, y) = &data[5];
            let future = step.run_batch_async(
                Tensor::new(x, &[N, C]),
                Target::I64(Tensor::new(y, &[N])),
                None,
            );
            let mut future = Box::pin(future);
            if future.as_mut().poll(&mut cx).is_ready() {
                continue;
            }
            held = true;
            match run(&step, &data[6]) {
                Err(XentError::Busy(_)) => {}
                other => panic!("expected Busy, got {other:?}"),
            }
            assert!(matches!(step.set_batch(N), Err(XentError::Busy(_))));
            truth.check("the pending run", 5, &pollster::block_on(future).unwrap());
            break;
        }
        assert!(
            held || !asynchronous(),
            "no first poll left the run pending"
        );
        truth.check("a later run", 6, &run(&step, &data[6]).unwrap());
    });
}

#[test]
fn a_blocking_run_behind_a_queued_future_of_its_thread_is_an_error_not_a_hang() {
    // Future `a` runs, then makes a blocking call; future `b`, joined beside it, waits for
    // the lock meanwhile, and can only go on once `a` returns. Where `b` asked before `a`'s
    // run ended (always, when `a`'s first poll left it pending), the blocking call is Busy;
    // else it is an ordinary run. Never a hang.
    within(300, || {
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
        let a_pending = std::cell::Cell::new(false);
        let a = async {
            let mut first = Box::pin(run_async(5));
            let result = std::future::poll_fn(|cx| {
                let poll = first.as_mut().poll(cx);
                if poll.is_pending() {
                    a_pending.set(true);
                }
                poll
            })
            .await;
            (result, run(&step, &data[6]))
        };
        let ((first, blocking), second) =
            pollster::block_on(futures::future::join(a, run_async(7)));
        truth.check("a's run", 5, &first.unwrap());
        truth.check("b's run", 7, &second.unwrap());
        match blocking {
            Err(XentError::Busy(_)) => {}
            other if !a_pending.get() => truth.check("the blocking run", 6, &other.unwrap()),
            other => panic!("a's run was pending while b queued: expected Busy, got {other:?}"),
        }
    });
}
