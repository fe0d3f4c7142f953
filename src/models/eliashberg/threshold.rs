//! Instability threshold λc(T0): the coupling at which `min_E Z0⁻¹(E)` reaches zero
//! (supplement Eq 24).
//!
//! Two unit choices (exposed as `params.units`):
//! * `"g"`: temperatures and energies in units of `g = sqrt(λ⟨ω²⟩)` (the paper's unit,
//!   Eqs 40–41, Table I). Then the temperature in the input unit is `T0·g(λ)` and grows
//!   with λ, so λc solves `F(λ) = min_E Z0⁻¹(E; λ, T0 g(λ)) = 0` by bracketing (doubling
//!   from λ = 1e-2) and bisection to 1e-14 relative.
//! * `"input"`: temperatures in the same unit as the mode frequencies. `Z0⁻¹` is affine
//!   in λ at fixed T, so `λc = 1/(1 − min_E Z0⁻¹|_{λ=1})` exactly.

use super::alpha2f::Spectrum;
use super::selfenergy::{zinv, zinv_min};
use crate::{NeqkinError, Result};

/// Energy unit of temperatures and energies in configs and outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Units {
    /// The paper's unit g = sqrt(λ⟨ω²⟩) (depends on λ).
    G,
    /// The unit in which the mode frequencies were given.
    Input,
}

/// Result of a threshold search.
#[derive(Clone, Debug)]
pub struct Threshold {
    /// λc.
    pub lambda_c: f64,
    /// Position of the minimum of Z0⁻¹ at λc (in the chosen unit).
    pub e_star: f64,
    /// g at λc, in the input unit.
    pub g: f64,
    /// Temperature in the input unit at λc.
    pub t_input: f64,
}

/// `(E_min, min Z0⁻¹)` in the input unit for spectrum `s` at input-unit temperature `t`.
pub fn min_zinv(s: &Spectrum, t: f64) -> (f64, f64) {
    let e_max = 2.0 * s.omega_max() + 20.0 * t;
    zinv_min(&|e| zinv(s, t, e), e_max, 1000)
}

/// λc for the shape of `shape` (its total λ is irrelevant) at temperature `t0`.
pub fn lambda_c(shape: &Spectrum, t0: f64, units: Units) -> Result<Threshold> {
    let unit = shape.with_lambda(1.0);
    let g1 = unit.g();
    match units {
        Units::Input => {
            let (_, m) = min_zinv(&unit, t0);
            if m >= 1.0 {
                return Err(NeqkinError::invalid("params.temperature", "Z0⁻¹ has no dip: no instability"));
            }
            let lc = 1.0 / (1.0 - m);
            let s = unit.with_lambda(lc);
            let (e, _) = min_zinv(&s, t0);
            Ok(Threshold { lambda_c: lc, e_star: e, g: s.g(), t_input: t0 })
        }
        Units::G => {
            let f = |l: f64| min_zinv(&unit.with_lambda(l), t0 * g1 * l.sqrt()).1;
            let (mut lo, mut hi) = (1e-2, 2e-2);
            if f(lo) <= 0.0 {
                return Err(NeqkinError::invalid("params.temperature", "unstable already at λ = 0.01"));
            }
            while f(hi) > 0.0 {
                lo = hi;
                hi *= 2.0;
                if hi > 1e5 {
                    return Err(NeqkinError::invalid(
                        "params.temperature",
                        format!("no instability for λ ≤ 1e5 at T0 = {t0} g (above the strong-coupling limit)"),
                    ));
                }
            }
            while (hi - lo) > 1e-14 * hi {
                let mid = 0.5 * (lo + hi);
                if f(mid) > 0.0 {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            let lc = 0.5 * (lo + hi);
            let s = unit.with_lambda(lc);
            let g = s.g();
            let t = t0 * g;
            let (e, _) = min_zinv(&s, t);
            Ok(Threshold { lambda_c: lc, e_star: e / g, g, t_input: t })
        }
    }
}
