//! The golden cases computed by PyTorch in float64 (tests/golden, copied from the project's
//! shared set), run through the library on the GPU and on the CPU reference.

mod common;

use common::{assert_close, ctx, npy_dtype, read_npy, NpyArray};
use serde_json::Value;
use std::path::{Path, PathBuf};
use wgpu_xent::{
    cpu, BackwardOptions, DType, FloatTensor, Grad, LossAndGrad, LossCall, LossOptions, Reduction,
    Result, Target, Tensor,
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn read_f64(path: &Path) -> (Vec<f64>, Vec<usize>) {
    let npy = npyz::NpyFile::new(std::fs::File::open(path).unwrap()).unwrap();
    let shape = npy.shape().iter().map(|&d| d as usize).collect();
    (npy.into_vec::<f64>().unwrap(), shape)
}

#[derive(Clone, Copy, PartialEq)]
enum Device {
    Gpu,
    Cpu,
}

/// A case's logits widened to f32, and their 16-bit patterns and dtype for f16 / bf16: f32
/// and f16 inputs by the file's dtype, bf16 as uint16 bit patterns.
type Input = (NpyArray<f32>, Option<(Vec<u16>, DType)>);

fn read_input(path: &Path, dtype: &str) -> Input {
    let (bits, dtype) = match dtype {
        "f32" => return (read_npy::<f32>(path), None),
        "f16" => {
            let h = read_npy::<half::f16>(path);
            let data = h.data.iter().map(|v| v.to_bits()).collect();
            (
                NpyArray {
                    data,
                    shape: h.shape,
                },
                DType::F16,
            )
        }
        _ => (read_npy::<u16>(path), DType::BF16),
    };
    let wide = bits.data.iter().map(|&b| dtype.widen(b)).collect();
    let input = NpyArray {
        data: wide,
        shape: bits.shape.clone(),
    };
    (input, Some((bits.data, dtype)))
}

/// A target file: int64 or int32 class indices, or float32 probabilities.
enum Targets {
    I64(NpyArray<i64>),
    I32(NpyArray<i32>),
    Probs(NpyArray<f32>),
}

impl Targets {
    fn read(path: &Path) -> Self {
        match npy_dtype(path).as_str() {
            "<i8" => Targets::I64(read_npy(path)),
            "<i4" => Targets::I32(read_npy(path)),
            _ => Targets::Probs(read_npy(path)),
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

/// Runs one case's op as `xent eval` would, with the fused backward when the case has a
/// gradient (and, on the GPU, the in-place backward too, which must agree bitwise).
fn eval(dir: &Path, case: &Value, device: Device) -> Result<LossAndGrad> {
    let files = &case["files"];
    let args = &case["args"];
    let path = dir.join(files["input"].as_str().unwrap());
    let (input, bits) = read_input(&path, case["dtype"].as_str().unwrap_or("f32"));
    let x: FloatTensor = match &bits {
        Some((b, DType::F16)) => FloatTensor::F16(Tensor::new(b, &input.shape)),
        Some((b, _)) => FloatTensor::BF16(Tensor::new(b, &input.shape)),
        None => FloatTensor::F32(Tensor::new(&input.data, &input.shape)),
    };
    let op = case["op"].as_str().unwrap();
    if op == "log-softmax" || op == "softmax" {
        let dim = args["dim"].as_i64().unwrap();
        let loss = match (op, device) {
            ("log-softmax", Device::Gpu) => ctx().log_softmax(x, dim),
            ("log-softmax", Device::Cpu) => cpu::log_softmax(x, dim),
            (_, Device::Gpu) => ctx().softmax(x, dim),
            (_, Device::Cpu) => cpu::softmax(x, dim),
        }?;
        return Ok(LossAndGrad {
            loss,
            grad: None,
            lse: None,
        });
    }
    let weight = files
        .get("weight")
        .map(|w| read_npy::<f32>(dir.join(w.as_str().unwrap())));
    let opts = LossOptions {
        weight: weight.as_ref().map(|w| w.data.as_slice()),
        ignore_index: args
            .get("ignore_index")
            .map_or(-100, |v| v.as_i64().unwrap()),
        reduction: args
            .get("reduction")
            .map_or(Ok(Reduction::Mean), |r| r.as_str().unwrap().parse())?,
        label_smoothing: args
            .get("label_smoothing")
            .map_or(0.0, |v| v.as_f64().unwrap() as f32),
        ..Default::default()
    };
    let targets = Targets::read(&dir.join(files["target"].as_str().unwrap()));
    let target = targets.target();
    let b = BackwardOptions::default();
    if case.get("grad").is_none_or(|g| g.is_null()) {
        let loss = match (op, device) {
            ("cross-entropy", Device::Gpu) => ctx().cross_entropy(x, target, &opts),
            ("cross-entropy", Device::Cpu) => cpu::cross_entropy(x, target, &opts),
            ("nll-loss", Device::Gpu) => ctx().nll_loss(x, target, &opts),
            ("nll-loss", Device::Cpu) => cpu::nll_loss(x, target, &opts),
            _ => panic!("unknown op {op}"),
        }?;
        return Ok(LossAndGrad {
            loss,
            grad: None,
            lse: None,
        });
    }
    let result = match (op, device) {
        ("cross-entropy", Device::Gpu) => ctx().cross_entropy_backward(x, target, &opts, &b)?,
        ("cross-entropy", Device::Cpu) => cpu::cross_entropy_backward(x, target, &opts, &b)?,
        ("nll-loss", Device::Gpu) => ctx().nll_loss_backward(x, target, &opts, &b)?,
        ("nll-loss", Device::Cpu) => cpu::nll_loss_backward(x, target, &opts, &b)?,
        _ => panic!("unknown op {op}"),
    };
    if op == "cross-entropy" && device == Device::Gpu && bits.is_none() {
        assert_in_place_agrees(&input, target, &opts, &result)?;
    }
    Ok(result)
}

/// The GPU's in-place cross-entropy backward of f32 `input` agrees bitwise with `result`.
fn assert_in_place_agrees(
    input: &NpyArray<f32>,
    target: Target,
    opts: &LossOptions,
    result: &LossAndGrad,
) -> Result<()> {
    let b = BackwardOptions::default();
    let call = LossCall::cross_entropy(Tensor::new(&input.data, &input.shape), target)
        .options(*opts)
        .grad(Grad::InPlace)
        .grad_output(b.grad_output);
    let in_place = ctx().run(&call)?;
    // The in-place gradient now comes back in `.grad` (the caller's slice is not written).
    let logits = in_place
        .grad
        .as_ref()
        .expect("the in-place gradient is returned")
        .data
        .clone();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&in_place.loss.data),
        bits(&result.loss.data),
        "in-place loss"
    );
    assert_eq!(
        bits(&logits),
        bits(&result.grad.as_ref().unwrap().data),
        "in-place gradient"
    );
    Ok(())
}

fn run_all(device: Device) {
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("manifest.json")).unwrap())
            .unwrap();
    let mut checked = 0;
    let mut grads = 0;
    let mut low_precision = 0;
    for name in manifest["cases"].as_array().unwrap() {
        let name = name.as_str().unwrap();
        let dir = root().join(name);
        let case: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("case.json")).unwrap()).unwrap();
        if case["dtype"].as_str().unwrap_or("f32") != "f32" {
            low_precision += 1;
        }
        let result = eval(&dir, &case, device);
        if case["expected"].is_null() {
            let err = result.expect_err(name).to_string();
            let torch = case["error"].as_str().unwrap();
            // Our message starts like PyTorch's (ours may add the position and C).
            let head: String = torch.chars().take(20).collect();
            assert!(
                err.contains(&head),
                "{name}: {err:?} does not read like {torch:?}"
            );
        } else {
            let out = result.unwrap_or_else(|e| panic!("{name}: {e}"));
            let (truth, shape) = read_f64(&dir.join(case["expected"].as_str().unwrap()));
            assert_eq!(out.loss.shape, shape, "{name}: shape");
            let tol_abs = case["tol_abs"].as_f64().unwrap();
            let tol_rel = case["tol_rel"].as_f64().unwrap();
            assert_close(name, &out.loss.data, &truth, tol_abs, tol_rel);
            if let Some(g) = case["grad"].as_str() {
                let grad = out.grad.unwrap_or_else(|| panic!("{name}: no gradient"));
                let (truth, shape) = read_f64(&dir.join(g));
                assert_eq!(grad.shape, shape, "{name}: gradient shape");
                let tol = case["grad_tol_abs"].as_f64().unwrap();
                assert_close(
                    &format!("{name} gradient"),
                    &grad.data,
                    &truth,
                    tol,
                    tol_rel,
                );
                grads += 1;
            }
        }
        checked += 1;
    }
    assert!(checked >= 117, "only {checked} golden cases checked");
    assert_eq!(low_precision, 6);
    assert!(grads >= 75, "only {grads} gradients checked");
}

#[test]
fn golden_cases_on_the_gpu() {
    run_all(Device::Gpu);
}

#[test]
fn golden_cases_on_the_cpu_reference() {
    run_all(Device::Cpu);
}
