//! The browser demo's wasm side (examples/web/index.html draws what it returns): a softmax
//! regression trained in the tab with the fused `linear_cross_entropy` loss and gradients
//! through one prepared device call, each step's loss beside the f64 CPU reference's; and a
//! small benchmark of the losses on the browser's WebGPU adapter.
//!
//! Built by examples/web/build.sh (`cargo build --example web --target
//! wasm32-unknown-unknown`, then `wasm-bindgen --target web`).
#![cfg(target_arch = "wasm32")]

use wasm_bindgen::prelude::*;
use wgpu_xent::cpu::linear::linear_cross_entropy;
use wgpu_xent::cpu::wide::{WideOptions, WideTarget};
use wgpu_xent::{Context, ContextOptions, DType, DeviceLinear, DeviceTensor, Grad, LossCall};
use wgpu_xent::{SoftmaxCall, Target, Tensor, XentError};

/// The data set: `N` points of `D` features in `C` classes, each a noisy copy of its class's
/// centre (a fixed linear congruential generator, so every run trains on the same points).
const N: usize = 512;
const D: usize = 8;
const C: usize = 4;

struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

fn data() -> (Vec<f32>, Vec<i64>) {
    let mut rng = Rng(7);
    let centres: Vec<f32> = (0..C * D).map(|_| rng.uniform() * 4.0 - 2.0).collect();
    let targets: Vec<i64> = (0..N).map(|i| (i % C) as i64).collect();
    let x = (0..N * D)
        .map(|i| centres[targets[i / D] as usize * D + i % D] + (rng.uniform() - 0.5) * 2.5)
        .collect();
    (x, targets)
}

fn js(e: XentError) -> JsValue {
    JsValue::from_str(&e.to_string())
}

/// The CPU reference's loss of the model (`w`, `b`) on the data, in f64.
fn cpu_loss(x: &[f32], t: &[i64], w: &[f32], b: &[f32]) -> Result<f64, XentError> {
    let wide = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<_>>();
    let (x64, w64, b64) = (wide(x), wide(w), wide(b));
    let (xs, ws, bs, rows) = ([N, D], [C, D], [C], [N]);
    let out = linear_cross_entropy(
        Tensor::new(&x64, &xs),
        Tensor::new(&w64, &ws),
        Some(Tensor::new(&b64, &bs)),
        WideTarget::Classes(Target::I64(Tensor::new(t, &rows))),
        &WideOptions::default(),
        false,
    )?;
    Ok(out.loss.data[0])
}

