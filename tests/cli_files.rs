//! The `xent` binary's files: probability targets of the wrong shape and `.npy` headers that
//! overflow are refused; outputs are all or nothing and never the same file twice; every
//! input is read once, so FIFOs and stdin work.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
mod cli_common;
use cli_common::*;

/// A `.npy` file with any header shape and raw data bytes.
fn raw_npy(path: &Path, descr: &str, shape: &str, data: &[u8]) {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    std::fs::write(path, bytes).unwrap();
}

fn write_i64(path: &Path, data: &[i64]) {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    raw_npy(path, "<i8", &format!("({},)", data.len()), &bytes);
}

fn stderr(r: &Output) -> String {
    String::from_utf8_lossy(&r.stderr).to_string()
}

/// The temporary files an output directory holds.
fn strays(d: &Path) -> Vec<String> {
    std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".xent-tmp-"))
        .collect()
}

/// A [6, 5] input with class targets, in `d`.
fn inputs(d: &Path) {
    let x: Vec<f32> = (0..30).map(|i| (i as f32 * 0.37).sin() * 2.0).collect();
    common::write_npy_f32(d.join("x.npy"), &x, &[6, 5]);
    write_i64(&d.join("t.npy"), &[0, 1, 2, 3, 4, 0]);
}

/// The library's refusal of a float target that is not the input's shape: a size mismatch
/// naming the target's shape, or (PyTorch's wording: a target of another shape is read as
/// class indices) a dtype error.
fn refused_as_torch(stderr: &str, shape: &str) -> bool {
    (stderr.contains("mismatch") && stderr.contains(shape)) || stderr.contains("got Float")
}

/// D6: float32 probabilities must have the input's shape, not just its element count.
#[test]
fn probability_targets_of_another_shape_are_refused() {
    let d = tmpdir("probs");
    inputs(&d);
    common::write_npy_f32(d.join("p56.npy"), &[0.2; 30], &[5, 6]);
    common::write_npy_f32(d.join("p30.npy"), &[0.2; 30], &[30]);
    common::write_npy_f32(d.join("p65.npy"), &[0.2; 30], &[6, 5]);
    for (target, shape) in [("p56.npy", "[5, 6]"), ("p30.npy", "[30]")] {
        for device in ["gpu", "cpu"] {
            let r = xent()
                .current_dir(&d)
                .args([
                    "eval",
                    "cross-entropy",
                    "--input",
                    "x.npy",
                    "--device",
                    device,
                ])
                .args(["--target", target, "--out", "o.npy"])
                .output()
                .unwrap();
            let e = stderr(&r);
            assert_eq!(r.status.code(), Some(1), "{target} {device}: {e}");
            assert!(refused_as_torch(&e, shape), "{target}: {e}");
            assert!(!d.join("o.npy").exists(), "{target} wrote output");
        }
        let r = xent()
            .current_dir(&d)
            .args(["check", "--input", "x.npy", "--target", target])
            .output()
            .unwrap();
        let e = stderr(&r);
        assert_eq!(r.status.code(), Some(1), "check {target}: {e}");
        assert!(refused_as_torch(&e, shape), "check {target}: {e}");
    }
    let r = xent()
        .current_dir(&d)
        .args(["eval", "cross-entropy", "--input", "x.npy"])
        .args(["--target", "p65.npy", "--out", "o.npy"])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", stderr(&r));
}

