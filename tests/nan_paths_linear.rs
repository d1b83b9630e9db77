//! linear_cross_entropy's NaN where PyTorch gives NaN (issue 25, D4-D6), on the host, prepared,
//! chunked, sharded and device paths: a NaN input row that is ignored, a NaN weight row, an
//! infinite bias, zero class weights and label smoothing over zero total weight. The patterns
//! written out below are PyTorch 2.15's (float64, both its paths), and the values are checked
//! against the f64 CPU reference. Also `run_batch` of no rows (D7).

mod common;

use common::{assert_close, ctx, shard_devices, widen};
use wgpu_xent::cpu::linear::linear_cross_entropy as cpu_linear;
use wgpu_xent::cpu::wide::{WideOptions, WideTarget};
use wgpu_xent::LinearShards;
use wgpu_xent::{
    BackwardOptions, Context, DType, DeviceLinear, DeviceTensor, Grad, Linear, LinearCall,
    LossCall, LossOptions, Reduction, Target, Tensor,
};

fn logits(n: usize, c: usize) -> Vec<f32> {
    (0..n * c)
        .map(|i| ((i * 37 % 23) as f32 - 11.0) / 5.0)
        .collect()
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
            .prepare(
                &LinearCall::new(linear, target)
                    .options(opts)
                    .grad(Grad::Returned),
            )
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
        let sharded = Context::run_sharded(
            &shard_devices()[..2],
            &LinearShards {
                linear,
                target,
                options: opts,
                grad: Grad::Returned,
            },
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
    let grads = [&dx, &dw, &db];
    let call = DeviceLinear::new(&x, &w, &t)
        .bias(&b)
        .grad(Grad::Into(&grads))
        .options(*opts);
    let step = c.prepare(&call).unwrap();
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
        let (shape, rows) = ([n, classes], [n]);
        let call =
            LossCall::cross_entropy(Tensor::new(&x, &shape), Target::I64(Tensor::new(&t, &rows)))
                .options(opts)
                .grad(Grad::Returned);
        let step = c.prepare(&call).unwrap();
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
