//! The one API: every call description runs through `ctx.run`, `ctx.run_async` and
//! `ctx.prepare` (`prepare_async`) with the same results, bit for bit; the one `Grad` and the
//! one lse switch mean the same thing wherever they are asked; what a call cannot do is a
//! clear error, not a silent choice.

mod common;

use common::{ctx, Rng};
use wgpu_xent::{
    Context, DType, DeviceLinear, DeviceTensor, Grad, Linear, LinearCall, LossCall, LossOptions,
    MatmulCall, SoftmaxCall, Target, Tensor, XentError,
};

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn data(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..len).map(|_| rng.normal(2.0)).collect()
}

#[test]
fn run_run_async_and_prepare_agree_bit_for_bit() {
    let ctx = ctx();
    let (n, c, d) = (6, 37, 8);
    let (x, t): (Vec<f32>, Vec<i64>) =
        (data(n * c, 1), (0..n as i64).map(|i| i * 5 % 37).collect());
    let (shape, rows) = ([n, c], [n]);
    let target = Target::I64(Tensor::new(&t, &rows));
    let opts = LossOptions {
        label_smoothing: 0.1,
        ..Default::default()
    };
    let loss = LossCall::cross_entropy(Tensor::new(&x, &shape), target)
        .options(opts)
        .grad(Grad::Returned)
        .grad_output(0.5)
        .lse(true);
    let once = ctx.run(&loss).unwrap();
    let joined = pollster::block_on(ctx.run_async(&loss)).unwrap();
    let prepared = ctx.prepare(&loss).unwrap().run().unwrap();
    let prepared_async =
        pollster::block_on(async { ctx.prepare_async(&loss).await?.run_async().await }).unwrap();
    for other in [&joined, &prepared, &prepared_async] {
        assert_eq!(bits(&once.loss.data), bits(&other.loss.data));
        let (g, h) = (once.grad.as_ref().unwrap(), other.grad.as_ref().unwrap());
        assert_eq!((bits(&g.data), &g.shape), (bits(&h.data), &h.shape));
        let (l, m) = (once.lse.as_ref().unwrap(), other.lse.as_ref().unwrap());
        assert_eq!((bits(&l.data), &l.shape), (bits(&m.data), &m.shape));
    }
    assert_eq!(once.lse.unwrap().shape, vec![n]);
    // The sugar is the same call.
    let sugar = ctx
        .cross_entropy(Tensor::new(&x, &shape), target, &opts)
        .unwrap();
    assert_eq!(bits(&sugar.data), bits(&once.loss.data));

    let soft = SoftmaxCall::log_softmax(Tensor::new(&x, &shape), -1);
    let a = ctx.run(&soft).unwrap();
    let b = pollster::block_on(ctx.run_async(&soft)).unwrap();
    let p = ctx.prepare(&soft).unwrap().run().unwrap();
    assert_eq!(bits(&a.data), bits(&b.data));
    assert_eq!(bits(&a.data), bits(&p.data));

    let (h, w) = (data(n * d, 2), data(c * d, 3));
    let (hs, ws) = ([n, d], [c, d]);
    let lin = LinearCall::new(
        Linear::new(Tensor::new(&h, &hs), Tensor::new(&w, &ws)),
        target,
    )
    .grad(Grad::Returned);
    let a = ctx.run(&lin).unwrap();
    let b = pollster::block_on(ctx.run_async(&lin)).unwrap();
    assert_eq!(bits(&a.loss.data), bits(&b.loss.data));
    let (ga, gb) = (a.grad_linear_weight.unwrap(), b.grad_linear_weight.unwrap());
    assert_eq!(bits(&ga.data), bits(&gb.data));

    let mm = MatmulCall::new(Tensor::new(&h, &hs), Tensor::new(&w, &ws));
    let a = ctx.run(&mm).unwrap();
    let b = pollster::block_on(ctx.run_async(&mm)).unwrap();
    assert_eq!(a.shape, vec![n, c]);
    assert_eq!(bits(&a.data), bits(&b.data));
}

