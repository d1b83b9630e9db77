//! The fused forward + backward: the GPU against the CPU reference over random shapes and
//! options, the CPU reference against central finite differences in f64, in place against
//! out of place, and the softmax backward building blocks.

mod common;

use common::{assert_close, ctx, widen, Rng};
use proptest::prelude::*;
use wgpu_xent::{cpu, BackwardOptions, Grad, LossCall, LossOptions, Reduction, Target, Tensor};

#[derive(Debug, Clone)]
struct Case {
    shape: Vec<usize>,
    weighted: bool,
    ignore_frac: f32,
    reduction: Reduction,
    eps: f32,
    z_loss: f32,
    softcap: Option<f32>,
    probs: bool,
    grad_output: f32,
    seed: u64,
}

fn case(max_n: usize, classes: Vec<usize>) -> impl Strategy<Value = Case> {
    (
        (
            0..=max_n,
            prop::sample::select(classes),
            prop::collection::vec(1usize..4, 0..3),
        ),
        (
            any::<bool>(),
            prop_oneof![Just(0.0f32), Just(0.4), Just(1.0)],
        ),
        prop_oneof![
            Just(Reduction::None),
            Just(Reduction::Mean),
            Just(Reduction::Sum)
        ],
        (
            prop_oneof![Just(0.0f32), Just(0.1), Just(1.0)],
            prop_oneof![Just(0.0f32), Just(1e-3), Just(0.5)],
        ),
        (
            prop_oneof![Just(None), Just(Some(2.0f32)), Just(Some(30.0))],
            any::<bool>(),
        ),
        (prop_oneof![Just(1.0f32), Just(-0.5)], any::<u64>()),
    )
        .prop_map(
            |(
                (n, c, extra),
                (weighted, ignore_frac),
                reduction,
                (eps, z_loss),
                (softcap, probs),
                (grad_output, seed),
            )| {
                let mut shape = vec![n, c];
                shape.extend(extra);
                Case {
                    shape,
                    weighted,
                    ignore_frac,
                    reduction,
                    eps,
                    z_loss,
                    softcap,
                    probs,
                    grad_output,
                    seed,
                }
            },
        )
}

/// Data for a case: logits, class targets, probabilities and weights.
struct Data {
    x: Vec<f32>,
    classes: Vec<i64>,
    tshape: Vec<usize>,
    probs: Vec<f32>,
    weight: Vec<f32>,
}

fn data(case: &Case) -> Data {
    let mut rng = Rng(case.seed);
    let (n, c) = (case.shape[0], case.shape[1]);
    let inner: usize = case.shape[2..].iter().product();
    let x = rng.logits(n * c * inner, 3.0);
    let classes = (0..n * inner)
        .map(|_| {
            if rng.uniform() < case.ignore_frac {
                -100
            } else {
                rng.below(c) as i64
            }
        })
        .collect();
    let mut probs: Vec<f32> = (0..x.len()).map(|_| rng.uniform() + 0.01).collect();
    for o in 0..n {
        for i in 0..inner {
            let at = |k: usize| o * c * inner + k * inner + i;
            let s: f32 = (0..c).map(|k| probs[at(k)]).sum();
            (0..c).for_each(|k| probs[at(k)] /= s);
        }
    }
    let weight = (0..c).map(|_| rng.uniform() + 0.2).collect();
    let mut tshape = vec![n];
    tshape.extend(&case.shape[2..]);
    Data {
        x,
        classes,
        tshape,
        probs,
        weight,
    }
}

