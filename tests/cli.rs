//! The `xent` binary: `eval` writes PyTorch-shaped .npy output, refuses bad input with a
//! message and no output file, and `info` names the adapter.

mod common;

mod cli_common;
use cli_common::*;

#[test]
fn eval_writes_a_0d_loss_that_matches_the_reference() {
    let d = tmpdir("ok");
    let x: Vec<f32> = (0..12).map(|i| (i as f32 * 0.7).sin() * 3.0).collect();
    common::write_npy_f32(d.join("x.npy"), &x, &[4, 3]);
    write_npy(d.join("t.npy"), &[0, 2, -100, 1], &[4]);
    for device in ["gpu", "cpu"] {
        let out = d.join(format!("{device}.npy"));
        let r = xent()
            .args(["eval", "cross-entropy", "--device", device, "--input"])
            .arg(d.join("x.npy"))
            .arg("--target")
            .arg(d.join("t.npy"))
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let y = common::read_npy::<f32>(&out);
        assert_eq!(y.shape, Vec::<usize>::new());
        let expect = wgpu_xent::cpu::cross_entropy(
            wgpu_xent::Tensor::new(&x, &[4, 3]),
            wgpu_xent::Target::I64(wgpu_xent::Tensor::new(&[0, 2, -100, 1], &[4])),
            &Default::default(),
        )
        .unwrap();
        approx::assert_relative_eq!(y.data[0], expect.scalar(), max_relative = 1e-5);
    }
}

#[test]
fn eval_refuses_bad_input_with_a_message_and_no_output() {
    let d = tmpdir("bad");
    common::write_npy_f32(d.join("x.npy"), &[0.0; 12], &[4, 3]);
    write_npy(d.join("t.npy"), &[0, 5, 1, 1], &[4]);
    write_npy(d.join("i.npy"), &[0; 12], &[4, 3]);
    let cases: [(&[&str], &str); 4] = [
        (&["--target", "t.npy"], "Target 5 is out of bounds"),
        (
            &["--target", "t.npy", "--reduction", "bogus"],
            "invalid value 'bogus'",
        ),
        (
            &["--target", "t.npy", "--input-dtype", "f16"],
            "expected float16",
        ),
        (&["--target", "i.npy", "--input-dtype", "f32"], "expected"),
    ];
    for (extra, want) in cases {
        let out = d.join("out.npy");
        let _ = std::fs::remove_file(&out);
        let r = xent()
            .current_dir(&d)
            .args([
                "eval",
                "cross-entropy",
                "--input",
                "x.npy",
                "--out",
                "out.npy",
            ])
            .args(extra)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success(), "{extra:?} succeeded");
        let found = stderr.to_lowercase().contains(&want.to_lowercase());
        assert!(found, "{extra:?}: {stderr}");
        assert!(!out.exists(), "{extra:?} wrote output");
        assert!(!d.join("g.npy").exists(), "{extra:?} wrote a gradient");
    }
    // An int64 input is the wrong dtype.
    let r = xent()
        .current_dir(&d)
        .args([
            "eval",
            "log-softmax",
            "--input",
            "i.npy",
            "--out",
            "out.npy",
        ])
        .output()
        .unwrap();
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("expected float32"));
}

#[test]
fn info_names_the_adapter_and_its_limits() {
    let r = xent().arg("info").output().unwrap();
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(
        stdout.contains("xent uses:") && stdout.contains("max_storage_buffer_binding_size"),
        "{stdout}"
    );
}

