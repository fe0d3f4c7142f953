//! Electronic band on the energy grid: density of states D, mean squared velocity v² and
//! the transport function σ̃ = v² D τ_tr, all per cell.
//!
//! The band occupies `[-W/2, W/2]` divided into N cells of width `h = W/N` with centres
//! `ε_i = -W/2 + (i + 1/2) h`. `D` is normalised to `Σ_i h D_i = 1` (states per site;
//! the average DoS is `D0 = 1/W`). Analytic DoS are cell averages (exact integrals of the
//! continuum DoS over the cell), so the integrable edge singularities of the 1D band are
//! finite on the grid. Every cell gets at least `D_FLOOR / W` so that `1/D_i` exists.

use super::params::{DosKind, PhotoexcitedParams, Transport};
use crate::{NeqkinError, Result};

/// Smallest DoS allowed in a cell, in units of `1/W` (before renormalisation).
pub const D_FLOOR: f64 = 1e-4;

/// A band discretised on the energy grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Band {
    /// Band width W.
    pub width: f64,
    /// Cell width h.
    pub h: f64,
    /// Cell centres ε_i.
    pub eps: Vec<f64>,
    /// Density of states per cell, `Σ h D_i = 1`.
    pub dos: Vec<f64>,
    /// Mean squared velocity per cell (arbitrary units; only ratios matter).
    pub v2: Vec<f64>,
    /// Transport function σ̃_i = v² D τ_tr at the cell centres (arbitrary units).
    pub sigma_tilde: Vec<f64>,
}

impl Band {
    /// Builds the band selected by `p.dos` and `p.transport`.
    pub fn build(p: &PhotoexcitedParams) -> Result<Band> {
        Self::build_with(p, &crate::engine::model::CpuMap)
    }

    /// As [`Band::build`], sampling a p band's Brillouin zone on `device`.
    pub fn build_with(p: &PhotoexcitedParams, device: &dyn crate::engine::model::MapDevice) -> Result<Band> {
        let n = p.grid_points;
        let w = p.band_width;
        let h = w / n as f64;
        let eps: Vec<f64> = (0..n).map(|i| -0.5 * w + (i as f64 + 0.5) * h).collect();
        let (mut dos, v2) = match p.dos {
            DosKind::Semicircular => {
                // Cumulative fraction of states below x = 2ε/W.
                let cdf = |x: f64| {
                    0.5 + (x * (1.0 - x * x).max(0.0).sqrt() + x.clamp(-1.0, 1.0).asin()) / std::f64::consts::PI
                };
                cell_average(&eps, h, w, cdf)
            }
            DosKind::OneDimensional => {
                let cdf = |x: f64| 0.5 + x.clamp(-1.0, 1.0).asin() / std::f64::consts::PI;
                cell_average(&eps, h, w, cdf)
            }
            DosKind::PBand => {
                let (d, v2) = p_band(n, w, p.k_points, p.p_band_hopping, device)?;
                // Smooth D and the state-weighted v² (D v²), then divide back.
                let dv2: Vec<f64> = d.iter().zip(&v2).map(|(d, v)| d * v).collect();
                let d = smooth(&d, p.p_band_smoothing);
                let dv2 = smooth(&dv2, p.p_band_smoothing);
                let v2 = d.iter().zip(&dv2).map(|(d, x)| if *d > 0.0 { x / d } else { 0.0 }).collect();
                (d, v2)
            }
            DosKind::Table => table(p.dos_table.as_deref().unwrap_or_default(), &eps, w)?,
        };
        if let Some(cap) = p.dos_cap {
            for d in dos.iter_mut() {
                *d = d.min(cap / w);
            }
        }
        for d in dos.iter_mut() {
            *d = d.max(D_FLOOR / w);
        }
        let norm: f64 = dos.iter().sum::<f64>() * h;
        for d in dos.iter_mut() {
            *d /= norm;
        }
        let sigma_tilde = dos
            .iter()
            .zip(&v2)
            .map(|(&d, &v2)| match p.transport {
                Transport::Constant => d * v2,
                Transport::Impurity => v2 / w, // τ_tr = D0/D
                Transport::ConstantVTau => d * v2.max(0.0).sqrt(),
                Transport::ConstantV2Tau => d,
            })
            .collect();
        Ok(Band { width: w, h, eps, dos, v2, sigma_tilde })
    }

    /// Number of cells.
    pub fn len(&self) -> usize {
        self.eps.len()
    }

    /// True for an empty grid (never for a built band).
    pub fn is_empty(&self) -> bool {
        self.eps.is_empty()
    }

    /// Linear interpolation of a per-cell array at energy `e` (clamped to the centres).
    pub fn interpolate(&self, values: &[f64], e: f64) -> f64 {
        let n = self.len();
        let x = (e - self.eps[0]) / self.h;
        if x <= 0.0 {
            return values[0];
        }
        if x >= (n - 1) as f64 {
            return values[n - 1];
        }
        // x > 0 here, so truncation is the floor (and needs no libm call).
        let i = x as usize;
        let t = x - i as f64;
        values[i] * (1.0 - t) + values[i + 1] * t
    }

