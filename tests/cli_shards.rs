//! `xent eval --shards N` and `xent bench --shards N`: every op on logits, and
//! linear-cross-entropy, over class shards against the same command unsharded (outputs and
//! gradients, a 3-D input with the class axis in the middle, a class axis shorter than the
//! shard count); and the flags `--shards` refuses.

mod cli_common;
mod common;
use cli_common::*;

/// `args` run unsharded and with `--shards`: every file written, as (unsharded, sharded).
fn both(
    d: &std::path::Path,
    args: &[&str],
    files: &[&str],
    shards: &str,
) -> Vec<(Vec<f32>, Vec<f32>)> {
    let mut got = vec![];
    for extra in [vec![], vec!["--shards", shards]] {
        let mut a: Vec<&str> = args.to_vec();
        a.extend(&extra);
        let r = run_in(d, &a);
        assert!(r.status.success(), "{a:?}: {}", text(&r.stderr));
        got.push(
            files
                .iter()
                .map(|f| common::read_npy::<f32>(d.join(f)).data)
                .collect::<Vec<_>>(),
        );
    }
    let (plain, sharded) = (got.remove(0), got.remove(0));
    plain.into_iter().zip(sharded).collect()
}

fn assert_near(what: &str, pairs: &[(Vec<f32>, Vec<f32>)]) {
    for (k, (a, b)) in pairs.iter().enumerate() {
        assert_eq!(a.len(), b.len(), "{what}: file {k}");
        for (u, v) in a.iter().zip(b) {
            assert!(
                (u - v).abs() <= 1e-5 + 1e-4 * u.abs() || (u.is_nan() && v.is_nan()),
                "{what}: file {k}: {u} unsharded, {v} sharded"
            );
        }
    }
}

#[test]
fn every_op_sharded_equals_unsharded() {
    let d = tmpdir("every-op");
    let (n, c, k) = (3usize, 11usize, 4usize);
    let x: Vec<f32> = (0..n * c * k)
        .map(|i| ((i * 37 % 23) as f32 - 11.0) / 3.0)
        .collect();
    write_npy(d.join("x.npy"), &x, &[n as u64, c as u64, k as u64]);
    let t: Vec<i64> = (0..n * k)
        .map(|i| if i == 5 { -100 } else { (i * 7 % c) as i64 })
        .collect();
    write_npy(d.join("t.npy"), &t, &[n as u64, k as u64]);
    let w: Vec<f32> = (0..c).map(|i| 0.5 + i as f32 / 10.0).collect();
    write_npy(d.join("w.npy"), &w, &[c as u64]);
    let outs = ["o.npy", "g.npy"];
    let ce = [
        "eval",
        "cross-entropy",
        "--input",
        "x.npy",
        "--target",
        "t.npy",
        "--weight",
        "w.npy",
        "--label-smoothing",
        "0.1",
        "--reduction",
        "none",
        "--out",
        "o.npy",
        "--grad-out",
        "g.npy",
    ];
    // More shards than classes: one a class.
    for shards in ["3", "20"] {
        assert_near("cross-entropy", &both(&d, &ce, &outs, shards));
    }
    let nll = [
        "eval",
        "nll-loss",
        "--input",
        "x.npy",
        "--target",
        "t.npy",
        "--weight",
        "w.npy",
        "--out",
        "o.npy",
        "--grad-out",
        "g.npy",
    ];
    assert_near("nll-loss", &both(&d, &nll, &outs, "3"));
    for (op, dim) in [("log-softmax", "1"), ("softmax", "0")] {
        let sm = [
            "eval",
            op,
            "--input",
            "x.npy",
            "--dim",
            dim,
            "--out",
            "o.npy",
            "--grad-out",
            "g.npy",
        ];
        assert_near(op, &both(&d, &sm, &outs, "3"));
    }
}

#[test]
fn linear_cross_entropy_sharded_equals_unsharded() {
    let d = tmpdir("linear");
    let (n, dim, c) = (5usize, 7usize, 13usize);
    let x: Vec<f32> = (0..n * dim)
        .map(|i| ((i * 5 % 11) as f32 - 5.0) / 4.0)
        .collect();
    let w: Vec<f32> = (0..c * dim)
        .map(|i| ((i * 3 % 7) as f32 - 3.0) / 5.0)
        .collect();
    let b: Vec<f32> = (0..c).map(|i| i as f32 / 13.0).collect();
    let t: Vec<i64> = (0..n).map(|i| (i * 4 % c) as i64).collect();
    write_npy(d.join("x.npy"), &x, &[n as u64, dim as u64]);
    write_npy(d.join("w.npy"), &w, &[c as u64, dim as u64]);
    write_npy(d.join("b.npy"), &b, &[c as u64]);
    write_npy(d.join("t.npy"), &t, &[n as u64]);
    let args = [
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
        "--out",
        "o.npy",
        "--grad-out",
        "g.npy",
        "--grad-linear-weight-out",
        "gw.npy",
        "--grad-linear-bias-out",
        "gb.npy",
    ];
    let files = ["o.npy", "g.npy", "gw.npy", "gb.npy"];
    assert_near("linear-cross-entropy", &both(&d, &args, &files, "3"));
}

