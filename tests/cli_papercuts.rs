//! The `xent` binary's papercuts (issue 13): eval's summary line, I/O errors that name their
//! path, outputs checked before any work, the CLI's own op names, flags an op does not use,
//! check's worst element, float64 inputs. `bench` and `info`: tests/cli_bench.rs.
#![cfg(feature = "cli")]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};
mod cli_common;
use cli_common::*;

/// A [4, 5] input x.npy (f32) and x64.npy (its f64 values, not f32-representable), class
/// targets t.npy, probabilities p.npy and weights w.npy (f32), w16.npy, w64.npy.
fn inputs(d: &Path) -> Vec<f64> {
    let x64: Vec<f64> = (0..20)
        .map(|i| (i as f64 * 0.77).sin() * 3.1 + 1e-9)
        .collect();
    let x: Vec<f32> = x64.iter().map(|&v| v as f32).collect();
    write_npy(d.join("x.npy"), &x, &[4, 5]);
    write_npy(d.join("x64.npy"), &x64, &[4, 5]);
    write_npy(d.join("t.npy"), &[0i64, 4, 2, 1], &[4]);
    write_npy(d.join("p.npy"), &[0.2f32; 20], &[4, 5]);
    let w = [0.5f32, 1.0, 1.5, 2.0, 0.25];
    write_npy(d.join("w.npy"), &w, &[5]);
    let w16: Vec<half::f16> = w.iter().map(|&v| half::f16::from_f32(v)).collect();
    write_npy(d.join("w16.npy"), &w16, &[5]);
    write_npy(d.join("w64.npy"), &common::widen(&w), &[5]);
    x64
}

/// 1: `eval` prints one line: the scalar loss, or each output's shape and path; `--quiet`
/// prints nothing.
#[test]
fn eval_prints_a_summary_unless_quiet() {
    let d = tmpdir("summary");
    inputs(&d);
    let base = [
        "eval",
        "cross-entropy",
        "--input",
        "x.npy",
        "--target",
        "t.npy",
    ];
    let r = run_in(
        &d,
        &[&base[..], &["--out", "o.npy", "--grad-out", "g.npy"]].concat(),
    );
    assert!(r.status.success(), "{}", text(&r.stderr));
    let out = text(&r.stdout);
    assert_eq!(out.lines().count(), 1, "{out}");
    let loss = common::read_npy::<f32>(d.join("o.npy")).data[0];
    assert!(
        out.starts_with(&format!("cross-entropy mean {loss} -> o.npy")),
        "{out}"
    );
    assert!(out.contains("grad [4, 5] float32 -> g.npy"), "{out}");
    let r = run_in(
        &d,
        &[&base[..], &["--out", "o.npy", "--reduction", "none"]].concat(),
    );
    assert!(
        text(&r.stdout).contains("cross-entropy [4] float32 -> o.npy"),
        "{}",
        text(&r.stdout)
    );
    let r = run_in(
        &d,
        &["eval", "softmax", "--input", "x.npy", "--out", "s.npy"],
    );
    assert_eq!(text(&r.stdout).trim(), "softmax [4, 5] float32 -> s.npy");
    for quiet in ["--quiet", "-q"] {
        let r = run_in(&d, &[&base[..], &["--out", "q.npy", quiet]].concat());
        assert!(
            r.status.success() && r.stdout.is_empty(),
            "{}",
            text(&r.stdout)
        );
        assert!(d.join("q.npy").exists());
    }
}

/// 2: every I/O error names its path.
#[test]
fn io_errors_name_their_path() {
    let d = tmpdir("io");
    inputs(&d);
    let cases: [(&[&str], &str); 3] = [
        (
            &["--input", "nope.npy", "--target", "t.npy"],
            "reading nope.npy: ",
        ),
        (
            &["--input", "x.npy", "--target", "t0.npy"],
            "reading t0.npy: ",
        ),
        (
            &[
                "--input", "x.npy", "--target", "t.npy", "--weight", "w0.npy",
            ],
            "reading w0.npy: ",
        ),
    ];
    for (args, want) in cases {
        let r = run_in(
            &d,
            &[&["eval", "cross-entropy", "--out", "o.npy"], args].concat(),
        );
        assert_refused(&r, want, want);
        assert!(
            text(&r.stderr).contains("No such file"),
            "{}",
            text(&r.stderr)
        );
    }
    let r = run_in(
        &d,
        &["eval", "softmax", "--input", "x.npy", "--out", "no/o.npy"],
    );
    assert_refused(
        &r,
        "--out no/o.npy: directory no: No such file",
        "missing dir",
    );
}

