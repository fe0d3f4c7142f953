//! The consistent ν0 → 0 level (Fokker–Planck, `flux` kernel) on uniform and graded grids,
//! solved by Newton (issue 3: every level at Fig S4 resolution). Checks: Newton equals the
//! pseudo-time steady state; the graded grid keeps the exact fixed points (F0 at equal
//! temperatures, the mirror tanh's zero flux, particle-hole symmetry at ε_k = μ0); the
//! graded solution converges to a fine uniform reference; the Fig S4 window μ0 ± 1000 at
//! h = T_cry/4 converges in a few Newton steps and under refinement.
mod cavity_util;

use cavity_util::*;
use neqkin::models::cavity::observe;
use serde_json::{json, Value};

fn fp(p: Value) -> Value {
    with(p, json!({"level": 3}))
}

#[test]
fn newton_equals_pseudo_time_relaxation() {
    let pts = [fp(with(base(), json!({"eps_k": 0.5}))), fp(with(base(), json!({"coupling_g": 1.0})))];
    let relaxed = steady(&pts, 1e-13);
    assert_steady(&relaxed);
    let nt = steady_newton(&pts, 1e-13);
    assert_steady(&nt);
    for m in 0..2 {
        let d = max_abs_diff(&relaxed.f[m], &nt.f[m]);
        println!(
            "member {m}: pseudo-time {} RK4 steps, Newton {} steps; max |ΔF| = {d:.2e}",
            relaxed.time[m], nt.time[m]
        );
        assert!(d < 1e-10, "member {m}: {d:e}");
        assert!(nt.time[m] <= 30.0, "member {m}: {} Newton steps", nt.time[m]);
    }
}

/// T_cry = 0.25, T_mir = 4, γ = 1, ν0 = 0.5, μ0 = 0, window [−40, 40].
fn case() -> Value {
    fp(with(base(), json!({"t_cry": 0.25, "t_mir": 4.0, "coupling_g": 0.4, "omega_min": -40.0, "omega_max": 40.0})))
}

#[test]
fn graded_grid_keeps_the_exact_fixed_points() {
    // Equal temperatures: F0 is the steady state for every g.
    for g in [0.4, 3.0] {
        let p = graded(with(case(), json!({"t_mir": 0.25, "coupling_g": g, "eps_k": 0.6})), 0.05, 0.5);
        let s = steady_newton(&[p], 1e-13);
        assert_steady(&s);
        let d = &s.batch.members()[0];
        let omega = s.batch.omega(0);
        let f0: Vec<f64> = omega.iter().map(|&w| d.f0(w)).collect();
        let r = s.batch.residual(0, &f0);
        let rmax = r.iter().fold(0.0f64, |a, x| a.max(x.abs()));
        let e = max_abs_diff(&s.f[0], &f0);
        println!("equal T, g = {g}: n = {}, residual at F0 {rmax:.2e}, |F − F0| {e:.2e}", omega.len());
        // Each photon term is O(η A_e coth(h/2T)/h) ~ 10³ here: rounding of their sum.
        assert!(rmax < 1e-11 && e < 1e-12, "g = {g}: {rmax:e} {e:e}");
    }
    // The mirror tanh carries no photon flux: R(F_mir) equals the bath term alone, any g.
    let p = graded(with(case(), json!({"eps_k": 0.6, "coupling_g": 2.0})), 0.05, 0.5);
    let p0 = with(p.clone(), json!({"coupling_g": 0.0}));
    let (s, s0) = (steady_newton(&[p], 1e-12), steady_newton(&[p0], 1e-12));
    let omega = s.batch.omega(0);
    let f_mir: Vec<f64> = omega.iter().map(|&w| (w / 8.0).tanh()).collect();
    let (r, r0) = (s.batch.residual(0, &f_mir), s0.batch.residual(0, &f_mir));
    let worst = r.iter().zip(&r0).fold(0.0f64, |a, (x, y)| a.max((x - y).abs()));
    println!("mirror tanh: max |R_g(F_mir) − R_0(F_mir)| = {worst:.2e}");
    assert!(worst < 1e-11, "{worst:e}"); // photon terms O(10³): rounding of their sum
                                         // Particle-hole symmetry at ε_k = μ0 on the symmetric graded grid.
    let s = steady_newton(&[graded(case(), 0.05, 0.5)], 1e-13);
    assert_steady(&s);
    let f = &s.f[0];
    let n = f.len();
    let odd = (0..n).fold(0.0f64, |a, i| a.max((f[i] + f[n - 1 - i]).abs()));
    let mu = observe::chemical_potential(&omega_of(&s), f, 0.0).unwrap();
    println!("particle-hole: max |F(μ0+x) + F(μ0−x)| = {odd:.2e}, μ − μ0 = {mu:.2e}");
    assert!(odd < 1e-12 && mu.abs() < 1e-12);
}

