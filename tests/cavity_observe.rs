//! The host-side observables (issue 3) on exact thermal distributions: μ, T_eff, the
//! symmetric part and ΔO.
use neqkin::models::cavity::observe::*;

#[test]
fn observables_recover_a_thermal_distribution() {
    let (mu, t) = (0.37, 0.8);
    let omega: Vec<f64> = (0..801).map(|i| -20.0 + 0.05 * i as f64).collect();
    let f: Vec<f64> = omega.iter().map(|w| ((w - mu) / (2.0 * t)).tanh()).collect();
    let got_mu = chemical_potential(&omega, &f, 0.0).unwrap();
    assert!((got_mu - mu).abs() < 1e-7, "μ {got_mu}");
    let got_t = effective_temperature(&omega, &f, got_mu);
    assert!((got_t - t).abs() < 1e-5, "T_eff {got_t}");
    // Odd about μ: the symmetric part vanishes up to linear-interpolation error O(h²).
    let sym = symmetric_part(&omega, &f, got_mu);
    assert!(sym.iter().all(|s| s.abs() < 1e-3), "symmetric part {:?}", &sym[..5]);
    // ΔO of a shifted Fermi function with O = D = 1: ∫(F − F0)/2 = −(μ − μ0) (F → ±1 tails).
    let f0: Vec<f64> = omega.iter().map(|w| (w / (2.0 * t)).tanh()).collect();
    let d = delta_observable(&omega, &f, &f0, &[1.0], &[1.0]);
    assert!((d + mu).abs() < 1e-9, "ΔO {d}");
    assert_eq!(poly(&[1.0, 2.0, 3.0], 2.0), 17.0);
}

/// μ stays in the sign change it was bracketed by (issue 10 audit): on a distribution with
/// a small wiggle through zero (three sign changes within 3 points) the unguarded Newton
/// iteration on the local cubic jumped to ω = 21.58, outside the whole window [−10, 10],
/// and returned it silently. The safeguarded iteration (Newton inside the bracket,
/// bisection otherwise) returns the zero of the cubic interpolant inside [−1, 0].
#[test]
fn chemical_potential_stays_inside_its_bracket() {
    let omega: Vec<f64> = (0..21).map(|i| -10.0 + i as f64).collect();
    let f = [
        -0.9354, -0.9019, -0.8523, -0.7805, -0.6798, -0.5447, -0.3739, -0.1736, 0.0185, -0.0175, 0.0311, 0.517, 0.7208,
        0.8118, 0.8741, 0.9167, 0.9453, 0.9643, 0.9768, 0.9849, 0.9902,
    ];
    let mu = chemical_potential(&omega, &f, 0.0).unwrap();
    let v = interp_cubic(&omega, &f, mu);
    println!("μ = {mu}, cubic interpolant there {v:.1e}");
    assert!((-1.0..=0.0).contains(&mu), "μ = {mu} left the bracket [−1, 0]");
    assert!(v.abs() < 1e-12, "F(μ) = {v}");
}
