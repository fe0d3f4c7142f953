//! Issue 4, item 6: Σ[f] on the real axis reduces to Eq 15 at f0 (with convergence in the
//! grid step for both PV rules), detailed balance I_ep[f0] = 0, the linearised kinetic
//! equation against the linear stability spectrum (π γ), and relaxation/growth in time.
use neqkin::engine::dense::eigenvalues_row_major;
use neqkin::models::eliashberg::alpha2f::Spectrum;
use neqkin::models::eliashberg::kinetic::{collision, sigma_operator, table_len, KineticProblem, PvRule};
use neqkin::models::eliashberg::selfenergy::{sigma, zinv};
use neqkin::models::eliashberg::stability::{fermi, scaled_matrices, solve, Reading, StabilityOptions};
use neqkin::models::eliashberg::Params;

/// Max |Σ_grid − Σ_Eq15| (in units of ω) for ω = 1, λ = 1, T = 0.25 and ε = 1/r.
fn sigma_error(r: usize, rule: PvRule) -> (f64, f64) {
    let t = 0.25;
    let phys = Spectrum::from_modes("m", &[(1.0, 1.0)]).unwrap();
    let eps = 1.0 / r as f64;
    let l = (12.0 / eps) as usize;
    let (k, b) = sigma_operator(&[r], &[1.0], l, rule);
    let f: Vec<f64> = (1..=l).map(|i| fermi(i as f64 * eps, t)).collect();
    let s: Vec<f64> = (0..=l).map(|i| (b[i] + (0..l).map(|j| k[i * l + j] * f[j]).sum::<f64>()) * eps).collect();
    let (mut err, mut zerr) = (0.0f64, 0.0f64);
    for i in 1..=(4 * r) {
        let e = i as f64 * eps;
        err = err.max((s[i - 1] - sigma(&phys, t, e)).abs());
        let sm = if i >= 2 { s[i - 2] } else { 0.0 };
        let z = 1.0 - (s[i] - sm) / (2.0 * eps);
        zerr = zerr.max((z - zinv(&phys, t, e)).abs());
    }
    (err, zerr)
}

#[test]
fn sigma_functional_reduces_to_eq15() {
    let mut prev: Option<(f64, f64)> = None;
    for r in [8, 16, 32] {
        let (ep, zp) = sigma_error(r, PvRule::Product);
        let (ed, zd) = sigma_error(r, PvRule::Drop);
        eprintln!(
            "ε = ω/{r}: product rule |ΔΣ| = {ep:.3e}, |ΔZ⁻¹| = {zp:.3e}; drop rule |ΔΣ| = {ed:.3e}, |ΔZ⁻¹| = {zd:.3e}"
        );
        if let Some((p, d)) = prev {
            eprintln!("   orders: product {:.2}, drop {:.2}", (p / ep).log2(), (d / ed).log2());
            assert!(p / ep > 3.5, "product rule must converge at second order");
        }
        prev = Some((ep, ed));
        if r == 32 {
            assert!(ep < 4e-4 && zp < 3e-3, "{ep} {zp}");
        }
    }
}

/// Max |Σ_grid − Σ_Eq15| and max |Z0⁻¹_grid − Z0⁻¹_Eq15| over E ≤ 4ω (ω = 1, λ = 1,
/// T = 0.25, ε = 1/r), each rule with its own derivative stencil (the kinetic task's Z0⁻¹).
fn sigma_zinv_error(r: usize, rule: PvRule) -> (f64, f64) {
    use neqkin::models::eliashberg::kinetic::sigma_derivative;
    let t = 0.25;
    let phys = Spectrum::from_modes("m", &[(1.0, 1.0)]).unwrap();
    let eps = 1.0 / r as f64;
    let l = (12.0 / eps) as usize;
    let (k, b) = sigma_operator(&[r], &[1.0], l, rule);
    let f: Vec<f64> = (1..=l).map(|i| fermi(i as f64 * eps, t)).collect();
    let s: Vec<f64> = (0..=l).map(|i| b[i] + (0..l).map(|j| k[i * l + j] * f[j]).sum::<f64>()).collect();
    let (mut err, mut zerr) = (0.0f64, 0.0f64);
    for i in 1..=(4 * r) {
        let e = i as f64 * eps;
        err = err.max((s[i - 1] * eps - sigma(&phys, t, e)).abs());
        let z = 1.0 - sigma_derivative(&s, i, rule.five_point());
        zerr = zerr.max((z - zinv(&phys, t, e)).abs());
    }
    (err, zerr)
}