#[test]
fn check_passes_a_correct_configuration_and_fails_a_wrong_one() {
    let run = |args: &[&str]| {
        let r = xent().arg("check").args(args).output().unwrap();
        (
            r.status.code(),
            String::from_utf8_lossy(&r.stdout).to_string(),
        )
    };
    let base = [
        "--shape",
        "33x257",
        "--weighted",
        "--ignore-frac",
        "0.2",
        "--label-smoothing",
        "0.1",
        "--grad",
    ];
    let (code, out) = run(&base);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("PASS") && out.contains("max ulp") && out.contains("gradient"),
        "{out}"
    );
    // One output perturbed on purpose.
    let (code, out) = run(&[&base[..], &["--perturb"]].concat());
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("FAIL") && out.contains("beyond tolerance 1"),
        "{out}"
    );
    // f32 against the f64 reference with no tolerance at all: some element differs.
    let (code, out) = run(&[
        "--op",
        "log-softmax",
        "--shape",
        "16x1000",
        "--tol-abs",
        "0",
        "--tol-rel",
        "0",
    ]);
    assert_eq!(code, Some(1), "{out}");
    let (code, out) = run(&[
        "--op", "softmax", "--shape", "4x5x6", "--dim", "1", "--grad",
    ]);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn bench_writes_json_with_every_field_and_a_plot() {
    let d = tmpdir("bench");
    let (json, svg) = (d.join("r.json"), d.join("r.svg"));
    let r = xent()
        // Rows read twice (the default on CPU adapters; held rows are checked below).
        .env("XENT_HOLD_ROWS", "0")
        .args([
            "bench",
            "--op",
            "cross-entropy",
            "--op",
            "cross-entropy-grad",
            "--op",
            "nll-loss",
        ])
        .args([
            "--op",
            "log-softmax",
            "--op",
            "softmax",
            "--op",
            "copy",
            "--shape",
            "32x1000",
        ])
        .args(["--iters", "2", "--warmup", "1", "--json"])
        .arg(&json)
        .arg("--plot")
        .arg(&svg)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for k in ["name", "backend", "device_type", "driver"] {
        assert!(v["adapter"][k].is_string(), "adapter.{k}");
    }
    assert_eq!(v["valid"], true, "every op validated");
    let results = v["results"].as_array().unwrap();
    let ops: Vec<&str> = results.iter().map(|r| r["op"].as_str().unwrap()).collect();
    assert_eq!(
        ops,
        [
            "cross-entropy",
            "cross-entropy-grad",
            "nll-loss",
            "log-softmax",
            "softmax",
            "copy",
            "read",
            "write"
        ]
    );
    results.iter().for_each(check_bench_result);
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.contains("classes C") && svg.contains("GB/s") && svg.contains("xent bench:"));
}

/// One result of `bench_writes_json_with_every_field_and_a_plot`: every field present, the
/// shape, bytes per logit, the GB/s convention, and the validated ops' error.
fn check_bench_result(r: &serde_json::Value) {
    let fields = [
        "impl",
        "op",
        "n",
        "c",
        "dtype",
        "median_ms",
        "min_ms",
        "max_ms",
        "kernel_median_ms",
        "gb_per_s",
        "bytes_per_logit",
        "pct_of_copy",
        "max_abs_err",
    ];
    for f in fields {
        assert!(r.get(f).is_some(), "{f} missing in {r}");
    }
    assert_eq!(r["impl"], "xent-gpu");
    assert_eq!((r["n"].as_u64(), r["c"].as_u64()), (Some(32), Some(1000)));
    let op = r["op"].as_str().unwrap();
    let expect = match op {
        "cross-entropy" | "read" | "write" => 4.0,
        "cross-entropy-grad" | "log-softmax" | "softmax" => 12.0,
        "nll-loss" => 0.004,
        "copy" => 8.0,
        _ => unreachable!(),
    };
    assert_eq!(r["bytes_per_logit"].as_f64(), Some(expect), "{op}");
    let gb = r["gb_per_s"].as_f64().unwrap();
    let ms = r["median_ms"].as_f64().unwrap();
    assert!(
        (gb - 32.0 * 1000.0 * 4.0 / ms / 1e6).abs() < 1e-9 * gb.max(1.0),
        "{op}: GB/s convention"
    );
    if !matches!(op, "copy" | "read" | "write") {
        assert!(r["max_abs_err"].as_f64().unwrap() < 1e-4, "{op} validated");
    }
}