/// 3: output paths are checked before any work: a bad --json or --plot fails at once, not
/// after the benchmark; a directory, a file as parent or a read-only parent is refused.
#[test]
fn outputs_are_checked_before_any_work() {
    let d = tmpdir("outputs");
    inputs(&d);
    std::fs::write(d.join("plain-file"), b"x").unwrap();
    std::fs::create_dir(d.join("dir")).unwrap();
    let slow = ["bench", "--shape", "2048x8192", "--iters", "1000"];
    for (flag, path, want) in [
        (
            "--json",
            "plain-file/r.json",
            "plain-file is not a directory",
        ),
        ("--plot", "no-such-dir/r.svg", "directory no-such-dir"),
        ("--json", "dir", "is a directory"),
    ] {
        let start = Instant::now();
        let r = run_in(&d, &[&slow[..], &[flag, path]].concat());
        assert_refused(&r, &format!("{flag} {path}: {want}"), path);
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{path}: ran first"
        );
        assert!(r.stdout.is_empty(), "{path}: {}", text(&r.stdout));
    }
    let r = run_in(&d, &["eval", "softmax", "--input", "x.npy", "--out", "dir"]);
    assert_refused(&r, "--out dir: is a directory", "eval into a directory");
    // A directory that cannot be written (root writes anywhere: then there is nothing to test).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let ro = d.join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        if std::fs::write(ro.join("probe"), b"").is_err() {
            let r = run_in(
                &d,
                &["eval", "softmax", "--input", "x.npy", "--out", "ro/o.npy"],
            );
            assert_refused(
                &r,
                "--out ro/o.npy: cannot write in directory ro",
                "read-only",
            );
        }
    }
}

/// 4: messages use the CLI's op names, the library's included.
#[test]
fn messages_use_the_cli_op_names() {
    let d = tmpdir("names");
    inputs(&d);
    let r = run_in(
        &d,
        &["eval", "nll-loss", "--input", "x.npy", "--out", "o.npy"],
    );
    assert_refused(&r, "nll-loss needs --target", "no target");
    let args = [
        "eval", "nll-loss", "--input", "x.npy", "--target", "p.npy", "--out", "o.npy",
    ];
    let r = run_in(&d, &args);
    assert_refused(
        &r,
        "nll-loss: expected class-index targets",
        "probabilities",
    );
    let r = run_in(&d, &["check", "--op", "log-softmax", "--shape", "4x10"]);
    assert!(
        text(&r.stdout).starts_with("xent check log-softmax [4, 10]"),
        "{}",
        text(&r.stdout)
    );
    let all = text(&r.stdout) + &text(&r.stderr);
    assert!(
        !all.contains("LogSoftmax") && !all.contains("log_softmax"),
        "{all}"
    );
}

/// 5: a flag the op does not use is refused, naming the flag, the op and the ops that use it.
#[test]
fn flags_an_op_does_not_use_are_refused() {
    let d = tmpdir("flags");
    inputs(&d);
    let cases: [(&str, &[&str], &str); 7] = [
        (
            "log-softmax",
            &["--target", "t.npy"],
            "--target is not used by log-softmax (only by cross-entropy, nll-loss and linear-cross-entropy)",
        ),
        (
            "softmax",
            &["--weight", "w.npy"],
            "--weight is not used by softmax",
        ),
        (
            "softmax",
            &["--reduction", "sum"],
            "--reduction is not used by softmax",
        ),
        (
            "nll-loss",
            &["--target", "t.npy", "--label-smoothing", "0.1"],
            "--label-smoothing is not used by nll-loss (only by cross-entropy and linear-cross-entropy)",
        ),
        (
            "nll-loss",
            &["--target", "t.npy", "--lse-out", "l.npy"],
            "--lse-out is not used by nll-loss",
        ),
        (
            "cross-entropy",
            &["--target", "t.npy", "--dim", "0"],
            "--dim is not used by cross-entropy (only by log-softmax and softmax)",
        ),
        (
            "log-softmax",
            &["--ignore-index", "3"],
            "--ignore-index is not used by log-softmax",
        ),
    ];
    for (op, extra, want) in cases {
        let args = [&["eval", op, "--input", "x.npy", "--out", "o.npy"], extra].concat();
        assert_refused(&run_in(&d, &args), want, &format!("{op} {extra:?}"));
        assert!(!d.join("o.npy").exists());
    }
    for (op, extra, want) in [
        ("softmax", "--weighted", "--weighted is not used by softmax"),
        ("nll-loss", "--probs", "--probs is not used by nll-loss"),
    ] {
        let r = run_in(&d, &["check", "--op", op, "--shape", "4x10", extra]);
        assert_refused(&r, want, op);
    }
}