#[test]
fn device_calls_run_once_as_prepared_ones_do() {
    let ctx = ctx();
    let (n, c, d) = (5, 19, 4);
    let (x, t): (Vec<f32>, Vec<i64>) =
        (data(n * c, 4), (0..n as i64).map(|i| i * 3 % 19).collect());
    let host = ctx
        .cross_entropy(
            Tensor::new(&x, &[n, c]),
            Target::I64(Tensor::new(&t, &[n])),
            &Default::default(),
        )
        .unwrap();
    let dx = DeviceTensor::from_host(ctx, &x, &[n, c], DType::F32).unwrap();
    let dt = DeviceTensor::from_host(ctx, &t, &[n], DType::I64).unwrap();
    let g = DeviceTensor::zeros(ctx, &[n, c]).unwrap();
    let into = [&g];
    let call = LossCall::cross_entropy(&dx, &dt).grad(Grad::Into(&into));
    let once = pollster::block_on(ctx.run_async(&call)).unwrap();
    assert!((once.loss.scalar() - host.scalar()).abs() <= 1e-6 * host.scalar().abs());
    let want = ctx
        .cross_entropy_backward(
            Tensor::new(&x, &[n, c]),
            Target::I64(Tensor::new(&t, &[n])),
            &Default::default(),
            &Default::default(),
        )
        .unwrap();
    let got = g.read_f32(ctx).unwrap();
    let want = want.grad.unwrap().data;
    assert!(
        got.iter().zip(&want).all(|(a, b)| (a - b).abs() <= 1e-6),
        "the gradient went Into g"
    );

    let (h, w) = (data(n * d, 5), data(c * d, 6));
    let lin = ctx
        .linear_cross_entropy(
            Linear::new(Tensor::new(&h, &[n, d]), Tensor::new(&w, &[c, d])),
            Target::I64(Tensor::new(&t, &[n])),
            &Default::default(),
        )
        .unwrap();
    let (dh, dw) = (
        DeviceTensor::from_host(ctx, &h, &[n, d], DType::F32).unwrap(),
        DeviceTensor::from_host(ctx, &w, &[c, d], DType::F32).unwrap(),
    );
    let dev = pollster::block_on(ctx.run_async(&DeviceLinear::new(&dh, &dw, &dt))).unwrap();
    assert!((dev.loss.scalar() - lin.scalar()).abs() <= 1e-5 * lin.scalar().abs());
}

#[test]
fn what_a_call_cannot_do_is_an_error() {
    let ctx: &Context = ctx();
    let (x, t) = ([0.0f32; 6], [0i64, 1]);
    let host =
        || LossCall::cross_entropy(Tensor::new(&x, &[2, 3]), Target::I64(Tensor::new(&t, &[2])));
    let dx = DeviceTensor::from_host(ctx, &x, &[2, 3], DType::F32).unwrap();
    let dt = DeviceTensor::from_host(ctx, &t, &[2], DType::I64).unwrap();
    let invalid = |r: Result<_, XentError>, what: &str| match r {
        Err(XentError::InvalidArgument(m)) | Err(XentError::Unsupported(m)) => {
            assert!(m.contains(what), "{m}")
        }
        Err(e) => panic!("{what}: {e}"),
        Ok(_) => panic!("{what}: accepted"),
    };
    let into = [&dx];
    invalid(
        ctx.prepare(&host().grad(Grad::Into(&into))).map(|_| ()),
        "device",
    );
    let mixed = LossCall::cross_entropy(Tensor::new(&x, &[2, 3]), &dt);
    invalid(
        ctx.prepare(&mixed).map(|_| ()),
        "all on the host or all on the device",
    );
    let nll = LossCall::nll_loss(Tensor::new(&x, &[2, 3]), Target::I64(Tensor::new(&t, &[2])));
    invalid(ctx.run(&nll.lse(true)).map(|_| ()), "log-sum-exp");
    invalid(ctx.run(&nll.grad(Grad::InPlace)).map(|_| ()), "in place");
    let dev = LossCall::cross_entropy(&dx, &dt);
    invalid(
        ctx.prepare(&dev.grad(Grad::Returned)).map(|_| ()),
        "on the device",
    );
    invalid(
        ctx.prepare(&dev.grad_output(2.0)).map(|_| ()),
        "grad_output",
    );
    let back = SoftmaxCall::softmax(&dx, 1).backward(Tensor::new(&x, &[2, 3]));
    invalid(ctx.prepare(&back).map(|_| ()), "on the device");
    let back = SoftmaxCall::softmax(Tensor::new(&x, &[2, 3]), 1).backward(&dx);
    invalid(ctx.prepare(&back).map(|_| ()), "f32 host tensor");
    let host_out = SoftmaxCall::softmax(Tensor::new(&x, &[2, 3]), 1).output(DType::F16);
    invalid(ctx.prepare(&host_out).map(|_| ()), "device call");
}