/// D7: a header whose element count overflows, or that needs more data than the file has,
/// is refused with the file's name, before anything is allocated or written.
#[test]
fn npy_headers_that_overflow_or_lie_are_refused() {
    let d = tmpdir("headers");
    let cases = [
        ("(4294967296, 4294967296)", vec![], "overflows"),
        ("(4611686018427387907, 4)", vec![0u8; 32], "overflows"),
        ("(0, 1099511627776, 1099511627776)", vec![], "overflows"),
        ("(1000, 1000)", vec![0u8; 16], "needs 4000000 data bytes"),
        ("(1099511627776, 1048576)", vec![0u8; 16], "data bytes"),
    ];
    for (i, (shape, data, want)) in cases.iter().enumerate() {
        let name = format!("h{i}.npy");
        raw_npy(&d.join(&name), "<f4", shape, data);
        for op in ["log-softmax", "softmax"] {
            let r = xent()
                .current_dir(&d)
                .args(["eval", op, "--input", &name, "--out", "o.npy"])
                .output()
                .unwrap();
            let e = stderr(&r);
            assert_eq!(r.status.code(), Some(1), "{shape}: {e}");
            assert!(e.contains(&name) && e.contains(want), "{shape}: {e}");
            assert!(!d.join("o.npy").exists(), "{shape} wrote output");
        }
    }
}