/// Issue 10: the piecewise-cubic product rule with 5-point derivatives is fourth order in
/// ε for Σ and for the grid Z0⁻¹; the linear one second order. Observed orders between
/// ε = ω/8, ω/16, ω/32, ω/64 must reach the claimed order minus 0.3.
#[test]
fn pv_rules_converge_at_their_claimed_orders() {
    for (rule, claimed) in [(PvRule::Product, 2.0), (PvRule::ProductCubic, 4.0)] {
        let mut prev: Option<(f64, f64)> = None;
        for r in [8usize, 16, 32, 64] {
            let (es, ez) = sigma_zinv_error(r, rule);
            eprintln!("{rule:?} ε = ω/{r}: |ΔΣ| = {es:.3e}, |ΔZ0⁻¹| = {ez:.3e}");
            if let Some((ps, pz)) = prev {
                let (os, oz) = ((ps / es).log2(), (pz / ez).log2());
                eprintln!("   observed orders: Σ {os:.2}, Z0⁻¹ {oz:.2} (claimed {claimed})");
                assert!(os > claimed - 0.3 && oz > claimed - 0.3, "{rule:?}: orders {os:.2}, {oz:.2}");
            }
            prev = Some((es, ez));
        }
    }
}

fn kinetic_params(lambda: f64, t0: f64, t_in: f64, l: usize) -> Params {
    Params::parse(&serde_json::json!({
        "task": "kinetic", "modes": [[8.0, lambda]], "units": "input",
        "temperature": t0, "initial_temperature": t_in, "grid_step": 1.0, "grid_points": l
    }))
    .unwrap()
}

#[test]
fn detailed_balance_collision_vanishes_at_f0() {
    let p = kinetic_params(1.0, 3.0, 3.0, 80);
    let kp = KineticProblem::new(&[p]).unwrap();
    use neqkin::engine::model::BatchProblem;
    let f: Vec<f64> = (1..=80).map(|i| fermi(i as f64, 3.0)).collect();
    let mut out = vec![0.0; 80];
    collision(80, 1, &kp.tables()[..table_len(80, 1)], &f, &mut out);
    // Exact below the cutoff's reach (i + r ≤ L); near the cutoff f(j > L) = 0 replaces
    // f0 ≈ e^{-L/T}.
    let interior = out[..72].iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let worst = out.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    eprintln!("max |I_ep[f0]| = {interior:e} (i + r <= L), {worst:e} (all)");
    assert!(interior < 1e-14);
    assert!(worst < 10.0 * (-(81.0 - 8.0) / 3.0f64).exp());
    // And off equilibrium it does not vanish.
    let f1: Vec<f64> = (1..=80).map(|i| fermi(i as f64, 3.3)).collect();
    collision(80, 1, &kp.tables()[..table_len(80, 1)], &f1, &mut out);
    assert!(out.iter().any(|x| x.abs() > 1e-6));
}

/// The numerical Jacobian of the kinetic RHS at f0 (time unit 1/ε), row-major.
fn jacobian(kp: &KineticProblem, l: usize, t0: f64) -> Vec<f64> {
    use neqkin::engine::model::BatchProblem;
    let f0: Vec<f64> = (1..=l).map(|i| fermi(i as f64, t0)).collect();
    let mut jac = vec![0.0; l * l];
    let (mut dp, mut dm, mut scr) = (vec![0.0; l], vec![0.0; l], vec![0.0; 10 * l]);
    for j in 0..l {
        let h = 1e-7;
        let mut fp = f0.clone();
        fp[j] += h;
        kp.rhs_member(
            0,
            &kp.params()[..kp.layout().params_len],
            &kp.tables()[..kp.layout().table_len],
            0.0,
            &fp,
            &mut dp,
            &mut scr,
        );
        let mut fm = f0.clone();
        fm[j] -= h;
        kp.rhs_member(
            0,
            &kp.params()[..kp.layout().params_len],
            &kp.tables()[..kp.layout().table_len],
            0.0,
            &fm,
            &mut dm,
            &mut scr,
        );
        for i in 0..l {
            jac[i * l + j] = (dp[i] - dm[i]) / (2.0 * h);
        }
    }
    jac
}