/// The softmax backward pass on device tensors, prepared and recorded, gives the host call's
/// result for both log_softmax and softmax, along either dim.
#[test]
fn device_softmax_backward_matches_the_host_one() {
    let ctx = ctx();
    let (n, c) = (7, 45);
    let shape = [n, c];
    let (x, gy) = (data(n * c, 7), data(n * c, 8));
    for log in [true, false] {
        for dim in [1, 0] {
            let forward = match log {
                true => SoftmaxCall::log_softmax(Tensor::new(&x, &shape), dim),
                false => SoftmaxCall::softmax(Tensor::new(&x, &shape), dim),
            };
            let y = ctx.run(&forward).unwrap().data;
            let host = match log {
                true => {
                    ctx.log_softmax_backward(Tensor::new(&gy, &shape), Tensor::new(&y, &shape), dim)
                }
                false => {
                    ctx.softmax_backward(Tensor::new(&gy, &shape), Tensor::new(&y, &shape), dim)
                }
            }
            .unwrap();
            let dy = DeviceTensor::from_host(ctx, &y, &shape, DType::F32).unwrap();
            let dg = DeviceTensor::from_host(ctx, &gy, &shape, DType::F32).unwrap();
            let call = match log {
                true => SoftmaxCall::log_softmax(&dy, dim),
                false => SoftmaxCall::softmax(&dy, dim),
            };
            let step = ctx.prepare(&call.backward(&dg)).unwrap();
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            step.record(&mut encoder);
            ctx.queue().submit([encoder.finish()]);
            let got = step.output().read_f32(ctx).unwrap();
            let what = format!("log={log} dim={dim}");
            assert_eq!(got.len(), host.data.len(), "{what}");
            for (a, b) in got.iter().zip(&host.data) {
                assert!(
                    (a - b).abs() <= 1e-6 + 1e-5 * b.abs(),
                    "{what}: {a} against {b}"
                );
            }
        }
    }
}

/// A sharded call's async form gives the sync form's results, bit for bit.
#[test]
fn sharded_calls_run_async_too() {
    let devices = [ctx().clone(), ctx().clone()];
    let (n, c) = (4, 9);
    let x = data(n * c, 9);
    let t: Vec<i64> = (0..n as i64).map(|i| i * 2 % 9).collect();
    let (a, b) = split(&x, c, 4);
    let (sa, sb, rows) = ([n, 4], [n, c - 4], [n]);
    let shards = [Tensor::new(&a, &sa), Tensor::new(&b, &sb)];
    let call = wgpu_xent::CrossEntropyShards {
        shards: &shards,
        target: Target::I64(Tensor::new(&t, &rows)),
        options: LossOptions::default(),
        grad: Grad::Returned,
    };
    let sync = Context::run_sharded(&devices, &call).unwrap();
    let joined = pollster::block_on(Context::run_sharded_async(&devices, &call)).unwrap();
    assert_eq!(bits(&sync.0.data), bits(&joined.0.data));
    for (g, h) in sync.1.unwrap().iter().zip(&joined.1.unwrap()) {
        assert_eq!(bits(&g.data), bits(&h.data));
    }
    let whole = ctx()
        .cross_entropy(
            Tensor::new(&x, &[n, c]),
            Target::I64(Tensor::new(&t, &[n])),
            &Default::default(),
        )
        .unwrap();
    assert!((sync.0.scalar() - whole.scalar()).abs() <= 1e-5 * whole.scalar().abs());
}

/// Each row of `x` (`c` classes) cut at class `at`: the two shards' values.
fn split(x: &[f32], c: usize, at: usize) -> (Vec<f32>, Vec<f32>) {
    let a = x.chunks(c).flat_map(|row| &row[..at]).copied().collect();
    let b = x.chunks(c).flat_map(|row| &row[at..]).copied().collect();
    (a, b)
}

