//! Variable-order BDF/NDF (`solver.method = "bdf"` on `y′ = f` problems,
//! `src/engine/bdf.rs`): its order of convergence at fixed maximal order, the stiff Robertson
//! problem against literature values and ROS34PW2 at tight tolerance, a large stiff chain on
//! the sparse (band) path with its exact solution, and the photoexcited quench at ζ = 20
//! against DOPRI5.
use std::sync::Arc;

use neqkin::engine::bdf::{integrate_host, integrate_host_up_to, MemberReport};
use neqkin::engine::cpu::CpuBackend;
use neqkin::engine::model::{BatchLayout, BatchProblem, KernelSource, Observables};
use neqkin::engine::program::status;
use neqkin::engine::solve::{integrate, Method, SolveOptions, SolveStats};
use neqkin::models::photoexcited::{PhotoexcitedBatch, PhotoexcitedParams};
use serde_json::json;

fn layout(n: usize) -> BatchLayout {
    BatchLayout { batch: 1, state_len: n, params_len: 0, table_len: 0, table_stride: 0, scratch_len: 0 }
}

struct Out {
    y: Vec<Vec<f64>>,
    status: f64,
    attempts: f64,
    message: String,
    stats: SolveStats,
    report: MemberReport,
}

fn host(problem: &dyn BatchProblem, opts: &SolveOptions, max_order: usize) -> Out {
    let mut o = Out {
        y: vec![],
        status: -1.0,
        attempts: 0.0,
        message: String::new(),
        stats: SolveStats::default(),
        report: MemberReport::default(),
    };
    let (stats, reports) = integrate_host_up_to(problem, opts, max_order, &mut |f| {
        o.y.push(f.state.to_vec());
        o.status = f.status[0];
        o.attempts = f.n_accept[0] + f.n_reject[0];
        o.message = f.messages[0].clone();
        Ok(())
    })
    .unwrap();
    o.stats = stats;
    o.report = reports[0].clone();
    o
}

/// `y′ = A y` with `A = [[−1, 2], [−2, −1]] ⊕ [−0.5]`: a damped rotation plus a decay,
/// exact `e^{At} y0`; no pattern declared (dense path).
struct Rotation;
impl BatchProblem for Rotation {
    fn layout(&self) -> BatchLayout {
        layout(3)
    }
    fn params(&self) -> &[f64] {
        &[]
    }
    fn tables(&self) -> &[f64] {
        &[]
    }
    fn initial_state(&self) -> Vec<f64> {
        vec![1.0, 0.0, 1.0]
    }
    fn rhs_member(&self, _m: usize, _p: &[f64], _t: &[f64], _tt: f64, y: &[f64], dy: &mut [f64], _s: &mut [f64]) {
        dy[0] = -y[0] + 2.0 * y[1];
        dy[1] = -2.0 * y[0] - y[1];
        dy[2] = -0.5 * y[2];
    }
    fn kernel(&self) -> KernelSource {
        KernelSource { name: "test/rotation".into(), source: String::new() }
    }
    fn observables(&self, _m: usize, _t: f64, _y: &[f64]) -> Observables {
        Observables::default()
    }
}

fn rotation_exact(t: f64) -> [f64; 3] {
    let e = (-t).exp();
    [e * (2.0 * t).cos(), -e * (2.0 * t).sin(), (-0.5 * t).exp()]
}