#[test]
fn linearised_collision_is_minus_pi_times_eq23() {
    use neqkin::engine::model::BatchProblem;
    let (l, t0, lam) = (60, 3.0, 0.8);
    let kp = KineticProblem::new(&[kinetic_params(lam, t0, t0, l)]).unwrap();
    let tab = &kp.tables()[..table_len(l, 1)];
    let f0: Vec<f64> = (1..=l).map(|i| fermi(i as f64, t0)).collect();
    let s = Spectrum::from_modes("m", &[(8.0, lam)]).unwrap();
    let opts = StabilityOptions { points: l, reading: Reading::Derived, offdiag_sign: 1.0, eps_out: 1.0 };
    let (_, sm, sq) = scaled_matrices(&s, t0, &opts).unwrap();
    let (mut ip, mut im) = (vec![0.0; l], vec![0.0; l]);
    let mut worst = 0.0f64;
    let mut scale = 0.0f64;
    for j in 0..l {
        // δf = |f0′| e_j  ⇔  φ = e_j
        let h = 1e-4;
        let mut fp = f0.clone();
        fp[j] += h * sq[j] * sq[j];
        collision(l, 1, tab, &fp, &mut ip);
        let mut fm = f0.clone();
        fm[j] -= h * sq[j] * sq[j];
        collision(l, 1, tab, &fm, &mut im);
        for i in 0..l {
            let di = (ip[i] - im[i]) / (2.0 * h);
            let m_ij = sm[(i, j)] * sq[i] * sq[j];
            worst = worst.max((di + std::f64::consts::PI * m_ij).abs());
            scale = scale.max(m_ij.abs());
        }
    }
    eprintln!("max |dI/dφ + π M(Eq 23)| = {worst:e} (max |M| = {scale:e})");
    assert!(worst < 1e-8 * scale);
}

#[test]
fn linearised_kinetic_rates_match_linear_stability() {
    // One mode ω = 8ε·(n/8), T0 = 3ε·(n/8): refine the grid at fixed physics and compare
    // the slowest relaxation rate of the kinetic Jacobian with π γ_min of Eqs 17–23
    // (Eq 18 reading, analytic Z0⁻¹); they converge to each other as ε → 0.
    let lam = 1.0;
    let mut prev = f64::INFINITY;
    for n in [8usize, 16] {
        let sc = n as f64 / 8.0;
        let (l, t0) = (10 * n, 3.0 * sc);
        let p = Params::parse(&serde_json::json!({
            "task": "kinetic", "modes": [[n as f64, lam]], "units": "input",
            "temperature": t0, "initial_temperature": t0, "grid_step": 1.0, "grid_points": l
        }))
        .unwrap();
        let kp = KineticProblem::new(&[p]).unwrap();
        let jac = jacobian(&kp, l, t0);
        let ev = eigenvalues_row_major(l, &jac).unwrap();
        let s = Spectrum::from_modes("m", &[(n as f64, lam)]).unwrap();
        let opts = StabilityOptions { points: l, reading: Reading::Derived, offdiag_sign: 1.0, eps_out: 1.0 };
        let g = solve(&s, t0, &opts).unwrap();
        // A single Einstein mode on a commensurate grid conserves the electron number in
        // each residue class i mod r (energy moves by ±ω only), broken only by the cutoff:
        // r modes with γ ~ e^{-L/T}, present identically in both formulations. Compare the
        // slowest of the others.
        let gmax = g.gamma.iter().cloned().fold(0.0, f64::max);
        let gmin = g.gamma.iter().cloned().filter(|x| *x > 1e-6 * gmax).fold(f64::INFINITY, f64::min);
        let n_null = g.gamma.iter().filter(|x| x.abs() <= 1e-6 * gmax).count();
        // classes c and r − c are tied by the fold; c = 0 and c = r/2 are not conserved.
        assert_eq!(n_null, (n - 2) / 2, "near-null modes = residue-class pairs");
        let want = std::f64::consts::PI * gmin / sc;
        let slowest = ev
            .iter()
            .map(|z| -z.re / sc)
            .min_by(|a, b| (a - want).abs().partial_cmp(&(b - want).abs()).unwrap())
            .unwrap();
        let rel = (slowest - want).abs() / want;
        eprintln!("ε = ω/{n}: kinetic slowest rate {slowest:.6e}, π γ_min = {want:.6e} (units of ω/8), rel {rel:.2e}");
        assert!(rel < prev);
        prev = rel;
    }
    assert!(prev < 2e-2);
}

struct Run {
    times: Vec<f64>,
    norms: Vec<f64>,
    status: Vec<f64>,
    reached: Vec<f64>,
    pivots: Vec<f64>,
}

