//! Complex digamma ψ and its first two derivatives ψ′, ψ″.
//!
//! The equilibrium self-energy (supplement Eq 15), the quasiparticle weight and the strong
//! coupling form (Eq 41) need them at `½ + iy`; the Lee-Rainer specific heat (Eq 14) needs
//! them at `iy`. Method: upward recurrence `ψ(z) = ψ(z+1) − 1/z` (and its derivatives)
//! until `|z| ≥ 16`, then the asymptotic (Stirling) series with Bernoulli numbers up to
//! `B₁₄`, whose first omitted term is below 1e-17 relative there. Valid for any `z` off
//! the poles `0, −1, −2, …`.

/// Complex double (`num_complex::Complex<f64>`, as faer re-exports it).
pub type C64 = crate::engine::dense::c64;

/// Bernoulli numbers B₂, B₄, …, B₁₄.
const BERNOULLI: [f64; 7] = [1.0 / 6.0, -1.0 / 30.0, 1.0 / 42.0, -1.0 / 30.0, 5.0 / 66.0, -691.0 / 2730.0, 7.0 / 6.0];

/// Modulus above which the asymptotic series is used.
const ASYMPTOTIC_RADIUS: f64 = 16.0;

/// ψ(z), ψ′(z), ψ″(z) together (they share the recurrence).
pub fn polygamma012(z: C64) -> (C64, C64, C64) {
    let mut z = z;
    let (mut s0, mut s1, mut s2) = (C64::new(0.0, 0.0), C64::new(0.0, 0.0), C64::new(0.0, 0.0));
    while z.norm() < ASYMPTOTIC_RADIUS {
        let w = z.inv();
        let w2 = w * w;
        s0 -= w;
        s1 += w2;
        s2 -= 2.0 * w2 * w;
        z += 1.0;
    }
    let w = z.inv();
    let w2 = w * w;
    // ψ ~ ln z − 1/(2z) − Σ B_{2k}/(2k z^{2k})
    // ψ′ ~ 1/z + 1/(2z²) + Σ B_{2k}/z^{2k+1}
    // ψ″ ~ −1/z² − 1/z³ − Σ (2k+1) B_{2k}/z^{2k+2}
    let mut a0 = z.ln() - 0.5 * w;
    let mut a1 = w + 0.5 * w2;
    let mut a2 = -w2 - w2 * w;
    let mut p = w2; // z^{-2k}
    for (i, b) in BERNOULLI.iter().enumerate() {
        let k = (i + 1) as f64;
        a0 -= p * (b / (2.0 * k));
        a1 += p * w * *b;
        a2 -= p * w2 * ((2.0 * k + 1.0) * b);
        p *= w2;
    }
    (a0 + s0, a1 + s1, a2 + s2)
}

/// Digamma ψ(z).
pub fn digamma(z: C64) -> C64 {
    polygamma012(z).0
}

/// Trigamma ψ′(z).
pub fn trigamma(z: C64) -> C64 {
    polygamma012(z).1
}

/// Tetragamma ψ″(z).
pub fn tetragamma(z: C64) -> C64 {
    polygamma012(z).2
}

/// ψ, ψ′, ψ″ at `½ + i y` (the fermionic argument of Eqs 15 and 41).
pub fn polygamma_half(y: f64) -> (C64, C64, C64) {
    polygamma012(C64::new(0.5, y))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(what: &str, got: C64, want: C64, tol: f64) {
        let err = (got - want).norm() / want.norm().max(1e-300);
        assert!(err < tol, "{what}: got {got}, want {want}, rel {err:e}");
    }

    #[test]
    fn special_values() {
        let (p0, p1, p2) = polygamma_half(0.0);
        let euler = 0.577_215_664_901_532_9;
        let zeta3 = 1.202_056_903_159_594_3;
        close("ψ(½)", p0, C64::new(-euler - 2.0 * 2f64.ln(), 0.0), 1e-14);
        close("ψ′(½)", p1, C64::new(std::f64::consts::PI.powi(2) / 2.0, 0.0), 1e-14);
        close("ψ″(½)", p2, C64::new(-14.0 * zeta3, 0.0), 1e-14);
    }
}
