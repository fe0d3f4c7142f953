//! Electronic specific heat, per `ν0` (density of states per spin at the Fermi level).
//!
//! * [`c_el_prange_kadanoff`]: the real-axis integral (supplement Eq 5, first line)
//!   `C = 2∫dE E {Z0⁻¹ ∂f0/∂T + ∂Σ/∂T ∂f0/∂E}` with Σ of `selfenergy.rs`, by composite
//!   Simpson on `[0, 60T]` (the integrand is even).
//! * [`c_el_lee_rainer`]: the closed form (Eqs 13, 14, 16) `C = (2π²T/3)[1 − Σ_k λ_k g(ω_k/2πT)]`,
//!   `g(x) = 6x² + 12x³ Im ψ′(ix) + 6x⁴ Re ψ″(ix)`.

use super::alpha2f::Spectrum;
use super::polygamma::{polygamma012, C64};
use super::selfenergy::{dsigma_dt, zinv};
use std::f64::consts::PI;

/// Lee-Rainer g(x) (Eq 14). For x ≥ 20 the three terms cancel to O(1), so the asymptotic
/// series `g(x) = Σ_k (−1)^k (12k − 6) B_{2k} x^{2−2k}` (derived from the Stirling series of
/// ψ′, ψ″; `g → −1`) is used instead.
pub fn lee_rainer_g(x: f64) -> f64 {
    if x >= 20.0 {
        const B: [f64; 6] = [1.0 / 6.0, -1.0 / 30.0, 1.0 / 42.0, -1.0 / 30.0, 5.0 / 66.0, -691.0 / 2730.0];
        let mut acc = 0.0;
        let mut p = 1.0;
        for (i, b) in B.iter().enumerate() {
            let k = (i + 1) as f64;
            let sign = if (i + 1) % 2 == 0 { 1.0 } else { -1.0 };
            acc += sign * (12.0 * k - 6.0) * b * p;
            p /= x * x;
        }
        return acc;
    }
    let (_, p1, p2) = polygamma012(C64::new(0.0, x));
    6.0 * x * x + 12.0 * x.powi(3) * p1.im + 6.0 * x.powi(4) * p2.re
}

/// Eq 16 with Einstein modes: `C/ν0 = (2π²T/3)[1 − Σ λ_k g(ω_k/2πT)]`.
pub fn c_el_lee_rainer(s: &Spectrum, t: f64) -> f64 {
    let corr: f64 = s.omega.iter().zip(&s.lambda).map(|(w, l)| l * lee_rainer_g(w / (2.0 * PI * t))).sum();
    2.0 * PI * PI * t / 3.0 * (1.0 - corr)
}

/// Eq 5 (first line), numerically, with `n` Simpson intervals (even).
pub fn c_el_prange_kadanoff(s: &Spectrum, t: f64, n: usize) -> f64 {
    let n = n + n % 2;
    let emax = 60.0 * t;
    let h = emax / n as f64;
    let integrand = |e: f64| {
        let x = e / t;
        // f(1−f) = 1/(4 cosh²(x/2))
        let ff = 0.25 / (0.5 * x).cosh().powi(2);
        let dfdt = e / (t * t) * ff;
        let dfde = -ff / t;
        e * (zinv(s, t, e) * dfdt + dsigma_dt(s, t, e) * dfde)
    };
    let mut acc = integrand(0.0) + integrand(emax);
    for i in 1..n {
        acc += integrand(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
    }
    // 2∫_{-∞}^{∞} = 4∫_0^∞
    4.0 * acc * h / 3.0
}
