//! A prepared call shared by threads or by futures joined on one executor (issue 25, D2): runs
//! queue one after another on the call's lock, and each returns its own batch's results,
//! compared with the one-shot call (bit for bit) and with the CPU reference. Cancelled runs
//! and `Busy`: tests/cancel.rs.

mod common;
mod sharing_common;

use common::{assert_close, ctx, widen, within, Rng};
use sharing_common::{batches, on_threads, prepared, run, Truth, C, N};
use std::sync::Arc;
use wgpu_xent::{
    cpu, BackwardOptions, Grad, Linear, LinearCall, LossCall, LossOptions, MatmulCall, SoftmaxCall,
    Target, Tensor,
};

#[test]
fn one_prepared_loss_shared_by_three_threads_returns_each_batch_its_own_results() {
    within(300, || {
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
    });
}

#[test]
fn futures_joined_on_one_prepared_loss_each_return_their_own_batch() {
    within(300, || {
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
    });
}

#[test]
fn prepared_softmax_linear_and_shard_calls_shared_by_threads_give_the_one_shot_results() {
    within(300, || {
        let c = ctx();
        let mut rng = Rng(26);
        let (n, d, classes) = (16, 24, 300);
        let x = rng.logits(n * d, 1.0);
        let w = rng.logits(classes * d, 0.5);
        let y: Vec<i64> = (0..n).map(|i| (i * 37 % classes) as i64).collect();
        let opts = LossOptions::default();
        let (x_shape, w_shape, y_shape, l_shape) = ([n, d], [classes, d], [n], [n, classes]);
        let linear = || Linear::new(Tensor::new(&x[..], &x_shape), Tensor::new(&w[..], &w_shape));
        let target = || Target::I64(Tensor::new(&y[..], &y_shape));
        // The one-shot call's results, which a prepared run repeats bit for bit.
        let want = c
            .linear_cross_entropy_backward(linear(), target(), &opts)
            .unwrap();
        let lin = c
            .prepare(
                &LinearCall::new(linear(), target())
                    .options(opts)
                    .grad(Grad::Returned),
            )
            .unwrap();
        // One linear shard of every class: its gradients are the whole call's.
        let lin_shard = c
            .prepare(&wgpu_xent::LinearShard {
                input: Tensor::new(&x[..], &x_shape),
                linear_weight: Tensor::new(&w[..], &w_shape),
                linear_bias: None,
                first_class: 0,
                classes,
                target: target(),
                options: opts,
                grad: wgpu_xent::Grad::Returned,
                budget: wgpu_xent::DEFAULT_LINEAR_BUDGET,
            })
            .unwrap();
        let logits = rng.logits(n * classes, 2.0);
        let soft = c
            .prepare(&SoftmaxCall::softmax(Tensor::new(&logits[..], &l_shape), 1))
            .unwrap();
        let soft_want = cpu::softmax(Tensor::new(&logits[..], &l_shape), 1).unwrap();
        let shard = c
            .prepare(&wgpu_xent::VocabShard {
                logits: Tensor::new(&logits[..], &l_shape),
                first_class: 0,
                classes,
                target: target(),
                options: opts,
                grad: wgpu_xent::Grad::Returned,
            })
            .unwrap();
        let ce_want = cpu::cross_entropy_backward(
            Tensor::new(&logits[..], &l_shape),
            target(),
            &opts,
            &BackwardOptions::default(),
        )
        .unwrap();
        on_threads(3, |t| {
            for k in 0..10 {
                let what = format!("thread {t}, run {k}");
                let got = lin.run().expect("a shared linear run succeeds");
                assert_eq!(got, want, "{what}: linear_cross_entropy");
                let merged = lin_shard.partials().expect("shared linear partials");
                let g = lin_shard.grad(&merged).expect("shared linear shard grads");
                let want_dx = widen(&want.grad_input.as_ref().unwrap().data);
                assert_close(&what, &g.grad_input.data, &want_dx, 1e-6, 1e-4);
                let (s, _) = soft.run_timed().expect("a shared softmax run succeeds");
                assert_close(&what, &s.data, &widen(&soft_want.data), 1e-6, 1e-5);
                let merged = shard.partials().expect("shared partials");
                let g = shard.grad(&merged).expect("a shared shard gradient");
                // One shard of all the classes: the whole gradient.
                let want_g = widen(&ce_want.grad.as_ref().unwrap().data);
                assert_close(&what, &g.data, &want_g, 1e-6, 1e-4);
            }
        });
    });
}

