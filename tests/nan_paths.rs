//! NaN where PyTorch gives NaN, on every path (issue 25, D4-D6): non-finite logits in an
//! ignored row, a mean over zero total target weight, and label smoothing with zero total
//! weight. PyTorch's backward is `nll_loss` then `log_softmax`: an ignored row's gradient is
//! `0 - p·0`, NaN where its lse is not finite; a mean's `g/D` is inf at D = 0, and its `inf·0`
//! makes the whole row NaN. Each path's loss and gradients must have the expected NaN pattern
//! (checked against PyTorch 2.15 in float64) and agree with the CPU reference elsewhere.

mod common;

use common::{assert_close, ctx, shard_devices, widen};
use wgpu_xent::cpu::linear::linear_cross_entropy as cpu_linear;
use wgpu_xent::cpu::wide::{self, WideOptions, WideTarget};
use wgpu_xent::{
    cpu, BackwardOptions, Context, DType, DeviceLinear, DeviceLoss, DeviceTensor, Linear,
    LossOptions, Reduction, Target, Tensor,
};

/// A cross_entropy case: `[n, c]` logits, class targets, class weights, options, and which
/// loss and gradient values PyTorch makes NaN.
struct Case {
    name: &'static str,
    x: Vec<f32>,
    c: usize,
    t: Vec<i64>,
    w: Option<Vec<f32>>,
    eps: f32,
    reduction: Reduction,
    nan_loss: bool,
    /// The rows whose whole gradient is NaN.
    nan_rows: Vec<usize>,
}

impl Case {
    fn n(&self) -> usize {
        self.t.len()
    }

    fn opts(&self) -> LossOptions<'_> {
        LossOptions {
            weight: self.w.as_deref(),
            label_smoothing: self.eps,
            reduction: self.reduction,
            ..Default::default()
        }
    }

    fn check_grad(&self, path: &str, grad: &[f32], truth: &[f64]) {
        for (i, g) in grad.iter().enumerate() {
            let nan = self.nan_rows.contains(&(i / self.c));
            assert_eq!(
                g.is_nan(),
                nan,
                "{}, {path}: gradient {i} is {g}",
                self.name
            );
        }
        assert_close(&format!("{}, {path}", self.name), grad, truth, 1e-6, 1e-4);
    }

    fn check_loss(&self, path: &str, loss: &[f32], truth: &[f64]) {
        if self.reduction != Reduction::None {
            assert_eq!(
                loss[0].is_nan(),
                self.nan_loss,
                "{}, {path}: loss {loss:?}",
                self.name
            );
        }
        assert_close(
            &format!("{}, {path}: loss", self.name),
            loss,
            truth,
            1e-6,
            1e-5,
        );
    }
}

fn logits(n: usize, c: usize) -> Vec<f32> {
    (0..n * c)
        .map(|i| ((i * 37 % 23) as f32 - 11.0) / 5.0)
        .collect()
}

fn cases() -> Vec<Case> {
    let mut out = vec![];
    for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        for (v, what) in [(f32::NAN, "NaN"), (f32::INFINITY, "+inf")] {
            for eps in [0.0, 0.2] {
                let mut x = logits(4, 6);
                x[6 + 2] = v;
                out.push(Case {
                    name: "D4: a non-finite logit in an ignored row",
                    x,
                    c: 6,
                    t: vec![1, -100, 3, 0],
                    w: None,
                    eps,
                    reduction,
                    nan_loss: false,
                    nan_rows: vec![1],
                });
                let _ = what;
            }
        }
        let mut x = logits(4, 6);
        x[6..12].fill(f32::NEG_INFINITY);
        out.push(Case {
            name: "D4: an ignored row of -inf",
            x,
            c: 6,
            t: vec![1, -100, 3, 0],
            w: None,
            eps: 0.0,
            reduction,
            nan_loss: false,
            nan_rows: vec![1],
        });
        let mut x = logits(4, 6);
        x[6 + 2] = f32::NEG_INFINITY;
        out.push(Case {
            name: "an ignored row with one -inf",
            x,
            c: 6,
            t: vec![1, -100, 3, 0],
            w: None,
            eps: 0.0,
            reduction,
            nan_loss: false,
            nan_rows: vec![],
        });
        let mean = reduction == Reduction::Mean;
        out.push(Case {
            name: "D5: zero class weights",
            x: logits(5, 7),
            c: 7,
            t: vec![1, 2, -100, 4, 5],
            w: Some(vec![0.0; 7]),
            eps: 0.0,
            reduction,
            nan_loss: mean,
            nan_rows: if mean { vec![0, 1, 3, 4] } else { vec![] },
        });
        let mut w = vec![1.0; 7];
        w[1..6].fill(0.0);
        out.push(Case {
            name: "D6: label smoothing with zero total target weight",
            x: logits(5, 7),
            c: 7,
            t: vec![1, 2, 3, 4, 5],
            w: Some(w),
            eps: 0.2,
            reduction,
            nan_loss: mean,
            nan_rows: if mean { vec![0, 1, 2, 3, 4] } else { vec![] },
        });
        out.push(Case {
            name: "every target ignored",
            x: logits(5, 7),
            c: 7,
            t: vec![-100; 5],
            w: None,
            eps: 0.1,
            reduction,
            nan_loss: mean,
            nan_rows: vec![],
        });
    }
    out
}