/// What a fresh review found, each now an answer or a clear error: a device call run once
/// returns its lse; a prepared call on device tensors takes no host batch; `write_logits`
/// after a shorter batch walks every row again; a sharded linear call returns its lse; the
/// one-line calls take device tensors; a wrong `Grad` for a device linear call, and a 16-bit
/// softmax output run once, are errors.
#[test]
fn device_runs_batches_and_sharded_lse_say_what_they_do() {
    let ctx = ctx();
    let (n, c, d) = (6, 11, 5);
    let (x, t): (Vec<f32>, Vec<i64>) =
        (data(n * c, 10), (0..n as i64).map(|i| i * 4 % 11).collect());
    let (shape, rows) = ([n, c], [n]);
    let host =
        LossCall::cross_entropy(Tensor::new(&x, &shape), Target::I64(Tensor::new(&t, &rows)));
    let want = ctx.run(&host.lse(true)).unwrap();
    let dx = DeviceTensor::from_host(ctx, &x, &shape, DType::F32).unwrap();
    let dt = DeviceTensor::from_host(ctx, &t, &rows, DType::I64).unwrap();
    let got = ctx
        .run(&LossCall::cross_entropy(&dx, &dt).lse(true))
        .unwrap();
    let (l, m) = (
        got.lse.expect("the device lse read back"),
        want.lse.unwrap(),
    );
    assert_eq!(l.shape, m.shape);
    assert!(l
        .data
        .iter()
        .zip(&m.data)
        .all(|(a, b)| (a - b).abs() <= 1e-5 * b.abs().max(1.0)));
    // The sugar takes device tensors too.
    let sugar = ctx.cross_entropy(&dx, &dt, &Default::default()).unwrap();
    assert!((sugar.scalar() - want.loss.scalar()).abs() <= 1e-5);

    let on_device = ctx.prepare(&LossCall::cross_entropy(&dx, &dt)).unwrap();
    let batch = on_device.run_batch(
        Tensor::new(&x, &shape),
        Target::I64(Tensor::new(&t, &rows)),
        None,
    );
    assert!(matches!(batch, Err(XentError::Unsupported(_))), "{batch:?}");
    assert!(matches!(
        on_device.write_logits(&x),
        Err(XentError::Unsupported(_))
    ));

    let step = ctx.prepare(&host.grad(Grad::Returned)).unwrap();
    let (half, half_rows) = ([n / 2, c], [n / 2]);
    step.run_batch(
        Tensor::new(&x[..n / 2 * c], &half),
        Target::I64(Tensor::new(&t[..n / 2], &half_rows)),
        None,
    )
    .unwrap();
    step.write_logits(&x).unwrap();
    let all = step.run().unwrap();
    assert_eq!(
        bits(&all.loss.data),
        bits(&ctx.run(&host).unwrap().loss.data),
        "every row again"
    );

    let (h, w) = (data(n * d, 11), data(c * d, 12));
    let (hs, ws) = ([n, d], [c, d]);
    let linear = Linear::new(Tensor::new(&h, &hs), Tensor::new(&w, &ws)).lse(true);
    let target = Target::I64(Tensor::new(&t, &rows));
    let whole = ctx
        .run(&LinearCall::new(linear, target))
        .unwrap()
        .lse
        .unwrap();
    let devices = [ctx.clone(), ctx.clone()];
    let call = wgpu_xent::LinearShards {
        linear,
        target,
        options: Default::default(),
        grad: Grad::None,
    };
    let sharded = Context::run_sharded(&devices, &call)
        .unwrap()
        .lse
        .expect("the sharded lse");
    assert_eq!(sharded.shape, whole.shape);
    assert!(sharded
        .data
        .iter()
        .zip(&whole.data)
        .all(|(a, b)| (a - b).abs() <= 1e-5 * b.abs().max(1.0)));

    let dh = DeviceTensor::from_host(ctx, &h, &hs, DType::F32).unwrap();
    let dw = DeviceTensor::from_host(ctx, &w, &ws, DType::F32).unwrap();
    let one = [&dh];
    let wrong = DeviceLinear::new(&dh, &dw, &dt).grad(Grad::Into(&one));
    assert!(ctx
        .prepare(&wrong)
        .err()
        .unwrap()
        .to_string()
        .contains("2 to 3"));
    let half_out = SoftmaxCall::softmax(&dx, 1).output(DType::F16);
    assert!(ctx.run(&half_out).is_err());
    assert!(ctx.prepare(&half_out).is_ok());
}