fn run_kinetic(kp: std::sync::Arc<KineticProblem>, times: Vec<f64>, rtol: f64) -> Run {
    use neqkin::engine::cpu::CpuBackend;
    use neqkin::engine::model::BatchProblem;
    use neqkin::engine::solve::{integrate, Method, SolveOptions};
    let mut backend = CpuBackend::new(kp.clone());
    let opts = SolveOptions { method: Method::Dopri5, rtol, atol: 1e-16, output_times: times, ..Default::default() };
    let mut run = Run { times: vec![], norms: vec![], status: vec![], reached: vec![], pivots: vec![] };
    let n = kp.layout().state_len;
    integrate(&mut backend, &*kp, &opts, &mut |fr| {
        let o = kp.observables(0, fr.t, &fr.state[..n]);
        run.times.push(fr.t);
        run.norms.push(o.scalars[0].1);
        run.pivots.push(o.scalars[3].1);
        run.status.push(fr.status[0]);
        run.reached.push(fr.time_reached[0]);
        Ok(())
    })
    .unwrap();
    run
}

fn two_mode(lam: f64, t0: f64, t_in: f64, l: usize) -> Params {
    Params::parse(&serde_json::json!({
        "task": "kinetic", "modes": [[8.0, 0.5 * lam], [9.0, 0.5 * lam]], "units": "input",
        "temperature": t0, "initial_temperature": t_in, "grid_step": 1.0, "grid_points": l
    }))
    .unwrap()
}

/// γ spectrum (output unit, ascending) of the stability task on the kinetic equation's own
/// discretisation (`discretisation = "kinetic"`), as a user gets it from a config.
fn kinetic_gammas(p: &Params) -> Vec<f64> {
    let mut q = p.clone();
    q.task = neqkin::models::eliashberg::Task::Stability;
    q.discretisation = neqkin::models::eliashberg::Discretisation::Kinetic;
    let o = neqkin::models::eliashberg::evaluate_point(&q).unwrap();
    let imag = o.scalars.iter().find(|x| x.0 == "max_imag_relative").unwrap().1;
    assert!(imag < 1e-8, "complex γ: {imag:e}");
    o.arrays.iter().find(|x| x.0 == "gamma").unwrap().1.clone()
}

#[test]
fn analytic_jacobians_match_finite_differences() {
    use neqkin::engine::model::BatchProblem;
    use neqkin::models::eliashberg::kinetic::{collision_jacobian, lhs_apply_jacobian};
    let (l, t0) = (40, 2.0);
    for rule in [PvRule::Product, PvRule::ProductCubic] {
        let mut p = two_mode(1.2, t0, t0, l);
        p.pv = Some(rule);
        let kp = KineticProblem::new(&[p]).unwrap();
        let tab = &kp.tables()[..table_len(l, 2)];
        // an off-equilibrium f and an arbitrary v
        let f: Vec<f64> = (1..=l).map(|i| fermi(i as f64, 2.6) + 0.01 * (i as f64 * 0.7).sin()).collect();
        let v: Vec<f64> = (0..l).map(|i| (i as f64 * 0.3).cos()).collect();
        let jc = collision_jacobian(l, 2, tab, &f);
        let ja = lhs_apply_jacobian(l, tab, &v, rule.five_point());
        let av = |f: &[f64]| -> Vec<f64> {
            let a = kp.lhs_matrix(0, f);
            (0..l).map(|i| (0..l).map(|j| a[i * l + j] * v[j]).sum()).collect()
        };
        let (mut wc, mut wa, mut sc, mut sa) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        let (mut ip, mut im) = (vec![0.0; l], vec![0.0; l]);
        for j in 0..l {
            let h = 1e-3; // both maps are at most quadratic in f: central differences are exact
            let (mut fp, mut fm) = (f.clone(), f.clone());
            fp[j] += h;
            fm[j] -= h;
            collision(l, 2, tab, &fp, &mut ip);
            collision(l, 2, tab, &fm, &mut im);
            let (ap, am) = (av(&fp), av(&fm));
            for i in 0..l {
                wc = wc.max(((ip[i] - im[i]) / (2.0 * h) - jc[i * l + j]).abs());
                wa = wa.max(((ap[i] - am[i]) / (2.0 * h) - ja[i * l + j]).abs());
                sc = sc.max(jc[i * l + j].abs());
                sa = sa.max(ja[i * l + j].abs());
            }
        }
        eprintln!("{rule:?}: ∂I/∂f: max err {wc:e} (scale {sc:e}); ∂(A v)/∂f: max err {wa:e} (scale {sa:e})");
        assert!(wc < 1e-9 * sc && wa < 1e-9 * sa);
    }
}

