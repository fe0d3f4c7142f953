//! The Eliashberg function α²F(ω) as a list of Einstein modes.
//!
//! Every formula of the model is a sum over modes `(ω_k, λ_k)` with
//! `α²F(ω) = Σ_k (λ_k ω_k / 2) δ(ω − ω_k)`, so `λ = 2∫α²F/ω dω = Σ λ_k` and
//! `g² = λ⟨ω²⟩ = 2∫α²F ω dω = Σ λ_k ω_k²`. A tabulated α²F (CSV `ω, α²F` as an ab-initio
//! code writes it) is turned into modes by the trapezoid rule on its own points:
//! `λ_k = 2 α²F(ω_k) Δ_k / ω_k`, with `Δ_k` the trapezoid weight.

use crate::{NeqkinError, Result};

/// Eliashberg function as Einstein modes, in the user's input energy unit.
#[derive(Clone, Debug, PartialEq)]
pub struct Spectrum {
    /// Mode frequencies ω_k (> 0).
    pub omega: Vec<f64>,
    /// Mode couplings λ_k (≥ 0).
    pub lambda: Vec<f64>,
}

impl Spectrum {
    /// Builds from `(ω_k, λ_k)` pairs, checking them.
    pub fn from_modes(field: &str, modes: &[(f64, f64)]) -> Result<Self> {
        if modes.is_empty() {
            return Err(NeqkinError::invalid(field, "needs at least one mode"));
        }
        for (i, &(w, l)) in modes.iter().enumerate() {
            if !(w.is_finite() && w > 0.0) {
                return Err(NeqkinError::invalid(
                    field,
                    format!("mode {i}: frequency must be finite and > 0, got {w}"),
                ));
            }
            if !(l.is_finite() && l >= 0.0) {
                return Err(NeqkinError::invalid(
                    field,
                    format!("mode {i}: coupling must be finite and >= 0, got {l}"),
                ));
            }
        }
        Ok(Spectrum { omega: modes.iter().map(|m| m.0).collect(), lambda: modes.iter().map(|m| m.1).collect() })
    }

    /// `count` modes `ω = start, start+step, …` sharing `lambda` equally (Table I:
    /// `start = 40, step = 1, count = 21`).
    pub fn comb(start: f64, step: f64, count: usize, lambda: f64) -> Self {
        Spectrum {
            omega: (0..count).map(|k| start + step * k as f64).collect(),
            lambda: vec![lambda / count as f64; count],
        }
    }

    /// Modes from a tabulated α²F(ω) (trapezoid rule; points with ω ≤ 0 are dropped).
    pub fn from_table(field: &str, omega: &[f64], a2f: &[f64]) -> Result<Self> {
        if omega.len() != a2f.len() || omega.len() < 2 {
            return Err(NeqkinError::invalid(field, "table needs >= 2 rows of (ω, α²F)"));
        }
        if omega.windows(2).any(|w| w[1].partial_cmp(&w[0]) != Some(std::cmp::Ordering::Greater)) {
            return Err(NeqkinError::invalid(field, "ω must increase strictly"));
        }
        let n = omega.len();
        let mut modes = vec![];
        for i in 0..n {
            let lo = if i > 0 { omega[i - 1] } else { omega[i] };
            let hi = if i + 1 < n { omega[i + 1] } else { omega[i] };
            let weight = 0.5 * (hi - lo);
            if omega[i] > 0.0 && a2f[i] != 0.0 {
                modes.push((omega[i], 2.0 * a2f[i] * weight / omega[i]));
            }
        }
        Self::from_modes(field, &modes)
    }

