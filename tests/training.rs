//! A small training loop, as a user writes one: softmax regression trained with mini-batches
//! (the last one shorter) through one prepared call that lives in a struct beside its
//! `Context`. Every step must equal the one-shot call on the same batch, bit for bit.

mod common;

use common::Rng;
use wgpu_xent::{
    BackwardOptions, Context, Grad, LossAndGrad, LossCall, LossOptions, PreparedLoss, Reduction,
    Result, Target, Tensor,
};

const FEATURES: usize = 16;
const CLASSES: usize = 10;
const SAMPLES: usize = 300;
const BATCH: usize = 64; // 300 = 4·64 + 44: every epoch ends with a short batch

/// A linear classifier and the prepared loss that trains it: no lifetime ties them.
struct Trainer {
    ctx: Context,
    step: PreparedLoss,
    opts: LossOptions<'static>,
    w: Vec<f32>, // [FEATURES, CLASSES]
    b: Vec<f32>, // [CLASSES]
}

impl Trainer {
    fn new(ctx: &Context, opts: LossOptions<'static>, weight: Option<&[f32]>) -> Result<Self> {
        // Prepared once for a full batch; the data it is prepared with is replaced by run_batch.
        let logits = vec![0.0f32; BATCH * CLASSES];
        let target = vec![0i64; BATCH];
        let step = ctx.prepare(
            &LossCall::cross_entropy(
                Tensor::new(&logits, &[BATCH, CLASSES]),
                Target::I64(Tensor::new(&target, &[BATCH])),
            )
            .options(LossOptions { weight, ..opts })
            .grad(Grad::Returned),
        )?;
        Ok(Self {
            ctx: ctx.clone(),
            step,
            opts,
            w: vec![0.0; FEATURES * CLASSES],
            b: vec![0.0; CLASSES],
        })
    }

    fn logits(&self, x: &[f32]) -> Vec<f32> {
        let n = x.len() / FEATURES;
        let mut out = vec![0.0f32; n * CLASSES];
        for i in 0..n {
            for c in 0..CLASSES {
                let mut acc = self.b[c];
                for f in 0..FEATURES {
                    acc += x[i * FEATURES + f] * self.w[f * CLASSES + c];
                }
                out[i * CLASSES + c] = acc;
            }
        }
        out
    }

    /// One SGD step on a batch; returns the loss. Checks the prepared call against the
    /// one-shot call on the same batch.
    fn step(&mut self, x: &[f32], y: &[i64], weight: Option<&[f32]>, lr: f32) -> f32 {
        let n = y.len();
        let logits = self.logits(x);
        let shape = [n, CLASSES];
        let rows = [n];
        let target = || Target::I64(Tensor::new(y, &rows));
        let got = self
            .step
            .run_batch(Tensor::new(&logits, &shape), target(), weight)
            .expect("the prepared step runs");
        let want = self
            .ctx
            .cross_entropy_backward(
                Tensor::new(&logits, &shape),
                target(),
                &LossOptions {
                    weight,
                    ..self.opts
                },
                &BackwardOptions::default(),
            )
            .expect("the one-shot call runs");
        assert_bitwise(&got, &want, n);
        let g = got.grad.expect("a gradient").data;
        for i in 0..n {
            for c in 0..CLASSES {
                let d = g[i * CLASSES + c];
                self.b[c] -= lr * d;
                for f in 0..FEATURES {
                    self.w[f * CLASSES + c] -= lr * d * x[i * FEATURES + f];
                }
            }
        }
        got.loss.data[0]
    }
}

fn assert_bitwise(got: &LossAndGrad, want: &LossAndGrad, n: usize) {
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(got.loss.shape, want.loss.shape, "loss shape, batch of {n}");
    assert_eq!(
        bits(&got.loss.data),
        bits(&want.loss.data),
        "loss, batch of {n}"
    );
    let (g, w) = (got.grad.as_ref().unwrap(), want.grad.as_ref().unwrap());
    assert_eq!(g.shape, w.shape, "gradient shape, batch of {n}");
    assert_eq!(bits(&g.data), bits(&w.data), "gradient, batch of {n}");
}

/// Gaussian blobs: one centre per class, unit noise.
fn data(rng: &mut Rng) -> (Vec<f32>, Vec<i64>) {
    let centres: Vec<f32> = (0..CLASSES * FEATURES).map(|_| rng.normal(2.0)).collect();
    let mut x = Vec::with_capacity(SAMPLES * FEATURES);
    let mut y = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let c = rng.below(CLASSES);
        y.push(c as i64);
        x.extend((0..FEATURES).map(|f| centres[c * FEATURES + f] + rng.normal(1.0)));
    }
    (x, y)
}

