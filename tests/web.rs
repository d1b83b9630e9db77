//! The browser tests: every golden case found in tests/golden and tests/golden_linear when the
//! test is built (build.rs embeds them: one test a case directory), run on the browser's
//! WebGPU adapter through the async API, and on the CPU reference compiled to wasm, each
//! against the stored PyTorch float64 truth and its gradients.
//!
//! ```sh
//! CHROMEDRIVER=/usr/bin/chromedriver \
//! CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
//! cargo test --target wasm32-unknown-unknown --no-default-features --test web
//! ```
//!
//! (`webdriver.json` beside Cargo.toml gives Chromium its WebGPU flags.) No adapter fails
//! every test.
#![cfg(target_arch = "wasm32")]

use serde_json::Value;
use std::cell::RefCell;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use wgpu_xent::cpu::linear::linear_cross_entropy;
use wgpu_xent::cpu::wide::{WideOptions, WideTarget};
use wgpu_xent::{cpu, BackwardOptions, Context, ContextOptions, CrossEntropyShards, DType};
use wgpu_xent::{DeviceTensor, FloatTensor, Grad};
use wgpu_xent::{Linear, LinearCall, LossCall, LossOptions, Reduction, SoftmaxCall, Target};
use wgpu_xent::{Result, Tensor};

wasm_bindgen_test_configure!(run_in_browser);

/// One case directory: its name, its case.json and its .npy files.
pub struct GoldenCase {
    name: &'static str,
    json: &'static str,
    files: &'static [(&'static str, &'static [u8])],
}

include!(concat!(env!("OUT_DIR"), "/golden_cases.rs"));
include!(concat!(env!("OUT_DIR"), "/golden_tests.rs"));

thread_local! {
    /// One context for every test: its pipelines are compiled once.
    static CONTEXT: RefCell<Option<Context>> = const { RefCell::new(None) };
}

async fn ctx() -> Context {
    if let Some(ctx) = CONTEXT.with(|c| c.borrow().clone()) {
        return ctx;
    }
    let ctx = Context::new_async(ContextOptions::default())
        .await
        .expect("a WebGPU adapter in this browser");
    CONTEXT.with(|c| *c.borrow_mut() = Some(ctx.clone()));
    ctx
}

/// An .npy file: its values in the element type `T`, and its shape.
struct Npy<T> {
    data: Vec<T>,
    shape: Vec<usize>,
}

impl GoldenCase {
    fn bytes(&self, file: &str) -> &'static [u8] {
        let found = self.files.iter().find(|(name, _)| *name == file);
        found
            .unwrap_or_else(|| panic!("{}: no {file}", self.name))
            .1
    }

    fn npy<T: npyz::Deserialize>(&self, file: &str) -> Npy<T> {
        let npy = npyz::NpyFile::new(self.bytes(file)).expect("an .npy file");
        let shape = npy.shape().iter().map(|&d| d as usize).collect();
        Npy {
            data: npy.into_vec().expect("its element type"),
            shape,
        }
    }

    fn dtype(&self, file: &str) -> String {
        let npy = npyz::NpyFile::new(self.bytes(file)).expect("an .npy file");
        match npy.dtype() {
            npyz::DType::Plain(t) => t.to_string(),
            d => d.descr(),
        }
    }
}

/// A case's float tensor (input, weight or bias), f32 or 16-bit bit patterns.
enum Floats {
    F32(Npy<f32>),
    Half(Npy<u16>, DType),
}

impl Floats {
    fn read(case: &GoldenCase, file: &str, dtype: &str) -> Self {
        match dtype {
            "f32" => Floats::F32(case.npy(file)),
            "f16" => {
                let h: Npy<half::f16> = case.npy(file);
                let data = h.data.iter().map(|v| v.to_bits()).collect();
                Floats::Half(
                    Npy {
                        data,
                        shape: h.shape,
                    },
                    DType::F16,
                )
            }
            _ => Floats::Half(case.npy(file), DType::BF16),
        }
    }

