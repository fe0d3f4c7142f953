//! Closed-form estimates from the paper, for tests and as cheap observables.
//!
//! * Eq (8): the large-ζ, St_in → 0 limit of the distribution, the ω_p-periodic average
//!   of the initial Fermi-Dirac distribution weighted by the DoS.
//! * Eq (8) in Eq (9): the large-ζ limit of the conductivity, σ[f_Eq8] with the grid's own
//!   discrete Eq (9), so that the kinetic σ at large ζ converges to it without a grid term
//!   (commensurate ω_p; see `docs/models/photoexcited.md`).
//! * Eq (10): the estimate `σ ≈ Σ_j σ̃(μ + jω_p) - (1/ω_p) ∫ σ̃ dε`.

use super::dos::{fermi, Band};

/// Energies `e + j ω` inside the band, for all integers j.
fn comb(band: &Band, e: f64, omega: f64) -> impl Iterator<Item = f64> {
    let lo = -0.5 * band.width;
    let hi = 0.5 * band.width;
    let jmin = ((lo - e) / omega).ceil() as i64;
    let jmax = ((hi - e) / omega).floor() as i64;
    (jmin..=jmax).map(move |j| e + j as f64 * omega)
}

/// Eq (8) on the grid: `f(ε) = Σ_j D(ε+jω) f_T(ε+jω) / Σ_j D(ε+jω)` with D interpolated
/// between cell centres and f_T the Fermi-Dirac distribution at (μ, T).
pub fn eq8_distribution(band: &Band, mu: f64, temperature: f64, omega: f64) -> Vec<f64> {
    band.eps
        .iter()
        .map(|&e| {
            let (mut num, mut den) = (0.0, 0.0);
            for x in comb(band, e, omega) {
                let d = band.interpolate(&band.dos, x);
                num += d * fermi(x, mu, temperature);
                den += d;
            }
            if den > 0.0 {
                num / den
            } else {
                fermi(e, mu, temperature)
            }
        })
        .collect()
}

/// Eq (9) evaluated on the Eq (8) distribution, discretised as the kinetic observable:
/// `σ = Σ_i σ̃_{i+½} (f_i − f_{i+1})`, `σ̃_{i+½} = √(σ̃_i σ̃_{i+1})`, in the units of
/// `band.sigma_tilde` (divide by σ̃(μ) for σ/σ0). This is the ζ → ∞ (St_in, E → 0) limit
/// of the model's `sigma_over_sigma0` for a dispersionless phonon.
pub fn eq8_sigma(band: &Band, mu: f64, temperature: f64, omega: f64) -> f64 {
    let f = eq8_distribution(band, mu, temperature, omega);
    (0..band.len() - 1).map(|i| (band.sigma_tilde[i] * band.sigma_tilde[i + 1]).sqrt() * (f[i] - f[i + 1])).sum()
}

/// Eq (10): `Σ_j σ̃(μ + jω) - (1/ω) ∫ σ̃ dε`, in the units of `band.sigma_tilde`
/// (divide by σ̃(μ) for σ/σ0).
pub fn eq10_sigma(band: &Band, mu: f64, omega: f64) -> f64 {
    let peaks: f64 = comb(band, mu, omega).map(|x| band.interpolate(&band.sigma_tilde, x)).sum();
    let integral: f64 = band.sigma_tilde.iter().sum::<f64>() * band.h;
    peaks - integral / omega
}
