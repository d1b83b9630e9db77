//! NaN where PyTorch gives NaN, on every path (issue 25, D4-D6): non-finite logits in an
//! ignored row, a mean over zero total target weight, and label smoothing with zero total
//! weight. PyTorch's backward is `nll_loss` then `log_softmax`: an ignored row's gradient is
//! `0 - p·0`, NaN where its lse is not finite; a mean's `g/D` is inf at D = 0, and its `inf·0`
//! makes the whole row NaN. Each path's loss and gradients must have the NaN pattern written
//! out below (PyTorch 2.15's in float64, where these cases were run) and agree with the CPU
//! reference elsewhere. linear_cross_entropy and `run_batch` of no rows: tests/nan_paths_linear.rs.

mod common;

use common::{assert_close, ctx, shard_devices, widen};
use wgpu_xent::cpu::wide::{self, WideOptions, WideTarget};
use wgpu_xent::CrossEntropyShards;
use wgpu_xent::{
    cpu, BackwardOptions, Context, DType, DeviceTensor, Grad, LossCall, LossOptions, Reduction,
    Target, Tensor,
};

/// A cross_entropy case: `[n, c]` logits, class targets, class weights, options, and which
/// loss and gradient values PyTorch makes NaN.
struct Case {
    name: String,
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
                    name: format!("D4: a {what} logit in an ignored row, ε = {eps}"),
                    x,
                    c: 6,
                    t: vec![1, -100, 3, 0],
                    w: None,
                    eps,
                    reduction,
                    nan_loss: false,
                    nan_rows: vec![1],
                });
            }
        }
        let mut x = logits(4, 6);
        x[6..12].fill(f32::NEG_INFINITY);
        out.push(Case {
            name: "D4: an ignored row of -inf".into(),
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
            name: "an ignored row with one -inf".into(),
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
            name: "D5: zero class weights".into(),
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
            name: "D6: label smoothing with zero total target weight".into(),
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
            name: "every target ignored".into(),
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
        let call = LossCall::cross_entropy(input, target)
            .options(opts)
            .grad(Grad::Returned);
        let step = c.prepare(&call).unwrap();
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
    let opts = LossOptions {
        weight: None,
        ..case.opts()
    };
    let into = [&g];
    let mut call = LossCall::cross_entropy(&x, &t)
        .options(opts)
        .grad(Grad::Into(&into));
    if let Some(w) = &w {
        call = call.device_weight(w);
    }
    let step = c.prepare(&call).unwrap();
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
    let (loss, grads) = Context::run_sharded(
        &shard_devices()[..2],
        &CrossEntropyShards {
            shards: &shards,
            target,
            options: case.opts(),
            grad: Grad::Returned,
        },
    )
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