    /// Modes sampled from a parametric α²F on `ω_j = jΔ`, `j = 1…⌊cutoff/Δ⌋` (rectangle
    /// rule, `λ_j = 2α²F(ω_j)Δ/ω_j`), then rescaled to total coupling `lambda`.
    /// Shapes (unnormalised; the overall factor is fixed by `lambda`):
    /// Gaussian `exp(−(ω−c)²/2w²)`, Lorentzian `w²/((ω−c)² + w²)`, Debye `ω²` for `ω ≤ c`.
    pub fn parametric(kind: ShapeKind, center: f64, width: f64, cutoff: f64, step: f64, lambda: f64) -> Result<Self> {
        let n = (cutoff / step + 1e-9).floor() as usize;
        if n < 1 {
            return Err(NeqkinError::invalid("params.shape_step", "larger than the cutoff: no modes"));
        }
        if n > 100_000 {
            return Err(NeqkinError::invalid("params.shape_step", format!("{n} modes: too many (max 100000)")));
        }
        let a2f = |w: f64| match kind {
            ShapeKind::Gaussian => (-(w - center).powi(2) / (2.0 * width * width)).exp(),
            ShapeKind::Lorentzian => width * width / ((w - center).powi(2) + width * width),
            ShapeKind::Debye => {
                if w <= center * (1.0 + 1e-12) {
                    w * w
                } else {
                    0.0
                }
            }
        };
        let modes: Vec<(f64, f64)> = (1..=n)
            .map(|j| {
                let w = j as f64 * step;
                (w, 2.0 * a2f(w) * step / w)
            })
            .filter(|m| m.1 > 0.0)
            .collect();
        let s = Self::from_modes("params.shape", &modes)?;
        if s.total_lambda() <= 0.0 {
            return Err(NeqkinError::invalid("params.shape", "the shape has no weight on its grid"));
        }
        Ok(s.with_lambda(lambda))
    }

    /// Reads a CSV file of `ω, α²F` rows (`#` comments and a non-numeric header allowed).
    pub fn from_csv(field: &str, path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| NeqkinError::invalid(field, format!("cannot read the α²F table {}: {e}", path.display())))?;
        let (mut w, mut a) = (vec![], vec![]);
        for (ln, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let cols: Vec<&str> = line.split([',', ' ', '\t', ';']).filter(|s| !s.is_empty()).collect();
            let parsed: Vec<Option<f64>> = cols.iter().map(|c| c.parse().ok()).collect();
            match (parsed.first(), parsed.get(1)) {
                (Some(Some(x)), Some(Some(y))) => {
                    w.push(*x);
                    a.push(*y);
                }
                _ if w.is_empty() => continue, // header
                _ => {
                    return Err(NeqkinError::invalid(
                        field,
                        format!("{}: line {} is not two numbers", path.display(), ln + 1),
                    ))
                }
            }
        }
        Self::from_table(field, &w, &a)
    }

    /// Total coupling λ = Σ λ_k.
    pub fn total_lambda(&self) -> f64 {
        self.lambda.iter().sum()
    }

    /// g = sqrt(λ⟨ω²⟩) = sqrt(Σ λ_k ω_k²), in the input unit.
    pub fn g(&self) -> f64 {
        self.omega.iter().zip(&self.lambda).map(|(w, l)| l * w * w).sum::<f64>().sqrt()
    }

    /// Same shape with total coupling `lambda`.
    pub fn with_lambda(&self, lambda: f64) -> Self {
        let total = self.total_lambda();
        Spectrum { omega: self.omega.clone(), lambda: self.lambda.iter().map(|l| l * lambda / total).collect() }
    }

    /// All frequencies times `s` (unit change), couplings unchanged.
    pub fn scaled(&self, s: f64) -> Self {
        Spectrum { omega: self.omega.iter().map(|w| w * s).collect(), lambda: self.lambda.clone() }
    }

    /// Largest frequency.
    pub fn omega_max(&self) -> f64 {
        self.omega.iter().cloned().fold(0.0, f64::max)
    }
}

/// Parametric α²F shapes (`params.shape`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShapeKind {
    /// Gaussian peak at `shape_center` with standard deviation `shape_width`.
    Gaussian,
    /// Lorentzian peak at `shape_center` with half width `shape_width`.
    Lorentzian,
    /// Debye-like `α²F ∝ ω²` up to `shape_center` (= ω_D).
    Debye,
}
