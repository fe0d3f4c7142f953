//! The shipped cavity configs (Figs 2a, 2b, 3, S4 of the paper, and Fig 3 with the
//! consistent equation) name valid parameter sets at every sweep point, and the printed
//! S71 ones run along ω to the end of their window (issue 3).
mod cavity_util;

use neqkin::engine::model::Model;
use neqkin::engine::program::status;
use neqkin::models::cavity::Cavity;
use serde_json::Value;

/// Base params and every sweep point of a config (sweeps over one axis: `values` or
/// `logspace = [a, b, n]`, log-uniform from a to b).
fn points(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    let t: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(t["model"].as_str(), Some("cavity"), "{path}");
    let base = serde_json::to_value(&t["params"]).unwrap();
    let mut out = vec![];
    let sweeps = t.get("sweep").and_then(|s| s.as_array()).cloned().unwrap_or_default();
    for s in sweeps {
        let name = s["name"].as_str().unwrap();
        let vals: Vec<f64> = if let Some(v) = s.get("values") {
            v.as_array().unwrap().iter().map(|x| x.as_float().unwrap()).collect()
        } else {
            let l = s["logspace"].as_array().unwrap();
            let (a, b) = (l[0].as_float().unwrap(), l[1].as_float().unwrap());
            let n = l[2].as_integer().unwrap() as usize;
            (0..n).map(|i| a * (b / a).powf(i as f64 / (n - 1).max(1) as f64)).collect()
        };
        for v in vals {
            let mut p = base.clone();
            p[name] = serde_json::json!(v);
            out.push(p);
        }
    }
    if out.is_empty() {
        out.push(base);
    }
    out
}

const CONFIGS: [&str; 8] = [
    "configs/cavity/fig2a.toml",
    "configs/cavity/fig2b.toml",
    "configs/cavity/fig3.toml",
    "configs/cavity/fig3_consistent.toml",
    "configs/cavity/figS4.toml",
    "configs/cavity/figS4_consistent.toml",
    "configs/cavity/figS4_fokker_planck.toml",
    "configs/cavity/on_shell_eq9.toml",
];

#[test]
fn shipped_configs_validate_at_every_sweep_point() {
    for c in CONFIGS {
        for p in points(c) {
            Cavity.validate(&p).unwrap_or_else(|e| panic!("{c}: {e}"));
        }
        // The whole input pipeline: raw file → checked plan (every point validated).
        let (plan, _) = neqkin::config::load_plan(std::path::Path::new(c)).unwrap_or_else(|e| panic!("{c}: {e}"));
        assert_eq!(plan.n_points(), points(c).len(), "{c}");
    }
}

#[test]
fn printed_figure_configs_integrate_across_the_window() {
    for c in ["configs/cavity/fig2a.toml", "configs/cavity/figS4.toml"] {
        let pts = points(c);
        let ends = [pts[0].clone(), pts[pts.len() - 1].clone()];
        let (_, out, st) = cavity_util::riccati(&ends);
        for m in 0..2 {
            assert_eq!(st[m], status::REACHED, "{c} point {m}");
            // S71 backward keeps F in [-1, 1] (T_mir = 100 in S4: F need not reach ±1).
            let fabs = out[m].iter().fold(0.0f64, |a, (_, f)| a.max(f.abs()));
            assert!(fabs <= 1.0 + 1e-6, "{c} point {m}: max |F| = {fabs}");
            assert!(out[m].first().unwrap().1 < 0.0 && out[m].last().unwrap().1 > 0.0);
        }
    }
}