/// Eigenvalue of the kinetic Jacobian at f0 with the largest real part.
fn leading_rate(kp: &KineticProblem, l: usize, t0: f64) -> f64 {
    let jac = jacobian(kp, l, t0);
    let ev = eigenvalues_row_major(l, &jac).unwrap();
    ev.iter().map(|z| z.re).fold(f64::NEG_INFINITY, f64::max)
}

#[test]
fn relaxes_below_threshold_at_the_slowest_rate() {
    // The cutoff makes f0 stationary only up to ~e^{-(L-r)/T}: keep that far below the
    // deviation (L = 90, T = 3: e^{-27}).
    let (l, t0) = (90, 3.0);
    let kp = std::sync::Arc::new(KineticProblem::new(&[two_mode(1.0, t0, t0 * (1.0 + 1e-5), l)]).unwrap());
    let lead = leading_rate(&kp, l, t0);
    let s = Spectrum::from_modes("m", &[(8.0, 0.5), (9.0, 0.5)]).unwrap();
    let opts = StabilityOptions { points: l, reading: Reading::Derived, offdiag_sign: 1.0, eps_out: 1.0 };
    let g = solve(&s, t0, &opts).unwrap();
    let pg = std::f64::consts::PI * g.gamma.iter().cloned().filter(|x| *x > 0.0).fold(f64::INFINITY, f64::min);
    let run = run_kinetic(kp, vec![2.0, 4.0, 6.0, 8.0, 10.0], 1e-10);
    let k = run.norms.len();
    let slope = (run.norms[k - 1] / run.norms[k - 2]).ln() / (run.times[k - 1] - run.times[k - 2]);
    eprintln!(
        "relaxation: measured rate {:.5}, Jacobian {:.5}, π γ_min {:.5}; norms {:?}",
        -slope, -lead, pg, run.norms
    );
    let gk = kinetic_gammas(&two_mode(1.0, t0, t0, l));
    let pgk = std::f64::consts::PI * gk.iter().cloned().filter(|x| *x > 0.0).fold(f64::INFINITY, f64::min);
    eprintln!(
        "relaxation: π γ_min on the kinetic discretisation {pgk:.6}: measured/πγ − 1 = {:.2e}",
        -slope / pgk - 1.0
    );
    assert!(run.status.iter().all(|s| *s == 1.0));
    assert!(((-slope) - (-lead)).abs() < 1e-3 * lead.abs());
    // The stability task on the kinetic discretisation gives the measured decay rate.
    assert!(((-slope) - pgk).abs() < 1e-3 * pgk);
    assert!((pgk + lead).abs() < 1e-6 * pgk);
    assert!(((-slope) - pg).abs() < 0.05 * pg);
}

#[test]
fn grows_above_threshold_and_stops_when_singular() {
    let (l, t0) = (60, 1.6);
    let s = Spectrum::from_modes("m", &[(8.0, 0.5), (9.0, 0.5)]).unwrap();
    let lc =
        neqkin::models::eliashberg::threshold::lambda_c(&s, t0, neqkin::models::eliashberg::threshold::Units::Input)
            .unwrap()
            .lambda_c;
    let lam = 1.3 * lc;
    let kp = std::sync::Arc::new(KineticProblem::new(&[two_mode(lam, t0, t0 * (1.0 + 1e-7), l)]).unwrap());
    let lead = leading_rate(&kp, l, t0);
    let opts = StabilityOptions { points: l, reading: Reading::Derived, offdiag_sign: 1.0, eps_out: 1.0 };
    let g = solve(&s.with_lambda(lam), t0, &opts).unwrap();
    eprintln!(
        "λc = {lc:.4}, λ = {lam:.4}: Jacobian leading rate {lead:.5}; π γ (negative ones) {:?}",
        g.gamma.iter().filter(|x| **x < 0.0).map(|x| std::f64::consts::PI * x).collect::<Vec<_>>()
    );
    assert!(lead > 0.0);
    let dt = 1.0 / lead;
    let times: Vec<f64> = (1..=40).map(|i| i as f64 * dt).collect();
    let run = run_kinetic(kp, times, 1e-9);
    // After the transient (other unstable modes, e-folds 0–8) the leading mode dominates.
    let slope = (run.norms[11] / run.norms[9]).ln() / (run.times[11] - run.times[9]);
    eprintln!(
        "growth: measured rate {slope:.5} vs Jacobian {lead:.5}; norms {:?}\nstatus {:?}\nreached {:?}\npivots {:?}",
        &run.norms, run.status, run.reached, run.pivots
    );
    assert!((slope - lead).abs() < 2e-3 * lead);
    // The stability task on the kinetic discretisation: the most negative γ is the growth.
    let gk = kinetic_gammas(&two_mode(lam, t0, t0, l));
    let pgk = -std::f64::consts::PI * gk[0];
    eprintln!(
        "growth: π|γ most negative| on the kinetic discretisation {pgk:.6} (analytic Z0⁻¹: {:.6}); measured/πγ − 1 = {:.2e}",
        -std::f64::consts::PI * g.gamma[0],
        slope / pgk - 1.0
    );
    assert!((slope - pgk).abs() < 2e-3 * pgk);
    assert!((pgk - lead).abs() < 1e-6 * lead);
    // Once nonlinear, the run stops (FAILED) and the last reported state says why:
    // the smallest LU pivot of the left-hand matrix, and the step-size collapse.
    assert_eq!(*run.status.last().unwrap(), 3.0);
    assert!(run.reached.last().unwrap() < run.times.last().unwrap());
}