/// D9: outputs are written beside their destination and renamed only when all are complete:
/// a failing second output leaves the first one's older file untouched and no temporary file.
#[test]
fn outputs_are_all_or_nothing() {
    let d = tmpdir("atomic");
    inputs(&d);
    std::fs::write(d.join("o.npy"), b"old").unwrap();
    std::fs::write(d.join("plain-file"), b"not a directory").unwrap();
    for grad in ["plain-file/g.npy", "no-such-dir/g.npy"] {
        let r = xent()
            .current_dir(&d)
            .args([
                "eval",
                "cross-entropy",
                "--input",
                "x.npy",
                "--target",
                "t.npy",
            ])
            .args(["--out", "o.npy", "--grad-out", grad])
            .output()
            .unwrap();
        assert_eq!(r.status.code(), Some(1), "{grad}: {}", stderr(&r));
        assert!(stderr(&r).contains(grad), "{grad}: {}", stderr(&r));
        assert_eq!(std::fs::read(d.join("o.npy")).unwrap(), b"old", "{grad}");
        assert!(strays(&d).is_empty(), "{grad}: {:?}", strays(&d));
    }
    // A full run replaces every output, and leaves nothing else.
    let r = xent()
        .current_dir(&d)
        .args([
            "eval",
            "cross-entropy",
            "--input",
            "x.npy",
            "--target",
            "t.npy",
        ])
        .args([
            "--out",
            "o.npy",
            "--grad-out",
            "g.npy",
            "--lse-out",
            "l.npy",
        ])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", stderr(&r));
    assert_eq!(
        common::read_npy::<f32>(d.join("o.npy")).shape,
        Vec::<usize>::new()
    );
    assert_eq!(common::read_npy::<f32>(d.join("g.npy")).shape, [6, 5]);
    assert_eq!(common::read_npy::<f32>(d.join("l.npy")).shape, [6]);
    assert!(strays(&d).is_empty(), "{:?}", strays(&d));
    // bench: --json and --plot, both or neither.
    std::fs::write(d.join("r.json"), b"old").unwrap();
    let r = xent()
        .current_dir(&d)
        .args([
            "bench",
            "--op",
            "cross-entropy",
            "--shape",
            "8x100",
            "--iters",
            "1",
        ])
        .args(["--json", "r.json", "--plot", "plain-file/r.svg"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(1), "{}", stderr(&r));
    assert_eq!(std::fs::read(d.join("r.json")).unwrap(), b"old");
    assert!(strays(&d).is_empty(), "{:?}", strays(&d));
}

/// D9: runs that write the same output at once each leave a whole file (the last rename wins),
/// never rows of two runs mixed.
#[test]
fn concurrent_runs_on_one_output_leave_a_whole_file() {
    let d = tmpdir("concurrent");
    let (n, c) = (64usize, 4096usize);
    let runs = 4;
    for k in 0..runs {
        // Every row is [k, 0, 0, ..]: each run's output differs from the others'.
        let x: Vec<f32> = (0..n * c)
            .map(|i| if i % c == 0 { k as f32 } else { 0.0 })
            .collect();
        common::write_npy_f32(d.join(format!("x{k}.npy")), &x, &[n, c]);
    }
    let children: Vec<_> = (0..runs)
        .map(|k| {
            xent()
                .current_dir(&d)
                .args(["eval", "log-softmax", "--device", "cpu", "--input"])
                .arg(format!("x{k}.npy"))
                .args(["--out", "o.npy", "--grad-out", "g.npy"])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let r = child.wait_with_output().unwrap();
        assert!(r.status.success(), "{}", stderr(&r));
    }
    // One run's rows, whole: every row equal to the first.
    let o = common::read_npy::<f32>(d.join("o.npy"));
    assert_eq!(o.shape, [n, c]);
    assert!(o.data.chunks(c).all(|row| row == &o.data[..c]));
    assert_eq!(common::read_npy::<f32>(d.join("g.npy")).data.len(), n * c);
    assert!(strays(&d).is_empty(), "{:?}", strays(&d));
}

/// D10: two outputs that are the same file are refused before anything runs.
#[test]
fn the_same_file_for_two_outputs_is_refused() {
    let d = tmpdir("same");
    inputs(&d);
    std::fs::create_dir(d.join("sub")).unwrap();
    let cases: [&[&str]; 3] = [
        &["--out", "o.npy", "--grad-out", "o.npy"],
        &["--out", "o.npy", "--grad-out", "./o.npy"],
        &[
            "--out",
            "o.npy",
            "--grad-out",
            "g.npy",
            "--lse-out",
            "sub/../g.npy",
        ],
    ];
    for outs in cases {
        let r = xent()
            .current_dir(&d)
            .args([
                "eval",
                "cross-entropy",
                "--input",
                "x.npy",
                "--target",
                "t.npy",
            ])
            .args(outs)
            .output()
            .unwrap();
        assert_eq!(r.status.code(), Some(1), "{outs:?}");
        assert!(stderr(&r).contains("same file"), "{outs:?}: {}", stderr(&r));
        assert!(!d.join("o.npy").exists() && !d.join("g.npy").exists());
    }
    let r = xent()
        .current_dir(&d)
        .args([
            "bench", "--shape", "8x100", "--json", "r.svg", "--plot", "./r.svg",
        ])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(1));
    assert!(stderr(&r).contains("same file"), "{}", stderr(&r));
}

/// uint32 class targets read as int64 ones, and one past C is refused as such.
#[test]
fn uint32_targets_are_class_indices() {
    let d = tmpdir("uint32");
    inputs(&d);
    let eval = |t: &str| {
        xent()
            .current_dir(&d)
            .args([
                "eval", "nll-loss", "--input", "x.npy", "--target", t, "--out", "o.npy",
            ])
            .output()
            .unwrap()
    };
    let r = eval("t.npy");
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let want = std::fs::read(d.join("o.npy")).unwrap();
    let t = common::read_npy::<i64>(d.join("t.npy"));
    let words: Vec<u8> = t
        .data
        .iter()
        .flat_map(|&v| (v as u32).to_le_bytes())
        .collect();
    raw_npy(
        &d.join("u.npy"),
        "<u4",
        &format!("({},)", t.data.len()),
        &words,
    );
    let r = eval("u.npy");
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    assert_eq!(std::fs::read(d.join("o.npy")).unwrap(), want);
    let mut bad = words.clone();
    bad[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    raw_npy(&d.join("bad.npy"), "<u4", "(6,)", &bad);
    let e = stderr(&eval("bad.npy"));
    assert!(e.contains("Target 4294967295 is out of bounds"), "{e}");
}

/// An output through a symlink is written to the link's file, the link kept; a link to an
/// output already named is the same file; a FIFO or device is refused, never replaced by a
/// file.
#[cfg(unix)]
#[test]
fn outputs_through_links_and_special_files() {
    let d = tmpdir("links");
    inputs(&d);
    std::fs::write(d.join("real.npy"), b"old").unwrap();
    std::os::unix::fs::symlink("real.npy", d.join("link.npy")).unwrap();
    let eval = |outs: &[&str]| {
        xent()
            .current_dir(&d)
            .args([
                "eval",
                "cross-entropy",
                "--input",
                "x.npy",
                "--target",
                "t.npy",
            ])
            .args(outs)
            .output()
            .unwrap()
    };
    let r = eval(&["--out", "link.npy"]);
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    assert!(d.join("link.npy").symlink_metadata().unwrap().is_symlink());
    assert!(std::fs::read(d.join("real.npy"))
        .unwrap()
        .starts_with(b"\x93NUMPY"));
    let r = eval(&["--out", "real.npy", "--grad-out", "link.npy"]);
    assert_eq!(r.status.code(), Some(1));
    assert!(stderr(&r).contains("same file"), "{}", stderr(&r));
    let fifo = Command::new("mkfifo").arg(d.join("fifo")).status().unwrap();
    assert!(fifo.success());
    for special in [d.join("fifo"), "/dev/null".into()] {
        let r = eval(&["--out", special.to_str().unwrap()]);
        assert_eq!(r.status.code(), Some(1));
        assert!(stderr(&r).contains("not a regular file"), "{}", stderr(&r));
    }
    assert!(!d.join("fifo").metadata().unwrap().is_file());
    assert!(!Path::new("/dev/null").metadata().unwrap().is_file());
}

/// Runs `cmd` with `stdin` bytes, failing (not hanging) after a minute.
fn run_with_stdin(mut cmd: Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    let bytes = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&bytes);
    });
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("xent hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    writer.join().unwrap();
    child.wait_with_output().unwrap()
}

