//! Batches grouped by the model's batch key (issue 11, item 1): sweeping a grid size
//! (`grid_points` of relaxation and photoexcited, `n_omega` of cavity, `grid_step` of
//! interband) works with any
//! `batch_size`, and every point's result equals its result when run alone. Plus the
//! `--dry-run` report, and why a failed or stopped point stopped (item 5).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_neqkin");

/// Runs `toml` into `dir/name`; returns (exit code, stderr, rows as header → value maps).
fn run(dir: &Path, name: &str, toml: &str, args: &[&str]) -> (Option<i32>, String, Vec<BTreeMap<String, String>>) {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(&cfg, toml).unwrap();
    let out = dir.join(name);
    let o =
        Command::new(BIN).args(["run", "--backend", "cpu", "--out"]).arg(&out).arg(&cfg).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    let rows = match std::fs::read_to_string(out.join("results.csv")) {
        Ok(csv) => parse_csv(&csv),
        Err(_) => Vec::new(),
    };
    (o.status.code(), stderr, rows)
}

/// A minimal CSV reader (the message column may be quoted and hold commas).
fn parse_csv(csv: &str) -> Vec<BTreeMap<String, String>> {
    let split = |line: &str| -> Vec<String> {
        let (mut fields, mut cur, mut quoted) = (Vec::new(), String::new(), false);
        for ch in line.chars() {
            match ch {
                '"' => quoted = !quoted,
                ',' if !quoted => fields.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        fields.push(cur);
        fields
    };
    let mut lines = csv.lines();
    let header = split(lines.next().unwrap_or_default());
    lines.map(|l| header.iter().cloned().zip(split(l)).collect()).collect()
}

/// Rows by (point, output) with the columns that must not depend on batch-mates.
fn results(rows: &[BTreeMap<String, String>], skip: &[&str]) -> BTreeMap<(u64, u64), BTreeMap<String, String>> {
    rows.iter()
        .map(|r| {
            let key = (r["point"].parse().unwrap(), r["output"].parse().unwrap());
            let vals =
                r.iter().filter(|(k, _)| !skip.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
            (key, vals)
        })
        .collect()
}

/// Sweeps `axis` over `values` in batches of `batch_size` (with a second axis so that
/// batches mix keys unless grouped), then runs every point alone (batch_size = 1) and
/// checks: exit 0, every row `reached`/`steady`, one group per grid size, and equal
/// results point by point.
fn check_grid_sweep(name: &str, head: &str, axis: &str, values: &str, second: &str, batch_size: usize) {
    let dir = tempfile::tempdir().unwrap();
    let toml = |b: usize| {
        format!("{head}\n[[sweep]]\nname = \"{axis}\"\nvalues = [{values}]\n{second}\n[output]\nbatch_size = {b}\narrays = false\n")
    };
    let (code, stderr, rows) = run(dir.path(), "batched", &toml(batch_size), &[]);
    assert_eq!(code, Some(0), "{name}: {stderr}");
    assert!(!rows.is_empty(), "{name}: no rows");
    for r in &rows {
        assert!(
            r["status"] == "reached" || r["status"] == "steady",
            "{name}: point {} is {}: {}",
            r["point"],
            r["status"],
            r["message"]
        );
    }
    // The dry run shows one group per grid size.
    let cfg = dir.path().join("batched.toml");
    let o = Command::new(BIN)
        .args(["run", "--dry-run", "--backend", "cpu", "--out"])
        .arg(dir.path().join("dry"))
        .arg(&cfg)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&o.stdout);
    let n_values = values.split(',').count();
    assert!(report.contains(&format!("in {n_values} group(s) by batch key")), "{name}: {report}");
    let (code1, stderr1, alone) = run(dir.path(), "alone", &toml(1), &[]);
    assert_eq!(code1, Some(0), "{name}: {stderr1}");
    let skip = ["steps_accepted", "steps_rejected"];
    let (a, b) = (results(&rows, &skip), results(&alone, &skip));
    assert_eq!(a.len(), b.len(), "{name}: row counts");
    for (k, v) in &a {
        assert_eq!(Some(v), b.get(k), "{name}: point {} output {} differs from its run alone", k.0, k.1);
    }
}

#[test]
fn relaxation_grid_points_sweep_with_batches() {
    check_grid_sweep(
        "relaxation",
        "model = \"relaxation\"\n[solver]\nmethod = \"dopri5\"\nt_end = 1.0\nn_outputs = 2\nrtol = 1e-9\natol = 1e-12\n[params]\ninitial = 2.0\ndiffusion = 0.1",
        "grid_points",
        "4, 8, 16",
        "[[sweep]]\nname = \"rate\"\nvalues = [0.5, 1.0, 2.0]",
        4,
    );
}

#[test]
fn photoexcited_grid_points_sweep_with_batches() {
    check_grid_sweep(
        "photoexcited",
        "model = \"photoexcited\"\n[solver]\nt_end = 1.0\noutput_times = [1.0]\n[params]\nfilling = 0.5\nzeta = 5.0",
        "grid_points",
        "100, 160",
        "[[sweep]]\nname = \"phonon_frequency\"\nvalues = [0.3, 0.5]",
        3,
    );
}

#[test]
fn cavity_n_omega_sweep_with_batches() {
    check_grid_sweep(
        "cavity",
        "model = \"cavity\"\n[solver]\nmethod = \"newton\"\nsteady_tol = 1e-10\n[params]\nlevel = 3\nt_cry = 1.0\nt_mir = 10.0\nnu0 = 1.0\ngamma = 1.0\nmu0 = 1.0",
        "n_omega",
        "401, 801",
        "[[sweep]]\nname = \"coupling_g\"\nvalues = [0.1, 0.3]",
        4,
    );
}

#[test]
fn interband_grid_step_sweep_with_batches() {
    // grid_step sets the number of momenta (2·round(cutoff/grid_step)).
    check_grid_sweep(
        "interband",
        "model = \"interband\"\n[solver]\nt_end = 10.0\nn_outputs = 2\n[params]\ngamma_ph = 0.01\ngamma_rr = 0.001",
        "grid_step",
        "0.01, 0.02",
        "[[sweep]]\nname = \"coupling_v\"\nvalues = [0.0, 5.0]",
        4,
    );
}

#[test]
fn dry_run_prints_points_batches_memory_output_and_backend() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "model = \"relaxation\"\n[solver]\nt_end = 1.0\nn_outputs = 4\n[params]\ngrid_points = 1000\n\
         [[sweep]]\nname = \"rate\"\nlinspace = [0.1, 1.0, 10]\n[output]\nbatch_size = 4\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let o =
        Command::new(BIN).args(["run", "--dry-run", "--backend", "cpu", "--out"]).arg(&out).arg(&cfg).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = String::from_utf8_lossy(&o.stdout);
    for what in [
        "points: 10 (10 in this shard)",
        "batches: 3 in 1 group(s)",
        "grid_points=1000: 10 points, 3 batch(es) of ≤ 4",
        "memory: largest batch ≈",
        // 10 points × (4 outputs × y (1000 reals) + the static grid_x (1000 reals) once)
        // × 8 B = 400 000 B of arrays: results.zarr does not store a static array per
        // output time.
        "arrays ≈ 390.6 KiB",
        "backend: cpu",
    ] {
        assert!(s.contains(what), "dry run lacks `{what}`:\n{s}");
    }
    assert!(!out.exists(), "the dry run created the output folder");
}

/// The bytes of `memory: largest batch ≈ …` a dry run of `toml` prints.
fn dry_run_batch_bytes(toml: &str) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, toml).unwrap();
    let out = dir.path().join("out");
    let o =
        Command::new(BIN).args(["run", "--dry-run", "--backend", "cpu", "--out"]).arg(&out).arg(&cfg).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = String::from_utf8_lossy(&o.stdout).to_string();
    let line = s.lines().find(|l| l.starts_with("memory: largest batch ≈ ")).unwrap_or_else(|| panic!("{s}"));
    let mut words = line["memory: largest batch ≈ ".len()..].split_whitespace();
    let x: f64 = words.next().unwrap().parse().unwrap();
    let unit = words.next().unwrap();
    let unit = ["B", "KiB", "MiB", "GiB"].iter().position(|u| *u == unit).unwrap();
    x * 1024f64.powi(unit as i32)
}

