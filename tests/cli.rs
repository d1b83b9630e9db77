//! The `xent` binary: `eval` writes PyTorch-shaped .npy output, refuses bad input with a
//! message and no output file, and `info` names the adapter.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use wgpu_xent::npy;

fn xent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xent"))
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("xent-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_i64(path: &Path, data: &[i64], shape: &[u64]) {
    use npyz::WriterBuilder;
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .writer(std::fs::File::create(path).unwrap())
        .begin_nd()
        .unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
}

#[test]
fn eval_writes_a_0d_loss_that_matches_the_reference() {
    let d = tmpdir("ok");
    let x: Vec<f32> = (0..12).map(|i| (i as f32 * 0.7).sin() * 3.0).collect();
    npy::write_f32(d.join("x.npy"), &x, &[4, 3]).unwrap();
    write_i64(&d.join("t.npy"), &[0, 2, -100, 1], &[4]);
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
        let y = npy::read_f32(&out).unwrap();
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
    npy::write_f32(d.join("x.npy"), &[0.0; 12], &[4, 3]).unwrap();
    write_i64(&d.join("t.npy"), &[0, 5, 1, 1], &[4]);
    write_i64(&d.join("i.npy"), &[0; 12], &[4, 3]);
    let cases: [(&[&str], &str); 4] = [
        (&["--target", "t.npy"], "Target 5 is out of bounds"),
        (
            &["--target", "t.npy", "--reduction", "bogus"],
            "invalid value 'bogus'",
        ),
        (
            &["--target", "t.npy", "--input-dtype", "f16"],
            "not yet supported",
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
        assert!(stderr.contains(want), "{extra:?}: {stderr}");
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
