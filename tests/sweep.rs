//! End-to-end sweeps through the real binary on the `relaxation` fixture: resume after a
//! kill loses nothing, shards + merge equal the full run, arrays load as NPY, diverging
//! and failing points are flagged while the rest complete, exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use neqkin::engine::output::read_npy;

const BIN: &str = env!("CARGO_BIN_EXE_neqkin");

/// 20 points in batches of 4 (5 batches), 3 output times.
const SWEEP: &str = r#"
model = "relaxation"
title = "scheduler test sweep"
[solver]
method = "dopri5"
t_end = 1.0
n_outputs = 3
rtol = 1e-8
atol = 1e-10
[params]
grid_points = 16
initial = 2.0
[[sweep]]
name = "rate"
linspace = [0.1, 2.0, 10]
[[sweep]]
name = "target"
values = [0.0, 1.0]
[output]
batch_size = 4
"#;

/// Runs the binary; `run` uses the CPU backend unless the arguments pick one.
fn neqkin(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args).env_remove("NEQKIN_TEST_ABORT_AFTER_BATCHES");
    if args.first() == Some(&"run") && !args.contains(&"--backend") {
        c.args(["--backend", "cpu"]);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run neqkin")
}

fn ok(o: &Output) {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&o.stderr));
}

fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Sorted (name, bytes) of every file under `arrays/`.
fn arrays(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("arrays"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().to_string(), std::fs::read(e.path()).unwrap())
        })
        .collect();
    v.sort();
    v
}

fn full_run(tmp: &Path, cfg: &Path) -> PathBuf {
    let out = tmp.join("full");
    ok(&neqkin(&["run", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()], &[]));
    out
}