fn omega_of(s: &Steady) -> Vec<f64> {
    s.batch.omega(0)
}

#[test]
fn graded_solution_converges_to_the_uniform_reference() {
    let p = with(case(), json!({"eps_k": 0.5}));
    // Uniform reference, h = 0.0125.
    let reference = steady_newton(&[with(p.clone(), json!({"n_omega": 6401}))], 1e-13);
    assert_steady(&reference);
    let w_ref = omega_of(&reference);
    let mut prev: Option<f64> = None;
    for h in [0.1, 0.05, 0.025] {
        let s = steady_newton(&[graded(p.clone(), h, 8.0 * h)], 1e-13);
        assert_steady(&s);
        let w = omega_of(&s);
        // Compare at the reference nodes inside the fine zone and far out, by cubic
        // interpolation of the graded solution.
        let err = w_ref
            .iter()
            .zip(&reference.f[0])
            .map(|(&x, &fr)| (observe::interp_cubic(&w, &s.f[0], x) - fr).abs())
            .fold(0.0f64, f64::max);
        let uni = steady_newton(&[with(p.clone(), json!({"n_omega": (80.0 / h) as usize + 1}))], 1e-13);
        let w_u = omega_of(&uni);
        let err_u = w_ref
            .iter()
            .zip(&reference.f[0])
            .map(|(&x, &fr)| (observe::interp_cubic(&w_u, &uni.f[0], x) - fr).abs())
            .fold(0.0f64, f64::max);
        print!(
            "h_fine = {h}: graded n = {} ({} Newton steps), max error {err:.2e}; uniform n = {}, {err_u:.2e}",
            w.len(),
            s.time[0],
            w_u.len()
        );
        if let Some(e) = prev {
            print!("; graded order {:.2}", (e / err).log2());
            assert!(e / err > 2.8, "graded grid must converge at about second order: {e:e} → {err:e}");
        }
        println!();
        prev = Some(err);
    }
    assert!(prev.unwrap() < 1e-4);
}

/// Fig S4a's parameters (T_cry = 0.1, T_mir = 100, γ = 10, μ0 = ε_k = 1, ν0 = 1) on the
/// window μ0 ± 1000 (five mirror thermal lengths 2T_mir each side) with h = T_cry/4 at μ0:
/// Newton converges in a few steps; T_eff converges under refinement.
#[test]
fn fig_s4_window_converges_with_newton() {
    let p = json!({
        "level": 3, "coupling_g": 0.5, "t_cry": 0.1, "t_mir": 100.0, "nu0": 1.0, "gamma": 10.0,
        "mu0": 1.0, "omega_min": -999.0, "omega_max": 1001.0, "grid": "graded", "fine_halfwidth": 2.0
    });
    let mut t_eff = vec![];
    for (h_fine, h_coarse) in [(0.05, 5.0), (0.025, 2.5), (0.0125, 1.25)] {
        let s = steady_newton(&[with(p.clone(), json!({"h_fine": h_fine, "h_coarse": h_coarse}))], 1e-12);
        assert_steady(&s);
        let w = omega_of(&s);
        let mu = observe::chemical_potential(&w, &s.f[0], 1.0).unwrap();
        let te = observe::effective_temperature(&w, &s.f[0], mu);
        let res = s.batch.residual(0, &s.f[0]);
        let rmax = res.iter().fold(0.0f64, |a, x| a.max(x.abs()));
        println!(
            "h = {h_fine} → {h_coarse}: n = {}, {} Newton steps, max |R| = {rmax:.2e}, μ − μ0 = {:.2e}, T_eff = {te:.7}",
            w.len(),
            s.time[0],
            mu - 1.0
        );
        assert!(s.time[0] <= 60.0, "{} Newton steps", s.time[0]);
        assert!((mu - 1.0).abs() < 1e-10, "particle-hole symmetry at ε_k = μ0: μ − μ0 = {}", mu - 1.0);
        assert!(te > 0.1 && te < 100.0, "T_eff = {te} must lie between T_cry and T_mir");
        t_eff.push(te);
    }
    let (d1, d2) = ((t_eff[0] - t_eff[1]).abs(), (t_eff[1] - t_eff[2]).abs());
    println!("T_eff differences under refinement: {d1:.2e}, {d2:.2e} (ratio {:.1})", d1 / d2);
    assert!(d2 < d1 && d2 < 1e-3 * t_eff[2], "{d1:e} {d2:e}");
}