/// With rows held in workgroup memory (forced on: the default on GPUs), the ops that read
/// each row twice read it once, and bytes_per_logit says so.
#[test]
fn bench_counts_one_read_when_rows_are_held() {
    let d = tmpdir("bench-held");
    let json = d.join("r.json");
    let r = xent()
        .env("XENT_HOLD_ROWS", "1")
        .args(["bench", "--op", "cross-entropy-grad", "--op", "log-softmax"])
        .args([
            "--op",
            "cross-entropy",
            "--shape",
            "32x1000",
            "--iters",
            "2",
        ])
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for r in v["results"].as_array().unwrap() {
        let op = r["op"].as_str().unwrap();
        let expect = match op {
            "cross-entropy" | "read" | "write" => 4.0,
            "cross-entropy-grad" | "log-softmax" => 8.0,
            "copy" => 8.0,
            _ => unreachable!(),
        };
        assert_eq!(r["bytes_per_logit"].as_f64(), Some(expect), "{op}");
        if !matches!(op, "copy" | "read" | "write") {
            assert!(r["max_abs_err"].as_f64().unwrap() < 1e-4, "{op} validated");
        }
    }
}

/// The reduction paths give bitwise the same results: subgroup shuffles (lavapipe, where a
/// workgroup is one subgroup) and the workgroup-memory tree (`XENT_NO_SUBGROUPS=1`, and GL),
/// for the loss, gradient and lse of whole rows, several rows per subgroup, and split rows.
/// Subgroup operations merged across several subgroups (GPUs, or `XENT_WORKGROUP_SIZE` above
/// the subgroup size) sum in the hardware's order, so there they agree to rounding.
#[test]
fn reduction_paths_agree_bitwise() {
    let info = xent().arg("info").output().unwrap();
    let exact = !String::from_utf8_lossy(&info.stdout).contains("subgroup operations");
    let d = tmpdir("paths");
    let mut rng = common::Rng(21);
    for (n, c) in [(300usize, 1037usize), (4096, 8), (500, 100), (3, 20000)] {
        let x = rng.logits(n * c, 4.0);
        common::write_npy_f32(d.join("x.npy"), &x, &[n, c]);
        let t: Vec<i64> = (0..n).map(|_| rng.below(c) as i64).collect();
        write_npy(d.join("t.npy"), &t, &[n as u64]);
        let run = |tag: &str, no_subgroups: bool| {
            let mut cmd = xent();
            if no_subgroups {
                cmd.env("XENT_NO_SUBGROUPS", "1");
            }
            let r = cmd
                .args(["eval", "cross-entropy", "--label-smoothing", "0.1"])
                .args(["--reduction", "none", "--input"])
                .arg(d.join("x.npy"))
                .arg("--target")
                .arg(d.join("t.npy"))
                .arg("--out")
                .arg(d.join(format!("{tag}-loss.npy")))
                .arg("--grad-out")
                .arg(d.join(format!("{tag}-grad.npy")))
                .arg("--lse-out")
                .arg(d.join(format!("{tag}-lse.npy")))
                .output()
                .unwrap();
            assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        };
        run("default", false);
        run("tree", true);
        for what in ["loss", "grad", "lse"] {
            let path = |tag: &str| d.join(format!("{tag}-{what}.npy"));
            if exact {
                let read = |tag: &str| std::fs::read(path(tag)).unwrap();
                assert!(read("default") == read("tree"), "{n}x{c} {what}");
            } else {
                let tree = common::read_npy::<f32>(path("tree")).data;
                let ours = common::read_npy::<f32>(path("default")).data;
                common::assert_close(what, &ours, &common::widen(&tree), 1e-6, 1e-5);
            }
        }
    }
}