#[test]
fn resume_after_kill_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), "sweep.toml", SWEEP);
    let full = full_run(tmp.path(), &cfg);
    let csv_full = read(&full.join("results.csv"));
    assert_eq!(csv_full.lines().count(), 1 + 20 * 3);

    let out = tmp.path().join("killed");
    let o = neqkin(
        &["run", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()],
        &[("NEQKIN_TEST_ABORT_AFTER_BATCHES", "2")],
    );
    assert!(!o.status.success(), "the abort hook must kill the run");
    let progress = read(&out.join("progress.txt"));
    assert_eq!(progress.lines().count(), 8, "two batches of 4 recorded: {progress}");
    // Simulate a kill between a batch's rows and its progress record: rows of an
    // unfinished point (and a torn last line) must be dropped on resume.
    let stray: String = csv_full.lines().filter(|l| l.starts_with("9,")).map(|l| format!("{l}\n")).collect();
    let mut csv = read(&out.join("results.csv"));
    csv.push_str(&stray);
    csv.push_str("10,0.3,1");
    std::fs::write(out.join("results.csv"), csv).unwrap();

    // Without --resume the folder is refused (usage error).
    let o = neqkin(&["run", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--resume"));

    let o = neqkin(&["run", cfg.to_str().unwrap(), "--out", out.to_str().unwrap(), "--resume", "--progress"], &[]);
    ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("12 of 20 points"), "{err}");
    assert_eq!(read(&out.join("results.csv")), csv_full);
    assert_eq!(arrays(&out), arrays(&full));
    let meta: serde_json::Value = serde_json::from_str(&read(&out.join("meta.json"))).unwrap();
    assert_eq!(meta["complete"], true);
    assert_eq!(meta["sessions"].as_array().unwrap().len(), 2);
    assert!(meta["started"].as_str().unwrap() <= meta["finished"].as_str().unwrap());
    assert_eq!(meta["shard"]["count"], 1);
    assert_eq!(meta["resolved"]["solver"]["output_times"].as_array().unwrap().len(), 3);
    assert!(meta["git_commit"].is_string() && meta["neqkin_version"].is_string());
    assert_eq!(meta["batches"].as_array().unwrap().len(), 5);

    // Resuming a finished run does nothing and changes nothing.
    ok(&neqkin(&["run", cfg.to_str().unwrap(), "--out", out.to_str().unwrap(), "--resume"], &[]));
    assert_eq!(read(&out.join("results.csv")), csv_full);

    // Resuming with a different sweep is refused.
    let other = write_config(tmp.path(), "other.toml", &SWEEP.replace("[0.0, 1.0]", "[0.0, 2.0]"));
    let o = neqkin(&["run", other.to_str().unwrap(), "--out", out.to_str().unwrap(), "--resume"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("different config"));
}

#[test]
fn shards_and_merge_equal_the_full_run() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), "sweep.toml", SWEEP);
    let full = full_run(tmp.path(), &cfg);
    let (s0, s1) = (tmp.path().join("s0"), tmp.path().join("s1"));
    for (dir, shard) in [(&s0, "0/2"), (&s1, "1/2")] {
        ok(&neqkin(&["run", cfg.to_str().unwrap(), "--out", dir.to_str().unwrap(), "--shard", shard], &[]));
    }
    let shard0 = read(&s0.join("results.csv"));
    assert!(shard0.lines().skip(1).all(|l| l.split(',').next().unwrap().parse::<usize>().unwrap() % 2 == 0));
    let merged = tmp.path().join("merged");
    ok(&neqkin(&["merge", merged.to_str().unwrap(), s1.to_str().unwrap(), s0.to_str().unwrap()], &[]));
    assert_eq!(read(&merged.join("results.csv")), read(&full.join("results.csv")));
    assert_eq!(arrays(&merged), arrays(&full));
    let meta: serde_json::Value = serde_json::from_str(&read(&merged.join("meta.json"))).unwrap();
    assert_eq!(meta["shards"].as_array().unwrap().len(), 2);
    assert_eq!(meta["complete"], true);

    // Resuming a shard folder as another shard is refused.
    let o = neqkin(&["run", cfg.to_str().unwrap(), "--out", s0.to_str().unwrap(), "--resume", "--shard", "1/2"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("holds shard 0/2"), "{}", String::from_utf8_lossy(&o.stderr));

    // A shard of another config is refused.
    let other = write_config(tmp.path(), "other.toml", &SWEEP.replace("initial = 2.0", "initial = 3.0"));
    let s2 = tmp.path().join("s2");
    ok(&neqkin(&["run", other.to_str().unwrap(), "--out", s2.to_str().unwrap(), "--shard", "1/2"], &[]));
    let o =
        neqkin(&["merge", tmp.path().join("m2").to_str().unwrap(), s0.to_str().unwrap(), s2.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("different config"), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn arrays_are_npy_and_match_the_exact_solution() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), "sweep.toml", SWEEP);
    let full = full_run(tmp.path(), &cfg);
    // Point 5: rate index 2 (0.1 + 2·1.9/9), target 1.
    let (shape, y) = read_npy(&std::fs::read(full.join("arrays/point_000005_y.npy")).unwrap()).unwrap();
    assert_eq!(shape, vec![3, 16]);
    let rate: f64 = 0.1 + 2.0 * 1.9 / 9.0;
    for (k, t) in [1.0f64 / 3.0, 2.0 / 3.0, 1.0].iter().enumerate() {
        let exact = 1.0 + (2.0 - 1.0) * (-rate * t).exp();
        for v in &y[k * 16..(k + 1) * 16] {
            assert!((v - exact).abs() < 1e-6, "t={t}: {v} vs {exact}");
        }
    }
    let (shape, x) = read_npy(&std::fs::read(full.join("arrays/grid_x.npy")).unwrap()).unwrap();
    assert_eq!(shape, vec![16]);
    assert_eq!(x[0], 0.5 / 16.0);
    // The CSV columns and the exact-solution observable.
    let csv = read(&full.join("results.csv"));
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    assert_eq!(
        header,
        [
            "point",
            "rate",
            "target",
            "output",
            "t",
            "t_reached",
            "status",
            "steps_accepted",
            "steps_rejected",
            "mean",
            "error_vs_exact",
            "message"
        ]
    );
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f[6], "reached", "{line}");
        assert!(f[10].parse::<f64>().unwrap() < 1e-6, "{line}");
    }
    // numpy, where the machine has it, loads the files as they are.
    let numpy = Command::new("python3").args(["-c", "import numpy"]).output();
    if numpy.is_ok_and(|o| o.status.success()) {
        let script = format!(
            "import numpy as np; a = np.load({:?}); assert a.shape == (3, 16), a.shape; print(a.dtype)",
            full.join("arrays/point_000005_y.npy").to_str().unwrap()
        );
        let o = Command::new("python3").args(["-c", &script]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    } else {
        eprintln!("numpy not installed: NPY checked by the Rust parser only");
    }
}