#[test]
fn bdf_memory_estimate_is_band_storage_for_a_sparse_pattern() {
    // Photoexcited declares a sparse Jacobian pattern: bdf stores band factors, O(N·band)
    // (≈ 1 MiB at N = 2048, band ≈ 20 after reordering), not the dense N² × 3 reals
    // (≈ 96 MiB) of the dense path, nor the natural-order band (a phonon shift ≈ N/2: 65 MiB).
    let toml = |method: &str| {
        format!(
            "model = \"photoexcited\"\n[solver]\nmethod = \"{method}\"\nt_end = 1.0\noutput_times = [1.0]\n\
             [params]\nfilling = 0.5\nzeta = 5.0\ngrid_points = 2048\n[output]\nbatch_size = 1\narrays = false\n"
        )
    };
    let (bdf, dopri5) = (dry_run_batch_bytes(&toml("bdf")), dry_run_batch_bytes(&toml("dopri5")));
    assert!(bdf > dopri5, "bdf {bdf} B, dopri5 {dopri5} B: the band storage is counted");
    assert!(bdf < 4.0 * 1024.0 * 1024.0, "bdf {bdf} B: sized as dense or by the natural-order band");
}

/// The `message` of the last row of a one-point relaxation run.
fn failure_message(solver: &str, params: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!("model = \"relaxation\"\n[solver]\n{solver}\n[params]\n{params}\n[output]\narrays = false\n");
    let (code, stderr, rows) = run(dir.path(), "f", &toml, &[]);
    let last = rows.last().unwrap_or_else(|| panic!("no rows: {stderr}"));
    assert_eq!(code, Some(1), "{stderr}");
    (last["status"].clone(), last["message"].clone())
}