    /// Particle number `Σ h D_i f_FD(ε_i)` of a discrete Fermi-Dirac distribution.
    pub fn fd_number(&self, mu: f64, temperature: f64) -> f64 {
        self.eps.iter().zip(&self.dos).map(|(&e, &d)| self.h * d * fermi(e, mu, temperature)).sum()
    }

    /// Chemical potential giving `filling` at `temperature` (bisection to 1e-14 W).
    pub fn chemical_potential(&self, filling: f64, temperature: f64) -> f64 {
        let (mut lo, mut hi) = (-self.width, self.width);
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if self.fd_number(mid, temperature) < filling {
                lo = mid;
            } else {
                hi = mid;
            }
            if hi - lo < 1e-14 * self.width {
                break;
            }
        }
        0.5 * (lo + hi)
    }
}

/// Fermi-Dirac occupation.
pub fn fermi(e: f64, mu: f64, temperature: f64) -> f64 {
    let x = (e - mu) / temperature;
    if x < -40.0 {
        // e^x < 4.3e-18 is below half an ulp of 1, so 1/(1 + e^x) is exactly 1: skip the exp
        // (about half the cells of a band at low T).
        1.0
    } else if x > 0.0 {
        let q = (-x).exp();
        q / (1.0 + q)
    } else {
        1.0 / (1.0 + x.exp())
    }
}

/// Bose-Einstein occupation `1/(e^{ω/T} - 1)`.
pub fn bose(omega: f64, temperature: f64) -> f64 {
    1.0 / (omega / temperature).exp_m1()
}

/// Cell averages of a DoS given by its cumulative distribution in `x = 2ε/W`, and the
/// velocity `v² = (W/2)² - ε²` at the cell centres (1D band, Eq 54; Bethe lattice for the
/// semicircle).
fn cell_average(eps: &[f64], h: f64, w: f64, cdf: impl Fn(f64) -> f64) -> (Vec<f64>, Vec<f64>) {
    let dos = eps.iter().map(|&e| (cdf(2.0 * (e + 0.5 * h) / w) - cdf(2.0 * (e - 0.5 * h) / w)) / h).collect();
    let v2 = eps.iter().map(|&e| 0.25 * w * w - e * e).collect();
    (dos, v2)
}

/// Eigen-decomposition of a real symmetric 3×3 matrix by cyclic Jacobi rotations.
/// Twin of the rotation loop in `shaders/photoexcited/p_band.wgsl` (same thresholds,
/// representable in f32).
/// Returns eigenvalues and eigenvectors (columns of `v`: `v[row][col]`).
pub fn jacobi3(mut a: [[f64; 3]; 3]) -> ([f64; 3], [[f64; 3]; 3]) {
    let mut v = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    for _sweep in 0..50 {
        let off = a[0][1] * a[0][1] + a[0][2] * a[0][2] + a[1][2] * a[1][2];
        let scale = a[0][0] * a[0][0] + a[1][1] * a[1][1] + a[2][2] * a[2][2] + off;
        if off <= 1e-30 * scale.max(1e-30) {
            break;
        }
        for (p, q) in [(0, 1), (0, 2), (1, 2)] {
            if a[p][q].abs() < 1e-30 {
                continue;
            }
            let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
            let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
            let t = if theta == 0.0 { 1.0 } else { t };
            let c = 1.0 / (t * t + 1.0).sqrt();
            let s = t * c;
            // A ← Jᵀ A J with J the rotation in the (p, q) plane.
            for row in a.iter_mut() {
                let akp = row[p];
                let akq = row[q];
                row[p] = c * akp - s * akq;
                row[q] = s * akp + c * akq;
            }
            let (rp, rq) = (a[p], a[q]);
            for k in 0..3 {
                a[p][k] = c * rp[k] - s * rq[k];
                a[q][k] = s * rp[k] + c * rq[k];
            }
            for row in v.iter_mut() {
                let vp = row[p];
                let vq = row[q];
                row[p] = c * vp - s * vq;
                row[q] = s * vp + c * vq;
            }
        }
    }
    ([a[0][0], a[1][1], a[2][2]], v)
}

/// DoS and v² of the p band by sampling `n_k³` points of the period cube `[0, 4π)³`,
/// exact diagonalisation (Jacobi), Hellmann-Feynman velocities and binning into the cells
/// after rescaling the band to `[-W/2, W/2]`.
fn p_band(
    n: usize,
    w: f64,
    nk: usize,
    t: [f64; 3],
    device: &dyn crate::engine::model::MapDevice,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let samples = super::p_band::sample(device, nk, t)?;
    let emin = samples.iter().map(|s| s.0).fold(f64::INFINITY, f64::min);
    let emax = samples.iter().map(|s| s.0).fold(f64::NEG_INFINITY, f64::max);
    let scale = w / (emax - emin);
    let h = w / n as f64;
    let mut count = vec![0.0; n];
    let mut v2sum = vec![0.0; n];
    for &(e, v2) in &samples {
        let x = (e - emin) * scale;
        let i = ((x / h) as usize).min(n - 1);
        count[i] += 1.0;
        v2sum[i] += v2 * scale * scale;
    }
    let total = samples.len() as f64;
    let dos: Vec<f64> = count.iter().map(|c| c / (total * h)).collect();
    let mut v2: Vec<f64> = (0..n).map(|i| if count[i] > 0.0 { v2sum[i] / count[i] } else { f64::NAN }).collect();
    fill_gaps(&mut v2);
    Ok((dos, v2))
}

