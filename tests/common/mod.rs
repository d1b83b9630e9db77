//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::OnceLock;
use wgpu_xent::Context;

/// The GPU context of the adapter chosen by `WGPU_BACKEND`. A missing adapter **fails** the
/// test (with the error telling how to install one); it never skips.
pub fn ctx() -> &'static Context {
    static CTX: OnceLock<Context> = OnceLock::new();
    CTX.get_or_init(|| {
        match Context::with_options(wgpu_xent::ContextOptions::from_env().unwrap()) {
            Ok(ctx) => {
                eprintln!("GPU tests run on: {:?}", ctx.adapter_info());
                ctx
            }
            Err(e) => panic!("GPU tests need an adapter and found none: {e}"),
        }
    })
}

/// Devices for vocabulary shards: the test's context, a second device on its adapter, and
/// one whose bindings hold 4 KiB (a shard of many rows is cut into row chunks there).
pub fn shard_devices() -> &'static [Context] {
    static DEVICES: OnceLock<Vec<Context>> = OnceLock::new();
    DEVICES.get_or_init(|| {
        let small = wgpu_xent::ContextOptions {
            max_binding_bytes: Some(4096),
            ..wgpu_xent::ContextOptions::from_env().unwrap()
        };
        vec![
            ctx().clone(),
            Context::with_options(wgpu_xent::ContextOptions::from_env().unwrap())
                .expect("a second device"),
            Context::with_options(small).expect("a device with small bindings"),
        ]
    })
}

/// Asserts `|ours - truth| <= tol_abs + tol_rel·|truth|` elementwise, NaN where the truth is
/// NaN and the same infinities: the rule of the golden cases.
pub fn assert_close(what: &str, ours: &[f32], truth: &[f64], tol_abs: f64, tol_rel: f64) {
    assert_eq!(ours.len(), truth.len(), "{what}: length");
    for (i, (&o, &t)) in ours.iter().zip(truth).enumerate() {
        let o = o as f64;
        let ok = if t.is_nan() {
            o.is_nan()
        } else if t.is_infinite() {
            o == t
        } else {
            o.is_finite() && (o - t).abs() <= tol_abs + tol_rel * t.abs()
        };
        assert!(
            ok,
            "{what}: element {i}: ours {o}, expected {t} (tol_abs {tol_abs}, tol_rel {tol_rel})"
        );
    }
}

#[path = "../../src/bin/xent/rng.rs"]
mod rng;
#[allow(unused_imports)] // not every test file generates data
pub use rng::Rng;

/// f32 results widened, as the truth `assert_close` compares with.
pub fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Asserts a loss and its gradient against the CPU reference's, each with its own
/// `(tol_abs, tol_rel)`.
pub fn assert_loss_and_grad(
    what: &str,
    (loss, grad): (&[f32], &[f32]),
    reference: wgpu_xent::LossAndGrad,
    loss_tol: (f64, f64),
    grad_tol: (f64, f64),
) {
    let truth = widen(&reference.loss.data);
    assert_close(
        &format!("{what} loss"),
        loss,
        &truth,
        loss_tol.0,
        loss_tol.1,
    );
    let truth = widen(&reference.grad.expect("a reference gradient").data);
    assert_close(
        &format!("{what} gradient"),
        grad,
        &truth,
        grad_tol.0,
        grad_tol.1,
    );
}

/// An array of a `.npy` file: its elements in C order and its shape (`[]` for 0-d).
pub struct NpyArray<T> {
    pub data: Vec<T>,
    pub shape: Vec<usize>,
}

/// Reads a `.npy` file of element type `T` with `npyz` (panics, naming the file, on any error).
pub fn read_npy<T: npyz::Deserialize>(path: impl AsRef<std::path::Path>) -> NpyArray<T> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let npy = npyz::NpyFile::new(std::io::BufReader::new(file))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let shape = npy.shape().iter().map(|&d| d as usize).collect();
    let data = npy
        .into_vec::<T>()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    NpyArray { data, shape }
}

/// The element type written in a `.npy` header, e.g. `"<f4"`.
pub fn npy_dtype(path: impl AsRef<std::path::Path>) -> String {
    let path = path.as_ref();
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let npy = npyz::NpyFile::new(std::io::BufReader::new(file))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match npy.dtype() {
        npyz::DType::Plain(t) => t.to_string(),
        d => panic!("{}: not a plain dtype: {}", path.display(), d.descr()),
    }
}

/// Writes a float32 `.npy` file of `shape` (`[]` for 0-d) with `npyz`.
pub fn write_npy_f32(path: impl AsRef<std::path::Path>, data: &[f32], shape: &[usize]) {
    use npyz::WriterBuilder;
    let path = path.as_ref();
    let dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let file = std::fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&dims)
        .writer(std::io::BufWriter::new(file))
        .begin_nd()
        .unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
}

/// Runs `test` on a thread of its own and fails when it takes longer than `secs`: a test of
/// locks or cancellation fails, never hangs the suite, when it deadlocks.
pub fn within(secs: u64, test: impl FnOnce() + Send + 'static) {
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        test();
        let _ = tx.send(());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(secs)) {
        Ok(()) => worker.join().expect("the test thread ends"),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            // The test panicked: its own message is the failure.
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("no answer within {secs} s: a run waits for something that cannot happen")
        }
    }
}
