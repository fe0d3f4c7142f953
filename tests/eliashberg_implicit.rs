//! The kinetic equation (29) with the implicit method (`solver.method = "bdf"`): from a 1 %
//! deviation above λc the left-hand matrix turns singular within a short time (as the paper
//! reports); BDF agrees with DOPRI5 while both run, goes at least as far, and stops with a
//! reason (singular A: smallest pivot and condition number; step-size underflow) and the
//! time at which it stopped.
use neqkin::engine::cpu::CpuBackend;
use neqkin::engine::model::BatchProblem;
use neqkin::engine::program::status;
use neqkin::engine::solve::{integrate, Method, SolveOptions};
use neqkin::models::eliashberg::alpha2f::Spectrum;
use neqkin::models::eliashberg::kinetic::KineticProblem;
use neqkin::models::eliashberg::threshold::{lambda_c, Units};
use neqkin::models::eliashberg::Params;

struct Run {
    norms: Vec<f64>,
    status: Vec<f64>,
    reached: Vec<f64>,
    message: Vec<String>,
    pivots: Vec<f64>,
}

fn run(kp: std::sync::Arc<KineticProblem>, method: Method, times: Vec<f64>) -> Run {
    let mut backend = CpuBackend::new(kp.clone());
    let opts = SolveOptions { method, rtol: 1e-8, atol: 1e-14, output_times: times, ..Default::default() };
    let n = kp.layout().state_len;
    let mut r = Run { norms: vec![], status: vec![], reached: vec![], message: vec![], pivots: vec![] };
    integrate(&mut backend, &*kp, &opts, &mut |f| {
        let o = kp.observables(0, f.t, &f.state[..n]);
        r.norms.push(o.scalars[0].1);
        r.pivots.push(o.scalars[3].1);
        r.status.push(f.status[0]);
        r.reached.push(f.time_reached[0]);
        r.message.push(f.messages.first().cloned().unwrap_or_default());
        Ok(())
    })
    .unwrap();
    r
}

#[test]
fn bdf_survives_as_far_as_the_physics_allows_and_reports_why_it_stops() {
    let (l, t0) = (60, 1.6);
    let s = Spectrum::from_modes("m", &[(8.0, 0.5), (9.0, 0.5)]).unwrap();
    let lam = 1.3 * lambda_c(&s, t0, Units::Input).unwrap().lambda_c;
    let p = Params::parse(&serde_json::json!({
        "task": "kinetic", "modes": [[8.0, 0.5 * lam], [9.0, 0.5 * lam]], "units": "input",
        "temperature": t0, "initial_temperature": t0 * 1.01, "grid_step": 1.0, "grid_points": l
    }))
    .unwrap();
    let kp = std::sync::Arc::new(KineticProblem::new(&[p]).unwrap());
    // Growth rate ~3.5e4 at small amplitude (tests/eliashberg_kinetic.rs); outputs spaced
    // geometrically from 1e-5 to 10.
    let times: Vec<f64> = (0..=60).map(|i| 1e-5 * 10f64.powf(i as f64 / 10.0)).collect();
    let d = run(kp.clone(), Method::Dopri5, times.clone());
    let b = run(kp.clone(), Method::Bdf, times.clone());
    let last = |r: &Run| r.status.iter().position(|s| *s == status::FAILED).unwrap_or(r.status.len() - 1);
    let (kd, kb) = (last(&d), last(&b));
    eprintln!(
        "DOPRI5: stops at t = {:.6e} (status {}), last pivot {:.3e}\nBDF:    stops at t = {:.6e} (status {}), last pivot {:.3e}\n        reason: {}",
        d.reached[kd], d.status[kd], d.pivots[kd], b.reached[kb], b.status[kb], b.pivots[kb], b.message[kb]
    );
    // While both run they agree (the deviation norm to the integrators' tolerance).
    let both = kd.min(kb);
    let worst = (0..both.saturating_sub(1)).map(|i| (b.norms[i] / d.norms[i] - 1.0).abs()).fold(0.0, f64::max);
    eprintln!("max relative difference of the deviation norm over {} common outputs: {worst:.2e}", both - 1);
    assert!(both >= 4 && worst < 1e-3);
    // Both stop within the run (the matrix turns singular), BDF no earlier than DOPRI5,
    // with a reason naming the time and the singular left-hand matrix or the step collapse.
    assert_eq!(d.status[kd], status::FAILED);
    assert_eq!(b.status[kb], status::FAILED);
    assert!(b.reached[kb] >= d.reached[kd] * (1.0 - 1e-9));
    let why = &b.message[kb];
    assert!(why.contains("stopped at t") && (why.contains("singular") || why.contains("underflow")), "{why}");
}
