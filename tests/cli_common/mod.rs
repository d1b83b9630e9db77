//! Helpers shared by the tests that run the `xent` binary (tests/cli*.rs).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Writes `data` as a `.npy` of `T`'s default dtype and shape `shape`.
pub fn write_npy<T: npyz::AutoSerialize + Copy>(path: impl AsRef<Path>, data: &[T], shape: &[u64]) {
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

pub fn xent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xent"))
}

/// Runs xent with `args`.
pub fn run(args: &[&str]) -> Output {
    xent().args(args).output().unwrap()
}

/// Runs xent in `d`.
pub fn run_in(d: &Path, args: &[&str]) -> Output {
    xent().current_dir(d).args(args).output().unwrap()
}

/// A fresh, empty folder of this test binary's, named `name`.
pub fn tmpdir(name: &str) -> PathBuf {
    let crate_name = env!("CARGO_CRATE_NAME");
    let d = std::env::temp_dir().join(format!("xent-{crate_name}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// Refused with status 1 and a message containing `want`: never a panic (101) or an abort
/// (a signal).
pub fn assert_refused(r: &Output, want: &str, what: &str) {
    let e = text(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{what}: {e}");
    assert!(!e.contains("panicked"), "{what}: {e}");
    assert!(e.contains(want), "{what}: want {want:?} in {e}");
}
