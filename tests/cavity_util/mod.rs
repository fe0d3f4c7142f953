//! Shared helpers of the cavity tests: build a batch from JSON points and run it to its
//! steady state (grid levels) or along ω (Riccati) on the CPU backend.
#![allow(dead_code)]

use std::sync::Arc;

use neqkin::engine::cpu::CpuBackend;
use neqkin::engine::model::BatchProblem;
use neqkin::engine::program::status;
use neqkin::engine::solve::{integrate, Method, SolveOptions};
use neqkin::models::cavity::{derive, CavityBatch};
use serde_json::{json, Value};

/// Base parameter set: T_cry = 1, T_mir = 2, γ = 1, μ0 = ε_k = 0, g = 0.3, ν0 = 0.5.
pub fn base() -> Value {
    json!({
        "level": 2, "coupling_g": 0.3, "t_cry": 1.0, "t_mir": 2.0, "nu0": 0.5,
        "gamma": 1.0, "mu0": 0.0, "n_omega": 401, "omega_min": -25.0, "omega_max": 25.0
    })
}

/// `base()` with the given keys replaced.
pub fn with(mut v: Value, kv: Value) -> Value {
    for (k, x) in kv.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

/// Steady state of every point: (batch, per-member F, per-member status).
pub struct Steady {
    pub batch: Arc<CavityBatch>,
    pub f: Vec<Vec<f64>>,
    pub status: Vec<f64>,
    pub time: Vec<f64>,
}

pub fn steady(points: &[Value], tol: f64) -> Steady {
    let members = points.iter().map(|p| derive(p).unwrap()).collect();
    let batch = Arc::new(CavityBatch::new(members).unwrap());
    let n = batch.layout().state_len;
    let mut backend = CpuBackend::new(batch.clone());
    let opts = SolveOptions {
        // Fixed-step RK4 with dτ = 1 is a stable damped iteration: the preconditioned
        // Jacobian's Gershgorin discs lie in |z + 1| ≤ 1.
        method: Method::Rk4,
        dt: Some(1.0),
        output_times: vec![1e6],
        steady_tol: Some(tol),
        ..Default::default()
    };
    let mut f = vec![];
    let mut st = vec![];
    let mut time = vec![];
    integrate(&mut backend, &*batch, &opts, &mut |fr| {
        f = fr.state.chunks(n).map(|c| c.to_vec()).collect();
        st = fr.status.to_vec();
        time = fr.time_reached.to_vec();
        Ok(())
    })
    .unwrap();
    Steady { batch, f, status: st, time }
}

pub fn assert_steady(s: &Steady) {
    for (m, st) in s.status.iter().enumerate() {
        assert_eq!(*st, status::STEADY, "member {m} not steady (status {st}, τ = {})", s.time[m]);
    }
}

/// Riccati (printed S71) along ω: per member the (ω, F) pairs at the grid points.
/// Per member the (ω, F) pairs along ω.
pub type Curves = Vec<Vec<(f64, f64)>>;

pub fn riccati(points: &[Value]) -> (Arc<CavityBatch>, Curves, Vec<f64>) {
    riccati_with(points, SolveOptions { method: Method::Dopri5, rtol: 1e-9, atol: 1e-11, ..Default::default() })
}

/// [`riccati`] with the given solver options (their output times are replaced by the grid's).
pub fn riccati_with(points: &[Value], opts: SolveOptions) -> (Arc<CavityBatch>, Curves, Vec<f64>) {
    let members = points.iter().map(|p| derive(p).unwrap()).collect();
    let batch = Arc::new(CavityBatch::new(members).unwrap());
    let mut backend = CpuBackend::new(batch.clone());
    let opts = SolveOptions { output_times: batch.riccati_output_times(), ..opts };
    let nb = points.len();
    let mut out = vec![vec![]; nb];
    let mut st = vec![];
    integrate(&mut backend, &*batch, &opts, &mut |fr| {
        for (m, curve) in out.iter_mut().enumerate() {
            if fr.status[m] == status::REACHED {
                let k = batch.layout().state_len;
                let o = batch.observables(m, fr.t, &fr.state[k * m..k * (m + 1)]);
                curve.push((o.scalars[0].1, o.scalars[1].1));
            }
        }
        st = fr.status.to_vec();
        Ok(())
    })
    .unwrap();
    for o in &mut out {
        o.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
    }
    (batch, out, st)
}

pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// Steady state of every point by Newton's method (`solver.method = "newton"`) on the CPU
/// backend; `time` holds the accepted Newton steps.
pub fn steady_newton(points: &[Value], tol: f64) -> Steady {
    let members = points.iter().map(|p| derive(p).unwrap()).collect();
    let batch = Arc::new(CavityBatch::new(members).unwrap());
    let n = batch.layout().state_len;
    let mut backend = CpuBackend::new(batch.clone());
    let opts = SolveOptions { method: Method::Newton, steady_tol: Some(tol), ..Default::default() };
    let (mut f, mut st, mut steps) = (vec![], vec![], vec![]);
    integrate(&mut backend, &*batch, &opts, &mut |fr| {
        f = fr.state.chunks(n).map(|c| c.to_vec()).collect();
        st = fr.status.to_vec();
        steps = fr.n_accept.to_vec();
        Ok(())
    })
    .unwrap();
    Steady { batch, f, status: st, time: steps }
}

/// `p` on a graded grid (drops `n_omega`).
pub fn graded(p: Value, h_fine: f64, h_coarse: f64) -> Value {
    let mut p = with(p, json!({"grid": "graded", "h_fine": h_fine, "h_coarse": h_coarse}));
    p.as_object_mut().unwrap().remove("n_omega");
    p
}
