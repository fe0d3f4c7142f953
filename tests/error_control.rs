//! Issue 10: every adaptive method honours the model's whole error control (its tolerance
//! blocks), and a result it cannot vouch for comes back `failed` with the reason, never
//! `reached`. Problems with exact solutions.
use neqkin::engine::cpu::CpuBackend;
use neqkin::engine::model::{BatchLayout, BatchProblem, KernelSource, Observables};
use neqkin::engine::program::{status, ToleranceBlock};
use neqkin::engine::solve::{integrate, ErrorScale, Method, SolveOptions};

/// `y_i′ = −k_i (y_i − q_i) + c·y_i²` per component, with the model's own tolerance blocks
/// and reference state. With `c = 0` the exact solution is `q_i + (y_i(0) − q_i) e^{−k_i t}`;
/// with `k = 0, c = 1` it is `y0/(1 − y0 t)`, which blows up at `t = 1/y0`.
struct Decay {
    rates: Vec<f64>,
    y0: Vec<f64>,
    square: f64,
    blocks: Option<Vec<ToleranceBlock>>,
    /// The equilibrium q (zero when `None`), also declared as the reference state.
    equilibrium: Option<Vec<f64>>,
}

impl Decay {
    fn q(&self, i: usize) -> f64 {
        self.equilibrium.as_ref().map_or(0.0, |q| q[i])
    }
}

impl BatchProblem for Decay {
    fn layout(&self) -> BatchLayout {
        BatchLayout { batch: 1, state_len: self.y0.len(), params_len: 0, table_len: 0, table_stride: 0, scratch_len: 0 }
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
        for i in 0..y.len() {
            dy[i] = -self.rates[i] * (y[i] - self.q(i)) + self.square * y[i] * y[i];
        }
    }
    fn kernel(&self) -> KernelSource {
        KernelSource { name: "test/decay".into(), source: String::new() }
    }
    fn spectral_radius(&self) -> Option<Vec<f64>> {
        Some(vec![self.rates.iter().cloned().fold(1.0, f64::max)])
    }
    fn tolerance_blocks(&self, atol: f64, rtol: f64) -> Vec<ToleranceBlock> {
        self.blocks.clone().unwrap_or_else(|| vec![ToleranceBlock { start: 0, end: self.y0.len(), atol, rtol }])
    }
    fn reference_state(&self) -> Option<Vec<f64>> {
        self.equilibrium.clone()
    }
    fn observables(&self, _m: usize, _t: f64, _y: &[f64]) -> Observables {
        Observables::default()
    }
}

struct Outcome {
    y: Vec<f64>,
    status: f64,
    reached: f64,
    message: String,
    evaluations: u64,
}

fn solve(problem: Decay, opts: SolveOptions) -> Outcome {
    let problem = std::sync::Arc::new(problem);
    let mut backend = CpuBackend::new(problem.clone());
    let mut out = Outcome { y: vec![], status: -1.0, reached: 0.0, message: String::new(), evaluations: 0 };
    let stats = integrate(&mut backend, &*problem, &opts, &mut |f| {
        out.y = f.state.to_vec();
        out.status = f.status[0];
        out.reached = f.time_reached[0];
        out.message = f.messages.first().cloned().unwrap_or_default();
        Ok(())
    })
    .unwrap();
    out.evaluations = stats.rhs_evaluations;
    out
}

/// A slow O(1) component next to a fast one that starts at 1e-200 (as the cavity Riccati's
/// n0, p0 grow from e^{−W/T}): the model asks for pure relative control of the tiny one
/// (`atol = f64::MIN_POSITIVE`). A method that uses `solver.atol` instead lets the step grow
/// to the slow scale, where the fast component is decayed at the wrong rate (old `bdf`:
/// relative error O(1) at t = 1, status `reached`).
#[test]
fn every_adaptive_method_uses_the_model_tolerance_blocks() {
    let (k_slow, k_fast, tiny) = (1.0, 30.0, 1e-200);
    let rtol = 1e-7;
    for method in [Method::Dopri5, Method::Rkc, Method::Bdf, Method::Rosenbrock] {
        let problem = Decay {
            rates: vec![k_slow, k_fast],
            y0: vec![1.0, tiny],
            square: 0.0,
            equilibrium: None,
            blocks: Some(vec![
                ToleranceBlock { start: 0, end: 1, atol: 1e-9, rtol },
                ToleranceBlock { start: 1, end: 2, atol: f64::MIN_POSITIVE, rtol },
            ]),
        };
        let opts = SolveOptions { method, rtol, atol: 1e-9, output_times: vec![1.0], ..Default::default() };
        let r = solve(problem, opts);
        let exact = [(-k_slow).exp(), tiny * (-k_fast).exp()];
        let rel = [(r.y[0] / exact[0] - 1.0).abs(), (r.y[1] / exact[1] - 1.0).abs()];
        eprintln!(
            "{method:?}: status {}, relative errors slow {:.2e}, tiny fast {:.2e}, {} RHS evaluations",
            r.status, rel[0], rel[1], r.evaluations
        );
        assert_eq!(r.status, status::REACHED, "{method:?}: {}", r.message);
        // Local tolerance 1e-7 relative per step; the tiny component falls by e^{-30}, so
        // its relative global error is the sum of the local ones (RKC: ~1000 steps).
        assert!(rel[0] < 1e-4 && rel[1] < 1e-3, "{method:?} ignores the model's tolerance blocks: {rel:?}");
    }
}