#[test]
fn fixed_order_convergence_slopes() {
    // Global error against accepted steps: slope −k for the order-k method (variable step).
    for k in [1usize, 2, 3, 5] {
        let mut pts = vec![];
        for rtol in [1e-5, 1e-7, 1e-9] {
            let opts = SolveOptions {
                method: Method::Bdf,
                rtol,
                atol: rtol * 1e-2,
                output_times: vec![3.0],
                ..Default::default()
            };
            let r = host(&Rotation, &opts, k);
            assert_eq!(r.status, status::REACHED, "{}", r.message);
            let ex = rotation_exact(3.0);
            let err = (0..3).map(|i| (r.y[0][i] - ex[i]).abs()).fold(0.0, f64::max);
            let steps = r.report.accepted as f64;
            eprintln!(
                "order ≤ {k}, rtol {rtol:e}: {steps} steps, error {err:.3e}, per order {:?}",
                r.report.steps_per_order
            );
            assert_eq!(r.report.steps_per_order[k + 1..].iter().sum::<u64>(), 0);
            pts.push((steps, err));
        }
        let slope = (pts[2].1 / pts[1].1).ln() / (pts[2].0 / pts[1].0).ln();
        eprintln!("order ≤ {k}: observed order {:.2}", -slope);
        assert!((-slope - k as f64).abs() < 0.2 * k as f64 + 0.3, "order {k}: observed {}", -slope);
        assert!(pts[0].1 > pts[1].1 && pts[1].1 > pts[2].1, "{pts:?}");
    }
}

/// Robertson's chemical kinetics (stiffness ~1e4 growing in time), autonomous, no pattern.
struct Robertson;
impl BatchProblem for Robertson {
    fn layout(&self) -> BatchLayout {
        layout(3)
    }
    fn params(&self) -> &[f64] {
        &[]
    }
    fn tables(&self) -> &[f64] {
        &[]
    }
    fn initial_state(&self) -> Vec<f64> {
        vec![1.0, 0.0, 0.0]
    }
    fn rhs_member(&self, _m: usize, _p: &[f64], _t: &[f64], _tt: f64, y: &[f64], dy: &mut [f64], _s: &mut [f64]) {
        dy[0] = -0.04 * y[0] + 1e4 * y[1] * y[2];
        dy[2] = 3e7 * y[1] * y[1];
        dy[1] = -dy[0] - dy[2];
    }
    fn kernel(&self) -> KernelSource {
        KernelSource { name: "test/robertson".into(), source: String::new() }
    }
    fn observables(&self, _m: usize, _t: f64, _y: &[f64]) -> Observables {
        Observables::default()
    }
}

#[test]
fn robertson_matches_the_reference() {
    // Hairer & Wanner, "Solving ODEs II", reference solution at t = 40.
    let literature = [0.7158270687193772, 9.185534764529e-6, 0.2841637457458587];
    let opts = SolveOptions {
        method: Method::Bdf,
        rtol: 1e-7,
        atol: 1e-12,
        output_times: vec![1.0, 40.0],
        ..Default::default()
    };
    let r = host(&Robertson, &opts, 5);
    assert_eq!(r.status, status::REACHED, "{}", r.message);
    // ROS34PW2 (an independent method) at a tight tolerance.
    let tight = SolveOptions { method: Method::Rosenbrock, rtol: 1e-10, atol: 1e-16, ..opts.clone() };
    let mut reference = vec![];
    neqkin::engine::rosenbrock::integrate_host(&Robertson, &tight, false, &mut |f| {
        reference.push(f.state.to_vec());
        Ok(())
    })
    .unwrap();
    for i in 0..3 {
        let rel = (r.y[1][i] / literature[i] - 1.0).abs();
        let rel_ros = (reference[1][i] / literature[i] - 1.0).abs();
        eprintln!(
            "y{i}(40): bdf {:.12e} rosenbrock {:.12e} literature {:.12e}; rel {rel:.1e} / {rel_ros:.1e}",
            r.y[1][i], reference[1][i], literature[i]
        );
        assert!(rel < 2e-5, "component {i}: {rel:e}");
        assert!(rel_ros < 1e-7, "the reference itself, component {i}: {rel_ros:e}");
    }
    eprintln!("{:?}", r.report);
    // A stiff problem: far fewer steps than an explicit method's ~3e4·40/3.3.
    assert!(r.report.accepted < 500, "{:?}", r.report);
    assert!(r.report.steps_per_order[3..].iter().sum::<u64>() > 0, "higher orders unused: {:?}", r.report);
}

