//! The `xent` binary's settings and stdout: shapes with no class or too many elements, bad
//! tolerances and iteration counts are refused with a message (never a panic or an abort);
//! bench and check fail when the GPU disagrees with the reference, tiny values included; a
//! closed or full stdout is no panic.

use std::process::Stdio;
mod cli_common;
use cli_common::*;

/// D12: an empty class axis is no panic.
#[test]
fn an_empty_class_axis_is_refused_or_empty() {
    assert_refused(&run(&["bench", "--shape", "4x0"]), "C >= 1", "bench 4x0");
    assert_refused(&run(&["bench", "--shape", "0x8"]), "N >= 1", "bench 0x8");
    for op in ["cross-entropy", "nll-loss"] {
        let r = run(&["check", "--op", op, "--shape", "4x0"]);
        assert_refused(&r, "C = 0", op);
    }
    // softmax over no class is an empty output, as in PyTorch.
    let r = run(&["check", "--op", "softmax", "--shape", "4x0"]);
    assert!(!text(&r.stderr).contains("panicked"), "{}", text(&r.stderr));
    assert_ne!(r.status.code(), Some(101));
}

/// D13: a shape that cannot fit is refused before anything is allocated.
#[test]
fn shapes_too_large_for_memory_are_refused() {
    for cmd in ["bench", "check"] {
        let r = run(&[cmd, "--shape", "1000000x1000000"]);
        assert_refused(&r, "does not fit", cmd);
        assert!(text(&r.stderr).contains("MiB"), "{}", text(&r.stderr));
        let r = run(&[cmd, "--shape", "4294967296x4294967296"]);
        assert_refused(&r, "overflows", cmd);
        let r = run(&[cmd, "--shape", "4294967296x4294967296x2"]);
        assert_ne!(r.status.code(), Some(0), "{cmd}");
    }
}

/// D14: NaN, infinite or negative tolerances are refused (NaN passed anything).
#[test]
fn bad_tolerances_are_refused() {
    for (flag, v) in [
        ("--tol-abs", "nan"),
        ("--tol-rel", "NaN"),
        ("--tol-abs", "-0.00001"),
        ("--tol-rel", "-1"),
        ("--tol-abs", "inf"),
    ] {
        let r = run(&["check", "--perturb", "--shape", "4x10", flag, v]);
        assert_refused(&r, "tolerance", &format!("{flag} {v}"));
        assert!(!text(&r.stdout).contains("PASS"));
    }
}

/// D15: bench fails (status 1, `"valid": false`) when an op disagrees with the reference,
/// and refuses `--iters 0`.
#[test]
fn bench_fails_when_validation_fails() {
    let d = std::env::temp_dir().join(format!("xent-cli-args-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let json = d.join("r.json");
    let bench = |extra: &[&str]| {
        xent()
            .args(["bench", "--op", "log-softmax", "--op", "cross-entropy"])
            .args(["--shape", "8x100", "--warmup", "0", "--json"])
            .arg(&json)
            .args(extra)
            .output()
            .unwrap()
    };
    let read = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
    };
    let r = bench(&["--iters", "1"]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    let v = read();
    assert_eq!(v["valid"], true, "{v}");
    assert!(v["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["valid"] == true));
    let r = bench(&["--iters", "1", "--perturb"]);
    assert_refused(&r, "validation failed", "perturbed");
    let v = read();
    assert_eq!(v["valid"], false, "{v}");
    assert!(v["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["valid"] == false));
    assert_refused(&bench(&["--iters", "0"]), "--iters", "iters 0");
}

/// D21: a result of tiny values (a softmax over a million classes: all below the default
/// tol_abs of 1e-5) fails when a quarter of it is zero, and passes when right.
#[test]
fn check_fails_a_zero_tail_of_tiny_values() {
    let args = ["check", "--op", "softmax", "--shape", "1x1000000"];
    let r = run(&args);
    assert_eq!(r.status.code(), Some(0), "{}", text(&r.stdout));
    let r = run(&[&args[..], &["--zero-tail"]].concat());
    let out = text(&r.stdout);
    assert_eq!(r.status.code(), Some(1), "{out}");
    assert!(
        out.contains("FAIL") && out.contains("beyond tolerance 250000"),
        "{out}"
    );
}

/// D16: a closed stdout ends the run quietly; a failing one is an error, never a panic.
#[test]
fn stdout_errors_are_no_panic() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let r = xent()
        .arg("info")
        .stdout(Stdio::from(writer))
        .output()
        .unwrap();
    let e = text(&r.stderr);
    assert!(!e.contains("panicked") && !e.contains("stdout"), "{e}");
    assert!(matches!(r.status.code(), Some(0 | 141)), "{:?}", r.status);
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let r = xent().arg("info").stdout(full).output().unwrap();
    let e = text(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{e}");
    assert!(!e.contains("panicked") && e.contains("stdout"), "{e}");
    // clap's --help too.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let r = xent().arg("--help").stdout(full).output().unwrap();
    assert_eq!(r.status.code(), Some(1), "{}", text(&r.stderr));
}
