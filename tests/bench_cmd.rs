//! `neqkin bench --quick --json FILE` through the real binary: every case of the suite on
//! the CPU backend (and on the GPU adapter when there is one) with positive finite figures,
//! the counts the suite fixes (RK4 steps and RHS evaluations), the adapter's name; and
//! `dispatches_per_accepted_step` in `meta.json` of a GPU run.

use std::path::Path;
use std::process::Command;

use neqkin::engine::gpu::testing::gpu_available;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_neqkin");

const CASES: [&str; 4] =
    ["photoexcited_small_batch", "photoexcited_large_batch", "interband_phase_diagram", "cavity_newton"];

/// Figures that must be positive and finite in every result.
const FIGURES: [&str; 7] = [
    "seconds",
    "points_per_s",
    "grid_point_updates_per_s",
    "rhs_gbps",
    "copy_gbps",
    "rhs_bandwidth_ratio",
    "rhs_evaluations",
];

fn positive_finite(r: &Value, key: &str) -> f64 {
    let v = r[key].as_f64().unwrap_or_else(|| panic!("`{key}` missing or not a number in {r}"));
    assert!(v.is_finite() && v > 0.0, "`{key}` = {v} is not positive and finite in {r}");
    v
}

fn bench(dir: &Path) -> (Value, String) {
    let json = dir.join("bench.json");
    let out = Command::new(BIN).args(["bench", "--quick", "--json"]).arg(&json).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "neqkin bench failed ({:?}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{stdout}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    (report, stdout)
}

#[test]
fn bench_quick_reports_every_case_with_positive_figures() {
    let dir = tempfile::tempdir().unwrap();
    let (report, stdout) = bench(dir.path());
    let cases = report["cases"].as_array().expect("cases array");
    for r in cases {
        for key in FIGURES {
            positive_finite(r, key);
        }
        assert!(!r["adapter"].as_str().unwrap_or("").is_empty(), "no adapter name in {r}");
        let (batch, cells) = (r["batch"].as_u64().unwrap(), r["cells"].as_u64().unwrap());
        let evals = r["rhs_evaluations"].as_f64().unwrap();
        let updates = (batch * cells) as f64 * evals / r["seconds"].as_f64().unwrap();
        let rel = (r["grid_point_updates_per_s"].as_f64().unwrap() - updates).abs() / updates;
        assert!(rel < 1e-9, "updates/s is not cells × batch × evaluations / s in {r}");
        if r["case"].as_str().unwrap().starts_with("photoexcited") {
            // The quick suite fixes the RK4 steps: 4 (batch 8) and 2 (batch 32), 4 RHS each
            // (the driver may replay the program past the end for masked members: counted).
            let steps = if r["case"] == "photoexcited_small_batch" { 4 } else { 2 };
            assert_eq!(r["accepted_steps"], steps, "{r}");
            let evals = r["rhs_evaluations"].as_u64().unwrap();
            assert!(evals >= 4 * steps && evals % 4 == 0, "{evals} RHS evaluations for {steps} RK4 steps: {r}");
        }
        match r["backend"].as_str().unwrap() {
            "gpu" => {
                let d = positive_finite(r, "dispatches_per_accepted_step");
                let case = r["case"].as_str().unwrap();
                if case.starts_with("photoexcited") || case.starts_with("interband") {
                    // Fused step kernels (src/engine/gpu/fused.rs; both models supply
                    // `rhs_member`): many steps per dispatch.
                    assert!(d <= 4.0, "more than 4 dispatches per accepted step (issue 13): {r}");
                } else {
                    // Newton: every RHS evaluation is a one-op program (not fused).
                    assert!(d >= 1.0, "fewer than one dispatch per accepted step: {r}");
                }
                assert!(stdout.contains(r["adapter"].as_str().unwrap()), "adapter name not printed");
                // The member kernels' work layout (GpuContext::member_layout), in the JSON
                // and in the printed row.
                let layout = r["layout"].as_str().expect("GPU cases report their work layout");
                assert!(layout.contains("threads/member") && stdout.contains(layout), "layout {layout:?}: {r}");
            }
            "cpu" => {
                assert!(r["dispatches_per_accepted_step"].is_null(), "{r}");
                assert!(r["layout"].is_null(), "{r}");
            }
            other => panic!("unknown backend {other}"),
        }
    }
    let on = |backend: &str, precision: &str| -> Vec<&str> {
        cases
            .iter()
            .filter(|r| r["backend"] == backend && r["precision"] == precision)
            .map(|r| r["case"].as_str().unwrap())
            .collect()
    };
    assert_eq!(on("cpu", "f64"), CASES, "CPU results: {report}");
    if gpu_available("bench_cmd") {
        let gpu: Vec<&Value> = cases.iter().filter(|r| r["backend"] == "gpu").collect();
        assert!(!gpu.is_empty(), "an adapter opens but bench ran nothing on it: {report}");
        // Every case runs on the adapter at f64 when it has f64 (lavapipe has), or is listed
        // as skipped with a reason at f32.
        if gpu.iter().any(|r| r["precision"] == "f64") {
            assert_eq!(on("gpu", "f64"), CASES, "GPU f64 results: {report}");
        }
        for case in CASES {
            let ran = cases.iter().any(|r| r["backend"] == "gpu" && r["precision"] == "f32" && r["case"] == case);
            let skipped = report["skipped"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["case"] == case && !s["reason"].as_str().unwrap_or("").is_empty());
            assert!(ran || skipped, "case {case} neither ran nor was skipped at f32 on the GPU: {report}");
        }
        // The cavity Newton solve converges in f32 too, to the tolerance f32 resolves
        // (4 ε_f32 · max|F| = 4.8e-7, `bench::steady_tol_for`), not f64's 1e-10, at which
        // its residual stalls near 3e-8 and the case used to be skipped.
        if gpu.iter().any(|r| r["precision"] == "f32") {
            let newton = |precision: &str| {
                cases
                    .iter()
                    .find(|r| r["backend"] == "gpu" && r["precision"] == precision && r["case"] == "cavity_newton")
            };
            let r = newton("f32").unwrap_or_else(|| panic!("cavity_newton did not run at f32: {report}"));
            let tol = r["steady_tol"].as_f64().unwrap();
            assert!((4.0e-7..=5.0e-7).contains(&tol), "f32 steady tolerance {tol:e}: {r}");
            if let Some(r) = newton("f64") {
                assert_eq!(r["steady_tol"].as_f64(), Some(1e-10), "{r}");
            }
        }
    }
}

