//! The Rosenbrock-W method (`solver.method = "rosenbrock"`, `src/engine/rosenbrock.rs`):
//! a stiff linear problem with a known exact solution, its order of convergence, and the
//! photoexcited model at ζ = 20 against DOPRI5 (σ/σ0 within 1e-5, far fewer RHS
//! evaluations), and `auto`'s choice.
use std::sync::Arc;

use neqkin::engine::cpu::CpuBackend;
use neqkin::engine::model::{BatchLayout, BatchProblem, KernelSource, Observables};
use neqkin::engine::program::{status, ToleranceBlock};
use neqkin::engine::rosenbrock::integrate_host;
use neqkin::engine::solve::{integrate, Method, SolveOptions};
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
    if std::env::var_os("NEQKIN_ROSENBROCK_STATS").is_some() {
        eprintln!("{method:?} attempts per member {attempts:?}");
    }
    let batch = b.layout().batch as f64;
    // DOPRI5: 1 + 6 evaluations per attempt (FSAL); rosenbrock counts its own (stages,
    // Jacobian columns and its DOPRI5 phase).
    let evals = if method == Method::Dopri5 {
        1.0 + 6.0 * attempts.iter().sum::<f64>() / batch
    } else {
        stats.rhs_evaluations as f64 / batch
    };
    (out, evals)
}

/// A chain of Prothero–Robinson components coupled to their neighbours:
/// `y_i′ = −λ_i (y_i − cos t) − sin t + μ (y_{i+1} + y_{i−1} − 2 y_i)` (end components see one
/// neighbour) with λ_i from 1 to 1e5. `y_i = cos t` is the exact solution for `y(0) = 1`
/// (the coupling vanishes on it); DOPRI5 would need about `6·1e5·t/3.3` evaluations.
/// Declares the band (1, 1); not autonomous (exercises `∂f/∂t`).
struct Chain {
    lambda: Vec<f64>,
    mu: f64,
}

/// `y_i′ = −y_i² + κ (y_{i+1} − y_i)` (cyclic) with exact solution `1/(1 + t)` for `y(0) = 1`
/// when all components start equal; with unequal starts no closed form, so the order test
/// uses equal starts and κ ≠ 0 only to make the Jacobian non-diagonal.
struct Riccati {
    y0: Vec<f64>,
    kappa: f64,
    blocks: Option<Vec<ToleranceBlock>>,
}