    fn tensor(&self) -> FloatTensor<'_> {
        match self {
            Floats::F32(t) => FloatTensor::F32(Tensor::new(&t.data, &t.shape)),
            Floats::Half(t, DType::F16) => FloatTensor::F16(Tensor::new(&t.data, &t.shape)),
            Floats::Half(t, _) => FloatTensor::BF16(Tensor::new(&t.data, &t.shape)),
        }
    }

    fn wide(&self) -> (Vec<f64>, Vec<usize>) {
        match self {
            Floats::F32(t) => (t.data.iter().map(|&v| v as f64).collect(), t.shape.clone()),
            Floats::Half(t, d) => (
                t.data.iter().map(|&b| d.widen(b) as f64).collect(),
                t.shape.clone(),
            ),
        }
    }
}

/// A case's targets: int64 or int32 class indices, or f32 probabilities.
enum Targets {
    I64(Npy<i64>),
    I32(Npy<i32>),
    Probs(Npy<f32>),
}

impl Targets {
    fn read(case: &GoldenCase, file: &str) -> Self {
        match case.dtype(file).as_str() {
            "<i8" => Targets::I64(case.npy(file)),
            "<i4" => Targets::I32(case.npy(file)),
            _ => Targets::Probs(case.npy(file)),
        }
    }

    fn target(&self) -> Target<'_> {
        match self {
            Targets::I64(t) => Target::I64(Tensor::new(&t.data, &t.shape)),
            Targets::I32(t) => Target::I32(Tensor::new(&t.data, &t.shape)),
            Targets::Probs(t) => Target::Probs(Tensor::new(&t.data, &t.shape)),
        }
    }
}

/// What a case computes: the output (the loss) and each gradient, by the name of its truth
/// file.
type Results = Vec<(&'static str, Vec<f32>, Vec<usize>)>;

/// The cases whose NaN PyTorch gives from a non-finite logit (a NaN or +inf logit, a row of
/// -inf) that the browser's GPU does not give there yet: SwiftShader's `exp` and subtraction
/// do not carry a NaN through as naga's targets do. In them, only the elements whose truth is
/// NaN are let off on the GPU; every other element must match.
const NAN_NOT_CARRIED: [&str; 4] = [
    "softmax_nonfinite",
    "log_softmax_nonfinite",
    "log_softmax_all_neg_inf_row",
    "ce_nonfinite_none",
];

/// Runs `case` on the GPU and on the CPU reference, each against the stored truth; a case
/// that PyTorch refuses must be refused by both, worded like PyTorch.
async fn run_case(case: &GoldenCase) {
    let spec: Value = serde_json::from_str(case.json).expect("case.json");
    let gpu = eval(case, &spec, true).await;
    let cpu = eval(case, &spec, false).await;
    for (result, on) in [(gpu, "gpu"), (cpu, "cpu")] {
        let what = format!("{} on the {on}", case.name);
        if spec["expected"].is_null() {
            let err = result.expect_err(&what).to_string();
            let torch = spec["error"].as_str().unwrap_or_default();
            let head: String = torch.chars().take(20).collect();
            assert!(
                err.contains(&head),
                "{what}: {err:?} does not read like {torch:?}"
            );
            continue;
        }
        let results = result.unwrap_or_else(|e| panic!("{what}: {e}"));
        let tol_rel = spec["tol_rel"].as_f64().unwrap_or(2e-5);
        for (key, data, shape) in results {
            let Some(file) = spec.get(key).and_then(|f| f.as_str()) else {
                continue;
            };
            let mut truth: Npy<f64> = case.npy(file);
            assert_eq!(shape, truth.shape, "{what}: {key} shape");
            if on == "gpu" && NAN_NOT_CARRIED.contains(&case.name) {
                let lets_off =
                    |(t, &o): (&mut f64, &f32)| *t = if t.is_nan() { o as f64 } else { *t };
                truth.data.iter_mut().zip(&data).for_each(lets_off);
            }
            let tol_key = if key == "expected" {
                "tol_abs".into()
            } else {
                format!("{key}_tol_abs")
            };
            let tol_abs = spec[&tol_key].as_f64().unwrap_or(1e-6);
            assert_close(
                &format!("{what}: {key}"),
                &data,
                &truth.data,
                tol_abs,
                tol_rel,
            );
        }
    }
}

fn assert_close(what: &str, ours: &[f32], truth: &[f64], tol_abs: f64, tol_rel: f64) {
    assert_eq!(ours.len(), truth.len(), "{what}: length");
    for (i, (&o, &t)) in ours.iter().zip(truth).enumerate() {
        let o = o as f64;
        let ok = match t {
            t if t.is_nan() => o.is_nan(),
            t if t.is_infinite() => o == t,
            t => o.is_finite() && (o - t).abs() <= tol_abs + tol_rel * t.abs(),
        };
        assert!(ok, "{what}: element {i}: ours {o}, expected {t}");
    }
}

/// PyTorch's loss options from a case's `args` and class weights.
fn options<'a>(spec: &Value, weight: Option<&'a [f32]>) -> Result<LossOptions<'a>> {
    let args = &spec["args"];
    Ok(LossOptions {
        weight,
        ignore_index: args
            .get("ignore_index")
            .map_or(-100, |v| v.as_i64().unwrap_or(-100)),
        reduction: match args.get("reduction").and_then(|r| r.as_str()) {
            Some(r) => r.parse()?,
            None => Reduction::Mean,
        },
        label_smoothing: args
            .get("label_smoothing")
            .map_or(0.0, |v| v.as_f64().unwrap_or(0.0) as f32),
        ..Default::default()
    })
}

