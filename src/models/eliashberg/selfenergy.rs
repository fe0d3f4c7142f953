//! Equilibrium self-energy (supplement Eq 15) and inverse quasiparticle weight
//! `Z0⁻¹(E) = 1 − ∂Σ/∂E`, summed over Einstein modes.
//!
//! **Sign convention.** We use the real part of the retarded self-energy,
//! `Σ(E) = (λΩ/2) Re[ψ(½ + i(E−Ω)/2πT) − ψ(½ + i(E+Ω)/2πT)]`,
//! which is Eq 15 *with the opposite overall sign* as printed. It is fixed by the physics:
//! at weak coupling and `T → 0`, `Σ → (λΩ/2) ln|(E−Ω)/(E+Ω)| ≈ −λE`, so
//! `Z0⁻¹(0) = 1 − Σ′(0) = 1 + λ` (mass enhancement), the Prange-Kadanoff specific heat
//! has the factor `1 + λ`, and the strong-coupling limit is Eq 41 exactly. This `Σ` is
//! also what the real-axis functional `Σ[f] = −Σ_k λ_k ω_k² PV∫ f(Ẽ)/((Ẽ−E)² − ω_k²) dẼ`
//! gives at `f = f0` (see `kinetic.rs`). All energies share one unit (any).

use super::alpha2f::Spectrum;
use super::polygamma::{polygamma012, C64};
use std::f64::consts::PI;

/// Σ(E) at temperature `t`.
pub fn sigma(s: &Spectrum, t: f64, e: f64) -> f64 {
    let mut acc = 0.0;
    for (&w, &l) in s.omega.iter().zip(&s.lambda) {
        let zm = C64::new(0.5, (e - w) / (2.0 * PI * t));
        let zp = C64::new(0.5, (e + w) / (2.0 * PI * t));
        acc += 0.5 * l * w * (polygamma012(zm).0.re - polygamma012(zp).0.re);
    }
    acc
}

/// Z0⁻¹(E) = 1 − Σ′(E) = 1 − Σ_k (λ_k ω_k / 4πT) Im[ψ′(z₊) − ψ′(z₋)],
/// `z± = ½ + i(E ± ω_k)/2πT`.
pub fn zinv(s: &Spectrum, t: f64, e: f64) -> f64 {
    1.0 - lambda_weighted_dsigma(s, t, e)
}

/// Σ′(E) (derivative in energy).
pub fn lambda_weighted_dsigma(s: &Spectrum, t: f64, e: f64) -> f64 {
    let mut acc = 0.0;
    for (&w, &l) in s.omega.iter().zip(&s.lambda) {
        let zm = C64::new(0.5, (e - w) / (2.0 * PI * t));
        let zp = C64::new(0.5, (e + w) / (2.0 * PI * t));
        acc += l * w / (4.0 * PI * t) * (polygamma012(zp).1.im - polygamma012(zm).1.im);
    }
    acc
}

/// ∂Σ/∂T at fixed E (for the Prange-Kadanoff integral, Eq 5).
/// `∂z/∂T = −(z − ½)/T`.
pub fn dsigma_dt(s: &Spectrum, t: f64, e: f64) -> f64 {
    let mut acc = 0.0;
    for (&w, &l) in s.omega.iter().zip(&s.lambda) {
        let zm = C64::new(0.5, (e - w) / (2.0 * PI * t));
        let zp = C64::new(0.5, (e + w) / (2.0 * PI * t));
        let half = C64::new(0.5, 0.0);
        let dm = polygamma012(zm).1 * (-(zm - half) / t);
        let dp = polygamma012(zp).1 * (-(zp - half) / t);
        acc += 0.5 * l * w * (dm.re - dp.re);
    }
    acc
}

/// Strong-coupling limit (Eq 41): `Z0⁻¹(E) = 1 − g²/(4π²T²) Re ψ″(½ + iE/2πT)`.
pub fn zinv_strong(g: f64, t: f64, e: f64) -> f64 {
    let z = C64::new(0.5, e / (2.0 * PI * t));
    1.0 - g * g / (4.0 * PI * PI * t * t) * polygamma012(z).2.re
}

/// Minimum of `Z0⁻¹(E)` over `E ≥ 0` (it is even in E): a scan on `n_scan` points of
/// `[0, e_max]` followed by golden-section refinement around the best point.
/// Returns `(E_min, Z0⁻¹(E_min))`.
pub fn zinv_min(f: &dyn Fn(f64) -> f64, e_max: f64, n_scan: usize) -> (f64, f64) {
    let h = e_max / n_scan as f64;
    let (mut best_i, mut best) = (0, f(0.0));
    for i in 1..=n_scan {
        let v = f(i as f64 * h);
        if v < best {
            best = v;
            best_i = i;
        }
    }
    let mut a = (best_i as f64 - 1.0).max(0.0) * h;
    let mut b = (best_i as f64 + 1.0).min(n_scan as f64) * h;
    let r = 0.5 * (5f64.sqrt() - 1.0);
    let mut c = b - r * (b - a);
    let mut d = a + r * (b - a);
    let (mut fc, mut fd) = (f(c), f(d));
    while b - a > 1e-12 * e_max.max(1e-300) {
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - r * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + r * (b - a);
            fd = f(d);
        }
    }
    let x = 0.5 * (a + b);
    let v = f(x);
    if v < best {
        (x, v)
    } else {
        (best_i as f64 * h, best)
    }
}

/// Zeros of `f` on `[0, e_max]`: sign changes on a scan of `n_scan` points, refined by
/// bisection to 1e-13 relative.
pub fn zeros(f: &dyn Fn(f64) -> f64, e_max: f64, n_scan: usize) -> Vec<f64> {
    let h = e_max / n_scan as f64;
    let mut out = vec![];
    let mut prev = f(0.0);
    for i in 1..=n_scan {
        let x = i as f64 * h;
        let v = f(x);
        if prev.signum() != v.signum() {
            let (mut a, mut b, mut fa) = (x - h, x, prev);
            for _ in 0..200 {
                let m = 0.5 * (a + b);
                let fm = f(m);
                if fm.signum() == fa.signum() {
                    a = m;
                    fa = fm;
                } else {
                    b = m;
                }
                if b - a < 1e-13 * e_max {
                    break;
                }
            }
            out.push(0.5 * (a + b));
        }
        prev = v;
    }
    out
}