/// Gaussian smoothing with standard deviation `sigma` cells (kernel cut at 4σ,
/// renormalised at the band edges so that no weight leaks out of the band).
fn smooth(v: &[f64], sigma: f64) -> Vec<f64> {
    if sigma <= 0.0 {
        return v.to_vec();
    }
    let n = v.len() as isize;
    let r = (4.0 * sigma).ceil() as isize;
    let kernel: Vec<f64> = (-r..=r).map(|d| (-0.5 * (d as f64 / sigma).powi(2)).exp()).collect();
    // Scatter form: every cell distributes its value over its neighbours inside the band,
    // so the sum (the normalisation of D) is preserved.
    let mut out = vec![0.0; v.len()];
    for i in 0..n {
        let lo = (i - r).max(0);
        let hi = (i + r).min(n - 1);
        let norm: f64 = (lo..=hi).map(|j| kernel[(j - i + r) as usize]).sum();
        for j in lo..=hi {
            out[j as usize] += v[i as usize] * kernel[(j - i + r) as usize] / norm;
        }
    }
    out
}

/// Replaces NaN entries by the nearest defined neighbour's value (0 if none).
fn fill_gaps(v: &mut [f64]) {
    let n = v.len();
    for i in 0..n {
        if v[i].is_nan() {
            let mut r = 0.0;
            for d in 1..n {
                if i >= d && !v[i - d].is_nan() {
                    r = v[i - d];
                    break;
                }
                if i + d < n && !v[i + d].is_nan() {
                    r = v[i + d];
                    break;
                }
            }
            v[i] = r;
        }
    }
}

/// Reads a CSV table `ε, D, v²`, rescales its energy range to `[-W/2, W/2]` (v² scaled
/// accordingly) and interpolates linearly at the cell centres.
fn table(path: &str, eps: &[f64], w: f64) -> Result<(Vec<f64>, Vec<f64>)> {
    let err = |r: String| NeqkinError::invalid("params.dos_table", r);
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read {path}: {e}")))?;
    let mut rows: Vec<[f64; 3]> = Vec::new();
    for (ln, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split([',', ';', '\t', ' ']).filter(|s| !s.is_empty()).collect();
        let nums: std::result::Result<Vec<f64>, _> = cols.iter().map(|c| c.parse::<f64>()).collect();
        match nums {
            Ok(v) if v.len() == 3 && v.iter().all(|x| x.is_finite()) => {
                if v[1] < 0.0 || v[2] < 0.0 {
                    return Err(err(format!("{path}:{}: D and v² must be >= 0", ln + 1)));
                }
                rows.push([v[0], v[1], v[2]]);
            }
            _ if rows.is_empty() => {} // header
            _ => return Err(err(format!("{path}:{}: expected three finite numbers ε, D, v²", ln + 1))),
        }
    }
    if rows.len() < 2 {
        return Err(err(format!("{path}: need at least two rows")));
    }
    rows.sort_by(|a, b| a[0].total_cmp(&b[0]));
    let (e0, e1) = (rows[0][0], rows[rows.len() - 1][0]);
    if e1 <= e0 {
        return Err(err(format!("{path}: energies must span a non-empty range")));
    }
    let scale = w / (e1 - e0);
    let xs: Vec<f64> = rows.iter().map(|r| (r[0] - e0) * scale - 0.5 * w).collect();
    let interp = |col: usize, e: f64| -> f64 {
        let j = xs.partition_point(|&x| x < e).clamp(1, xs.len() - 1);
        let (xa, xb) = (xs[j - 1], xs[j]);
        let t = if xb > xa { ((e - xa) / (xb - xa)).clamp(0.0, 1.0) } else { 0.0 };
        rows[j - 1][col] * (1.0 - t) + rows[j][col] * t
    };
    let dos = eps.iter().map(|&e| interp(1, e)).collect();
    let v2 = eps.iter().map(|&e| interp(2, e) * scale * scale).collect();
    Ok((dos, v2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_diagonalises() {
        let a = [[2.0, 1.0, 0.5], [1.0, -1.0, 0.3], [0.5, 0.3, 0.7]];
        let (e, v) = jacobi3(a);
        for k in 0..3 {
            for r in 0..3 {
                let av: f64 = (0..3).map(|c| a[r][c] * v[c][k]).sum();
                assert!((av - e[k] * v[r][k]).abs() < 1e-12);
            }
        }
    }
}
