//! End-to-end sweeps through the real binary on the `relaxation` fixture: resume after a
//! kill loses nothing, shards + merge equal the full run, the dataset (`results.zarr`)
//! holds the exact solution and opens in xarray, diverging
//! and failing points are flagged while the rest complete, exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use neqkin::run::dataset;

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

/// Sorted (relative path, bytes) of every file under `results.zarr/`.
fn arrays(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push((p.strip_prefix(root).unwrap().display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut v = Vec::new();
    walk(&dir.join("results.zarr"), &dir.join("results.zarr"), &mut v);
    v.sort();
    assert!(v.len() > 10, "a dataset with coordinates and arrays: {v:?}");
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
    // The run's per-point figure is recomputed over both shards' batches: the points'
    // mean, as one run over the same batches would give.
    let (mut evals, mut points) = (0.0, 0u64);
    for dir in [&s0, &s1] {
        let m: serde_json::Value = serde_json::from_str(&read(&dir.join("meta.json"))).unwrap();
        for b in m["batches"].as_array().unwrap() {
            evals += b["rhs_evaluations_per_point"].as_f64().unwrap() * b["size"].as_u64().unwrap() as f64;
            points += b["size"].as_u64().unwrap();
        }
    }
    assert_eq!(points, 20);
    assert_eq!(meta["rhs_evaluations_per_point"].as_f64(), Some(evals / points as f64), "{meta}");

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
fn dataset_holds_the_exact_solution_and_opens_in_xarray() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), "sweep.toml", SWEEP);
    let full = full_run(tmp.path(), &cfg);
    let store = full.join(dataset::STORE);
    assert!(!full.join("arrays").exists(), "no per-point NPY files any more");
    // y: (point, time, grid) = (20, 3, 16), one shard (20 × 3 × 16 reals are far below
    // the shard size); grid_x the same for every point: one 1-D array.
    let y = dataset::var_meta(&store, "y").unwrap();
    assert_eq!(
        (y.dims.clone(), y.shape.clone(), y.shard),
        (vec!["point".into(), "time".into(), "grid".into()], vec![20, 3, 16], 20)
    );
    let x = dataset::var_meta(&store, "grid_x").unwrap();
    assert_eq!((x.dims.clone(), x.shape.clone(), x.per_point), (vec!["grid".to_string()], vec![16], false));
    let files: Vec<String> = arrays(&full).into_iter().map(|(n, _)| n).collect();
    assert_eq!(files.iter().filter(|n| n.starts_with("y/c.")).count(), 1, "{files:?}");
    // Point 5: rate index 2 (0.1 + 2·1.9/9), target 1.
    let y = dataset::read_point(&store, "y", 5).unwrap();
    assert_eq!(y.len(), 3 * 16);
    let rate: f64 = 0.1 + 2.0 * 1.9 / 9.0;
    for (k, t) in [1.0f64 / 3.0, 2.0 / 3.0, 1.0].iter().enumerate() {
        let exact = 1.0 + (2.0 - 1.0) * (-rate * t).exp();
        for v in &y[k * 16..(k + 1) * 16] {
            assert!((v - exact).abs() < 1e-6, "t={t}: {v} vs {exact}");
        }
    }
    let x = dataset::read_point(&store, "grid_x", 7).unwrap();
    assert_eq!(x.len(), 16);
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
    // xarray with zarr, where the machine has them (NEQKIN_TEST_PYTHON, else python3),
    // opens the store in one line, without a warning, with the same values.
    let python = std::env::var("NEQKIN_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let have = Command::new(&python).args(["-c", "import xarray, zarr"]).output();
    if have.is_ok_and(|o| o.status.success()) {
        let script = format!(
            "import xarray as xr, numpy as np\n\
             ds = xr.open_zarr({:?})\n\
             assert ds.y.dims == ('point', 'time', 'grid') and ds.y.shape == (20, 3, 16), ds\n\
             assert list(ds.point.values) == list(range(20))\n\
             assert abs(float(ds.rate[5]) - ({rate})) < 1e-12 and float(ds.target[5]) == 1.0\n\
             assert ds.grid_x.dims == ('grid',) and 'grid_x' in ds.coords\n\
             np.testing.assert_allclose(ds.time.values, [1/3, 2/3, 1.0], rtol=1e-15)\n\
             np.testing.assert_array_equal(ds.y.values[5].ravel(), np.array({:?}))\n",
            store.to_str().unwrap(),
            y
        );
        let o = Command::new(&python).args(["-W", "error", "-c", &script]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    } else {
        eprintln!("xarray/zarr not installed for {python}: the dataset is checked by the Rust reader only");
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
    use neqkin::run::output::OpenMode;
    use neqkin::run::schedule::{run_sweep, BatchGroup, SweepOptions};

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
    use neqkin::run::output::OpenMode;
    use neqkin::run::schedule::{run_sweep, SweepOptions};

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

/// A sweep that changes the grid size (`grid_points`, a batch key): the grid dimension
/// has the largest size, shorter points are NaN-padded, `n_grid` holds each point's
/// length, and `grid_x` (different per size) stays per point. Shards + merge give the
/// same dataset byte for byte, also for the per-point static array.
#[test]
fn dataset_pads_a_swept_grid_size_and_merges_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(
        tmp.path(),
        "conv.toml",
        r#"
model = "relaxation"
[solver]
method = "dopri5"
t_end = 1.0
n_outputs = 2
[params]
initial = 2.0
rate = 1.0
[[sweep]]
name = "grid_points"
values = [8, 16, 8, 4]
"#,
    );
    let full = full_run(tmp.path(), &cfg);
    let store = full.join(dataset::STORE);
    let y = dataset::var_meta(&store, "y").unwrap();
    assert_eq!(y.shape, vec![4, 2, 16]);
    let x = dataset::var_meta(&store, "grid_x").unwrap();
    assert_eq!((x.dims.clone(), x.shape.clone()), (vec!["point".to_string(), "grid".into()], vec![4, 16]));
    let n = dataset::var_meta(&store, "n_grid").unwrap();
    assert_eq!(n.shape, vec![4]);
    for (p, len) in [(0usize, 8usize), (1, 16), (2, 8), (3, 4)] {
        assert_eq!(dataset::point_len(&store, "y", p), Some(len));
        let y = dataset::read_point(&store, "y", p).unwrap();
        for row in y.chunks(16) {
            assert!(row[..len].iter().all(|v| v.is_finite()), "point {p}: {row:?}");
            assert!(row[len..].iter().all(|v| v.is_nan()), "point {p}: padding {row:?}");
        }
        let x = dataset::read_point(&store, "grid_x", p).unwrap();
        assert_eq!(x[0], 0.5 / len as f64);
    }
    let (s0, s1) = (tmp.path().join("s0"), tmp.path().join("s1"));
    for (dir, shard) in [(&s0, "0/2"), (&s1, "1/2")] {
        ok(&neqkin(&["run", cfg.to_str().unwrap(), "--out", dir.to_str().unwrap(), "--shard", shard], &[]));
    }
    let merged = tmp.path().join("merged");
    ok(&neqkin(&["merge", merged.to_str().unwrap(), s0.to_str().unwrap(), s1.to_str().unwrap()], &[]));
    assert_eq!(arrays(&merged), arrays(&full));
    assert_eq!(read(&merged.join("results.csv")), read(&full.join("results.csv")));
}