fn layout(n: usize) -> BatchLayout {
    BatchLayout { batch: 1, state_len: n, params_len: 0, table_len: 0, table_stride: 0, scratch_len: 0 }
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

impl BatchProblem for Riccati {
    fn layout(&self) -> BatchLayout {
        layout(self.y0.len())
    }
    fn params(&self) -> &[f64] {
        &[]
    }
    fn tables(&self) -> &[f64] {
        &[]
    }
    fn initial_state(&self) -> Vec<f64> {
        self.y0.clone()
    }
    fn rhs_member(&self, _m: usize, _p: &[f64], _tab: &[f64], _t: f64, y: &[f64], dy: &mut [f64], _s: &mut [f64]) {
        let n = y.len();
        for i in 0..n {
            dy[i] = -y[i] * y[i] + self.kappa * (y[(i + 1) % n] - y[i]);
        }
    }
    fn kernel(&self) -> KernelSource {
        KernelSource { name: "test/riccati".into(), source: String::new() }
    }
    fn tolerance_blocks(&self, atol: f64, rtol: f64) -> Vec<ToleranceBlock> {
        self.blocks.clone().unwrap_or_else(|| vec![ToleranceBlock { start: 0, end: self.y0.len(), atol, rtol }])
    }
    fn observables(&self, _m: usize, _t: f64, _y: &[f64]) -> Observables {
        Observables::default()
    }
}

struct Out {
    y: Vec<Vec<f64>>,
    status: f64,
    attempts: f64,
    evals: u64,
    message: String,
}

/// Integrates with the host driver (`explicit_start`: DOPRI5 first, as `solver.method =
/// "rosenbrock"` does; false: ROS34PW2 from t = 0).
fn host(problem: &dyn BatchProblem, opts: &SolveOptions, explicit_start: bool) -> Out {
    let mut o = Out { y: vec![], status: -1.0, attempts: 0.0, evals: 0, message: String::new() };
    let stats = integrate_host(problem, opts, explicit_start, &mut |f| {
        o.y.push(f.state.to_vec());
        o.status = f.status[0];
        o.attempts = f.n_accept[0] + f.n_reject[0];
        o.message = f.messages[0].clone();
        Ok(())
    })
    .unwrap();
    o.evals = stats.rhs_evaluations;
    o
}

#[test]
fn stiff_chain_matches_its_exact_solution() {
    let n = 40;
    let lambda: Vec<f64> = (0..n).map(|i| 10f64.powf(5.0 * i as f64 / (n - 1) as f64)).collect();
    let problem = Arc::new(Chain { lambda, mu: 50.0 });
    let times = vec![1.0, 2.0];
    let opts = SolveOptions {
        method: Method::Rosenbrock,
        rtol: 1e-6,
        atol: 1e-9,
        output_times: times.clone(),
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
    eprintln!("stiff chain: max errors {errs:?}, {} RHS evaluations", stats.rhs_evaluations);
    // Local tolerance 1e-6 relative on O(1) components: the global error stays at that level.
    assert!(errs.iter().all(|&e| e < 1e-5), "{errs:?}");
    // DOPRI5 would need ~3.6e5 evaluations for stability alone.
    assert!(stats.rhs_evaluations < 3000, "{}", stats.rhs_evaluations);
}

#[test]
fn ros34pw2_converges_with_order_three() {
    let problem = Riccati { y0: vec![1.0; 6], kappa: 3.0, blocks: None };
    let mut pts = vec![];
    for rtol in [1e-4, 1e-6, 1e-8] {
        let opts = SolveOptions {
            method: Method::Rosenbrock,
            rtol,
            atol: rtol * 1e-3,
            output_times: vec![2.0],
            ..Default::default()
        };
        let r = host(&problem, &opts, false);
        assert_eq!(r.status, status::REACHED, "{}", r.message);
        let err = r.y[0].iter().map(|y| (y - 1.0 / 3.0).abs()).fold(0.0, f64::max);
        eprintln!("rtol {rtol:e}: {} attempts, max error {err:.3e}", r.attempts);
        pts.push((r.attempts, err));
    }
    // Global error against the number of steps: slope −3 for a third-order method (with
    // the Jacobian reused over up to a dozen steps: the W-method property).
    let slope = (pts[2].1 / pts[0].1).ln() / (pts[2].0 / pts[0].0).ln();
    eprintln!("observed order {:.2}", -slope);
    assert!((-slope - 3.0).abs() < 0.4, "order {}", -slope);
    assert!(pts[2].1 < 1e-7 && pts[0].1 > pts[1].1 && pts[1].1 > pts[2].1);
}

/// As `error_control.rs`: a slow O(1) component next to a fast one that starts at 1e-200
/// with pure relative control (`atol = f64::MIN_POSITIVE`); ROS34PW2 from t = 0 must resolve
/// the tiny one to its own relative tolerance.
#[test]
fn ros34pw2_honours_the_model_tolerance_blocks() {
    struct Two;
    impl BatchProblem for Two {
        fn layout(&self) -> BatchLayout {
            layout(2)
        }
        fn params(&self) -> &[f64] {
            &[]
        }
        fn tables(&self) -> &[f64] {
            &[]
        }
        fn initial_state(&self) -> Vec<f64> {
            vec![1.0, 1e-200]
        }
        fn rhs_member(&self, _m: usize, _p: &[f64], _t: &[f64], _tt: f64, y: &[f64], dy: &mut [f64], _s: &mut [f64]) {
            dy[0] = -y[0];
            dy[1] = -30.0 * y[1];
        }
        fn kernel(&self) -> KernelSource {
            KernelSource { name: "test/two".into(), source: String::new() }
        }
        fn tolerance_blocks(&self, _atol: f64, rtol: f64) -> Vec<ToleranceBlock> {
            vec![
                ToleranceBlock { start: 0, end: 1, atol: 1e-9, rtol },
                ToleranceBlock { start: 1, end: 2, atol: f64::MIN_POSITIVE, rtol },
            ]
        }
        fn observables(&self, _m: usize, _t: f64, _y: &[f64]) -> Observables {
            Observables::default()
        }
    }
    let opts = SolveOptions {
        method: Method::Rosenbrock,
        rtol: 1e-7,
        atol: 1e-9,
        output_times: vec![1.0],
        ..Default::default()
    };
    let r = host(&Two, &opts, false);
    assert_eq!(r.status, status::REACHED, "{}", r.message);
    let exact = [(-1.0f64).exp(), 1e-200 * (-30.0f64).exp()];
    let rel = [(r.y[0][0] / exact[0] - 1.0).abs(), (r.y[0][1] / exact[1] - 1.0).abs()];
    eprintln!("relative errors {rel:?}, {} evaluations", r.evals);
    assert!(rel[0] < 1e-4 && rel[1] < 1e-3, "{rel:?}");
}

/// The photoexcited Fig 2a regime at ζ = 20 (N = 256, t = 10, rtol 1e-6): σ/σ0 equal to
/// DOPRI5's within 1e-5 at three ω_p, with at most half of DOPRI5's RHS evaluations
/// (measured about 0.28 at N = 512 and 2048; docs/benchmarks.md §10).
#[test]
fn photoexcited_zeta20_agrees_with_dopri5_at_a_fraction_of_the_work() {
    let omegas = [0.3, 0.52, 0.8];
    let b = photo(256, 20.0, &omegas);
    let (sd, d_evals) = sigma(&b, Method::Dopri5, 10.0);
    let (sr, r_evals) = sigma(&b, Method::Rosenbrock, 10.0);
    for i in 0..omegas.len() {
        eprintln!("ω_p {}: σ/σ0 dopri5 {:.9}, rosenbrock {:.9}", omegas[i], sd[i], sr[i]);
        assert!((sd[i] - sr[i]).abs() < 1e-5, "ω_p {}: {} vs {}", omegas[i], sd[i], sr[i]);
    }
    eprintln!("RHS evaluations per point: dopri5 {d_evals:.0}, rosenbrock {r_evals:.0}");
    assert!(r_evals < 0.5 * d_evals, "{r_evals} vs {d_evals}");
}

/// `auto` on the photoexcited sweep (docs/benchmarks.md §15.2): `bdf` at ζ = 20 from
/// N = 512, DOPRI5 at ζ = 1 and 5 and at small N.
#[test]
fn auto_picks_an_implicit_method_where_it_pays() {
    use neqkin::engine::integrators::auto_method;
    let opts = SolveOptions { output_times: vec![10.0], ..Default::default() };
    for (n, zeta, want) in [
        (2048, 20.0, Method::Bdf),
        (512, 20.0, Method::Bdf),
        (8192, 20.0, Method::Bdf),
        (2048, 1.0, Method::Dopri5),
        (2048, 5.0, Method::Dopri5),
        (256, 20.0, Method::Dopri5),
    ] {
        let b = photo(n, zeta, &[0.5]);
        let got = auto_method(&CpuBackend::new(b.clone()), &*b, &opts);
        assert_eq!(got, want, "N = {n}, ζ = {zeta}");
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
    let t0 = std::time::Instant::now();
    let (sd, st_d) = sigma(&b, Method::Dopri5, 10.0);
    let td = t0.elapsed();
    let t0 = std::time::Instant::now();
    let (sr, st_r) = sigma(&b, Method::Rosenbrock, 10.0);
    let tr = t0.elapsed();
    for i in 0..omegas.len() {
        eprintln!("ω_p {}: dopri5 {:.9} rosenbrock {:.9} Δ {:.2e}", omegas[i], sd[i], sr[i], (sd[i] - sr[i]).abs());
    }
    eprintln!("N {n} ζ {zeta}: dopri5 {st_d:.0} evals/pt {td:?}; rosenbrock {st_r:.0} evals/pt {tr:?}");
}
