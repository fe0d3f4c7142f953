//! Integrators against exact solutions on the CPU backend, with pinned step counts so
//! that a loss of efficiency shows up as a failing test.
mod common;

use std::sync::Arc;

use common::{assert_close, HeatDecay};
use neqkin::engine::cpu::CpuBackend;
use neqkin::engine::program::status;
use neqkin::engine::solve::{integrate, Method, SolveOptions, SolveStats};

struct Run {
    max_error: f64,
    stats: SolveStats,
    accepted: Vec<f64>,
    rejected: Vec<f64>,
}

fn run(problem: HeatDecay, opts: SolveOptions) -> Run {
    let problem = Arc::new(problem);
    let mut backend = CpuBackend::new(problem.clone());
    let mut max_error: f64 = 0.0;
    let mut accepted = vec![];
    let mut rejected = vec![];
    let n = problem.n;
    let stats = integrate(&mut backend, &*problem, &opts, &mut |frame| {
        for m in 0..problem.rates.len() {
            assert_eq!(frame.status[m], status::REACHED, "member {m} did not reach t");
            assert_eq!(frame.time_reached[m], frame.t, "output time must be hit exactly");
            for i in 0..n {
                let want = problem.exact(m, i, frame.t);
                max_error = max_error.max((frame.state[m * n + i] - want).abs());
            }
        }
        accepted = frame.n_accept.to_vec();
        rejected = frame.n_reject.to_vec();
        Ok(())
    })
    .unwrap();
    Run { max_error, stats, accepted, rejected }
}

fn decay(rates: Vec<f64>) -> HeatDecay {
    HeatDecay { n: 4, rates, diffusion: 0.0, mode: 1 }
}

#[test]
fn rk4_is_fourth_order() {
    let errs: Vec<f64> = [0.1, 0.05]
        .iter()
        .map(|dt| {
            run(
                decay(vec![1.0, 2.0]),
                SolveOptions { method: Method::Rk4, dt: Some(*dt), output_times: vec![1.0], ..Default::default() },
            )
            .max_error
        })
        .collect();
    let order = (errs[0] / errs[1]).log2();
    assert!((order - 4.0).abs() < 0.15, "observed order {order}, errors {errs:?}");
}

#[test]
fn dopri5_meets_tolerance_with_per_member_steps() {
    let r = run(
        decay(vec![0.5, 5.0, 50.0]),
        SolveOptions {
            method: Method::Dopri5,
            rtol: 1e-8,
            atol: 1e-10,
            output_times: vec![0.5, 1.0, 2.0],
            ..Default::default()
        },
    );
    assert!(r.max_error < 1e-7, "max error {}", r.max_error);
    // Faster decay needs more steps: members choose their own step sizes.
    assert!(r.accepted[2] > r.accepted[0], "accepted {:?}", r.accepted);
    // Pinned counts (regression guard for controller efficiency).
    assert!(
        r.accepted[0] <= 15.0 && r.accepted[1] <= 90.0 && r.accepted[2] <= 135.0,
        "accepted {:?} rejected {:?}",
        r.accepted,
        r.rejected
    );
}

#[test]
fn rkc_is_second_order_and_stable_on_stiff_diffusion() {
    let heat = |_| HeatDecay { n: 200, rates: vec![0.5], diffusion: 1e-3, mode: 3 };
    // Tight tolerance: the error must follow the tolerance (convergent, second order).
    let loose = run(
        heat(0),
        SolveOptions { method: Method::Rkc, rtol: 1e-4, atol: 1e-6, output_times: vec![1.0], ..Default::default() },
    );
    let tight = run(
        heat(0),
        SolveOptions { method: Method::Rkc, rtol: 1e-7, atol: 1e-9, output_times: vec![1.0], ..Default::default() },
    );
    eprintln!(
        "rkc loose: err {:.3e} {:?}; tight: err {:.3e} {:?}",
        loose.max_error, loose.stats, tight.max_error, tight.stats
    );
    assert!(tight.max_error < 1e-5, "tight error {}", tight.max_error);
    assert!(tight.max_error < loose.max_error / 20.0, "{} vs {}", tight.max_error, loose.max_error);
    // DOPRI5 on the same problem is stability-limited: many more RHS evaluations.
    let dp = run(
        heat(0),
        SolveOptions { method: Method::Dopri5, rtol: 1e-4, atol: 1e-6, output_times: vec![1.0], ..Default::default() },
    );
    eprintln!("dopri5: err {:.3e} {:?}", dp.max_error, dp.stats);
    assert!(dp.max_error < 1e-3);
    assert!(
        dp.stats.rhs_evaluations > 3 * loose.stats.rhs_evaluations,
        "dopri5 {} vs rkc {} RHS evaluations",
        dp.stats.rhs_evaluations,
        loose.stats.rhs_evaluations
    );
    let _ = assert_close;
}