#[test]
fn cross_entropy_gives_pytorchs_nans_on_every_path() {
    let c = ctx();
    let b = BackwardOptions::default();
    for case in cases() {
        let (n, classes) = (case.n(), case.c);
        let (shape, tshape) = ([n, classes], [n]);
        let opts = case.opts();
        let input = Tensor::new(&case.x, &shape);
        let target = Target::I64(Tensor::new(&case.t, &tshape));
        // The CPU reference (f32 in, f64 inside), then every other path against it.
        let truth = cpu::cross_entropy_backward(input, target, &opts, &b).unwrap();
        let (loss, grad) = (widen(&truth.loss.data), widen(&truth.grad.unwrap().data));
        case.check_loss("cpu", &truth.loss.data, &loss);
        case.check_grad(
            "cpu",
            &grad.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            &grad,
        );
        let wide = wide_cross_entropy(&case);
        case.check_loss("cpu f64", &wide.0, &loss);
        case.check_grad("cpu f64", &wide.1, &grad);
        let gpu = c.cross_entropy_backward(input, target, &opts, &b).unwrap();
        case.check_loss("gpu", &gpu.loss.data, &loss);
        case.check_grad("gpu", &gpu.grad.unwrap().data, &grad);
        let step = c.prepare_cross_entropy(input, target, &opts, true).unwrap();
        let run = step.run_batch(input, target, None).unwrap();
        case.check_loss("prepared", &run.loss.data, &loss);
        case.check_grad("prepared", &run.grad.unwrap().data, &grad);
        let (dl, dg) = device_cross_entropy(c, &case);
        case.check_loss("device", &dl, &loss);
        case.check_grad("device", &dg, &grad);
        let (sl, sg) = sharded_cross_entropy(&case);
        case.check_loss("sharded", &sl, &loss);
        case.check_grad("sharded", &sg, &grad);
    }
}

/// `cpu::wide::cross_entropy` (f64 throughout): its loss and gradient, as f32.
fn wide_cross_entropy(case: &Case) -> (Vec<f32>, Vec<f32>) {
    let x: Vec<f64> = widen(&case.x);
    let w: Option<Vec<f64>> = case.w.as_ref().map(|w| widen(w));
    let opts = WideOptions {
        weight: w.as_deref(),
        label_smoothing: case.eps as f64,
        reduction: case.reduction,
        ..Default::default()
    };
    let (shape, tshape) = ([case.n(), case.c], [case.n()]);
    let target = WideTarget::Classes(Target::I64(Tensor::new(&case.t, &tshape)));
    let out = wide::cross_entropy(Tensor::new(&x, &shape), target, &opts, true, false).unwrap();
    let f32s = |v: &[f64]| v.iter().map(|&v| v as f32).collect::<Vec<_>>();
    (f32s(&out.loss.data), f32s(&out.grad.unwrap().data))
}