/// A chain of Prothero–Robinson components coupled to their neighbours:
/// `y_i′ = −λ_i (y_i − cos t) − sin t + μ (y_{i+1} + y_{i−1} − 2 y_i)` with λ_i from 1 to 1e5;
/// exact `y_i = cos t`. Declares the band (1, 1).
struct Chain {
    lambda: Vec<f64>,
    mu: f64,
}
impl BatchProblem for Chain {
    fn layout(&self) -> BatchLayout {
        layout(self.lambda.len())
    }
    fn params(&self) -> &[f64] {
        &[]
    }
    fn tables(&self) -> &[f64] {
        &[]
    }
    fn initial_state(&self) -> Vec<f64> {
        vec![1.0; self.lambda.len()]
    }
    fn rhs_member(&self, _m: usize, _p: &[f64], _tab: &[f64], t: f64, y: &[f64], dy: &mut [f64], _s: &mut [f64]) {
        let n = y.len();
        for i in 0..n {
            let mut c = 0.0;
            if i > 0 {
                c += y[i - 1] - y[i];
            }
            if i + 1 < n {
                c += y[i + 1] - y[i];
            }
            dy[i] = -self.lambda[i] * (y[i] - t.cos()) - t.sin() + self.mu * c;
        }
    }
    fn kernel(&self) -> KernelSource {
        KernelSource { name: "test/chain".into(), source: String::new() }
    }
    fn jacobian_band(&self) -> Option<(usize, usize)> {
        Some((1, 1))
    }
    fn observables(&self, _m: usize, _t: f64, _y: &[f64]) -> Observables {
        Observables::default()
    }
}

/// N = 50 000 unknowns with a declared band: the sparse path holds O(N) reals for `J` and
/// its factors (a dense one would need N² = 2.5e9), and the solution is exact to the
/// tolerance. Through `integrate` (the solver.method = "bdf" path).
#[test]
fn large_banded_chain_runs_on_the_sparse_path() {
    let n = 50_000;
    let lambda: Vec<f64> = (0..n).map(|i| 10f64.powf(5.0 * i as f64 / (n - 1) as f64)).collect();
    let problem = Arc::new(Chain { lambda, mu: 50.0 });
    let opts = SolveOptions {
        method: Method::Bdf,
        rtol: 1e-6,
        atol: 1e-9,
        output_times: vec![0.5, 2.0],
        ..Default::default()
    };
    let mut backend = CpuBackend::new(problem.clone());
    let mut errs = vec![];
    let stats = integrate(&mut backend, &*problem, &opts, &mut |f| {
        assert_eq!(f.status[0], status::REACHED, "{}", f.messages[0]);
        errs.push(f.state.iter().map(|y| (y - f.t.cos()).abs()).fold(0.0, f64::max));
        Ok(())
    })
    .unwrap();
    eprintln!("chain N = {n}: max errors {errs:?}, {} RHS evaluations", stats.rhs_evaluations);
    assert!(errs.iter().all(|&e| e < 1e-5), "{errs:?}");
    assert!(stats.rhs_evaluations < 2000, "{}", stats.rhs_evaluations);
    let (host_stats, reports) = integrate_host(&*problem, &opts, &mut |_| Ok(())).unwrap();
    let r = &reports[0];
    assert_eq!(host_stats.rhs_evaluations_per_member, r.rhs_evaluations as f64);
    eprintln!("{r:?}");
    assert!(r.sparse);
    // Band (1, 1): J holds 3N values, the band LU 3N: well under 10 N.
    assert!(r.jacobian_reals <= 10 * n, "{} reals for N = {n}", r.jacobian_reals);
    // The Jacobi split of J: diagonal, 2 off-diagonals and their scaled copies, reciprocal
    // pivots: 6 N.
    assert!(r.split_reals <= 6 * n, "{} split reals for N = {n}", r.split_reals);
    // Every Jacobian costs its 3 colours, and each is counted.
    assert!(r.rhs_evaluations >= r.accepted + 3 * r.jacobians, "{r:?}");
}

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

