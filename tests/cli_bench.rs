//! `xent bench` and `xent info` papercuts (issue 13): `bench --op noop`, tiny shapes timed
//! over many calls with no percentage of an overhead-bound roofline, N in the plot's series,
//! and info's sorted, wrapped feature list.
#![cfg(feature = "cli")]

mod cli_common;
use cli_common::*;

/// 7: info lists the features sorted, wrapped, with no debug dump.
#[test]
fn info_lists_features_sorted_and_wrapped() {
    let r = xent().arg("info").output().unwrap();
    let out = text(&r.stdout);
    assert!(r.status.success(), "{}", text(&r.stderr));
    assert!(
        !out.contains("Features {") && !out.contains("FeaturesWGPU("),
        "{out}"
    );
    let at = out.find("adapter features (").expect("a feature list");
    let lines: Vec<&str> = out[at..].lines().skip(1).collect();
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("    ") && l.len() <= 100),
        "{out}"
    );
    let names: Vec<&str> = lines.iter().flat_map(|l| l.split_whitespace()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
}

/// 9: `bench --op noop` reports the empty submission round trip like any op.
#[test]
fn bench_noop_reports_the_floor() {
    let d = tmpdir("noop");
    let r = run_in(
        &d,
        &["bench", "--op", "noop", "--iters", "3", "--json", "r.json"],
    );
    assert!(r.status.success(), "{}", text(&r.stderr));
    assert!(text(&r.stdout).contains("noop"), "{}", text(&r.stdout));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("r.json")).unwrap()).unwrap();
    let rows = v["results"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{v}");
    let ms = rows[0]["median_ms"].as_f64().unwrap();
    assert_eq!(rows[0]["op"], "noop");
    assert!(ms > 0.0 && ms < 1000.0, "{ms}");
    assert!(v["floor_ms"].as_f64().is_some_and(|f| f > 0.0), "{v}");
    let r = run_in(&d, &["bench", "--op", "noop", "--device", "cpu"]);
    assert_refused(&r, "--op noop", "noop on the cpu");
}

/// 11 and 10: tiny shapes are timed over many calls per sample, and a roofline that measures
/// overhead gives no percentage; the plot names N in each series.
#[test]
fn tiny_shapes_are_timed_over_many_calls_and_the_plot_names_n() {
    let d = tmpdir("tiny");
    let args = [
        "bench",
        "--op",
        "cross-entropy",
        "--op",
        "copy",
        "--iters",
        "3",
    ];
    let shapes = ["--shape", "8x100", "--shape", "64x100"];
    let out = ["--json", "r.json", "--plot", "r.svg"];
    let r = run_in(&d, &[&args[..], &shapes, &out].concat());
    assert!(r.status.success(), "{}", text(&r.stderr));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("r.json")).unwrap()).unwrap();
    for row in v["results"].as_array().unwrap() {
        // How many calls a sample holds depends on the machine's speed: at least one.
        assert!(row["calls_per_sample"].as_u64().unwrap() >= 1, "{row}");
        let bound = row["overhead_bound"].as_bool().unwrap();
        assert_eq!(row["pct_of_copy"].is_null(), bound, "{row}");
        assert!(
            row["pct_of_copy"].as_f64().is_none_or(|p| p <= 1000.0),
            "{row}"
        );
    }
    assert!(text(&r.stdout).contains("ovh") == text(&r.stdout).contains("ovh:"));
    let svg = std::fs::read_to_string(d.join("r.svg")).unwrap();
    for label in [
        "cross-entropy N=8",
        "cross-entropy N=64",
        "copy N=8",
        "whiskers",
    ] {
        assert!(svg.contains(label), "{label}");
    }
}