/// Table I's modes at T0 = 0.18 g on the paper's grid (L = 362): relaxation below λc and
/// growth above, measured in time, against the kinetic Jacobian and πγ of Eqs 17–23.
/// Ignored (minutes on the CPU): `cargo test --test eliashberg_kinetic -- --ignored --nocapture`.
#[test]
#[ignore = "minutes on the CPU"]
fn table_one_grid_rates() {
    use neqkin::engine::model::BatchProblem;
    for lam in [1.0, 1.3] {
        let p = Params::parse(&serde_json::json!({
            "task": "kinetic", "comb": {"start": 40.0, "step": 1.0, "count": 21}, "lambda": lam,
            "units": "g", "temperature": 0.18, "initial_temperature": 0.18 * (1.0 + 1e-6), "grid_step": 1.0
        }))
        .unwrap();
        let kp = std::sync::Arc::new(KineticProblem::new(&[p]).unwrap());
        let mem = kp.members()[0].clone();
        let l = kp.layout().state_len;
        let lead = leading_rate(&kp, l, mem.t0); // in 1/g (params carry the time scale)
        let s = Spectrum::comb(40.0, 1.0, 21, lam);
        let opts = StabilityOptions { points: l, reading: Reading::Derived, offdiag_sign: 1.0, eps_out: mem.eps_out };
        let g = solve(&s, mem.t0, &opts).unwrap();
        let pg: Vec<f64> = g.gamma.iter().map(|x| std::f64::consts::PI * x * mem.eps_out).collect();
        let gmin_pos = pg.iter().cloned().filter(|x| *x > 0.0).fold(f64::INFINITY, f64::min);
        let gmost_neg = pg.iter().cloned().fold(f64::INFINITY, f64::min);
        let dt = 1.0 / lead.abs();
        let times: Vec<f64> = (1..=12).map(|i| i as f64 * dt).collect();
        let run = run_kinetic(kp.clone(), times, 1e-9);
        let k = run.norms.iter().position(|x| !x.is_finite()).unwrap_or(run.norms.len()).min(run.norms.len());
        let rates: Vec<f64> = (1..k).map(|i| (run.norms[i] / run.norms[i - 1]).ln() / dt).collect();
        eprintln!(
            "λ = {lam}: L = {l}, ε = {:.5} g; Jacobian leading {lead:.5e} /g; πγ_min+ {gmin_pos:.5e}, πγ most negative {gmost_neg:.5e}; measured rates {rates:?}; status {:?}; pivots {:?}",
            mem.eps_out, run.status, run.pivots
        );
    }
}