#[test]
fn diverging_point_is_flagged_and_the_rest_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(
        tmp.path(),
        "diverge.toml",
        r#"
model = "relaxation"
[solver]
method = "rk4"
dt = 0.01
t_end = 2.0
output_times = [1.0, 2.0]
[params]
grid_points = 8
[[sweep]]
name = "rate"
values = [1.0, -10000.0, 0.5]
"#,
    );
    let out = tmp.path().join("out");
    let o = neqkin(&["run", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(1), "exit 1: finished with failed points; {}", String::from_utf8_lossy(&o.stderr));
    let csv = read(&out.join("results.csv"));
    let col = |name: &str| csv.lines().next().unwrap().split(',').position(|c| c == name).unwrap();
    let (st, err_col) = (col("status"), col("error_vs_exact"));
    let status: Vec<(String, String)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_string(), f[st].to_string())
        })
        .collect();
    assert_eq!(
        status,
        [("0", "reached"), ("0", "reached"), ("1", "failed"), ("1", "failed"), ("2", "reached"), ("2", "reached")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    // The good points are accurate (RK4, dt = 0.01).
    for l in csv.lines().skip(1).filter(|l| !l.starts_with("1,")) {
        let err: f64 = l.split(',').nth(err_col).unwrap().parse().unwrap();
        assert!(err < 1e-8, "{l}");
    }
}

#[test]
fn failing_batch_is_recorded_and_the_sweep_goes_on() {
    use neqkin::engine::backend::Backend;
    use neqkin::engine::cpu::CpuBackend;
    use neqkin::engine::output::OpenMode;
    use neqkin::engine::schedule::{run_sweep, BatchGroup, SweepOptions};

    let tmp = tempfile::tempdir().unwrap();
    // The run layer groups points by batch key, so it never mixes grid sizes; groups
    // handed to the scheduler directly can: the first batch (grid_points 8 and 16) fails
    // to build, the second (16, 16) runs.
    let text = r#"
model = "relaxation"
[solver]
t_end = 1.0
[[sweep]]
name = "grid_points"
values = [8, 16, 16, 16]
[output]
arrays = false
"#;
    let raw = neqkin::config::parse(text, false).unwrap();
    let model = neqkin::models::find(&raw.model).unwrap();
    let plan = neqkin::config::Plan::check(raw, &*model).unwrap();
    let mut factory = |p| Ok(Box::new(CpuBackend::new(p)) as Box<dyn Backend>);
    let out = tmp.path().join("out");
    let opts = SweepOptions {
        mode: Some(OpenMode::New),
        groups: Some(vec![BatchGroup { points: vec![0, 1, 2, 3], batch_size: 2 }]),
        ..Default::default()
    };
    let s = run_sweep(&plan, &*model, &out, &opts, &|_| 2, &mut factory).unwrap();
    assert_eq!((s.points_run, s.batches, s.points_failed), (4, 2, 2));
    let csv = read(&out.join("results.csv"));
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 4);
    assert!(rows[0].contains(",failed,") && rows[0].contains("grid_points"), "{}", rows[0]);
    assert!(rows[1].contains(",failed,"));
    assert!(rows[2].contains(",reached,") && rows[3].contains(",reached,"));
}