/// Trains for `steps` steps of gradient descent at rate `lr`: one prepared `DeviceLinear`
/// with its gradients `Into` tensors of ours, the weights written before each run. Returns
/// JSON: the backend, each step's GPU and CPU loss, the largest difference between them,
/// and the accuracy at the end.
#[wasm_bindgen]
pub async fn train(steps: u32, lr: f32) -> Result<String, JsValue> {
    let ctx = Context::new_async(ContextOptions::default())
        .await
        .map_err(js)?;
    let (x, t) = data();
    let (mut w, mut b) = (vec![0f32; C * D], vec![0f32; C]);
    let dev = |v: &[f32], shape: &[usize]| DeviceTensor::from_host(&ctx, v, shape, DType::F32);
    let (xd, wd, bd) = (dev(&x, &[N, D]), dev(&w, &[C, D]), dev(&b, &[C]));
    let (xd, wd, bd) = (xd.map_err(js)?, wd.map_err(js)?, bd.map_err(js)?);
    let td = DeviceTensor::from_host(&ctx, &t, &[N], DType::I64).map_err(js)?;
    let (dx, dw, db) = (dev(&x, &[N, D]), dev(&w, &[C, D]), dev(&b, &[C]));
    let (dx, dw, db) = (dx.map_err(js)?, dw.map_err(js)?, db.map_err(js)?);
    let grads = [&dx, &dw, &db];
    let call = DeviceLinear::new(&xd, &wd, &td)
        .bias(&bd)
        .grad(Grad::Into(&grads));
    let step = ctx.prepare_async(&call).await.map_err(js)?;
    let (mut gpu, mut cpu) = (vec![], vec![]);
    for _ in 0..steps {
        ctx.queue()
            .write_buffer(wd.buffer(), wd.offset(), bytemuck::cast_slice(&w));
        ctx.queue()
            .write_buffer(bd.buffer(), bd.offset(), bytemuck::cast_slice(&b));
        let loss = step.run_async().await.map_err(js)?.loss.data[0];
        gpu.push(loss as f64);
        cpu.push(cpu_loss(&x, &t, &w, &b).map_err(js)?);
        let gw = dw.read_f32_async(&ctx).await.map_err(js)?;
        let gb = db.read_f32_async(&ctx).await.map_err(js)?;
        w.iter_mut().zip(&gw).for_each(|(p, g)| *p -= lr * g);
        b.iter_mut().zip(&gb).for_each(|(p, g)| *p -= lr * g);
    }
    let correct = (0..N)
        .filter(|&i| {
            let score = |k: usize| (0..D).map(|j| w[k * D + j] * x[i * D + j]).sum::<f32>() + b[k];
            (0..C).max_by(|&p, &q| score(p).total_cmp(&score(q))) == Some(t[i] as usize)
        })
        .count();
    let diff = gpu
        .iter()
        .zip(&cpu)
        .map(|(g, c)| (g - c).abs())
        .fold(0.0, f64::max);
    let result = serde_json::json!({
        "backend": format!("{:?}", ctx.info().adapter.backend),
        "gpu": gpu,
        "cpu": cpu,
        "max_diff": diff,
        "accuracy": correct as f64 / N as f64,
    });
    Ok(result.to_string())
}

/// The median milliseconds of `iters` runs of `run`, on the browser's clock.
async fn median_ms<T, F: std::future::Future<Output = Result<T, XentError>>>(
    iters: u32,
    mut run: impl FnMut() -> F,
) -> Result<f64, JsValue> {
    let mut ms = vec![];
    for _ in 0..iters.max(1) {
        let start = js_sys::Date::now();
        run().await.map_err(js)?;
        ms.push(js_sys::Date::now() - start);
    }
    ms.sort_by(f64::total_cmp);
    Ok(ms[ms.len() / 2])
}

/// Times cross_entropy, its fused forward and backward, and log_softmax over `[n, c]` logits,
/// each prepared once and run `iters` times: JSON rows of the op and its median ms (from the
/// run's start to its results read back).
#[wasm_bindgen]
pub async fn bench(n: u32, c: u32, iters: u32) -> Result<String, JsValue> {
    let ctx = Context::new_async(ContextOptions::default())
        .await
        .map_err(js)?;
    let (n, c) = (n as usize, c as usize);
    let x: Vec<f32> = (0..n * c).map(|i| ((i * 37) % 101) as f32 / 10.0).collect();
    let t: Vec<i64> = (0..n as i64).map(|r| (r * 13) % c as i64).collect();
    let (shape, rows) = ([n, c], [n]);
    let (input, target) = (Tensor::new(&x, &shape), Target::I64(Tensor::new(&t, &rows)));
    let forward = LossCall::cross_entropy(input, target);
    let forward = ctx.prepare_async(&forward).await.map_err(js)?;
    let fused = LossCall::cross_entropy(input, target).grad(Grad::Returned);
    let fused = ctx.prepare_async(&fused).await.map_err(js)?;
    let log_softmax = SoftmaxCall::log_softmax(input, -1);
    let log_softmax = ctx.prepare_async(&log_softmax).await.map_err(js)?;
    let rows = [
        (
            "cross_entropy",
            median_ms(iters, || forward.run_async()).await?,
        ),
        (
            "cross_entropy + backward",
            median_ms(iters, || fused.run_async()).await?,
        ),
        (
            "log_softmax",
            median_ms(iters, || log_softmax.run_async()).await?,
        ),
    ];
    let rows: Vec<_> = rows
        .iter()
        .map(|(op, ms)| serde_json::json!({ "op": op, "n": n, "c": c, "median_ms": ms }))
        .collect();
    Ok(serde_json::json!({ "rows": rows }).to_string())
}