/// No classes to split (C = 0, every target ignored): the unsharded call's results, a NaN
/// mean included, for cross-entropy and linear-cross-entropy.
#[test]
fn zero_classes_sharded_equal_unsharded() {
    let d = tmpdir("no-classes");
    write_npy(d.join("x.npy"), &[0f32; 0], &[7, 0]);
    write_npy(d.join("t.npy"), &[-100i64; 7], &[7]);
    write_npy(d.join("h.npy"), &[0.5f32; 42], &[7, 6]);
    write_npy(d.join("w.npy"), &[0f32; 0], &[0, 6]);
    for reduction in ["mean", "sum", "none"] {
        let ce = [
            "eval",
            "cross-entropy",
            "--input",
            "x.npy",
            "--target",
            "t.npy",
            "--reduction",
            reduction,
            "--out",
            "o.npy",
            "--grad-out",
            "g.npy",
        ];
        assert_near("cross-entropy", &both(&d, &ce, &["o.npy", "g.npy"], "2"));
        let linear = [
            "eval",
            "linear-cross-entropy",
            "--input",
            "h.npy",
            "--linear-weight",
            "w.npy",
            "--target",
            "t.npy",
            "--reduction",
            reduction,
            "--out",
            "o.npy",
            "--grad-out",
            "g.npy",
        ];
        assert_near("linear", &both(&d, &linear, &["o.npy", "g.npy"], "2"));
    }
}

#[test]
fn shards_refuse_what_they_do_not_do() {
    let d = tmpdir("refused");
    write_npy(d.join("x.npy"), &[0.5f32, 1.0, -1.0, 2.0], &[2, 2]);
    write_npy(d.join("t.npy"), &[0i64, 1], &[2]);
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
    let with = |more: &[&str]| {
        let mut a = base.to_vec();
        a.extend(more);
        run_in(&d, &a)
    };
    assert_refused(
        &with(&["--shards", "0"]),
        "--shards takes a count",
        "zero shards",
    );
    assert_refused(
        &with(&["--shards", "2", "--device", "cpu"]),
        "--device cpu",
        "cpu",
    );
    assert_refused(
        &with(&["--shards", "2", "--lse-out", "l.npy"]),
        "--lse-out",
        "lse",
    );
    assert!(!d.join("o.npy").exists(), "a refused call wrote its output");
    let bench = |more: &[&str]| {
        let mut a = vec!["bench", "--shards", "2"];
        a.extend(more);
        run_in(&d, &a)
    };
    assert_refused(&bench(&[]), "--shape", "no shape");
    assert_refused(&bench(&["--shape", "4x0"]), "at least 1", "no classes");
    // Refused before anything is allocated, never an abort.
    let huge = ["--shape", "100000x1000000"];
    assert_refused(&bench(&huge), "does not fit", "no memory");
    let huge = [
        "--op",
        "linear-cross-entropy",
        "--shape",
        "100000x4096x10000000",
    ];
    assert_refused(&bench(&huge), "does not fit", "no memory for linear");
    let linear = ["--op", "linear-cross-entropy", "--shape"];
    assert_refused(&bench(&[&linear[..], &["4x8"]].concat()), "NxDxC", "no D");
    assert_refused(
        &bench(&["--shape", "4x8", "--json", "b.json"]),
        "--json",
        "json",
    );
    assert_refused(
        &bench(&["--shape", "4x8", "--op", "softmax"]),
        "cross-entropy",
        "op",
    );
}

#[test]
fn bench_shards_reports_time_and_bytes() {
    let r = run(&[
        "bench", "--shards", "2", "--shape", "16x1000", "--iters", "2", "--warmup", "0",
    ]);
    let out = text(&r.stdout);
    assert!(r.status.success(), "{}{}", out, text(&r.stderr));
    let line = out
        .lines()
        .find(|l| l.starts_with("16x1000"))
        .expect("a line for the shape");
    // Two shards of 48 bytes of partials a row; the same loss as unsharded.
    assert!(line.contains(" 96 ") && line.ends_with("yes"), "{line}");
    let r = run(&[
        "bench",
        "--shards",
        "2",
        "--shape",
        "16x8x1000",
        "--iters",
        "2",
        "--warmup",
        "0",
        "--op",
        "linear-cross-entropy-grad",
    ]);
    let out = text(&r.stdout);
    assert!(r.status.success(), "{}{}", out, text(&r.stderr));
    let line = out
        .lines()
        .find(|l| l.starts_with("16x8x1000"))
        .expect("a line for the linear shape");
    // And each shard's dX share: 2 x (48 + 8 x 4) bytes a row.
    assert!(line.contains(" 160 ") && line.ends_with("yes"), "{line}");
}
