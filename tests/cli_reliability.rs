//! The `xent` binary's part of issue 25: sharded `nll_loss` keeps PyTorch's NaN (D1), uint8
//! class targets are taken (D8), a negative value after a flag reaches its range check (D9).
#![cfg(feature = "cli")]

mod common;

use std::path::Path;
mod cli_common;
use cli_common::*;

/// A [5, 7] input x.npy, targets t.npy (int64) and t8.npy (uint8), zero class weights w0.npy.
fn inputs(d: &Path) -> Vec<f32> {
    let x: Vec<f32> = (0..35).map(|i| (i as f32 * 0.61).sin() * 2.0).collect();
    write_npy(d.join("x.npy"), &x, &[5, 7]);
    write_npy(d.join("t.npy"), &[1i64, 2, 3, 4, 5], &[5]);
    write_npy(d.join("t8.npy"), &[1u8, 2, 3, 4, 5], &[5]);
    write_npy(d.join("w0.npy"), &[0f32; 7], &[7]);
    x
}

/// D1: zero weights at the targets make the mean 0/0. PyTorch's gradient is -(1/0)·0 = NaN
/// at each row's target and 0 elsewhere, sharded or not.
#[test]
fn sharded_nll_loss_keeps_the_nan_at_each_target() {
    let d = tmpdir("cli_reliability_d1");
    inputs(&d);
    let base = [
        "eval", "nll-loss", "--input", "x.npy", "--target", "t.npy", "--weight", "w0.npy",
    ];
    for shards in [None, Some("2"), Some("3")] {
        let mut args = base.to_vec();
        args.extend(["--out", "o.npy", "--grad-out", "g.npy"]);
        if let Some(k) = shards {
            args.extend(["--shards", k]);
        }
        let r = run_in(&d, &args);
        assert!(r.status.success(), "{shards:?}: {}", text(&r.stderr));
        let loss = common::read_npy::<f32>(d.join("o.npy")).data;
        assert!(loss[0].is_nan(), "{shards:?}: loss {loss:?}");
        let g = common::read_npy::<f32>(d.join("g.npy")).data;
        for (i, v) in g.iter().enumerate() {
            let target = (i / 7 + 1) == i % 7;
            assert_eq!(v.is_nan(), target, "{shards:?}: g[{i}] = {v}");
            assert!(v.is_nan() || *v == 0.0, "{shards:?}: g[{i}] = {v}");
        }
    }
}

/// D8: uint8 class targets (PyTorch's Byte targets) give what int64 targets give.
#[test]
fn uint8_class_targets_are_taken() {
    let d = tmpdir("cli_reliability_d8");
    inputs(&d);
    for op in ["cross-entropy", "nll-loss"] {
        let mut outs = vec![];
        for (t, out) in [("t.npy", "o64.npy"), ("t8.npy", "o8.npy")] {
            let args = [
                "eval",
                op,
                "--input",
                "x.npy",
                "--target",
                t,
                "--out",
                out,
                "--grad-out",
                "g.npy",
            ];
            let r = run_in(&d, &args);
            assert!(r.status.success(), "{op} {t}: {}", text(&r.stderr));
            outs.push(common::read_npy::<f32>(d.join(out)).data);
        }
        assert_eq!(outs[0], outs[1], "{op}");
    }
    write_npy(d.join("ti8.npy"), &[1i8, 2, 3, 4, 5], &[5]);
    let r = run_in(
        &d,
        &[
            "eval",
            "cross-entropy",
            "--input",
            "x.npy",
            "--target",
            "ti8.npy",
            "--out",
            "o.npy",
        ],
    );
    assert_refused(&r, "uint8", "int8 targets");
}

/// D9: `--flag -0.1` is the value -0.1, refused by the flag's own range check, as
/// `--flag=-0.1` is.
#[test]
fn a_negative_value_after_a_flag_reaches_its_range_check() {
    let d = tmpdir("cli_reliability_d9");
    inputs(&d);
    let base = [
        "eval",
        "cross-entropy",
        "--input",
        "x.npy",
        "--target",
        "t.npy",
        "--out",
        "o.npy",
    ];
    for (flag, value, want) in [
        (
            "--label-smoothing",
            "-0.1",
            "label_smoothing must be between 0.0 and 1.0",
        ),
        ("--softcap", "-1", "softcap must be a finite value > 0"),
    ] {
        let spaced = run_in(&d, &[&base[..], &[flag, value]].concat());
        assert_refused(&spaced, want, flag);
        let joined = format!("{flag}={value}");
        let eq = run_in(&d, &[&base[..], &[joined.as_str()]].concat());
        assert_eq!(text(&spaced.stderr), text(&eq.stderr), "{flag}");
    }
    let r = run(&[
        "check",
        "--op",
        "cross-entropy",
        "--shape",
        "4x8",
        "--label-smoothing",
        "-0.5",
    ]);
    assert_refused(&r, "label_smoothing", "check");
}