#[test]
fn usage_errors_exit_2_and_name_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), "bad.toml", &SWEEP.replace("rtol = 1e-8", "rtol = nan"));
    let o = neqkin(&["run", cfg.to_str().unwrap(), "--out", tmp.path().join("o").to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("solver.rtol"));
    let good = write_config(tmp.path(), "good.toml", SWEEP);
    let o = neqkin(&["run", good.to_str().unwrap(), "--shard", "2/2"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--shard"));
    let o = neqkin(&["run", good.to_str().unwrap(), "--backend", "cpu", "--precision", "f32"], &[]);
    assert_eq!(o.status.code(), Some(2));
}

/// The same sweep on the GPU backend (lavapipe in CI) agrees with the CPU run. Fails when
/// no adapter is found and `NEQKIN_REQUIRE_GPU=1` (CI); skipped with a notice otherwise.
#[test]
fn gpu_sweep_matches_cpu() {
    if !neqkin::engine::gpu::testing::gpu_available("gpu_sweep_matches_cpu") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), "sweep.toml", SWEEP);
    let cpu = full_run(tmp.path(), &cfg);
    let gpu = tmp.path().join("gpu");
    let o = neqkin(&["run", cfg.to_str().unwrap(), "--out", gpu.to_str().unwrap(), "--backend", "gpu"], &[]);
    ok(&o);
    let meta: serde_json::Value = serde_json::from_str(&read(&gpu.join("meta.json"))).unwrap();
    assert_eq!(meta["backend"]["backend"], "gpu");
    let tol = if meta["backend"]["precision"] == "f32" { 1e-5 } else { 1e-9 };
    let (c, g) = (read(&cpu.join("results.csv")), read(&gpu.join("results.csv")));
    assert_eq!(c.lines().count(), g.lines().count());
    let header: Vec<&str> = c.lines().next().unwrap().split(',').collect();
    let mean = header.iter().position(|h| *h == "mean").unwrap();
    let status = header.iter().position(|h| *h == "status").unwrap();
    for (lc, lg) in c.lines().zip(g.lines()).skip(1) {
        let (fc, fg): (Vec<&str>, Vec<&str>) = (lc.split(',').collect(), lg.split(',').collect());
        assert_eq!(fc[..4], fg[..4]);
        assert_eq!(fc[status], fg[status]);
        let (a, b): (f64, f64) = (fc[mean].parse().unwrap(), fg[mean].parse().unwrap());
        assert!((a - b).abs() <= tol * a.abs().max(1.0), "cpu {lc}\ngpu {lg}");
    }
}

/// The library API the CLI uses: the capacity function sizes batches when the config
/// leaves `batch_size` at 0, and a factory error fails only its batch.
#[test]
fn run_sweep_uses_capacity_and_isolates_factory_errors() {
    use neqkin::engine::backend::Backend;
    use neqkin::engine::cpu::CpuBackend;
    use neqkin::engine::output::OpenMode;
    use neqkin::engine::schedule::{run_sweep, SweepOptions};

    let tmp = tempfile::tempdir().unwrap();
    let text = SWEEP.replace("batch_size = 4", "batch_size = 0");
    let raw = neqkin::config::parse(&text, false).unwrap();
    let model = neqkin::models::find(&raw.model).unwrap();
    let plan = neqkin::config::Plan::check(raw, &*model).unwrap();
    let mut calls = 0;
    let mut factory = |p| {
        calls += 1;
        if calls == 2 {
            return Err(neqkin::NeqkinError::NoAdapter("test: second batch has no device".into()));
        }
        Ok(Box::new(CpuBackend::new(p)) as Box<dyn Backend>)
    };
    let out = tmp.path().join("lib");
    let opts = SweepOptions { mode: Some(OpenMode::New), ..Default::default() };
    let s = run_sweep(&plan, &*model, &out, &opts, &|_| 3, &mut factory).unwrap();
    assert_eq!((s.points_run, s.batches, s.points_failed), (20, 7, 3));
    let csv = read(&out.join("results.csv"));
    let failed: Vec<&str> = csv.lines().filter(|l| l.contains(",failed,")).collect();
    assert_eq!(failed.len(), 3 * 3);
    assert!(failed.iter().all(|l| l.contains("second batch has no device")));
    assert!(failed.iter().all(|l| ["3,", "4,", "5,"].iter().any(|p| l.starts_with(p))));
}
