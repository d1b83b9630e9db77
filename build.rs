//! Lists the golden cases found in tests/golden and tests/golden_linear when the crate is
//! built, for the browser tests (tests/web.rs), which have no file system: one test a case
//! directory, its files embedded. A published crate has no such directories: the list is
//! empty there.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let mut cases = String::new();
    let mut tests = String::new();
    for set in ["golden", "golden_linear"] {
        let dir = Path::new(&root).join("tests").join(set);
        println!("cargo:rerun-if-changed={}", dir.display());
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<_> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("case.json").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            let case = dir.join(&name);
            println!("cargo:rerun-if-changed={}", case.display());
            let mut files: Vec<_> = std::fs::read_dir(&case)
                .expect("a case directory lists")
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|f| f.ends_with(".npy"))
                .collect();
            files.sort();
            let embedded: String = files
                .iter()
                .map(|f| format!("({f:?}, include_bytes!({:?})), ", case.join(f)))
                .collect();
            let index = cases.matches("GoldenCase {").count();
            let _ = writeln!(
                cases,
                "GoldenCase {{ name: {name:?}, json: include_str!({:?}), files: &[{embedded}] }},",
                case.join("case.json")
            );
            let ident: String = name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            let _ = writeln!(
                tests,
                "#[wasm_bindgen_test] async fn {set}_{ident}() {{ run_case(&GOLDEN[{index}]).await }}"
            );
        }
    }
    let list = format!("pub const GOLDEN: &[GoldenCase] = &[\n{cases}];\n");
    std::fs::write(Path::new(&out).join("golden_cases.rs"), list).expect("OUT_DIR is writable");
    std::fs::write(Path::new(&out).join("golden_tests.rs"), tests).expect("OUT_DIR is writable");
}
