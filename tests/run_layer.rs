//! The library's run layer (`neqkin::run`, shared by the CLI and Python): the same
//! results as the binary, cancellation that leaves a resumable folder (flag and SIGINT),
//! and option errors that name the option.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use neqkin::run::{self, BackendChoice, PrecisionChoice, RunOptions};
use neqkin::NeqkinError;

const BIN: &str = env!("CARGO_BIN_EXE_neqkin");

/// 12 points in batches of 3, exact solutions (`error_vs_exact` column).
const SWEEP: &str = r#"
model = "relaxation"
[solver]
method = "dopri5"
t_end = 1.0
n_outputs = 2
rtol = 1e-9
atol = 1e-12
[params]
grid_points = 8
initial = 2.0
[[sweep]]
name = "rate"
values = [0.5, 1.0, 2.0, 4.0]
[[sweep]]
name = "target"
values = [0.0, 1.0, -1.0]
[output]
batch_size = 3
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn cpu(out: &Path) -> RunOptions {
    RunOptions { backend: BackendChoice::Cpu, out: Some(out.to_path_buf()), ..Default::default() }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `run_config` writes the folder the binary writes: results.csv byte for byte.
#[test]
fn library_run_equals_cli_run() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write(tmp.path(), "sweep.toml", SWEEP);
    let lib_out = tmp.path().join("lib");
    let s = run::run_config(&cfg, &cpu(&lib_out)).unwrap();
    assert_eq!((s.sweep.points_run, s.sweep.batches, s.failed_points, s.cancelled), (12, 4, 0, false));
    let cli_out = tmp.path().join("cli");
    let o = Command::new(BIN)
        .args(["run", cfg.to_str().unwrap(), "--backend", "cpu", "--out", cli_out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let (a, b) = (read(&lib_out.join("results.csv")), read(&cli_out.join("results.csv")));
    assert_eq!(a, b);
    // The exact solution is met to the integrator's tolerance (rtol 1e-9 on values ≤ 2).
    let header: Vec<&str> = a.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|c| *c == "error_vs_exact").unwrap();
    for line in a.lines().skip(1) {
        let err: f64 = line.split(',').nth(col).unwrap().parse().unwrap();
        assert!(err < 1e-7, "error_vs_exact = {err} in {line}");
    }
}

/// A set cancel flag stops the sweep before its next batch; the folder resumes to the
/// same results as an uninterrupted run.
#[test]
fn cancelled_run_resumes_to_the_full_result() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write(tmp.path(), "sweep.toml", SWEEP);
    let out = tmp.path().join("out");
    let flag = Arc::new(AtomicBool::new(true));
    let s = run::run_config(&cfg, &RunOptions { cancel: Some(flag), ..cpu(&out) }).unwrap();
    assert!(s.cancelled);
    assert_eq!((s.sweep.points_run, s.sweep.batches), (0, 0));
    let meta: serde_json::Value = serde_json::from_str(&read(&out.join("meta.json"))).unwrap();
    assert_eq!(meta["complete"], false);
    let s = run::run_config(&cfg, &RunOptions { resume: true, ..cpu(&out) }).unwrap();
    assert_eq!((s.sweep.points_run, s.cancelled), (12, false));
    let full = tmp.path().join("full");
    run::run_config(&cfg, &cpu(&full)).unwrap();
    assert_eq!(read(&out.join("results.csv")), read(&full.join("results.csv")));
}

/// Option errors name the option; a non-empty folder needs resume or force.
#[test]
fn option_errors_name_the_option() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write(tmp.path(), "sweep.toml", SWEEP);
    let out = tmp.path().join("out");
    let e = run::run_config(&cfg, &RunOptions { precision: PrecisionChoice::F32, ..cpu(&out) }).unwrap_err();
    assert!(matches!(&e, NeqkinError::InvalidParameter { field, .. } if field == "precision"), "{e}");
    let e = "tpu".parse::<BackendChoice>().unwrap_err();
    assert!(matches!(&e, NeqkinError::InvalidParameter { field, .. } if field == "backend"), "{e}");
    run::run_config(&cfg, &cpu(&out)).unwrap();
    let e = run::run_config(&cfg, &cpu(&out)).unwrap_err();
    assert!(matches!(e, NeqkinError::Output { .. }), "{e}");
    let s = run::run_config(&cfg, &RunOptions { force: true, ..cpu(&out) }).unwrap();
    assert_eq!(s.sweep.points_run, 12);
}