/// The device API: the caller's tensors, the gradient into a tensor of theirs.
fn device_cross_entropy(c: &Context, case: &Case) -> (Vec<f32>, Vec<f32>) {
    let (n, classes) = (case.n(), case.c);
    let x = DeviceTensor::from_host(c, &case.x, &[n, classes], DType::F32).unwrap();
    let t = DeviceTensor::from_host(c, &case.t, &[n], DType::I64).unwrap();
    let g = DeviceTensor::zeros(c, &[n, classes]).unwrap();
    let w = case
        .w
        .as_ref()
        .map(|w| DeviceTensor::from_host(c, w, &[classes], DType::F32).unwrap());
    let mut call = DeviceLoss::new(&x, &t).grad_into(&g);
    if let Some(w) = &w {
        call = call.weight(w);
    }
    let opts = LossOptions {
        weight: None,
        ..case.opts()
    };
    let step = c.prepare_cross_entropy_device(call, &opts).unwrap();
    let mut encoder = c.device().create_command_encoder(&Default::default());
    step.record(&mut encoder);
    c.queue().submit([encoder.finish()]);
    (step.read_loss().unwrap().data, g.read_f32(c).unwrap())
}

/// Two vocabulary shards of uneven sizes on two devices.
fn sharded_cross_entropy(case: &Case) -> (Vec<f32>, Vec<f32>) {
    let (n, classes) = (case.n(), case.c);
    let cut = classes / 2;
    let slice = |cols: std::ops::Range<usize>| -> Vec<f32> {
        (0..n)
            .flat_map(|r| case.x[r * classes + cols.start..r * classes + cols.end].to_vec())
            .collect()
    };
    let (a, b) = (slice(0..cut), slice(cut..classes));
    let (sa, sb) = ([n, cut], [n, classes - cut]);
    let shards = [Tensor::new(&a, &sa), Tensor::new(&b, &sb)];
    let tshape = [n];
    let target = Target::I64(Tensor::new(&case.t, &tshape));
    let (loss, grads) =
        Context::cross_entropy_sharded(&shard_devices()[..2], &shards, target, &case.opts(), true)
            .unwrap();
    let grads = grads.unwrap();
    let grad = (0..n)
        .flat_map(|r| {
            let ga = &grads[0].data[r * cut..(r + 1) * cut];
            let gb = &grads[1].data[r * (classes - cut)..(r + 1) * (classes - cut)];
            ga.iter().chain(gb).copied().collect::<Vec<_>>()
        })
        .collect();
    (loss.data, grad)
}

/// A linear_cross_entropy case: the input `[n, d]`, weight `[c, d]` and bias `[c]`, with
/// the NaN pattern of PyTorch's three gradients.
struct LinearCase {
    name: &'static str,
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    t: Vec<i64>,
    class_weight: Option<Vec<f32>>,
    eps: f32,
    nan_loss: bool,
    /// The rows of dX that are NaN; dW and db are all NaN when `nan_dw`.
    nan_rows: Vec<usize>,
    nan_dw: bool,
}

fn linear_cases() -> Vec<LinearCase> {
    let (n, d, c) = (4, 3, 5);
    let x = logits(n, d);
    let w: Vec<f32> = logits(c, d).iter().map(|v| v * 0.5).collect();
    let b = vec![0.1, -0.2, 0.3, 0.0, 0.5];
    let mut x_nan = x.clone();
    x_nan[d] = f32::NAN;
    let mut w_nan = w.clone();
    w_nan[2 * d..3 * d].fill(f32::NAN);
    let mut b_inf = b.clone();
    b_inf[3] = f32::INFINITY;
    let ignored = vec![1, -100, 3, 0];
    let case = |name, x, w, b, t: &Vec<i64>, cw, eps, nan_loss, nan_rows, nan_dw| LinearCase {
        name,
        x,
        w,
        b,
        t: t.clone(),
        class_weight: cw,
        eps,
        nan_loss,
        nan_rows,
        nan_dw,
    };
    let mut zero_targets = vec![1.0; c];
    zero_targets[1..4].fill(0.0);
    vec![
        case(
            "D4: a NaN input row, ignored",
            x_nan,
            w.clone(),
            b.clone(),
            &ignored,
            None,
            0.0,
            false,
            vec![1],
            true,
        ),
        case(
            "D4: a NaN weight row",
            x.clone(),
            w_nan,
            b.clone(),
            &ignored,
            None,
            0.0,
            true,
            vec![0, 1, 2, 3],
            true,
        ),
        case(
            "D4: an infinite bias",
            x.clone(),
            w.clone(),
            b_inf,
            &ignored,
            None,
            0.0,
            true,
            vec![0, 1, 2, 3],
            true,
        ),
        case(
            "D5: zero class weights",
            x.clone(),
            w.clone(),
            b.clone(),
            &vec![1, 2, 3, 4],
            Some(vec![0.0; c]),
            0.0,
            true,
            vec![0, 1, 2, 3],
            true,
        ),
        case(
            "D5: zero class weights, one row ignored",
            x.clone(),
            w.clone(),
            b.clone(),
            &ignored,
            Some(vec![0.0; c]),
            0.0,
            true,
            vec![0, 2, 3],
            true,
        ),
        case(
            "D6: smoothing, zero total weight",
            x.clone(),
            w.clone(),
            b.clone(),
            &vec![1, 2, 3, 1],
            Some(zero_targets),
            0.2,
            true,
            vec![0, 1, 2, 3],
            true,
        ),
        case(
            "every target ignored",
            x,
            w,
            b,
            &vec![-100; 4],
            None,
            0.0,
            true,
            vec![],
            false,
        ),
    ]
}

