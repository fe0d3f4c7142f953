//! Issue 5: the effective BdG model (Eq 12, σʸ pairing) — limits of its ground-state
//! populations.

use neqkin::models::interband::analysis::bdg_populations;

#[test]
fn bdg_limits() {
    // Δ̃ = 0: two Fermi seas, n_α = θ(C − A_α k²).
    for &k in &[0.0, 0.05, 0.08, 0.1, 0.15] {
        let (n1, n2) = bdg_populations(k, 7.0, 24.0, 0.1, 0.0);
        assert_eq!(n1, if 7.0 * k * k < 0.1 { 1.0 } else { 0.0 }, "n1 at {k}");
        assert_eq!(n2, if 24.0 * k * k < 0.1 { 1.0 } else { 0.0 }, "n2 at {k}");
    }
    // Strong pairing: equal populations ½(1 − ξ/E), → ½ as Δ̃ → ∞.
    let (n1, n2) = bdg_populations(0.1, 7.0, 24.0, 0.2, 10.0);
    assert_eq!(n1, n2);
    assert!((n1 - 0.5).abs() < 0.01);
    // Monotonic decrease with |k| at fixed Δ̃ in the paired regime.
    let mut last = 1.0;
    for i in 0..20 {
        let (n, _) = bdg_populations(0.01 * i as f64, 7.0, 24.0, 0.2, 0.3);
        assert!(n <= last + 1e-15);
        last = n;
    }
}
