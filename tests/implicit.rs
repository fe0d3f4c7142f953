//! The implicit method (`solver.method = "bdf"`, `src/engine/implicit.rs`) on problems with
//! known solutions: its order of accuracy, a stiff linear problem (Prothero-Robinson), a
//! linearly-implicit problem whose left-hand matrix turns singular at a known time (the run
//! must stop there and say why), and the GPU refusal naming the field.
use neqkin::engine::implicit::{integrate_host, LinearlyImplicit};
use neqkin::engine::program::status;
use neqkin::engine::solve::{Method, SolveOptions};

struct Run {
    y: Vec<Vec<f64>>,
    t_reached: Vec<f64>,
    status: Vec<f64>,
    steps: Vec<f64>,
    message: Vec<String>,
}

fn run(sys: &dyn LinearlyImplicit, y0: Vec<f64>, times: Vec<f64>, rtol: f64, atol: f64) -> Run {
    let n = y0.len();
    let opts = SolveOptions { method: Method::Bdf, rtol, atol, output_times: times, ..Default::default() };
    let mut r = Run { y: vec![], t_reached: vec![], status: vec![], steps: vec![], message: vec![] };
    integrate_host(sys, 1, n, y0, &opts, &mut |f| {
        r.y.push(f.state.to_vec());
        r.t_reached.push(f.time_reached[0]);
        r.status.push(f.status[0]);
        r.steps.push(f.n_accept[0] + f.n_reject[0]);
        r.message.push(f.messages[0].clone());
        Ok(())
    })
    .unwrap();
    r
}

/// `(1 + y_i²) y_i′ = −k_i y_i (1 + y_i²) + (coupling)`: a state-dependent left-hand matrix
/// with the exact solution of the linear system `y′ = K y`, K = [[−1, 1], [0, −2]]:
/// y1 = (a + b) e^{−t} − b e^{−2t}, y2 = b e^{−2t}. No Jacobian given (finite differences).
struct Weighted;
impl LinearlyImplicit for Weighted {
    fn lhs_matrix(&self, _m: usize, _t: f64, y: &[f64], a: &mut [f64]) {
        a.copy_from_slice(&[1.0 + y[0] * y[0], 0.0, 0.0, 1.0 + y[1] * y[1]]);
    }
    fn force(&self, _m: usize, _t: f64, y: &[f64], out: &mut [f64]) {
        out[0] = (1.0 + y[0] * y[0]) * (-y[0] + y[1]);
        out[1] = (1.0 + y[1] * y[1]) * (-2.0 * y[1]);
    }
}

#[test]
fn second_order_on_a_linearly_implicit_problem() {
    let (a, b) = (1.0, 0.5);
    let exact = |t: f64| [(a + b) * (-t).exp() - b * (-2.0 * t).exp(), b * (-2.0 * t).exp()];
    let mut pts = vec![];
    for rtol in [1e-5, 1e-7, 1e-9] {
        let r = run(&Weighted, vec![a, b], vec![1.0, 2.0], rtol, rtol * 1e-3);
        let e = exact(2.0);
        let err = ((r.y[1][0] - e[0]).abs()).max((r.y[1][1] - e[1]).abs());
        eprintln!("rtol {rtol:e}: steps {}, max error at t = 2: {err:.3e}", r.steps[1]);
        assert_eq!(r.status[1], status::REACHED);
        pts.push((r.steps[1], err));
    }
    // Global error against the number of steps: slope −2 for a second-order method.
    let slope = (pts[2].1 / pts[0].1).ln() / (pts[2].0 / pts[0].0).ln();
    eprintln!("observed order {:.2}", -slope);
    assert!((-slope - 2.0).abs() < 0.35, "order {}", -slope);
    // Tolerance proportionality: the error follows rtol within a modest factor.
    assert!(pts[2].1 < 1e-6 && pts[0].1 > pts[1].1 && pts[1].1 > pts[2].1);
}

/// Prothero-Robinson: `y′ = −μ (y − cos t) − sin t`, exact `y = cos t` for `y(0) = 1`;
/// μ = 1e6 makes an explicit method take ~μ·t/3 steps.
struct Prothero(f64);
impl LinearlyImplicit for Prothero {
    fn lhs_matrix(&self, _m: usize, _t: f64, _y: &[f64], a: &mut [f64]) {
        a[0] = 1.0;
    }
    fn force(&self, _m: usize, t: f64, y: &[f64], out: &mut [f64]) {
        out[0] = -self.0 * (y[0] - t.cos()) - t.sin();
    }
    fn residual_jacobian(&self, _m: usize, _t: f64, _y: &[f64], _v: &[f64], jac: &mut [f64]) -> bool {
        jac[0] = self.0;
        true
    }
}

#[test]
fn stiff_linear_problem_in_few_steps() {
    let r = run(&Prothero(1e6), vec![1.0], vec![5.0, 10.0], 1e-6, 1e-9);
    let err = (r.y[1][0] - 10f64.cos()).abs();
    eprintln!("Prothero-Robinson μ = 1e6: {} steps to t = 10, error {err:.2e}", r.steps[1]);
    assert_eq!(r.status[1], status::REACHED);
    assert!(err < 1e-5);
    assert!(r.steps[1] < 2000.0, "stiffness should not limit the step");
}

/// `(1 − y) y′ = 1`, y(0) = 0: y = 1 − sqrt(1 − 2t); A = 1 − y vanishes at t = ½ where the
/// solution ends (y′ → ∞). The run must stop just before t = ½ and report a singular A.
struct Impasse;
impl LinearlyImplicit for Impasse {
    fn lhs_matrix(&self, _m: usize, _t: f64, y: &[f64], a: &mut [f64]) {
        a[0] = 1.0 - y[0];
    }
    fn force(&self, _m: usize, _t: f64, _y: &[f64], out: &mut [f64]) {
        out[0] = 1.0;
    }
}

#[test]
fn stops_at_a_singular_left_hand_side_and_says_why() {
    let r = run(&Impasse, vec![0.0], vec![0.25, 0.45, 1.0], 1e-8, 1e-12);
    // Before the singularity: exact.
    assert!((r.y[0][0] - (1.0 - 0.5f64.sqrt())).abs() < 1e-6);
    // (y′ = 1/(1 − y) grows: the local errors are amplified on the way to the impasse.)
    assert!((r.y[1][0] - (1.0 - 0.1f64.sqrt())).abs() < 2e-5);
    let (t, st, why) = (r.t_reached[2], r.status[2], &r.message[2]);
    eprintln!("stopped at t = {t:.12}: {why}");
    assert_eq!(st, status::FAILED);
    assert!(t > 0.4999 && t <= 0.5, "{t}");
    assert!(why.contains("singular") && why.contains("stopped at t"), "{why}");
}

#[test]
fn gpu_backend_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bdf.toml");
    std::fs::write(
        &cfg,
        "model = \"relaxation\"\n[solver]\nmethod = \"bdf\"\nt_end = 1.0\n[params]\ngrid_points = 4\ninitial = 2.0\nrate = 1.0\ntarget = 0.0\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_neqkin"))
        .args(["run", cfg.to_str().unwrap(), "--backend", "gpu", "--out"])
        .arg(dir.path().join("o"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("{err}");
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("solver.method") && err.contains("CPU backend only"), "{err}");
    // The same config runs on the CPU backend and reaches the exact relaxation.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_neqkin"))
        .args(["run", cfg.to_str().unwrap(), "--backend", "cpu", "--out"])
        .arg(dir.path().join("c"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}