/// 6: check gives the worst element by its multi-dimensional index, and no worst element
/// when the arrays are identical.
#[test]
fn check_names_the_worst_element_only_when_one_differs() {
    let d = tmpdir("worst");
    let r = run_in(
        &d,
        &[
            "check",
            "--op",
            "log-softmax",
            "--shape",
            "4x10x3",
            "--perturb",
        ],
    );
    let out = text(&r.stdout);
    assert_eq!(r.status.code(), Some(1), "{out}");
    assert!(out.contains("worst at [0, 0, 0]: gpu"), "{out}");
    // nll-loss without reduction gathers -x[y]: the same bits on both sides.
    let r = run_in(
        &d,
        &[
            "check",
            "--op",
            "nll-loss",
            "--shape",
            "8x10",
            "--reduction",
            "none",
        ],
    );
    let out = text(&r.stdout);
    assert_eq!(r.status.code(), Some(0), "{out}");
    assert!(
        out.contains("max abs diff 0 (identical)") && !out.contains("worst"),
        "{out}"
    );
}

/// cross_entropy (mean, weighted) of a [4, 5] input in f64, and its gradient: the reference
/// written out here, as PyTorch's float64 computes it.
fn reference_f64(x: &[f64], t: &[usize], w: &[f64]) -> (f64, Vec<f64>) {
    let (mut sum, mut den, mut grad) = (0.0, 0.0, vec![0.0; 20]);
    for (r, &y) in t.iter().enumerate() {
        let row = &x[r * 5..r * 5 + 5];
        let m = row.iter().cloned().fold(f64::MIN, f64::max);
        let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        sum += -w[y] * (row[y] - lse);
        den += w[y];
        for c in 0..5 {
            grad[r * 5 + c] = w[y] * ((row[c] - lse).exp() - if c == y { 1.0 } else { 0.0 });
        }
    }
    (sum / den, grad.iter().map(|g| g / den).collect())
}

/// 8: float64 inputs: the CPU computes and writes float64, matching the f64 reference; the
/// GPU computes in f32 and says so in one line. Weights are taken in f16 and f64 too.
#[test]
fn float64_inputs_and_16_and_64_bit_weights() {
    let d = tmpdir("f64");
    let x64 = inputs(&d);
    let w = common::widen(&[0.5, 1.0, 1.5, 2.0, 0.25]);
    let (loss, grad) = reference_f64(&x64, &[0, 4, 2, 1], &w);
    let base = [
        "eval",
        "cross-entropy",
        "--input",
        "x64.npy",
        "--target",
        "t.npy",
    ];
    let args = [&base[..], &["--weight", "w64.npy", "--device", "cpu"]].concat();
    let r = run_in(
        &d,
        &[&args[..], &["--out", "o.npy", "--grad-out", "g.npy"]].concat(),
    );
    assert!(
        r.status.success() && r.stderr.is_empty(),
        "{}",
        text(&r.stderr)
    );
    assert_eq!(common::npy_dtype(d.join("o.npy")), "<f8");
    let o = common::read_npy::<f64>(d.join("o.npy")).data[0];
    assert!((o - loss).abs() <= 1e-14 * loss.abs(), "{o} vs {loss}");
    let g = common::read_npy::<f64>(d.join("g.npy")).data;
    assert!(
        g.iter().zip(&grad).all(|(a, b)| (a - b).abs() <= 1e-15),
        "{g:?} vs {grad:?}"
    );
    assert!(text(&r.stdout).contains(&format!("cross-entropy mean {o} -> o.npy")));
    // The GPU: f32 output, and one note saying so (a driver may add lines of its own).
    let args = [&base[..], &["--weight", "w64.npy", "--out", "o32.npy"]].concat();
    let r = run_in(&d, &args);
    let err = text(&r.stderr);
    assert!(r.status.success(), "{err}");
    let notes: Vec<&str> = err.lines().filter(|l| l.starts_with("note:")).collect();
    assert_eq!(notes.len(), 1, "{err}");
    assert!(notes[0].contains("float32"), "{err}");
    assert_eq!(common::npy_dtype(d.join("o32.npy")), "<f4");
    let o32 = common::read_npy::<f32>(d.join("o32.npy")).data[0];
    assert!((o32 as f64 - loss).abs() < 1e-5, "{o32} vs {loss}");
    // f16, f32 and f64 weights of the same values give the same f32 result.
    let mut seen = vec![];
    for wf in ["w.npy", "w16.npy", "w64.npy"] {
        let args = [
            "eval",
            "cross-entropy",
            "--input",
            "x.npy",
            "--target",
            "t.npy",
        ];
        let r = run_in(
            &d,
            &[&args[..], &["--weight", wf, "--out", "ow.npy"]].concat(),
        );
        assert!(r.status.success(), "{wf}: {}", text(&r.stderr));
        seen.push(std::fs::read(d.join("ow.npy")).unwrap());
    }
    assert!(seen.windows(2).all(|p| p[0] == p[1]));
}
