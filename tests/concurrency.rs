//! Async calls do not block their executor: a future waits for wgpu's map callbacks (the
//! context's poller thread waits in the driver), so calls joined on one executor all submit
//! before any waits, and each still returns what the blocking call returns.

mod common;

use common::{ctx, Rng};
use std::future::Future;
use std::pin::pin;
use std::task::Context as TaskContext;
use wgpu_xent::{LossCall, LossOptions, SoftmaxCall, Target, Tensor};

#[test]
fn an_async_call_is_pending_while_the_gpu_works() {
    let ctx = ctx();
    let mut rng = Rng(1);
    let (n, c) = (256, 32000); // tens of ms on a software adapter
    let x = rng.logits(n * c, 3.0);
    let y: Vec<i64> = (0..n).map(|i| (i * 13 % c) as i64).collect();
    let (shape, rows) = ([n, c], [n]);
    let opts = LossOptions::default();
    let loss_call =
        LossCall::cross_entropy(Tensor::new(&x, &shape), Target::I64(Tensor::new(&y, &rows)))
            .options(opts);
    let loss_call = &loss_call;
    let call = || async move { ctx.run_async(loss_call).await.map(|r| r.loss) };
    // The first poll uploads, builds and submits, then returns: the GPU is still at work.
    // A blocking wait inside the future would return Ready on every try; a call that does
    // not block is Ready only when the adapter finished before the poll returned. So: up to
    // three tries, one of which must find the call pending. Not on wgpu's GL backend, whose
    // submission replays the commands on the calling thread (llvmpipe runs the dispatches
    // there), so the work is often done before the first poll returns: it was Ready on all
    // three tries in 1 run of 6 here. There only the result is checked.
    let asynchronous = ctx.adapter_info().backend != wgpu::Backend::Gl;
    let waker = futures::task::noop_waker();
    let mut got = None;
    for _ in 0..3 {
        let mut future = pin!(call());
        let first = future.as_mut().poll(&mut TaskContext::from_waker(&waker));
        // A future that returned Ready must not be polled again.
        let pending = first.is_pending();
        let out = match first {
            std::task::Poll::Ready(out) => out.unwrap(),
            std::task::Poll::Pending => pollster::block_on(future).unwrap(),
        };
        if pending || !asynchronous {
            got = Some(out);
            break;
        }
    }
    let got = got.expect("the first poll waited for the GPU, on three tries");
    let want = ctx
        .cross_entropy(
            Tensor::new(&x, &shape),
            Target::I64(Tensor::new(&y, &rows)),
            &opts,
        )
        .unwrap();
    assert_eq!(got.data[0].to_bits(), want.data[0].to_bits());
}

#[test]
fn calls_joined_on_one_executor_each_return_their_own_result() {
    let ctx = ctx();
    let mut rng = Rng(2);
    let (n, c) = (64, 1000);
    let inputs: Vec<Vec<f32>> = (0..8).map(|_| rng.logits(n * c, 3.0)).collect();
    let y: Vec<i64> = (0..n).map(|i| (i * 7 % c) as i64).collect();
    let (shape, rows) = ([n, c], [n]);
    let opts = LossOptions::default();
    let loss_calls: Vec<LossCall> = inputs
        .iter()
        .map(|x| {
            LossCall::cross_entropy(Tensor::new(x, &shape), Target::I64(Tensor::new(&y, &rows)))
                .options(opts)
        })
        .collect();
    let softmax_calls: Vec<SoftmaxCall> = inputs
        .iter()
        .map(|x| SoftmaxCall::log_softmax(Tensor::new(x, &shape), 1))
        .collect();
    let joined = pollster::block_on(futures::future::join_all(
        loss_calls
            .iter()
            .map(|call| async move { ctx.run_async(call).await.map(|r| r.loss) }),
    ));
    let softmaxes = pollster::block_on(futures::future::join_all(
        softmax_calls.iter().map(|call| ctx.run_async(call)),
    ));
    for ((x, got), lp) in inputs.iter().zip(joined).zip(softmaxes) {
        let want = ctx
            .cross_entropy(
                Tensor::new(x, &shape),
                Target::I64(Tensor::new(&y, &rows)),
                &opts,
            )
            .unwrap();
        assert_eq!(got.unwrap().data[0].to_bits(), want.data[0].to_bits());
        assert_eq!(
            lp.unwrap().data,
            ctx.log_softmax(Tensor::new(x, &shape), 1).unwrap().data
        );
    }
}