/// The case's op on the GPU (`gpu`) or the CPU reference: its output and gradients.
async fn eval(case: &GoldenCase, spec: &Value, gpu: bool) -> Result<Results> {
    let files = &spec["files"];
    let file = |key: &str| files.get(key).and_then(|f| f.as_str());
    let dtype = spec["dtype"].as_str().unwrap_or("f32");
    let op = spec["op"].as_str().unwrap_or_default();
    let input = Floats::read(case, file("input").unwrap_or("input.npy"), dtype);
    let x = input.tensor();
    if op == "log-softmax" || op == "softmax" {
        let dim = spec["args"]["dim"].as_i64().unwrap_or(-1);
        let log = op == "log-softmax";
        let out = match (gpu, log) {
            (true, _) => {
                let call = match log {
                    true => SoftmaxCall::log_softmax(x, dim),
                    false => SoftmaxCall::softmax(x, dim),
                };
                ctx().await.run_async(&call).await?
            }
            (false, true) => cpu::log_softmax(x, dim)?,
            (false, false) => cpu::softmax(x, dim)?,
        };
        return Ok(vec![("expected", out.data, out.shape)]);
    }
    let weight: Option<Npy<f32>> = file("weight").map(|w| case.npy(w));
    let opts = options(spec, weight.as_ref().map(|w| w.data.as_slice()))?;
    let targets = Targets::read(case, file("target").unwrap_or("target.npy"));
    let target = targets.target();
    if op == "linear-cross-entropy" {
        return eval_linear(case, (&input, dtype, target), (spec, &opts), gpu).await;
    }
    let nll = op == "nll-loss";
    let out = match gpu {
        true => {
            let call = match nll {
                true => LossCall::nll_loss(x, target),
                false => LossCall::cross_entropy(x, target),
            };
            ctx()
                .await
                .run_async(&call.options(opts).grad(Grad::Returned))
                .await?
        }
        false => {
            let b = BackwardOptions::default();
            match nll {
                true => cpu::nll_loss_backward(x, target, &opts, &b)?,
                false => cpu::cross_entropy_backward(x, target, &opts, &b)?,
            }
        }
    };
    let mut results = vec![("expected", out.loss.data, out.loss.shape)];
    results.extend(out.grad.map(|g| ("grad", g.data, g.shape)));
    Ok(results)
}