#[test]
fn one_context_shared_by_threads_and_joined_futures_agrees_with_the_cpu() {
    within(300, || {
        let data = batches();
        let truth = Truth::of(&data);
        on_threads(3, |t| {
            let opts = LossOptions::default();
            let b = BackwardOptions::default();
            for k in 0..8 {
                let i = (k + t) % data.len();
                let (x, y) = &data[i];
                let (input, target) = (Tensor::new(x, &[N, C]), Target::I64(Tensor::new(y, &[N])));
                let what = format!("thread {t}, call {k}, batch {i}");
                let got = ctx()
                    .cross_entropy_backward(input, target, &opts, &b)
                    .unwrap();
                truth.check(&what, i, &got);
                let backward = LossCall::cross_entropy(input, target)
                    .options(opts)
                    .grad(Grad::Returned)
                    .grad_output(b.grad_output);
                let softmax = SoftmaxCall::log_softmax(input, 1);
                let joined = pollster::block_on(futures::future::join(
                    ctx().run_async(&backward),
                    ctx().run_async(&softmax),
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
        });
    });
}

#[test]
fn a_matmul_and_a_device_linear_call_shared_by_threads_read_their_own_results() {
    within(300, || {
        let c = ctx();
        let mut rng = Rng(27);
        let (n, d, classes) = (12, 20, 150);
        let x = rng.logits(n * d, 1.0);
        let w = rng.logits(classes * d, 0.5);
        let y: Vec<i64> = (0..n).map(|i| (i * 11 % classes) as i64).collect();
        let (xs, ws) = ([n, d], [classes, d]);
        let product = c
            .prepare(&MatmulCall::new(Tensor::new(&x, &xs), Tensor::new(&w, &ws)))
            .unwrap();
        let want_product = c
            .matmul(Tensor::new(&x, &xs), Tensor::new(&w, &ws))
            .unwrap();
        let opts = LossOptions::default();
        let up = |v: &[f32], s: &[usize]| {
            wgpu_xent::DeviceTensor::from_host(c, v, s, wgpu_xent::DType::F32).unwrap()
        };
        let (dx, dw) = (up(&x, &xs), up(&w, &ws));
        let dt = wgpu_xent::DeviceTensor::from_host(c, &y, &[n], wgpu_xent::DType::I64).unwrap();
        let call = wgpu_xent::DeviceLinear::new(&dx, &dw, &dt).options(opts);
        let device = c.prepare(&call).unwrap();
        let mut encoder = c.device().create_command_encoder(&Default::default());
        device.record(&mut encoder);
        c.queue().submit([encoder.finish()]);
        let linear = Linear::new(Tensor::new(&x, &xs), Tensor::new(&w, &ws));
        let ys = [n];
        let target = Target::I64(Tensor::new(&y, &ys));
        let want_loss = c.linear_cross_entropy(linear, target, &opts).unwrap();
        on_threads(3, |t| {
            for k in 0..10 {
                let what = format!("thread {t}, run {k}");
                let (got, _) = product.run_timed().expect("a shared matmul run");
                assert_eq!(got, want_product, "{what}: matmul");
                let loss = device.read_loss().expect("a shared device read");
                let want = widen(&want_loss.data);
                assert_close(&what, &loss.data, &want, 1e-6, 1e-5);
            }
        });
    });
}