#[test]
fn linear_cross_entropy_gives_pytorchs_nans_on_every_path() {
    let c = ctx();
    for case in linear_cases() {
        let (n, d, classes) = (case.t.len(), case.x.len() / case.t.len(), case.b.len());
        let (xs, ws, bs, ts) = ([n, d], [classes, d], [classes], [n]);
        let opts = LossOptions {
            weight: case.class_weight.as_deref(),
            label_smoothing: case.eps,
            ..Default::default()
        };
        let linear = Linear {
            linear_bias: Some(Tensor::new(&case.b, &bs).into()),
            ..Linear::new(Tensor::new(&case.x, &xs), Tensor::new(&case.w, &ws))
        };
        let target = Target::I64(Tensor::new(&case.t, &ts));
        let truth = cpu_truth(&case, &opts, (xs, ws, bs, ts));
        let check = |path: &str, got: [&[f32]; 4]| {
            let what = format!("{}, {path}", case.name);
            assert_eq!(
                got[0][0].is_nan(),
                case.nan_loss,
                "{what}: loss {:?}",
                got[0]
            );
            for (i, v) in got[1].iter().enumerate() {
                let nan = case.nan_rows.contains(&(i / d));
                assert_eq!(v.is_nan(), nan, "{what}: dX[{i}] = {v}");
            }
            for (k, g) in got[2..].iter().enumerate() {
                assert!(
                    g.iter().all(|v| v.is_nan() == case.nan_dw),
                    "{what}: {k} {g:?}"
                );
            }
            for (k, (g, t)) in got.iter().zip(&truth).enumerate() {
                assert_close(&format!("{what}: output {k}"), g, t, 1e-5, 1e-4);
            }
        };
        let gpu = c
            .linear_cross_entropy_backward(linear, target, &opts)
            .unwrap();
        check("gpu", outputs(&gpu));
        let prepared = c
            .prepare_linear_cross_entropy(linear, target, &opts, true)
            .unwrap();
        check("prepared", outputs(&prepared.run().unwrap()));
        let small = Linear {
            budget: 2 * classes * 4,
            ..linear
        };
        let chunked = c
            .linear_cross_entropy_backward(small, target, &opts)
            .unwrap();
        check("chunks of 2 rows", outputs(&chunked));
        let sharded = Context::linear_cross_entropy_sharded(
            &shard_devices()[..2],
            linear,
            target,
            &opts,
            true,
        )
        .unwrap();
        check("sharded", outputs(&sharded));
        let device = device_linear(c, &case, &opts);
        check("device", [&device[0], &device[1], &device[2], &device[3]]);
    }
}

fn outputs(o: &wgpu_xent::LinearOutput) -> [&[f32]; 4] {
    [
        &o.loss.data,
        &o.grad_input.as_ref().unwrap().data,
        &o.grad_linear_weight.as_ref().unwrap().data,
        &o.grad_linear_bias.as_ref().unwrap().data,
    ]
}

