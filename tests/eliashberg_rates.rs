//! Issue 10, item 2: which solver settings measure an Eliashberg decay rate to 1e-3.
//!
//! A rate measurement follows a deviation δf = f − f0 of 1e-4…1e-7 of f. With errors
//! relative to the state (`error_scale = "state"`), a local error of rtol·|f| is allowed,
//! which at rtol 1e-8 is already 1e-1…1e-4 of the deviation: the old `bdf` measured the rate
//! 2 % low there. With errors relative to the deviation from f0 (`error_scale =
//! "deviation"`, the model's reference state) the tolerance follows δf. This test runs the
//! relaxation below λc (the problem of `relaxes_below_threshold_at_the_slowest_rate`) for
//! every adaptive method × error scale × rtol × initial deviation, prints the table that
//! docs/models/eliashberg.md quotes, and checks the settings the doc recommends.

use std::sync::Arc;

use neqkin::engine::cpu::CpuBackend;
use neqkin::engine::model::BatchProblem;
use neqkin::engine::solve::{integrate, ErrorScale, Method, SolveOptions};
use neqkin::models::eliashberg::kinetic::KineticProblem;
use neqkin::models::eliashberg::Params;

// L = 130 (not 90 as in the relaxation test): the cutoff leaves f0 stationary only up to
// ~e^{-(L-r)/T0}, which must stay far below a deviation of 1e-7 decayed until t = 10
// (e^{-40} here; at L = 90 the floor e^{-27} biased the rate by 4e-3 whatever the solver).
const L: usize = 130;
const T0: f64 = 3.0;

fn params(t_in: f64, task: &str) -> Params {
    Params::parse(&serde_json::json!({
        "task": task, "modes": [[8.0, 0.5], [9.0, 0.5]], "units": "input",
        "temperature": T0, "initial_temperature": t_in, "grid_step": 1.0, "grid_points": L,
        "discretisation": "kinetic"
    }))
    .unwrap()
}

/// π γ_min of the stability task on the kinetic discretisation: the exact decay rate of
/// the slowest mode of the linearised kinetic equation on this grid.
fn exact_rate() -> f64 {
    let mut p = params(T0, "kinetic");
    p.task = neqkin::models::eliashberg::Task::Stability;
    let o = neqkin::models::eliashberg::evaluate_point(&p).unwrap();
    let gamma = &o.arrays.iter().find(|x| x.0 == "gamma").unwrap().1;
    std::f64::consts::PI * gamma.iter().cloned().filter(|x| *x > 0.0).fold(f64::INFINITY, f64::min)
}

struct Measured {
    rate: f64,
    rhs: u64,
    ok: bool,
}

/// Decay rate from the deviation norm between t = 8 and t = 10 (the slowest mode dominates
/// after t ≈ 6 here).
fn measure(method: Method, scale: ErrorScale, rtol: f64, deviation: f64) -> Measured {
    let kp = Arc::new(KineticProblem::new(&[params(T0 * (1.0 + deviation), "kinetic")]).unwrap());
    let mut backend = CpuBackend::new(kp.clone());
    let opts = SolveOptions {
        method,
        rtol,
        atol: 1e-16,
        error_scale: scale,
        output_times: vec![8.0, 10.0],
        ..Default::default()
    };
    let n = kp.layout().state_len;
    let (mut norms, mut ok) = (vec![], true);
    let stats = integrate(&mut backend, &*kp, &opts, &mut |fr| {
        let o = kp.observables(0, fr.t, &fr.state[..n]);
        norms.push(o.scalars.iter().find(|s| s.0 == "deviation_norm").unwrap().1);
        ok &= fr.status[0] == 1.0;
        Ok(())
    })
    .unwrap();
    let rate = -(norms[1] / norms[0]).ln() / 2.0;
    Measured { rate, rhs: stats.rhs_evaluations, ok }
}

#[test]
fn deviation_relative_error_control_measures_rates_to_1e3() {
    let exact = exact_rate();
    let mut table = format!("exact π γ_min (kinetic discretisation, L = {L}, T0 = {T0}) = {exact:.6}\n");
    table += "method  error_scale  rtol    δT/T0   rate      rate/exact − 1  RHS evaluations\n";
    let mut failures = vec![];
    for method in [Method::Dopri5, Method::Bdf] {
        for scale in [ErrorScale::State, ErrorScale::Deviation] {
            for rtol in [1e-4, 1e-6, 1e-8] {
                for deviation in [1e-4, 1e-7] {
                    let m = measure(method, scale, rtol, deviation);
                    let rel = m.rate / exact - 1.0;
                    table += &format!(
                        "{:<7} {:<12} {rtol:<7.0e} {deviation:<7.0e} {:<9.6} {rel:<+15.2e} {}{}\n",
                        format!("{method:?}").to_lowercase(),
                        format!("{scale:?}").to_lowercase(),
                        m.rate,
                        m.rhs,
                        if m.ok { "" } else { "  (not reached)" }
                    );
                    // The doc's recommendation: deviation-relative control at rtol ≤ 1e-6 gives
                    // the rate to 1e-3 with every adaptive method, whatever the deviation.
                    if scale == ErrorScale::Deviation && rtol <= 1e-6 && (!m.ok || rel.abs() > 1e-3) {
                        failures.push(format!("{method:?} deviation rtol {rtol:e} δ {deviation:e}: {rel:+.2e}"));
                    }
                }
            }
        }
    }
    use std::io::Write;
    let _ = std::io::stderr().lock().write_all(table.as_bytes());
    assert!(failures.is_empty(), "settings the doc recommends miss 1e-3:\n{}\n{table}", failures.join("\n"));
}