#[test]
fn invalid_parameters_name_their_field() {
    let bad = [
        (
            serde_json::json!({"coupling_g": 0.1, "t_cry": 1.0, "t_mir": 1.0, "nu0": 1.0,
                            "gamma": 1.0, "mu0": 0.0, "typo": 1.0}),
            "params.typo",
        ),
        (
            serde_json::json!({"coupling_g": 0.1, "t_cry": -1.0, "t_mir": 1.0, "nu0": 1.0,
                            "gamma": 1.0, "mu0": 0.0}),
            "params.t_cry",
        ),
        (
            serde_json::json!({"level": 1, "coupling_g": 0.1, "t_cry": 1.0, "t_mir": 1.0,
                            "nu0": 1.0, "gamma": 1.0, "mu0": 0.0}),
            "params.gamma_ph",
        ),
        (
            serde_json::json!({"level": 2, "variant": "bogus", "coupling_g": 0.1, "t_cry": 1.0,
                            "t_mir": 1.0, "nu0": 1.0, "gamma": 1.0, "mu0": 0.0}),
            "params.variant",
        ),
        (
            serde_json::json!({"level": 2, "coupling_g": 0.1, "t_cry": 1.0, "t_mir": 1.0,
                            "nu0": 0.01, "gamma": 1.0, "mu0": 0.0, "n_omega": 101}),
            "params.n_omega",
        ),
        (
            serde_json::json!({"level": 1, "gamma_ph": 1.0, "coupling_g": 0.1, "t_cry": 1.0, "t_mir": 1.0,
                            "nu0": 1.0, "gamma": 1.0, "mu0": 0.0, "grid": "lattice"}),
            "params.grid",
        ),
        (
            serde_json::json!({"level": 2, "coupling_g": 0.1, "t_cry": 1.0, "t_mir": 1.0, "nu0": 1.0,
                            "gamma": 1.0, "mu0": 0.0, "grid": "graded", "h_fine": 0.1, "h_coarse": 0.5}),
            "params.grid",
        ),
        (
            serde_json::json!({"level": 1, "gamma_ph": 1.0, "coupling_g": 0.1, "t_cry": 1.0, "t_mir": 1.0,
                            "nu0": 1.0, "gamma": 1.0, "mu0": 0.0, "grid": "graded", "h_fine": 0.1,
                            "h_coarse": 0.5, "n_omega": 401}),
            "params.n_omega",
        ),
        (
            serde_json::json!({"level": 1, "gamma_ph": 1.0, "coupling_g": 0.1, "t_cry": 1.0, "t_mir": 1.0,
                            "nu0": 1.0, "gamma": 1.0, "mu0": 0.0, "grid": "graded", "h_fine": 0.1}),
            "params.h_coarse",
        ),
        (
            serde_json::json!({"level": 1, "gamma_ph": 0.2, "coupling_g": 0.1, "t_cry": 1.0, "t_mir": 1.0,
                            "nu0": 1.0, "gamma": 1.0, "mu0": 0.0, "grid": "graded", "h_fine": 0.1,
                            "h_coarse": 0.5}),
            "params.h_coarse",
        ),
        (
            serde_json::json!({"level": 2, "coupling_g": 0.1, "t_cry": 1.0, "t_mir": 1.0, "nu0": 1.0,
                            "gamma": 1.0, "mu0": 0.0, "h_fine": 0.1}),
            "params.h_fine",
        ),
        (
            serde_json::json!({"level": 2, "coupling_g": 0.1, "t_cry": 1.0, "t_mir": 1.0, "nu0": 1.0,
                            "gamma": 1.0, "mu0": 0.0, "eps_k": 0.0, "on_shell_eps_k": [0.0, 1.0]}),
            "params.on_shell_eps_k",
        ),
        (
            serde_json::json!({"level": 2, "coupling_g": 0.1, "t_cry": 1.0, "t_mir": 1.0, "nu0": 1.0,
                            "gamma": 1.0, "mu0": 0.0, "on_shell_eps_k": [1.0, 0.0]}),
            "params.on_shell_eps_k",
        ),
        (
            serde_json::json!({"level": 3, "variant": "riccati_s71", "coupling_g": 0.1, "t_cry": 1.0,
                            "t_mir": 1.0, "nu0": 1.0, "gamma": 1.0, "mu0": 0.0, "on_shell_eps_k": [0.0, 1.0]}),
            "params.on_shell_eps_k",
        ),
        // Issue 10: values whose derived quantities leave the f64 range.
        (
            // κ ∝ g² overflows: every table would be inf/NaN.
            serde_json::json!({"level": 2, "coupling_g": 1e160, "t_cry": 1.0, "t_mir": 1.0, "nu0": 1.0,
                            "gamma": 1.0, "mu0": 0.0}),
            "params.coupling_g",
        ),
        (
            // κ ∝ g² underflows: S71's 1/(2Ã0) = ((ω−ε)² + γ²)/(2κ) is inf.
            serde_json::json!({"level": 3, "variant": "riccati_s71", "coupling_g": 1e-170, "t_cry": 1.0,
                            "t_mir": 1.0, "nu0": 1.0, "gamma": 1.0, "mu0": 0.0}),
            "params.coupling_g",
        ),
        (
            // Level 2's commensurate grid (ν0 = h here) spans only ±6.5 of the window ±10:
            // the on-shell values ±8 would be read off the grid's clamped ends.
            serde_json::json!({"level": 2, "coupling_g": 0.1, "t_cry": 1.0, "t_mir": 1.0, "nu0": 1.0,
                            "gamma": 1.0, "mu0": 0.0, "n_omega": 14, "omega_min": -10.0, "omega_max": 10.0,
                            "on_shell_eps_k": [-8.0, 0.0, 8.0]}),
            "params.on_shell_eps_k",
        ),
        (
            // A graded grid of ~4e12 nodes is refused before it is built.
            serde_json::json!({"level": 3, "coupling_g": 0.1, "t_cry": 1.0, "t_mir": 1.0, "nu0": 1.0,
                            "gamma": 1.0, "mu0": 0.0, "grid": "graded", "h_fine": 1e-11, "h_coarse": 0.5}),
            "params.h_fine",
        ),
    ];
    for (p, field) in bad {
        let e = Cavity.validate(&p).unwrap_err().to_string();
        assert!(e.contains(&format!("`{field}`")), "{e} should name {field}");
    }
}

