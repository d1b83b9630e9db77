//! `xent` on linear-cross-entropy: `eval` on the GPU and the CPU reference against a loss
//! computed here, its refusals (no output file left), `check`, and `bench` of matmul and the
//! linear ops in GFLOP/s.
#![cfg(feature = "cli")]

mod common;

mod cli_common;
use cli_common::*;
use std::path::Path;

const N: usize = 5;
const D: usize = 6;
const C: usize = 7;

/// x [N, D], W [C, D], b [C] and targets (one ignored), written into `d`.
fn write_problem(d: &Path) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<i64>) {
    let x: Vec<f32> = (0..N * D).map(|i| (i as f32 * 0.37).sin()).collect();
    let w: Vec<f32> = (0..C * D).map(|i| (i as f32 * 0.91).cos() * 0.8).collect();
    let b: Vec<f32> = (0..C).map(|i| i as f32 * 0.1 - 0.3).collect();
    let t = vec![3i64, 0, -100, 6, 2];
    common::write_npy_f32(d.join("x.npy"), &x, &[N, D]);
    common::write_npy_f32(d.join("w.npy"), &w, &[C, D]);
    common::write_npy_f32(d.join("b.npy"), &b, &[C]);
    write_npy(d.join("t.npy"), &t, &[N as u64]);
    (x, w, b, t)
}

/// The mean cross-entropy of x·Wᵀ + b over the rows not ignored, in f64.
fn expected_mean(x: &[f32], w: &[f32], b: &[f32], t: &[i64]) -> f64 {
    let mut sum = 0.0;
    let mut count = 0.0;
    for (r, &target) in t.iter().enumerate().filter(|(_, &t)| t >= 0) {
        let logits: Vec<f64> = (0..C)
            .map(|k| {
                let dot: f64 = (0..D)
                    .map(|i| x[r * D + i] as f64 * w[k * D + i] as f64)
                    .sum();
                dot + b[k] as f64
            })
            .collect();
        let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + logits.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        sum += lse - logits[target as usize];
        count += 1.0;
    }
    sum / count
}

/// eval on the GPU and on the CPU reference: the loss computed here, and the three
/// gradients of both devices agreeing, each of PyTorch's shape.
#[test]
fn eval_matches_the_loss_and_the_devices_agree() {
    let d = tmpdir("eval");
    let (x, w, b, t) = write_problem(&d);
    let want = expected_mean(&x, &w, &b, &t);
    let mut grads: Vec<Vec<Vec<f32>>> = Vec::new();
    for device in ["gpu", "cpu"] {
        let r = run_in(
            &d,
            &[
                "eval",
                "linear-cross-entropy",
                "--input",
                "x.npy",
                "--linear-weight",
                "w.npy",
                "--linear-bias",
                "b.npy",
                "--target",
                "t.npy",
                "--device",
                device,
                "--out",
                "out.npy",
                "--grad-out",
                "gx.npy",
                "--grad-linear-weight-out",
                "gw.npy",
                "--grad-linear-bias-out",
                "gb.npy",
            ],
        );
        assert!(r.status.success(), "{device}: {}", text(&r.stderr));
        let loss = common::read_npy::<f32>(d.join("out.npy"));
        assert!(loss.shape.is_empty(), "{device}: {:?}", loss.shape);
        let err = (loss.data[0] as f64 - want).abs();
        assert!(
            err < 1e-5 * want.abs().max(1.0),
            "{device}: {} vs {want}",
            loss.data[0]
        );
        let mut ours = Vec::new();
        for (file, shape) in [
            ("gx.npy", vec![N, D]),
            ("gw.npy", vec![C, D]),
            ("gb.npy", vec![C]),
        ] {
            let g = common::read_npy::<f32>(d.join(file));
            assert_eq!(g.shape, shape, "{device} {file}");
            assert!(g.data.iter().all(|v| v.is_finite()), "{device} {file}");
            ours.push(g.data);
        }
        // The ignored row has no gradient; the bias's gradient sums to 0 (softmax - one-hot).
        assert!(ours[0][2 * D..3 * D].iter().all(|&v| v == 0.0), "{device}");
        assert!(
            ours[2].iter().sum::<f32>().abs() < 1e-6,
            "{device}: {:?}",
            ours[2]
        );
        grads.push(ours);
    }
    for (k, (g, c)) in grads[0].iter().zip(&grads[1]).enumerate() {
        let c64: Vec<f64> = c.iter().map(|&v| v as f64).collect();
        common::assert_close(&format!("gradient {k}"), g, &c64, 1e-6, 1e-4);
    }
}