impl Case {
    fn opts<'a>(&self, d: &'a Data) -> LossOptions<'a> {
        LossOptions {
            weight: self.weighted.then_some(d.weight.as_slice()),
            reduction: self.reduction,
            label_smoothing: self.eps,
            z_loss: self.z_loss,
            softcap: self.softcap,
            ..Default::default()
        }
    }

    fn target<'a>(&'a self, d: &'a Data) -> Target<'a> {
        if self.probs {
            Target::Probs(Tensor::new(&d.probs, &self.shape))
        } else {
            Target::I64(Tensor::new(&d.classes, &d.tshape))
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// Loss, gradient and lse on the GPU agree with the CPU reference.
    #[test]
    fn fused_backward_matches_the_cpu_reference(case in case(24, vec![1, 2, 3, 31, 32, 33, 255, 257, 1000, 4097])) {
        let d = data(&case);
        let (opts, target) = (case.opts(&d), case.target(&d));
        let b = BackwardOptions { grad_output: case.grad_output };
        let input = Tensor::new(&d.x, &case.shape);
        let call = LossCall::cross_entropy(input, target)
            .options(opts)
            .grad(Grad::Returned)
            .grad_output(b.grad_output)
            .lse(true);
        let gpu = ctx().run(&call).unwrap();
        let reference = cpu::cross_entropy_backward(input, target, &opts, &b).unwrap();
        let what = format!("{case:?}");
        assert_close(&what, &gpu.loss.data, &widen(&reference.loss.data), 2e-5, 1e-4);
        let (g, r) = (gpu.grad.unwrap(), reference.grad.unwrap());
        assert_eq!(g.shape, case.shape);
        assert_close(&format!("{what} gradient"), &g.data, &widen(&r.data), 1e-6, 1e-3);
        let (l, r) = (gpu.lse.unwrap(), reference.lse.unwrap());
        assert_eq!(l.shape, d.tshape);
        assert_close(&format!("{what} lse"), &l.data, &widen(&r.data), 1e-5, 1e-5);
    }

    /// The CPU reference's gradient is the derivative of its own loss: central differences
    /// of the f64 loss, for every logit.
    #[test]
    fn cpu_gradient_matches_finite_differences(case in case(3, vec![1, 2, 3, 5, 8])) {
        let d = data(&case);
        let (opts, target) = (case.opts(&d), case.target(&d));
        let b = BackwardOptions { grad_output: case.grad_output };
        let grad = cpu::cross_entropy_backward(Tensor::new(&d.x, &case.shape), target, &opts, &b)
            .unwrap()
            .grad
            .unwrap();
        let x: Vec<f64> = widen(&d.x);
        let objective = |x: &[f64]| -> f64 {
            let l = cpu::cross_entropy_f64(Tensor::new(x, &case.shape), target, &opts).unwrap();
            case.grad_output as f64 * l.iter().sum::<f64>()
        };
        if objective(&x).is_nan() {
            // A mean over no counted rows is NaN; its gradient is zero, as PyTorch's is.
            prop_assert!(grad.data.iter().all(|&g| g == 0.0), "{case:?}");
            return Ok(());
        }
        let h = 1e-6;
        for i in 0..x.len() {
            let (mut up, mut down) = (x.clone(), x.clone());
            up[i] += h;
            down[i] -= h;
            let fd = (objective(&up) - objective(&down)) / (2.0 * h);
            let g = grad.data[i] as f64;
            prop_assert!(
                (g - fd).abs() <= 1e-5 + 1e-4 * fd.abs() || (fd.is_nan() && g.is_nan()),
                "{case:?}: element {i}: analytic {g}, finite difference {fd}"
            );
        }
    }
}

/// The in-place backward overwrites the logits with bitwise the out-of-place gradient: rows
/// of C % 4 != 0 (written a value at a time at their ends), C % 4 == 0 (written 8 at a time
/// on CPU adapters with SHADER_INT64), with every option or none (the plain loop), and rows
/// split across workgroups.
#[test]
fn in_place_gradient_is_bitwise_the_out_of_place_one() {
    for (n, c, every_option) in [
        (300, 1037, true),
        (300, 1024, true),
        (300, 1024, false),
        (3, 20000, false),
    ] {
        let mut rng = Rng(3);
        let x = rng.logits(n * c, 4.0);
        let t: Vec<i64> = (0..n)
            .map(|i| {
                if i % 7 == 0 {
                    -100
                } else {
                    rng.below(c) as i64
                }
            })
            .collect();
        let w: Vec<f32> = (0..c).map(|_| rng.uniform()).collect();
        let (shape, tshape) = ([n, c], [n]);
        let target = Target::I64(Tensor::new(&t, &tshape));
        let opts = match every_option {
            true => LossOptions {
                weight: Some(&w),
                label_smoothing: 0.1,
                z_loss: 1e-4,
                softcap: Some(15.0),
                ..Default::default()
            },
            false => LossOptions::default(),
        };
        let b = BackwardOptions { grad_output: 1.0 };
        let call = |grad| {
            LossCall::cross_entropy(Tensor::new(&x, &shape), target)
                .options(opts)
                .grad(grad)
                .grad_output(b.grad_output)
                .lse(true)
        };
        let out = ctx().run(&call(Grad::Returned)).unwrap();
        let inp = ctx().run(&call(Grad::InPlace)).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let grad = out.grad.unwrap().data;
        // The in-place gradient now comes back in `.grad` (the caller's slice is not written).
        let logits = inp.grad.expect("the in-place gradient is returned").data;
        assert_eq!(bits(&logits), bits(&grad), "{n}x{c} {every_option}");
        assert_eq!(bits(&inp.loss.data), bits(&out.loss.data));
        assert_eq!(bits(&inp.lse.unwrap().data), bits(&out.lse.unwrap().data));
        // Ignored rows have an exactly zero gradient; others do not.
        assert!(logits[..c].iter().all(|&g| g == 0.0));
        assert!(logits[c..].iter().any(|&g| g != 0.0));
        // And it is the gradient: the CPU reference's, within f32 rounding.
        let cpu = cpu::cross_entropy_backward(Tensor::new(&x, &shape), target, &opts, &b).unwrap();
        let what = format!("{n}x{c} {every_option} in place");
        assert_close(&what, &logits, &widen(&cpu.grad.unwrap().data), 1e-6, 1e-3);
    }
}

/// Every target ignored: zero gradient and a NaN mean, as in PyTorch.
#[test]
fn all_ignored_gives_zero_gradient_and_nan_mean() {
    let x = vec![0.3f32; 4 * 5];
    let t = [-100i64; 4];
    let (shape, tshape) = ([4, 5], [4]);
    let target = Target::I64(Tensor::new(&t, &tshape));
    let out = ctx()
        .cross_entropy_backward(
            Tensor::new(&x, &shape),
            target,
            &Default::default(),
            &Default::default(),
        )
        .unwrap();
    assert!(out.loss.scalar().is_nan());
    assert!(out.grad.unwrap().data.iter().all(|&g| g.to_bits() == 0));
}

/// log_softmax_backward and softmax_backward on the GPU agree with the CPU, and with the
/// identities that tie them to the loss gradient:
///   ∇ Σ_n -w[y]·log_softmax(x)[y] = log_softmax_backward(-w[y]·onehot, log_softmax(x))
///   softmax_backward(gy, softmax(x)) = log_softmax_backward(gy·softmax(x), log_softmax(x))
#[test]
fn softmax_backward_building_blocks() {
    let mut rng = Rng(4);
    for (shape, dim) in [
        (vec![17usize, 33], 1i64),
        (vec![3, 7, 5], 1),
        (vec![4, 6, 9], -1),
        (vec![40], 0),
    ] {
        let x = rng.logits(shape.iter().product(), 3.0);
        let gy = rng.logits(x.len(), 1.0);
        let input = Tensor::new(&x, &shape);
        let lp = cpu::log_softmax(input, dim).unwrap();
        let sm = cpu::softmax(input, dim).unwrap();
        let (gyt, lpt, smt) = (
            Tensor::new(&gy, &shape),
            Tensor::new(&lp.data, &shape),
            Tensor::new(&sm.data, &shape),
        );
        let gpu = ctx().log_softmax_backward(gyt, lpt, dim).unwrap();
        let reference = cpu::log_softmax_backward(gyt, lpt, dim).unwrap();
        assert_close(
            "log_softmax_backward",
            &gpu.data,
            &widen(&reference.data),
            1e-5,
            1e-4,
        );
        let gpu = ctx().softmax_backward(gyt, smt, dim).unwrap();
        let reference = cpu::softmax_backward(gyt, smt, dim).unwrap();
        assert_close(
            "softmax_backward",
            &gpu.data,
            &widen(&reference.data),
            1e-6,
            1e-4,
        );
        let weighted: Vec<f32> = gy.iter().zip(&sm.data).map(|(g, s)| g * s).collect();
        let via_log = cpu::log_softmax_backward(Tensor::new(&weighted, &shape), lpt, dim).unwrap();
        assert_close(
            "softmax identity",
            &reference.data,
            &widen(&via_log.data),
            1e-6,
            1e-4,
        );
    }
    // Against the loss gradient (sum reduction, [N, C]).
    let (n, c) = (9, 13);
    let x = rng.logits(n * c, 2.0);
    let t: Vec<i64> = (0..n).map(|_| rng.below(c) as i64).collect();
    let w: Vec<f32> = (0..c).map(|_| rng.uniform() + 0.5).collect();
    let (shape, tshape) = ([n, c], [n]);
    let opts = LossOptions {
        weight: Some(&w),
        reduction: Reduction::Sum,
        ..Default::default()
    };
    let grad = ctx()
        .cross_entropy_backward(
            Tensor::new(&x, &shape),
            Target::I64(Tensor::new(&t, &tshape)),
            &opts,
            &Default::default(),
        )
        .unwrap()
        .grad
        .unwrap();
    let mut gy = vec![0f32; n * c];
    for (r, &y) in t.iter().enumerate() {
        gy[r * c + y as usize] = -w[y as usize];
    }
    let lp = ctx().log_softmax(Tensor::new(&x, &shape), 1).unwrap();
    let composed = ctx()
        .log_softmax_backward(Tensor::new(&gy, &shape), Tensor::new(&lp.data, &shape), 1)
        .unwrap();
    assert_close("composed", &grad.data, &widen(&composed.data), 1e-6, 1e-4);
}