/// `configs/cavity/fig3.toml` runs to its end, every point included — the g = 0.001 point
/// too, which DOPRI5 could not finish (~10⁹ steps; issue 10). The shipped BDF keeps every
/// point below 10⁵ accepted steps (a count, not a timing: the wall time is printed only).
#[test]
fn fig3_runs_to_its_end_with_every_point() {
    use neqkin::run::{run_config, BackendChoice, RunOptions};
    let out = std::env::temp_dir().join(format!("neqkin-cavity-fig3-{}", std::process::id()));
    let opts = RunOptions { backend: BackendChoice::Cpu, out: Some(out.clone()), force: true, ..Default::default() };
    let start = std::time::Instant::now();
    let s = run_config(std::path::Path::new("configs/cavity/fig3.toml"), &opts).unwrap();
    let wall = start.elapsed().as_secs_f64();
    assert_eq!(s.failed_points, 0);
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let mut lines = csv.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| head.iter().position(|h| *h == name).unwrap();
    let (c_g, c_st, c_acc, c_out) = (col("coupling_g"), col("status"), col("steps_accepted"), col("output"));
    let mut last = std::collections::BTreeMap::new();
    for l in lines {
        let v: Vec<&str> = l.split(',').collect();
        assert_eq!(v[c_st], "reached", "{l}");
        let acc: f64 = v[c_acc].parse().unwrap();
        let output: usize = v[c_out].parse().unwrap();
        last.insert(v[c_g].to_string(), (output, acc));
    }
    println!(
        "fig3.toml: {} points in {wall:.2} s (wall, this machine); last output and accepted steps per g: {last:?}",
        last.len()
    );
    assert_eq!(last.len(), 4);
    for (g, (output, acc)) in &last {
        assert_eq!(*output, 3999, "g = {g}");
        assert!(*acc < 1e5, "g = {g}: {acc} steps");
    }
    let _ = std::fs::remove_dir_all(&out);
}