/// σ/σ0 per member at t, and RHS evaluations per member.
fn sigma(b: &Arc<PhotoexcitedBatch>, method: Method, t: f64) -> (Vec<f64>, f64) {
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
    let batch = b.layout().batch as f64;
    // DOPRI5: 1 + 6 evaluations per attempt (FSAL); bdf counts its own.
    let evals = if method == Method::Dopri5 {
        1.0 + 6.0 * attempts.iter().sum::<f64>() / batch
    } else {
        stats.rhs_evaluations as f64 / batch
    };
    (out, evals)
}

/// The photoexcited Fig 2a regime at ζ = 20 (N = 256, t = 10, rtol 1e-6): σ/σ0 equal to
/// DOPRI5's within 1e-5 at three ω_p, with at most a third of DOPRI5's RHS evaluations.
#[test]
fn photoexcited_zeta20_agrees_with_dopri5() {
    let omegas = [0.1, 0.3, 0.52, 0.8];
    let b = photo(256, 20.0, &omegas);
    let (sd, d_evals) = sigma(&b, Method::Dopri5, 10.0);
    let (sb, b_evals) = sigma(&b, Method::Bdf, 10.0);
    for i in 0..omegas.len() {
        eprintln!("ω_p {}: σ/σ0 dopri5 {:.9}, bdf {:.9}", omegas[i], sd[i], sb[i]);
        assert!((sd[i] - sb[i]).abs() < 1e-5, "ω_p {}: {} vs {}", omegas[i], sd[i], sb[i]);
    }
    eprintln!("RHS evaluations per point: dopri5 {d_evals:.0}, bdf {b_evals:.0}");
    assert!(b_evals < d_evals / 3.0, "{b_evals} vs {d_evals}");
    // The early transient's Newton systems are solved by Jacobi sweeps (no factorisation);
    // every Newton iteration is one counted solve.
    let opts =
        SolveOptions { method: Method::Bdf, rtol: 1e-6, atol: 1e-9, output_times: vec![10.0], ..Default::default() };
    let (_, reports) = integrate_host(&*b, &opts, &mut |_| Ok(())).unwrap();
    for (r, w) in reports.iter().zip(omegas) {
        eprintln!("ω_p {w}: {r:?}");
        assert!(r.jacobi_solves > 0 && r.jacobi_sweeps >= r.jacobi_solves, "{r:?}");
        assert!(r.factorisations < r.accepted / 4, "{r:?}");
        assert!(r.jacobi_solves + r.lu_solves >= r.accepted + r.rejected, "{r:?}");
    }
}

#[test]
#[ignore]
fn probe() {
    let n: usize = std::env::var("PN").map_or(512, |s| s.parse().unwrap());
    let zeta: f64 = std::env::var("PZ").map_or(20.0, |s| s.parse().unwrap());
    let omegas: Vec<f64> = match std::env::var("PW") {
        Ok(s) => s.split(',').map(|x| x.parse().unwrap()).collect(),
        Err(_) => vec![0.1, 0.3, 0.52, 0.75, 0.9],
    };
    let b = photo(n, zeta, &omegas);
    let mut res = vec![];
    let methods: Vec<Method> = match std::env::var("PM").as_deref() {
        Ok("bdf") => vec![Method::Dopri5, Method::Bdf],
        Ok("bdfonly") => vec![Method::Bdf],
        _ => vec![Method::Dopri5, Method::Rosenbrock, Method::Bdf],
    };
    for method in methods {
        let t0 = std::time::Instant::now();
        let (s, e) = sigma(&b, method, 10.0);
        res.push((method, s, e, t0.elapsed()));
    }
    for (method, s, e, dt) in &res {
        let dmax = s.iter().zip(&res[0].1).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        eprintln!("N {n} ζ {zeta} {method:?}: {e:.0} evals/pt, {dt:?}, max |Δσ/σ0| vs dopri5 {dmax:.2e}");
    }
}