#[test]
fn failed_points_say_max_steps_with_t() {
    let (status, msg) = failure_message("method = \"dopri5\"\nt_end = 100.0\nmax_steps = 5", "rate = 1.0");
    assert_eq!(status, "failed");
    assert!(msg.starts_with("max_steps reached at t = "), "{msg}");
    assert!(msg.contains("5 step attempts"), "{msg}");
}

#[test]
fn failed_points_say_step_size_underflow_with_t_and_h() {
    // y' = 2000 y overflows f64 near t = 0.35: every trial step is non-finite until h underflows.
    for method in ["dopri5", "rkc"] {
        let (status, msg) = failure_message(&format!("method = \"{method}\"\nt_end = 1.0"), "rate = -2000.0");
        assert_eq!(status, "failed", "{method}");
        assert!(
            msg.starts_with("step size too small at t = 3.5") || msg.starts_with("step size too small at t = 3.4"),
            "{method}: {msg}"
        );
        assert!(msg.contains("(h = ") && msg.contains("non-finite state"), "{method}: {msg}");
    }
}

#[test]
fn failed_points_say_non_finite_state_with_t() {
    // RK4 far outside its stability region (h·rate = -100) overflows to inf.
    let (status, msg) = failure_message("method = \"rk4\"\nt_end = 1.0\ndt = 0.01", "rate = -10000.0");
    assert_eq!(status, "failed");
    assert!(msg.starts_with("non-finite state at t = "), "{msg}");
}

#[test]
fn stopped_points_say_the_models_reason() {
    let dir = tempfile::tempdir().unwrap();
    let toml = "model = \"interband\"\n[solver]\nt_end = 12000.0\nn_outputs = 120\n[params]\nband_a1 = 7.0\n\
                band_a2 = 24.0\ngamma_ph = 0.02\ngamma_rr = 0.002\ncutoff = 0.2\ngrid_step = 0.01\nearly_stop = true\n\
                rabi_frequency = 0.25\ncoupling_v = 8.0\n[output]\narrays = false\n";
    let (code, stderr, rows) = run(dir.path(), "ib", toml, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let stopped: Vec<_> = rows.iter().filter(|r| r["status"] == "stopped").collect();
    assert!(!stopped.is_empty(), "no stopped rows");
    for r in stopped {
        assert!(r["message"].starts_with("stopped at t = ") && r["message"].contains("early_stop"), "{}", r["message"]);
    }
}