/// SIGINT to `neqkin run` ends the run after the batch in flight: exit code 130, the
/// finished points recorded, and `--resume` completes the folder to the uninterrupted
/// results.
#[test]
fn sigint_stops_after_the_batch_in_flight_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    // 120 points of one batch each, a few milliseconds apiece.
    let cfg = write(
        tmp.path(),
        "slow.toml",
        r#"
model = "relaxation"
[solver]
method = "rk4"
dt = 0.0005
t_end = 1.0
[params]
grid_points = 4000
[[sweep]]
name = "rate"
linspace = [0.1, 2.0, 120]
[output]
arrays = false
batch_size = 1
"#,
    );
    let out = tmp.path().join("out");
    let child = Command::new(BIN)
        .args(["run", cfg.to_str().unwrap(), "--backend", "cpu", "--out", out.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let progress = out.join("progress.txt");
    let start = Instant::now();
    while std::fs::read_to_string(&progress).map_or(true, |s| s.lines().count() < 2) {
        assert!(start.elapsed() < Duration::from_secs(120), "no batch finished in 120 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    let done = read(&progress).lines().count();
    assert!(done < 120, "the run finished before the signal arrived ({done} points); stderr: {stderr}");
    assert_eq!(o.status.code(), Some(130), "stderr: {stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");
    let o = Command::new(BIN)
        .args(["run", cfg.to_str().unwrap(), "--backend", "cpu", "--resume", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let full = tmp.path().join("full");
    run::run_config(&cfg, &cpu(&full)).unwrap();
    assert_eq!(read(&out.join("results.csv")), read(&full.join("results.csv")));
}

/// `meta.json` reports right-hand-side evaluations per point, batch by batch and over the
/// run: for DOPRI5 (FSAL) a member's `1 + 6 × (accepted + rejected)` attempts, so a reader
/// sees whether a gain is fewer steps or cheaper steps.
#[test]
fn meta_reports_rhs_evaluations_per_point() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write(tmp.path(), "sweep.toml", &SWEEP.replace("batch_size = 3", "batch_size = 1"));
    let out = tmp.path().join("out");
    run::run_config(&cfg, &cpu(&out)).unwrap();
    let meta: serde_json::Value = serde_json::from_str(&read(&out.join("meta.json"))).unwrap();
    let csv = read(&out.join("results.csv"));
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|c| *c == name).unwrap();
    let (point, accepted, rejected) = (col("point"), col("steps_accepted"), col("steps_rejected"));
    let batches = meta["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 12);
    let mut total = 0.0;
    for b in batches {
        let p = b["points"][0].as_u64().unwrap().to_string();
        // The last row of the point holds its step counts over the whole run.
        let last = csv.lines().skip(1).filter(|l| l.split(',').nth(point) == Some(p.as_str())).last().unwrap();
        let f: Vec<&str> = last.split(',').collect();
        let attempts: f64 = f[accepted].parse::<f64>().unwrap() + f[rejected].parse::<f64>().unwrap();
        let evals = b["rhs_evaluations_per_point"].as_f64().unwrap();
        assert!(attempts > 0.0);
        assert_eq!(evals, 1.0 + 6.0 * attempts, "point {p}");
        total += evals;
    }
    let mean = meta["rhs_evaluations_per_point"].as_f64().unwrap();
    assert!((mean - total / 12.0).abs() < 1e-9 * mean, "{mean} vs {}", total / 12.0);
}
