//! The per-point window summary of |Δ|(t) (issue 5: a steady state detected, or a
//! persistent oscillation reported as mean and spread over a window — never a single
//! end-time value presented as steady), through the scheduler's summary hook.

use std::process::Command;

use neqkin::models::interband::analysis::{summary, SUMMARY_NAMES};

fn history(f: impl Fn(f64) -> f64) -> Vec<(f64, Vec<(String, f64)>)> {
    (0..=100).map(|k| k as f64).map(|t| (t, vec![("delta_abs".to_string(), f(t))])).collect()
}

#[test]
fn verdicts_on_synthetic_histories() {
    let code = SUMMARY_NAMES.iter().position(|n| *n == "verdict").unwrap();
    let mean = SUMMARY_NAMES.iter().position(|n| *n == "delta_window_mean").unwrap();
    let spread = SUMMARY_NAMES.iter().position(|n| *n == "delta_window_spread").unwrap();
    // Settled: steady (1) with the settled value as mean.
    let s = summary(&history(|t| 0.02 + 1e-3 * (-t / 5.0).exp()));
    assert_eq!(s[code], 1.0, "{s:?}");
    assert!((s[mean] - 0.02).abs() < 1e-6);
    // Persistent oscillation: code 2, mean and spread reported.
    let s = summary(&history(|t| 0.02 + 0.005 * (0.7 * t).sin()));
    assert_eq!(s[code], 2.0, "{s:?}");
    assert!((s[mean] - 0.02).abs() < 1e-3 && (s[spread] - 0.01).abs() < 1e-3, "{s:?}");
    // Still growing: drifting (4), not steady.
    let s = summary(&history(|t| 1e-3 * t));
    assert_eq!(s[code], 4.0, "{s:?}");
    // Normal state.
    let s = summary(&history(|_| 1e-15));
    assert_eq!(s[code], 0.0, "{s:?}");
}

#[test]
fn summary_is_written_on_the_last_row_only() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("v0.toml");
    std::fs::write(
        &config,
        r#"
model = "interband"
[solver]
method = "dopri5"
t_end = 100.0
n_outputs = 12
[params]
coupling_v = 0.0
rabi_frequency = 0.25
cutoff = 0.2
grid_step = 0.01
"#,
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_neqkin"))
        .args(["run", config.to_str().unwrap(), "--out", out.to_str().unwrap(), "--backend", "cpu"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "verdict").expect("verdict column");
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 12);
    for r in &rows[..11] {
        assert!(r[col].is_empty() || r[col].eq_ignore_ascii_case("nan"), "early row has a verdict: {r:?}");
    }
    // V = 0: no pairing, the normal state.
    assert_eq!(rows[11][col].parse::<f64>().unwrap(), 0.0, "{:?}", rows[11]);
}
