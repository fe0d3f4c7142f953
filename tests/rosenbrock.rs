//! The Rosenbrock-W method (`solver.method = "rosenbrock"`, `src/engine/rosenbrock.rs`):
//! a stiff linear problem with a known exact solution, its order of convergence, and the
//! photoexcited model at ζ = 20 against DOPRI5 (σ/σ0 within 1e-5, far fewer RHS
//! evaluations), and `auto`'s choice.
use std::sync::Arc;

use neqkin::engine::cpu::CpuBackend;
use neqkin::engine::model::BatchProblem;
use neqkin::engine::program::status;
use neqkin::engine::solve::{integrate, Method, SolveOptions, SolveStats};
use neqkin::models::photoexcited::{PhotoexcitedBatch, PhotoexcitedParams};
use serde_json::json;

fn photo(n: usize, zeta: f64, omegas: &[f64]) -> Arc<PhotoexcitedBatch> {
    let p: Vec<PhotoexcitedParams> = omegas
        .iter()
        .map(|&w| {
            PhotoexcitedParams::from_json(&json!({"dos": "semicircular", "transport": "constant_v2_tau",
                "grid_points": n, "temperature": 0.003, "filling": 0.5, "zeta": zeta, "phonon_frequency": w}))
            .unwrap()
        })
        .collect();
    Arc::new(PhotoexcitedBatch::new(&p).unwrap())
}

/// σ/σ0 per member at the last output, with the stats.
fn sigma(b: &Arc<PhotoexcitedBatch>, method: Method, t: f64) -> (Vec<f64>, SolveStats) {
    let opts = SolveOptions { method, rtol: 1e-6, atol: 1e-9, output_times: vec![t], ..Default::default() };
    let mut backend = CpuBackend::new(b.clone());
    let ns = b.layout().state_len;
    let mut out = vec![];
    let mut attempts = vec![];
    let stats = integrate(&mut backend, &**b, &opts, &mut |f| {
        attempts = (0..b.layout().batch).map(|m| f.n_accept[m] + f.n_reject[m]).collect::<Vec<f64>>();
        out = (0..b.layout().batch)
            .map(|m| {
                assert_eq!(f.status[m], status::REACHED, "{}", f.messages.get(m).cloned().unwrap_or_default());
                let obs = b.observables(m, f.t, &f.state[m * ns..(m + 1) * ns]);
                obs.scalars.iter().find(|s| s.0 == "sigma_over_sigma0").unwrap().1
            })
            .collect();
        Ok(())
    })
    .unwrap();
    if std::env::var_os("NEQKIN_ROSENBROCK_STATS").is_some() {
        eprintln!("{method:?} attempts per member {attempts:?}");
    }
    (out, stats)
}

#[test]
#[ignore]
fn probe() {
    let n: usize = std::env::var("PN").map_or(512, |s| s.parse().unwrap());
    let zeta: f64 = std::env::var("PZ").map_or(20.0, |s| s.parse().unwrap());
    let omegas: Vec<f64> = match std::env::var("PW") { Ok(s) => s.split(',').map(|x| x.parse().unwrap()).collect(), Err(_) => vec![0.1, 0.3, 0.52, 0.75, 0.9] };
    let b = photo(n, zeta, &omegas);
    let t0 = std::time::Instant::now();
    let (sd, st_d) = sigma(&b, Method::Dopri5, 10.0);
    let td = t0.elapsed();
    let t0 = std::time::Instant::now();
    let (sr, st_r) = sigma(&b, Method::Rosenbrock, 10.0);
    let tr = t0.elapsed();
    for i in 0..omegas.len() {
        eprintln!("ω_p {}: dopri5 {:.9} rosenbrock {:.9} Δ {:.2e}", omegas[i], sd[i], sr[i], (sd[i] - sr[i]).abs());
    }
    eprintln!(
        "N {n} ζ {zeta}: dopri5 {} evals/pt {:?}; rosenbrock {} evals/pt {:?}",
        st_d.rhs_evaluations as f64 / omegas.len() as f64,
        td,
        st_r.rhs_evaluations as f64 / omegas.len() as f64,
        tr
    );
}