/// Trains for a few epochs; returns the first and last epoch's mean loss.
fn train(opts: LossOptions<'static>, weights: Option<&dyn Fn(usize) -> Vec<f32>>) -> (f32, f32) {
    let mut rng = Rng(7);
    let (x, mut y) = data(&mut rng);
    if opts.ignore_index >= 0 {
        for t in y.iter_mut().step_by(7) {
            *t = opts.ignore_index;
        }
    }
    let first_weights = weights.map(|f| f(0));
    let mut t = Trainer::new(common::ctx(), opts, first_weights.as_deref()).expect("prepares");
    let mut epochs = vec![];
    for epoch in 0..4 {
        let w = weights.map(|f| f(epoch));
        let mut total = 0.0;
        let mut batches = 0;
        for start in (0..SAMPLES).step_by(BATCH) {
            let end = (start + BATCH).min(SAMPLES);
            let xb = &x[start * FEATURES..end * FEATURES];
            total += t.step(xb, &y[start..end], w.as_deref(), 0.1);
            batches += 1;
        }
        epochs.push(total / batches as f32);
    }
    (epochs[0], *epochs.last().unwrap())
}

#[test]
fn a_prepared_step_in_a_struct_equals_the_one_shot_call_on_every_batch() {
    let (first, last) = train(LossOptions::default(), None);
    assert!(
        last < 0.5 * first,
        "training lowers the loss: {first} then {last}"
    );
}

#[test]
fn new_class_weights_smoothing_and_ignored_targets_on_every_batch() {
    let opts = LossOptions {
        ignore_index: 3,
        label_smoothing: 0.1,
        ..LossOptions::default()
    };
    let weights = |epoch: usize| -> Vec<f32> {
        (0..CLASSES)
            .map(|c| 0.5 + ((c + epoch) % 4) as f32 * 0.25)
            .collect()
    };
    let (first, last) = train(opts, Some(&weights));
    assert!(
        last < first,
        "training lowers the loss: {first} then {last}"
    );
}

#[test]
fn a_small_batch_takes_three_dispatches_for_loss_and_gradient() {
    for reduction in [Reduction::Mean, Reduction::Sum] {
        let opts = LossOptions {
            reduction,
            ..LossOptions::default()
        };
        let t = Trainer::new(common::ctx(), opts, None).unwrap();
        let labels = t.step.dispatch_labels();
        assert!(labels.len() <= 3, "{reduction:?}: {labels:?}");
    }
}

#[test]
fn a_batch_that_does_not_fit_is_a_clear_error() {
    let ctx = common::ctx();
    let t = Trainer::new(ctx, LossOptions::default(), None).unwrap();
    let big = vec![0.0f32; (BATCH + 1) * CLASSES];
    let y = vec![0i64; BATCH + 1];
    let err = t
        .step
        .run_batch(
            Tensor::new(&big, &[BATCH + 1, CLASSES]),
            Target::I64(Tensor::new(&y, &[BATCH + 1])),
            None,
        )
        .unwrap_err();
    assert!(err.to_string().contains("fewer rows"), "{err}");
    let wide = vec![0.0f32; 4 * (CLASSES + 1)];
    let err = t
        .step
        .run_batch(
            Tensor::new(&wide, &[4, CLASSES + 1]),
            Target::I64(Tensor::new(&y[..4], &[4])),
            None,
        )
        .unwrap_err();
    assert!(err.to_string().contains("fewer rows"), "{err}");
    let bad = vec![CLASSES as i64; 4];
    let err = t
        .step
        .run_batch(
            Tensor::new(&big[..4 * CLASSES], &[4, CLASSES]),
            Target::I64(Tensor::new(&bad, &[4])),
            None,
        )
        .unwrap_err();
    assert!(err.to_string().contains("out of bounds"), "{err}");
    let w = vec![1.0f32; CLASSES];
    let err = t
        .step
        .run_batch(
            Tensor::new(&big[..4 * CLASSES], &[4, CLASSES]),
            Target::I64(Tensor::new(&y[..4], &[4])),
            Some(&w),
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("without LossOptions::weight"),
        "{err}"
    );
}

#[test]
fn batches_of_any_size_up_to_the_prepared_one_for_every_reduction() {
    let ctx = common::ctx();
    let mut rng = Rng(3);
    let logits: Vec<f32> = (0..BATCH * CLASSES).map(|_| rng.normal(3.0)).collect();
    let y: Vec<i64> = (0..BATCH).map(|_| rng.below(CLASSES) as i64).collect();
    for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        let opts = LossOptions {
            reduction,
            ..LossOptions::default()
        };
        let t = Trainer::new(ctx, opts, None).unwrap();
        for n in [BATCH, 44, BATCH, 1, 33, 44] {
            let (x, rows) = (&logits[..n * CLASSES], [n]);
            let shape = [n, CLASSES];
            let target = || Target::I64(Tensor::new(&y[..n], &rows));
            let got = t
                .step
                .run_batch(Tensor::new(x, &shape), target(), None)
                .unwrap();
            let want = ctx
                .cross_entropy_backward(
                    Tensor::new(x, &shape),
                    target(),
                    &opts,
                    &BackwardOptions::default(),
                )
                .unwrap();
            assert_bitwise(&got, &want, n);
        }
    }
}