/// The reads of a prepared call have async forms with the same results: the gradient, into a
/// new `Vec` or the caller's slice, and a device shard's check of its targets.
#[test]
fn prepared_reads_have_async_forms() {
    let ctx = ctx();
    let (n, c) = (5, 13);
    let (x, t): (Vec<f32>, Vec<i64>) =
        (data(n * c, 13), (0..n as i64).map(|i| i * 5 % 13).collect());
    let (shape, rows) = ([n, c], [n]);
    let call =
        LossCall::cross_entropy(Tensor::new(&x, &shape), Target::I64(Tensor::new(&t, &rows)))
            .grad(Grad::Returned);
    let step = ctx.prepare(&call).unwrap();
    step.run_timed().unwrap();
    let sync = step.read_grad().unwrap();
    let joined = pollster::block_on(step.read_grad_async()).unwrap();
    assert_eq!(bits(&sync), bits(&joined));
    let mut into = vec![0f32; n * c];
    pollster::block_on(step.read_grad_into_async(&mut into)).unwrap();
    assert_eq!(bits(&sync), bits(&into));

    let bad: Vec<i64> = vec![0, 1, 99, 2, 3];
    let dx = DeviceTensor::from_host(ctx, &x, &shape, DType::F32).unwrap();
    let dt = DeviceTensor::from_host(ctx, &bad, &rows, DType::I64).unwrap();
    let shard = wgpu_xent::DeviceShard {
        logits: &dx,
        target: &dt,
        first_class: 0,
        classes: 20,
        grad: Grad::None,
        options: LossOptions::default(),
    };
    let step = ctx.prepare(&shard).unwrap();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    step.record_partials(&mut encoder);
    ctx.queue().submit([encoder.finish()]);
    let (a, b) = (
        step.check_targets(),
        pollster::block_on(step.check_targets_async()),
    );
    assert!(
        matches!(a, Err(XentError::TargetOutOfBounds { .. })),
        "{a:?}"
    );
    assert_eq!(a.unwrap_err().to_string(), b.unwrap_err().to_string());
}

#[test]
fn one_prepared_linear_runs_and_records_on_host_or_device_tensors() {
    let ctx = ctx();
    let (n, c, d) = (6, 13, 5);
    let (h, w) = (data(n * d, 7), data(c * d, 8));
    let t: Vec<i64> = (0..n as i64).map(|i| i * 5 % 13).collect();
    let (rows, hs, ws, qs) = ([n], [n, d], [c, d], [n, c]);
    let target = Target::I64(Tensor::new(&t, &rows));
    let linear = Linear::new(Tensor::new(&h, &hs), Tensor::new(&w, &ws));
    let host = ctx.prepare(&LinearCall::new(linear, target)).unwrap();
    let run = host.run().unwrap();
    // A host call recorded into our encoder: its loss on the device, then read back.
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    host.record(&mut encoder);
    ctx.queue().submit([encoder.finish()]);
    let loss = host.loss().unwrap().read_f32(ctx).unwrap();
    assert_eq!(bits(&loss), bits(&run.loss.data));
    assert_eq!(bits(&host.read_loss().unwrap().data), bits(&run.loss.data));

    // A device call run: the loss read back, as recorded and read.
    let (dh, dw) = (
        DeviceTensor::from_host(ctx, &h, &[n, d], DType::F32).unwrap(),
        DeviceTensor::from_host(ctx, &w, &[c, d], DType::F32).unwrap(),
    );
    let dt = DeviceTensor::from_host(ctx, &t, &[n], DType::I64).unwrap();
    let device = ctx
        .prepare(&DeviceLinear::new(&dh, &dw, &dt).lse(true))
        .unwrap();
    assert!(device.read_loss().is_err(), "nothing recorded yet");
    let ran = device.run().unwrap();
    assert_eq!(
        bits(&ran.loss.data),
        bits(&device.read_loss().unwrap().data)
    );
    assert_eq!(ran.lse.unwrap().data.len(), n);
    assert!((ran.loss.scalar() - run.loss.scalar()).abs() <= 1e-5 * run.loss.scalar().abs());

    // A host mean over probabilities is divided on the host: no one device tensor holds it.
    let q: Vec<f32> = vec![1.0 / c as f32; n * c];
    let probs = Target::Probs(Tensor::new(&q, &qs));
    let step = ctx.prepare(&LinearCall::new(linear, probs)).unwrap();
    assert!(step.loss().is_none());
    assert!(step.run().unwrap().loss.scalar().is_finite());
}