/// Fixed-step RK4 on the relaxation fixture: 8 steps per point (dt exact in binary), two batches.
const RK4: &str = r#"
model = "relaxation"
title = "dispatch count"
[solver]
method = "rk4"
dt = 0.125
t_end = 1.0
n_outputs = 1
[params]
grid_points = 16
initial = 2.0
[[sweep]]
name = "rate"
linspace = [0.1, 2.0, 4]
[output]
batch_size = 2
"#;

fn run_meta(dir: &Path, backend: &str) -> Value {
    let cfg = dir.join("rk4.toml");
    std::fs::write(&cfg, RK4).unwrap();
    let out_dir = dir.join(backend);
    let out = Command::new(BIN)
        .args(["run", "--backend", backend, "--out"])
        .arg(&out_dir)
        .arg(&cfg)
        .env_remove("NEQKIN_TEST_ABORT_AFTER_BATCHES")
        .output()
        .unwrap();
    assert!(out.status.success(), "run failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&std::fs::read_to_string(out_dir.join("meta.json")).unwrap()).unwrap()
}

#[test]
fn gpu_meta_records_dispatches_per_accepted_step() {
    let dir = tempfile::tempdir().unwrap();
    let cpu = run_meta(dir.path(), "cpu");
    assert!(cpu.get("dispatches_per_accepted_step").is_none(), "the CPU backend has no dispatches: {cpu}");
    if !gpu_available("gpu_meta_records_dispatches_per_accepted_step") {
        return;
    }
    let meta = run_meta(dir.path(), "gpu");
    let batches = meta["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 2, "{meta}");
    let (mut d, mut s) = (0u64, 0u64);
    for b in batches {
        assert_eq!(b["accepted_steps"], 8, "RK4 with dt = 1/8 to t = 1 takes 8 steps: {b}");
        d += b["dispatches"].as_u64().expect("dispatches per batch");
        assert!(b["layout"].as_str().is_some_and(|l| l.contains("members/wg")), "work layout per batch: {b}");
        s += 8;
    }
    let per_step = meta["dispatches_per_accepted_step"].as_f64().expect("dispatches_per_accepted_step");
    assert_eq!(per_step, d as f64 / s as f64, "{meta}");
    // Fused step kernels (relaxation supplies `rhs_member`): a few dispatches for all 8
    // steps (issue 13: at most 4 per accepted step), the same in both batches (equal
    // programs, equal steps).
    assert!(per_step > 0.0 && per_step <= 4.0, "implausible dispatches per step {per_step}");
    assert_eq!(batches[0]["dispatches"], batches[1]["dispatches"], "{meta}");
    // `merge` recomputes it over its shards' batches: a run in two shards (one batch
    // each), merged, reports the figure of the single run.
    let cfg = dir.path().join("rk4.toml");
    let mut shards = Vec::new();
    for shard in ["0/2", "1/2"] {
        let out = dir.path().join(format!("gpu_shard{}", &shard[..1]));
        let o = Command::new(BIN)
            .args(["run", "--backend", "gpu", "--shard", shard, "--out"])
            .arg(&out)
            .arg(&cfg)
            .env_remove("NEQKIN_TEST_ABORT_AFTER_BATCHES")
            .output()
            .unwrap();
        assert!(o.status.success(), "shard {shard}: {}", String::from_utf8_lossy(&o.stderr));
        shards.push(out);
    }
    let merged = dir.path().join("gpu_merged");
    let o = Command::new(BIN).arg("merge").arg(&merged).args(&shards).output().unwrap();
    assert!(o.status.success(), "merge: {}", String::from_utf8_lossy(&o.stderr));
    let m: Value = serde_json::from_str(&std::fs::read_to_string(merged.join("meta.json")).unwrap()).unwrap();
    assert_eq!(m["dispatches_per_accepted_step"].as_f64(), Some(per_step), "{m}");
}