/// D11: each input is read once: `-` (stdin), `/dev/stdin` and a FIFO work.
#[test]
fn inputs_are_read_once_from_stdin_and_fifos() {
    let d = tmpdir("stdin");
    inputs(&d);
    let x = std::fs::read(d.join("x.npy")).unwrap();
    let t = std::fs::read(d.join("t.npy")).unwrap();
    let expect = |name: &str| {
        let r = xent()
            .current_dir(&d)
            .args([
                "eval",
                "cross-entropy",
                "--input",
                "x.npy",
                "--target",
                "t.npy",
            ])
            .args(["--out", name])
            .output()
            .unwrap();
        assert!(r.status.success(), "{}", stderr(&r));
        std::fs::read(d.join(name)).unwrap()
    };
    let reference = expect("ref.npy");
    for (input, target, stdin) in [
        ("-", "t.npy", &x),
        ("/dev/stdin", "t.npy", &x),
        ("x.npy", "-", &t),
    ] {
        let mut cmd = xent();
        cmd.current_dir(&d)
            .args([
                "eval",
                "cross-entropy",
                "--input",
                input,
                "--target",
                target,
            ])
            .args(["--out", "o.npy"]);
        let r = run_with_stdin(cmd, stdin);
        assert!(r.status.success(), "{input} {target}: {}", stderr(&r));
        assert_eq!(std::fs::read(d.join("o.npy")).unwrap(), reference);
    }
    // stdin holds one file only.
    let mut cmd = xent();
    cmd.current_dir(&d)
        .args(["eval", "cross-entropy", "--input", "-", "--target", "-"])
        .args(["--out", "o2.npy"]);
    let r = run_with_stdin(cmd, &x);
    assert_eq!(r.status.code(), Some(1));
    assert!(stderr(&r).contains("stdin"), "{}", stderr(&r));
    // A FIFO can be opened once only.
    let fifo = d.join("x.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let writer = std::thread::spawn({
        let (fifo, x) = (fifo.clone(), x.clone());
        move || std::fs::write(fifo, x)
    });
    let mut cmd = xent();
    cmd.current_dir(&d)
        .args([
            "eval",
            "cross-entropy",
            "--input",
            "x.fifo",
            "--target",
            "t.npy",
        ])
        .args(["--out", "o3.npy"]);
    let r = run_with_stdin(cmd, b"");
    assert!(r.status.success(), "fifo: {}", stderr(&r));
    writer.join().unwrap().unwrap();
    assert_eq!(std::fs::read(d.join("o3.npy")).unwrap(), reference);
}