/// The f64 reference's loss, dX, dW and db.
fn cpu_truth(
    case: &LinearCase,
    opts: &LossOptions,
    (xs, ws, bs, ts): ([usize; 2], [usize; 2], [usize; 1], [usize; 1]),
) -> [Vec<f64>; 4] {
    let (x, w, b) = (widen(&case.x), widen(&case.w), widen(&case.b));
    let cw = opts.weight.map(widen);
    let wide_opts = WideOptions {
        weight: cw.as_deref(),
        label_smoothing: opts.label_smoothing as f64,
        ..Default::default()
    };
    let target = WideTarget::Classes(Target::I64(Tensor::new(&case.t, &ts)));
    let out = cpu_linear(
        Tensor::new(&x, &xs),
        Tensor::new(&w, &ws),
        Some(Tensor::new(&b, &bs)),
        target,
        &wide_opts,
        true,
    )
    .unwrap();
    [
        out.loss.data,
        out.grad_input.unwrap().data,
        out.grad_linear_weight.unwrap().data,
        out.grad_linear_bias.unwrap().data,
    ]
}

/// The device linear call: the caller's tensors, gradients into tensors of theirs.
fn device_linear(c: &Context, case: &LinearCase, opts: &LossOptions) -> [Vec<f32>; 4] {
    let (n, classes) = (case.t.len(), case.b.len());
    let d = case.x.len() / n;
    let up = |v: &[f32], shape: &[usize]| DeviceTensor::from_host(c, v, shape, DType::F32).unwrap();
    let (x, w, b) = (
        up(&case.x, &[n, d]),
        up(&case.w, &[classes, d]),
        up(&case.b, &[classes]),
    );
    let t = DeviceTensor::from_host(c, &case.t, &[n], DType::I64).unwrap();
    let zeros = |shape: &[usize]| DeviceTensor::zeros(c, shape).unwrap();
    let (dx, dw, db) = (zeros(&[n, d]), zeros(&[classes, d]), zeros(&[classes]));
    let call = DeviceLinear::new(&x, &w, &t)
        .bias(&b)
        .grads_into(&dx, &dw, Some(&db));
    let step = c.prepare_linear_cross_entropy_device(call, opts).unwrap();
    let mut encoder = c.device().create_command_encoder(&Default::default());
    step.record(&mut encoder);
    c.queue().submit([encoder.finish()]);
    let loss = step.read_loss().unwrap().data;
    [
        loss,
        dx.read_f32(c).unwrap(),
        dw.read_f32(c).unwrap(),
        db.read_f32(c).unwrap(),
    ]
}

#[test]
fn a_prepared_call_given_no_rows_returns_what_the_one_shot_call_returns() {
    // D7: a [0, C] batch on a call prepared for 37 rows.
    let c = ctx();
    let (n, classes) = (37, 11);
    let x = logits(n, classes);
    let t: Vec<i64> = (0..n as i64).map(|i| i % classes as i64).collect();
    let empty: [f32; 0] = [];
    let no_targets: [i64; 0] = [];
    let (no_rows, no_target_rows) = ([0, classes], [0]);
    for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        let opts = LossOptions {
            reduction,
            ..Default::default()
        };
        let step = c
            .prepare_cross_entropy(
                Tensor::new(&x, &[n, classes]),
                Target::I64(Tensor::new(&t, &[n])),
                &opts,
                true,
            )
            .unwrap();
        let (input, target) = (
            Tensor::new(&empty, &no_rows),
            Target::I64(Tensor::new(&no_targets, &no_target_rows)),
        );
        let got = step.run_batch(input, target, None).unwrap();
        let want = c
            .cross_entropy_backward(input, target, &opts, &BackwardOptions::default())
            .unwrap();
        assert_eq!(got.loss.shape, want.loss.shape, "{reduction:?}");
        assert_eq!(got.loss.data.len(), want.loss.data.len(), "{reduction:?}");
        for (a, b) in got.loss.data.iter().zip(&want.loss.data) {
            assert_eq!(a.to_bits(), b.to_bits(), "{reduction:?}");
        }
        assert_eq!(got.grad, want.grad, "{reduction:?}");
        // And the call still runs its full batch afterwards.
        let full = step
            .run_batch(
                Tensor::new(&x, &[n, classes]),
                Target::I64(Tensor::new(&t, &[n])),
                None,
            )
            .unwrap();
        let one_shot = c
            .cross_entropy_backward(
                Tensor::new(&x, &[n, classes]),
                Target::I64(Tensor::new(&t, &[n])),
                &opts,
                &BackwardOptions::default(),
            )
            .unwrap();
        assert_eq!(full.loss, one_shot.loss, "{reduction:?}");
    }
}