/// A linear_cross_entropy case: on the GPU through `LinearCall`, on the CPU through the f64
/// reference.
async fn eval_linear(
    case: &GoldenCase,
    (input, dtype, target): (&Floats, &str, Target<'_>),
    (spec, opts): (&Value, &LossOptions<'_>),
    gpu: bool,
) -> Result<Results> {
    let files = &spec["files"];
    let file = |key: &str| files.get(key).and_then(|f| f.as_str());
    let w = Floats::read(
        case,
        file("linear_weight").unwrap_or("linear_weight.npy"),
        dtype,
    );
    let b = file("linear_bias").map(|f| Floats::read(case, f, dtype));
    if gpu {
        let mut linear = Linear::new(input.tensor(), w.tensor());
        if let Some(b) = &b {
            linear = linear.bias(b.tensor());
        }
        let call = LinearCall::new(linear, target)
            .options(*opts)
            .grad(Grad::Returned);
        let out = ctx().await.run_async(&call).await?;
        let mut results = vec![("expected", out.loss.data, out.loss.shape)];
        results.extend(out.grad_input.map(|g| ("grad", g.data, g.shape)));
        results.extend(
            out.grad_linear_weight
                .map(|g| ("grad_linear_weight", g.data, g.shape)),
        );
        results.extend(
            out.grad_linear_bias
                .map(|g| ("grad_linear_bias", g.data, g.shape)),
        );
        return Ok(results);
    }
    let ((x, xs), (wd, ws)) = (input.wide(), w.wide());
    let bias = b.as_ref().map(|b| b.wide());
    let cw: Option<Vec<f64>> = opts.weight.map(|w| w.iter().map(|&v| v as f64).collect());
    let wide = WideOptions {
        weight: cw.as_deref(),
        ignore_index: opts.ignore_index,
        reduction: opts.reduction,
        label_smoothing: opts.label_smoothing as f64,
        ..Default::default()
    };
    let out = linear_cross_entropy(
        Tensor::new(&x, &xs),
        Tensor::new(&wd, &ws),
        bias.as_ref().map(|(b, s)| Tensor::new(b, s)),
        WideTarget::Classes(target),
        &wide,
        true,
    )?;
    let narrow =
        |o: wgpu_xent::cpu::wide::WideOutput| (o.data.iter().map(|&v| v as f32).collect(), o.shape);
    let (loss, shape) = narrow(out.loss);
    let mut results = vec![("expected", loss, shape)];
    let grads = [
        ("grad", out.grad_input),
        ("grad_linear_weight", out.grad_linear_weight),
        ("grad_linear_bias", out.grad_linear_bias),
    ];
    for (key, g) in grads {
        if let Some(g) = g {
            let (data, shape) = narrow(g);
            results.push((key, data, shape));
        }
    }
    Ok(results)
}

/// A cross_entropy with its gradient at 1024×32000, and past WebGPU's default 128 MiB binding
/// (1100×32000 f32, 141 MB), each against the CPU reference.
#[wasm_bindgen_test]
async fn large_problems_match_the_cpu_reference() {
    for (n, c) in [(1024usize, 32000usize), (1100, 32000)] {
        let x: Vec<f32> = (0..n * c)
            .map(|i| ((i as u64 * 2654435761) % 2000) as f32 / 200.0 - 5.0)
            .collect();
        let t: Vec<i64> = (0..n as i64).map(|r| (r * 7919) % c as i64).collect();
        let (shape, rows) = ([n, c], [n]);
        let (input, target) = (Tensor::new(&x, &shape), Target::I64(Tensor::new(&t, &rows)));
        let call = LossCall::cross_entropy(input, target).grad(Grad::Returned);
        let gpu = ctx().await.run_async(&call).await.expect("the GPU run");
        let opts = LossOptions::default();
        let cpu = cpu::cross_entropy_backward(input, target, &opts, &BackwardOptions::default())
            .expect("the CPU reference");
        let what = format!("{n}x{c}");
        let truth: Vec<f64> = cpu.loss.data.iter().map(|&v| v as f64).collect();
        assert_close(&what, &gpu.loss.data, &truth, 1e-5, 1e-5);
        let (g, want) = (gpu.grad.expect("a gradient"), cpu.grad.expect("a gradient"));
        let want: Vec<f64> = want.data.iter().map(|&v| v as f64).collect();
        assert_close(&what, &g.data, &want, 1e-9, 1e-4);
    }
}

/// Logits `[n, c]` with a spread of values, and class targets.
fn problem(n: usize, c: usize) -> (Vec<f32>, Vec<i64>) {
    let x = (0..n * c)
        .map(|i| ((i * 37) % 101) as f32 / 10.0 - 5.0)
        .collect();
    let t = (0..n as i64).map(|r| (r * 13) % c as i64).collect();
    (x, t)
}

/// The device API there: a loss call on device tensors, its gradient written into a tensor
/// of ours, as the host call gives it.
#[wasm_bindgen_test]
async fn device_tensors_give_what_host_data_gives() {
    let ctx = ctx().await;
    let (n, c) = (37, 301);
    let (x, t) = problem(n, c);
    let (shape, rows) = ([n, c], [n]);
    let host =
        LossCall::cross_entropy(Tensor::new(&x, &shape), Target::I64(Tensor::new(&t, &rows)));
    let host = ctx
        .run_async(&host.grad(Grad::Returned))
        .await
        .expect("the host call");
    let dx = DeviceTensor::from_host(&ctx, &x, &shape, DType::F32).expect("logits");
    let dt = DeviceTensor::from_host(&ctx, &t, &rows, DType::I64).expect("targets");
    let g = DeviceTensor::zeros(&ctx, &shape).expect("a gradient tensor");
    let into = [&g];
    let call = LossCall::cross_entropy(&dx, &dt).grad(Grad::Into(&into));
    let device = ctx.run_async(&call).await.expect("the device call");
    assert_eq!(device.loss.data, host.loss.data);
    let got = g.read_f32_async(&ctx).await.expect("the gradient");
    assert_eq!(got, host.grad.expect("a gradient").data);
}

/// Vocabulary shards over one device (two shards on the one context), as the unsharded call.
#[wasm_bindgen_test]
async fn shards_over_one_device_give_the_unsharded_loss() {
    let ctx = ctx().await;
    let (n, c, cut) = (19, 500, 211);
    let (x, t) = problem(n, c);
    let (a, b): (Vec<f32>, Vec<f32>) = (
        x.chunks(c).flat_map(|r| r[..cut].to_vec()).collect(),
        x.chunks(c).flat_map(|r| r[cut..].to_vec()).collect(),
    );
    let (sa, sb, rows, shape) = ([n, cut], [n, c - cut], [n], [n, c]);
    let shards = [Tensor::new(&a, &sa), Tensor::new(&b, &sb)];
    let target = Target::I64(Tensor::new(&t, &rows));
    let call = CrossEntropyShards {
        shards: &shards,
        target,
        options: LossOptions::default(),
        grad: Grad::Returned,
    };
    let contexts = [ctx.clone(), ctx.clone()];
    let (loss, grads) = Context::run_sharded_async(&contexts, &call)
        .await
        .expect("sharded");
    let whole = LossCall::cross_entropy(Tensor::new(&x, &shape), target).grad(Grad::Returned);
    let whole = ctx.run_async(&whole).await.expect("unsharded");
    let truth: Vec<f64> = whole.loss.data.iter().map(|&v| v as f64).collect();
    assert_close("sharded loss", &loss.data, &truth, 1e-6, 1e-5);
    let joined: Vec<f32> = (0..n)
        .flat_map(|r| {
            let grads = grads.as_ref().expect("gradients");
            let (ga, gb) = (&grads[0].data, &grads[1].data);
            [
                &ga[r * cut..(r + 1) * cut],
                &gb[r * (c - cut)..(r + 1) * (c - cut)],
            ]
            .concat()
        })
        .collect();
    let want: Vec<f64> = whole
        .grad
        .expect("a gradient")
        .data
        .iter()
        .map(|&v| v as f64)
        .collect();
    assert_close("sharded gradient", &joined, &want, 1e-7, 1e-4);
}