/// PyTorch's shape errors and a missing bias are refused with a message, writing nothing.
#[test]
fn eval_refuses_bad_shapes_and_writes_nothing() {
    let d = tmpdir("refuse");
    write_problem(&d);
    common::write_npy_f32(d.join("w9.npy"), &[0.5; C * 9], &[C, 9]);
    let base = [
        "eval",
        "linear-cross-entropy",
        "--input",
        "x.npy",
        "--target",
        "t.npy",
    ];
    let cases: [(&[&str], &str); 3] = [
        (
            &["--linear-weight", "w9.npy", "--out", "o.npy"],
            "expected equal input and linear_weight last dimensions (in_features), got 6 and 9",
        ),
        (
            &[
                "--linear-weight",
                "w.npy",
                "--out",
                "o.npy",
                "--grad-linear-bias-out",
                "gb.npy",
            ],
            "--grad-linear-bias-out needs --linear-bias",
        ),
        (&["--out", "o.npy"], "needs --linear-weight"),
    ];
    for (extra, want) in cases {
        for device in ["gpu", "cpu"] {
            let args: Vec<&str> = base
                .iter()
                .chain(extra)
                .chain(&["--device", device])
                .copied()
                .collect();
            assert_refused(&run_in(&d, &args), want, &format!("{extra:?} on {device}"));
            assert!(!d.join("o.npy").exists() && !d.join("gb.npy").exists());
        }
    }
    let r = run_in(
        &d,
        &[
            "eval",
            "cross-entropy",
            "--input",
            "x.npy",
            "--linear-weight",
            "w.npy",
            "--out",
            "o.npy",
        ],
    );
    assert_refused(
        &r,
        "--linear-weight is not used by cross-entropy",
        "cross-entropy",
    );
}

/// check compares the loss and the three gradients, and fails on a perturbed output.
#[test]
fn check_passes_and_fails_when_perturbed() {
    let args = [
        "check",
        "--op",
        "linear-cross-entropy",
        "--shape",
        "9x7x33",
        "--grad",
        "--weighted",
    ];
    let r = run(&args);
    let out = text(&r.stdout);
    assert!(r.status.success(), "{out}{}", text(&r.stderr));
    for what in ["output", "gradient", "grad W", "grad b", "PASS"] {
        assert!(out.contains(what), "{what}: {out}");
    }
    let r = run(&[&args[..], &["--perturb"]].concat());
    assert_eq!(r.status.code(), Some(1), "{}", text(&r.stderr));
    assert!(text(&r.stdout).contains("FAIL"), "{}", text(&r.stdout));
    let r = run(&["check", "--op", "linear-cross-entropy", "--shape", "9x33"]);
    assert_refused(&r, "expected NxDxC", "a 2-D shape");
}

/// bench times matmul in GFLOP/s (2MNK per call), and each linear op beside the matmul of
/// its size, with their ratio; the CPU is refused.
#[test]
fn bench_reports_gflops_and_the_ratio_to_matmul() {
    let d = tmpdir("bench");
    let timing = ["--iters", "2", "--warmup", "1", "--json", "r.json"];
    let json = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(d.join("r.json")).unwrap()).unwrap()
    };
    let r = run_in(
        &d,
        &[
            &["bench", "--op", "matmul", "--shape", "4x8x16"][..],
            &timing,
        ]
        .concat(),
    );
    assert!(r.status.success(), "{}", text(&r.stderr));
    assert!(text(&r.stdout).contains("GFLOP/s"), "{}", text(&r.stdout));
    let v = json();
    let rows = v["results"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{v}");
    assert_eq!(
        (rows[0]["op"].as_str(), rows[0]["shape"].as_str()),
        (Some("matmul"), Some("4x8x16"))
    );
    assert_eq!(rows[0]["flops"].as_f64(), Some(2.0 * 4.0 * 8.0 * 16.0));
    assert!(
        rows[0]["gflop_per_s"].as_f64().is_some_and(|g| g > 0.0),
        "{v}"
    );
    assert_eq!(v["valid"], true);
    let args = [
        "bench",
        "--op",
        "linear-cross-entropy-grad",
        "--shape",
        "4x8x16",
    ];
    let r = run_in(&d, &[&args[..], &timing].concat());
    assert!(r.status.success(), "{}", text(&r.stderr));
    let v = json();
    let rows = v["results"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    assert_eq!(
        rows[0]["shape"], "4x16x8",
        "the logits' matmul [N,D]·[C,D]ᵀ: {v}"
    );
    assert_eq!(rows[1]["flops"].as_f64(), Some(6.0 * 4.0 * 8.0 * 16.0));
    let ratio = rows[1]["ratio_to_matmul"].as_f64().unwrap();
    let medians = rows[1]["median_ms"].as_f64().unwrap() / rows[0]["median_ms"].as_f64().unwrap();
    assert!(
        (ratio - medians).abs() < 1e-9 * medians,
        "{ratio} vs {medians}"
    );
    assert_eq!(v["valid"], true);
    let r = run(&[
        "bench", "--op", "matmul", "--device", "cpu", "--shape", "4x8x16",
    ]);
    assert_refused(&r, "not benchmarked", "matmul on the cpu");
}