/// Kinetic vs analytic discretisation of the stability problem on refined grids (fixed
/// physics: modes ω1 = 1, ω2 = 9/8, T0 = 0.2, ε = 1/n): slowest rate below λc, least and
/// most negative γ above. Prints the table of the model doc; ignored (~a minute):
/// `cargo test --test eliashberg_kinetic -- --ignored --nocapture kinetic_vs_analytic`.
#[test]
#[ignore = "prints a convergence table"]
fn kinetic_vs_analytic_convergence() {
    let t0 = 0.2;
    let s1 = Spectrum::from_modes("m", &[(1.0, 0.5), (1.125, 0.5)]).unwrap();
    let lc =
        neqkin::models::eliashberg::threshold::lambda_c(&s1, t0, neqkin::models::eliashberg::threshold::Units::Input)
            .unwrap()
            .lambda_c;
    for (tag, lam) in [("below (0.8 λc)", 0.8 * lc), ("above (1.3 λc)", 1.3 * lc)] {
        for n in [8usize, 16, 32] {
            let l = (3.5 * n as f64).ceil() as usize + (25.0 * t0 * n as f64).ceil() as usize;
            let p = Params::parse(&serde_json::json!({
                "task": "stability", "modes": [[1.0, 0.5 * lam], [1.125, 0.5 * lam]], "units": "input",
                "temperature": t0, "grid_step": 1.0 / n as f64, "grid_points": l
            }))
            .unwrap();
            let an = neqkin::models::eliashberg::evaluate_point(&p).unwrap();
            let mut q = p.clone();
            q.discretisation = neqkin::models::eliashberg::Discretisation::Kinetic;
            let ki = neqkin::models::eliashberg::evaluate_point(&q).unwrap();
            let g = |o: &neqkin::engine::model::Observables, k: &str| o.scalars.iter().find(|x| x.0 == k).unwrap().1;
            eprintln!(
                "{tag} λ = {lam:.4}, ε = 1/{n}, L = {l}: γ_min+ an {:.6} ki {:.6} | n_neg an {} ki {} | least neg an {:.5} ki {:.5} | most neg an {:.4} ki {:.4}",
                g(&an, "gamma_min_positive"),
                g(&ki, "gamma_min_positive"),
                g(&an, "n_negative"),
                g(&ki, "n_negative"),
                g(&an, "gamma_least_negative"),
                g(&ki, "gamma_least_negative"),
                g(&an, "gamma_most_negative"),
                g(&ki, "gamma_most_negative"),
            );
        }
    }
}

/// The stored kernel (Toeplitz + Hankel diagonals, O(L)) equals the product-integration and
/// drop-rule matrices evaluated entry by entry from their partial fractions.
#[test]
fn toeplitz_hankel_kernel_equals_direct_matrix() {
    use neqkin::models::eliashberg::kinetic::{hat_pv, CubicPv};
    let cubic = CubicPv::new();
    let (r, lam, l) = ([3usize, 7], [0.4, 0.9], 25usize);
    for rule in [PvRule::Product, PvRule::ProductCubic, PvRule::Drop] {
        let (k, _) = sigma_operator(&r, &lam, l, rule);
        let mut worst = 0.0f64;
        let mut scale = 0.0f64;
        for i in 1..=l + 1 {
            let e = i as f64;
            for j in 1..=l {
                let x = j as f64;
                let mut direct = 0.0;
                for (&rk, &lk) in r.iter().zip(&lam) {
                    let rf = rk as f64;
                    direct += match rule {
                        // −λr/2 Σ_± ±[F(p − x) − F(p + x)], p = E ± r
                        PvRule::Product => {
                            -0.5 * lk
                                * rf
                                * ((hat_pv(e + rf - x) - hat_pv(e + rf + x))
                                    - (hat_pv(e - rf - x) - hat_pv(e - rf + x)))
                        }
                        // the same with the cubic cardinal function's Φ
                        PvRule::ProductCubic => {
                            -0.5 * lk
                                * rf
                                * ((cubic.phi_pv(e + rf - x) - cubic.phi_pv(e + rf + x))
                                    - (cubic.phi_pv(e - rf - x) - cubic.phi_pv(e - rf + x)))
                        }
                        // −λr² [1/((x−E)² − r²) − 1/((x+E)² − r²)], singular points dropped
                        PvRule::Drop => {
                            let inv = |d: f64| if d == 0.0 { 0.0 } else { 1.0 / d };
                            -lk * rf * rf * (inv((x - e).powi(2) - rf * rf) - inv((x + e).powi(2) - rf * rf))
                        }
                    };
                }
                let got = k[(i - 1) * l + (j - 1)];
                worst = worst.max((got - direct).abs());
                scale = scale.max(direct.abs());
            }
        }
        eprintln!("{rule:?}: max |K_stored − K_direct| = {worst:.2e} (max |K| = {scale:.2e})");
        assert!(worst <= 1e-14 * scale, "{rule:?}: {worst} vs {scale}");
    }
}