/// `max_steps` exhausted: status `failed`, and the member's message says so (the explicit
/// driver used to leave the message empty).
#[test]
fn running_out_of_max_steps_fails_with_the_reason() {
    for method in [Method::Dopri5, Method::Rkc, Method::Bdf, Method::Rosenbrock] {
        let problem = Decay { rates: vec![1.0, 2.0], y0: vec![1.0, 1.0], square: 0.0, blocks: None, equilibrium: None };
        let opts = SolveOptions {
            method,
            rtol: 1e-10,
            atol: 1e-12,
            output_times: vec![10.0],
            max_steps: 20,
            ..Default::default()
        };
        let r = solve(problem, opts);
        eprintln!("{method:?}: status {}, t reached {:.3e}, message {:?}", r.status, r.reached, r.message);
        assert_eq!(r.status, status::FAILED, "{method:?}");
        assert!(r.reached < 10.0);
        assert!(r.message.contains("max_steps"), "{method:?}: {:?}", r.message);
    }
}

/// A finite-time blow-up (`y′ = y²`, y0 = 1, singular at t = 1) asked for t = 2: every
/// adaptive method must stop at t = 1 with `failed` and a message naming the step-size
/// collapse, never return a number with `reached`. (DOPRI5 may step a few 1e-7 past the
/// pole before its steps collapse: still `failed`.)
#[test]
fn blow_up_fails_with_the_reason_in_every_adaptive_method() {
    for method in [Method::Dopri5, Method::Rkc, Method::Bdf, Method::Rosenbrock] {
        let problem = Decay { rates: vec![0.0], y0: vec![1.0], square: 1.0, blocks: None, equilibrium: None };
        let opts = SolveOptions { method, rtol: 1e-6, atol: 1e-9, output_times: vec![2.0], ..Default::default() };
        let r = solve(problem, opts);
        eprintln!("{method:?}: status {}, t reached {:.7}, message {:?}", r.status, r.reached, r.message);
        assert_eq!(r.status, status::FAILED, "{method:?}");
        assert!((r.reached - 1.0).abs() < 1e-3, "{method:?}: {}", r.reached);
        assert!(r.message.contains("step size"), "{method:?}: {:?}", r.message);
    }
}

/// `solver.error_scale = "deviation"`: a deviation of 1e-7 from an O(1) equilibrium decays
/// (two rates, so the step is not trivially exact); with errors relative to the deviation
/// from the model's reference state it is resolved to ~rtol of itself in every adaptive
/// method, while errors relative to the state at the same rtol leave it uncontrolled.
#[test]
fn deviation_scale_resolves_a_small_deviation_in_every_adaptive_method() {
    // Deviations stay ≥ 5e-9 so that storing y = q + δ in f64 keeps δ to 1e-7 of itself.
    let (rates, q, d0) = ([0.7, 1.5], [1.0, 0.5], 1e-7);
    let t = 2.0;
    for method in [Method::Dopri5, Method::Rkc, Method::Bdf, Method::Rosenbrock] {
        let mut errs = vec![];
        for scale in [ErrorScale::State, ErrorScale::Deviation] {
            let problem = Decay {
                rates: rates.to_vec(),
                y0: vec![q[0] + d0, q[1] - d0],
                square: 0.0,
                blocks: None,
                equilibrium: Some(q.to_vec()),
            };
            let opts = SolveOptions {
                method,
                rtol: 1e-6,
                atol: 1e-15,
                error_scale: scale,
                output_times: vec![t],
                ..Default::default()
            };
            let r = solve(problem, opts);
            assert_eq!(r.status, status::REACHED, "{method:?} {scale:?}: {}", r.message);
            // Relative error of each deviation y − q.
            let err = (0..2)
                .map(|i| {
                    let exact = [d0, -d0][i] * (-rates[i] * t).exp();
                    ((r.y[i] - q[i]) / exact - 1.0).abs()
                })
                .fold(0.0, f64::max);
            eprintln!(
                "{method:?} {scale:?} rtol 1e-6: deviation relative error {err:.2e}, {} RHS evaluations",
                r.evaluations
            );
            errs.push(err);
        }
        // Local control at rtol 1e-6 of the deviation; the global error of the second-order
        // methods (RKC, BDF) accumulates over their steps.
        assert!(errs[1] < 1e-3, "{method:?}: deviation-relative control missed: {errs:?}");
    }
}