/// Z0⁻¹ on the kinetic grid against Eq 15 at the nodes, and the kinetic λc (A(f0) turning
/// singular), for Table I's comb (ω = 40…60 in units of the base step, T0 = 0.204 g) on the
/// base grid refined `n`-fold. Returns (max |ΔZ0⁻¹| over E ≤ 2ω_max, min Z_grid − min Z_Eq15
/// at λ = 1.5644, kinetic λc, L).
fn table_one_pv_point(n: usize, rule: PvRule) -> (f64, f64, f64, usize) {
    use neqkin::models::eliashberg::kinetic::lambda_c_kinetic;
    let mut p = Params::parse(&serde_json::json!({
        "task": "stability", "comb": {"start": 40.0, "step": 1.0, "count": 21}, "lambda": 1.5644,
        "units": "g", "temperature": 0.204, "grid_step": 1.0 / n as f64, "discretisation": "kinetic"
    }))
    .unwrap();
    p.pv = Some(rule);
    let mut kp = p.clone();
    kp.task = neqkin::models::eliashberg::Task::Kinetic;
    kp.initial_temperature = Some(p.temperature);
    let prob = KineticProblem::new(&[kp]).unwrap();
    let m = &prob.members()[0];
    let l = m.l;
    let f0: Vec<f64> = (1..=l).map(|i| fermi(i as f64, m.t0)).collect();
    let zg = prob.zinv_grid(0, &f0);
    let se = p.spectrum().unwrap().scaled(n as f64);
    let (mut worst, mut zmin_g, mut zmin_x) = (0.0f64, f64::INFINITY, f64::INFINITY);
    for i in 1..=(2 * 60 * n).min(l - 1) {
        let zx = zinv(&se, m.t0, i as f64);
        worst = worst.max((zg[i - 1] - zx).abs());
        zmin_g = zmin_g.min(zg[i - 1]);
        zmin_x = zmin_x.min(zx);
    }
    let (lc, _) = lambda_c_kinetic(&p, 1.5644).unwrap();
    (worst, zmin_g - zmin_x, lc, l)
}

/// Issue 10: the kinetic λc at Table I's T0 = 0.204 converges at second order with the
/// linear product rule and is converged to 1e-5 on Table I's own grid with the cubic rule
/// (reference: the cubic rule on the grid refined twice). The linear rule's 1.5595 on
/// Table I's grid is the shift the issue reported.
#[test]
fn kinetic_lambda_c_converges_with_the_pv_rules() {
    let (_, _, lin1, _) = table_one_pv_point(1, PvRule::Product);
    let (_, _, lin2, _) = table_one_pv_point(2, PvRule::Product);
    let (_, _, cub1, _) = table_one_pv_point(1, PvRule::ProductCubic);
    let (_, _, cub2, _) = table_one_pv_point(2, PvRule::ProductCubic);
    let order = ((lin1 - cub2) / (lin2 - cub2)).log2();
    eprintln!(
        "kinetic λc: linear {lin1:.6} → {lin2:.6} (order {order:.2} against cubic ε/2), cubic {cub1:.6} → {cub2:.6}"
    );
    assert!((lin1 - 1.5595).abs() < 1e-4, "linear rule on Table I's grid: {lin1}");
    assert!(order > 1.7, "linear rule: order {order}");
    assert!((cub1 - cub2).abs() < 2e-5, "cubic rule: {cub1} vs {cub2}");
    assert!((cub2 - 1.5570).abs() < 1e-4, "cubic rule: {cub2}");
}

/// Issue 10: the convergence table of the model doc (Z0⁻¹ error and kinetic λc against the
/// grid at Table I's T0 = 0.204 for both product rules). Minutes on the CPU:
/// `cargo test --release --test eliashberg_kinetic -- --ignored --nocapture pv_rule_table`.
#[test]
#[ignore = "prints the PV-rule convergence table (minutes)"]
fn pv_rule_table_one_convergence() {
    for rule in [PvRule::Product, PvRule::ProductCubic] {
        let mut prev: Option<(f64, f64)> = None;
        for n in [1usize, 2, 4] {
            let t = std::time::Instant::now();
            let (dz, dmin, lc, l) = table_one_pv_point(n, rule);
            let order = prev.map(|(pz, _)| (pz / dz).log2()).unwrap_or(f64::NAN);
            eprintln!(
                "{rule:?} ε = base/{n} (L = {l}): max|ΔZ0⁻¹| {dz:.3e} (order {order:.2}), min Z grid − exact {dmin:+.3e}, kinetic λc {lc:.6} [{:.1} s]",
                t.elapsed().as_secs_f64()
            );
            prev = Some((dz, lc));
        }
    }
}
