//! Linear stability of the equilibrium (supplement Eqs 17–23): the generalised
//! eigenproblem `γ A φ = M φ` on the folded grid `E_i = iε, i = 1…L`.
//!
//! ## Eq 18 vs Eq 22
//! Folding the continuum kernel of Eq 18 with `φ(−E) = −φ(E)` and replacing `∫dẼ` by
//! `ε Σ_j` gives, with `r_k = ω_k/ε`,
//!
//! `A_ij = −Z0⁻¹(E_i) f0′_i δ_ij + 4ε Σ_k λ_k r_k² · i j f0′_i f0′_j / ([(i−j)² − r_k²][(i+j)² − r_k²])`
//!
//! i.e. Eq 22's prefactor `4ε λ_k ω_k²` holds when the `ω_k` in Eq 22 is read as the
//! *dimensionless* `r_k` (then both terms carry 1/energy like `f0′`). Read literally with
//! `ω_k` an energy, Eq 22 is `ε²` (in the energy unit used) times the Eq 18 value:
//! [`Reading::Literal`]. With the paper's unit `g` and Table I's modes, `ε ≈ 0.019 g`, so
//! the literal reading shrinks the off-diagonal term by ~3·10⁻⁴ (and with the unit `ε` the two
//! readings coincide). Eq 22 as printed also has the opposite overall sign of the diagonal
//! term (`+Z0⁻¹ f0′`, negative); we take `A` positive definite at weak coupling as the text
//! requires, i.e. Eq 22 with `f0′ → −f0′ = |f0′|`, which leaves its off-diagonal term with the
//! opposite sign to Eq 18's. [`StabilityOptions::offdiag_sign`] selects it: `+1` is Eq 18
//! (our derivation from the kinetic equation, `Σ[f]` in `kinetic.rs`), `−1` is Eq 22 so read.
//! `tests/eliashberg_stability.rs` compares both with Table I's first column.
//!
//! ## Numerics
//! Both matrices are scaled symmetrically by `D = diag(|f0′_i|^{-1/2})` (same γ, same
//! inertia): `S_A = D A D = Z0⁻¹ δ + …`, `S_M = D M D`, which removes the `e^{-E/T}` range
//! of magnitudes. Then `S_M = LLᵀ` (Cholesky), `C = L⁻¹ S_A L⁻ᵀ` (symmetric), and the
//! eigenvalues of `C` are `1/γ`. λc of the linear analysis is where `S_A` stops being
//! positive definite (Sylvester: `A` changes inertia, one γ passes through ±∞), found by
//! bisection on the success of a Cholesky factorisation of `S_A`. Cholesky, triangular
//! solves and the symmetric eigensolver are faer's ([`crate::engine::dense`]).
//! All energies inside are in units of the grid step ε; `γ` is returned in ε and in the
//! output unit. γ is in the paper's rescaled time (`t → πt`): the kinetic equation (38)
//! in real time relaxes at `π γ`.

use super::alpha2f::Spectrum;
use super::selfenergy::zinv;
use crate::engine::dense::{self, Mat};
use crate::{NeqkinError, Result};

/// How to read the prefactor of Eq 22's second term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reading {
    /// `4ε λ_k r_k²` with `r_k = ω_k/ε` (consistent with Eq 18).
    Derived,
    /// `4ε λ_k ω_k²` with ε and ω_k energies in the output unit (ε² times smaller in units
    /// where ε < 1).
    Literal,
}

/// Options of the linear stability problem.
#[derive(Clone, Copy, Debug)]
pub struct StabilityOptions {
    /// Number of grid points L (cutoff Λ = Lε).
    pub points: usize,
    /// Prefactor reading of Eq 22.
    pub reading: Reading,
    /// Sign of the off-diagonal (f′Σ̇) term: +1 (Eq 18) or −1 (Eq 22 with f0′ → |f0′|).
    pub offdiag_sign: f64,
    /// Output-unit size of ε (for the literal reading and for γ in the output unit).
    pub eps_out: f64,
}

/// Fermi function.
pub fn fermi(e: f64, t: f64) -> f64 {
    let x = e / t;
    if x > 0.0 {
        let q = (-x).exp();
        q / (1.0 + q)
    } else {
        1.0 / (1.0 + x.exp())
    }
}

/// Bose function.
pub fn bose(w: f64, t: f64) -> f64 {
    1.0 / (w / t).exp_m1()
}

/// Mode indices r_k = ω_k/ε (must be integers) from a spectrum given in units of ε.
pub fn mode_steps(s_eps: &Spectrum) -> Result<Vec<usize>> {
    s_eps
        .omega
        .iter()
        .map(|&w| {
            let r = w.round();
            if (w - r).abs() > 1e-9 * w.max(1.0) || r < 1.0 {
                Err(NeqkinError::invalid(
                    "params.grid_step",
                    format!("every mode frequency must be an integer multiple of the grid step (ω/ε = {w})"),
                ))
            } else {
                Ok(r as usize)
            }
        })
        .collect()
}

/// Scaled matrices `S_A`, `S_M` and the scaling `sqrt|f0′_i|` (all in units of ε) for the
/// spectrum `s_eps` (frequencies in units of ε) at temperature `t` (units of ε).
pub fn scaled_matrices(s_eps: &Spectrum, t: f64, opts: &StabilityOptions) -> Result<(Mat<f64>, Mat<f64>, Vec<f64>)> {
    let l = opts.points;
    let r = mode_steps(s_eps)?;
    let df: Vec<f64> = (1..=l)
        .map(|i| {
            let f = fermi(i as f64, t);
            f * (1.0 - f) / t
        })
        .collect();
    let sq: Vec<f64> = df.iter().map(|d| d.sqrt()).collect();
    let lit = match opts.reading {
        Reading::Derived => 1.0,
        Reading::Literal => opts.eps_out * opts.eps_out,
    };
    let mut sa = Mat::<f64>::zeros(l, l);
    for i in 1..=l {
        sa[(i - 1, i - 1)] = zinv(s_eps, t, i as f64);
    }
    for (k, &rk) in r.iter().enumerate() {
        let c = opts.offdiag_sign * lit * 4.0 * s_eps.lambda[k] * (rk * rk) as f64;
        let r2 = (rk * rk) as f64;
        for i in 1..=l {
            for j in 1..=l {
                let den = ((i as f64 - j as f64).powi(2) - r2) * (((i + j) as f64).powi(2) - r2);
                if den == 0.0 {
                    continue; // pole exactly on the grid: its PV weight is zero here
                }
                sa[(i - 1, j - 1)] += c * (i * j) as f64 * sq[i - 1] * sq[j - 1] / den;
            }
        }
    }
    // Eq 23.
    let mut sm = Mat::<f64>::zeros(l, l);
    let f = |i: i64| fermi(i as f64, t);
    for (k, &rk) in r.iter().enumerate() {
        let w = rk as f64;
        let n = bose(w, t);
        let pref = s_eps.lambda[k] * w / t * n * (n + 1.0);
        let rk = rk as i64;
        for i in 1..=l as i64 {
            let ii = (i - 1) as usize;
            sm[(ii, ii)] += pref * (f(i - rk) - f(i + rk));
            let j = i - rk;
            if j >= 1 {
                sm[(ii, (j - 1) as usize)] -= pref * (f(i - rk) - f(i));
            }
            let j = i + rk;
            if j <= l as i64 {
                sm[(ii, (j - 1) as usize)] -= pref * (f(i) - f(i + rk));
            }
            let j = rk - i;
            if j >= 1 && j <= l as i64 {
                sm[(ii, (j - 1) as usize)] += pref * (1.0 - f(i) - f(j));
            }
        }
    }
    for i in 0..l {
        for j in 0..l {
            sm[(i, j)] /= sq[i] * sq[j];
        }
    }
    Ok((sa, sm, sq))
}

/// Whether `S_A` is positive definite (the metal is linearly stable).
pub fn is_stable(s_eps: &Spectrum, t: f64, opts: &StabilityOptions) -> Result<bool> {
    let (sa, _, _) = scaled_matrices(s_eps, t, opts)?;
    Ok(dense::is_positive_definite(sa.as_ref()))
}

/// Generalised eigen-solution.
#[derive(Clone, Debug)]
pub struct Spectrum1 {
    /// Eigenvalues γ (units of ε), ascending.
    pub gamma: Vec<f64>,
    /// Eigenvectors φ (column m ↔ gamma[m]), on `E_i = iε`, normalised to max |φ| = 1.
    pub phi: Mat<f64>,
}

/// Solves `γ A φ = M φ`.
pub fn solve(s_eps: &Spectrum, t: f64, opts: &StabilityOptions) -> Result<Spectrum1> {
    let (sa, sm, sq) = scaled_matrices(s_eps, t, opts)?;
    let lmat = dense::cholesky_lower(sm.as_ref())
        .ok_or_else(|| NeqkinError::invalid("params.grid_points", "M (Eq 23) is not positive definite on this grid"))?;
    // C = L⁻¹ S_A L⁻ᵀ = L⁻¹ (L⁻¹ S_A)ᵀ (S_A symmetric), by triangular solves.
    let mut x = sa.clone();
    dense::solve_lower_in_place(lmat.as_ref(), x.as_mut());
    let mut c = x.transpose().to_owned();
    dense::solve_lower_in_place(lmat.as_ref(), c.as_mut());
    let l = sa.nrows();
    let c = Mat::from_fn(l, l, |i, j| 0.5 * (c[(i, j)] + c[(j, i)]));
    let (mu, u) = dense::symmetric_eigen(c.as_ref())
        .ok_or_else(|| NeqkinError::invalid("params.grid_points", "the symmetric eigensolver did not converge"))?;
    // ψ = L⁻ᵀ u for all eigenvectors at once, then φ = D ψ, normalised to max |φ| = 1.
    let mut psi = u;
    dense::solve_lower_transpose_in_place(lmat.as_ref(), psi.as_mut());
    let mut items: Vec<(f64, Vec<f64>)> = (0..l)
        .map(|m| {
            let mut phi: Vec<f64> = (0..l).map(|i| psi[(i, m)] / sq[i]).collect();
            let mx = phi.iter().fold(0.0f64, |a, &b| if b.abs() > a.abs() { b } else { a });
            if mx != 0.0 {
                phi.iter_mut().for_each(|v| *v /= mx);
            }
            (1.0 / mu[m], phi)
        })
        .collect();
    items.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
    let gamma = items.iter().map(|x| x.0).collect();
    let phi = Mat::from_fn(l, l, |i, m| items[m].1[i]);
    Ok(Spectrum1 { gamma, phi })
}

/// Default number of grid points: cutoff `Λ = 2ω_max + 25T` (everything in units of ε).
pub fn default_points(s_eps: &Spectrum, t_eps: f64) -> usize {
    (2.0 * s_eps.omega_max() + 25.0 * t_eps).ceil() as usize
}

/// Problem at coupling λ: spectrum in units of ε, temperature in units of ε, ε in the
/// output unit.
pub fn at_lambda(
    shape: &Spectrum,
    lambda: f64,
    t0: f64,
    units: super::threshold::Units,
    eps_in: f64,
) -> (Spectrum, f64, f64) {
    let s = shape.with_lambda(lambda);
    let (t_in, unit) = match units {
        super::threshold::Units::G => (t0 * s.g(), s.g()),
        super::threshold::Units::Input => (t0, 1.0),
    };
    (s.scaled(1.0 / eps_in), t_in / eps_in, eps_in / unit)
}

/// λc of the linear analysis: the λ where `A` stops being positive definite, by bisection
/// (to 1e-10 relative) inside a bracket grown from `guess` (the Z0⁻¹ criterion).
#[allow(clippy::too_many_arguments)]
pub fn lambda_c_linear(
    shape: &Spectrum,
    t0: f64,
    units: super::threshold::Units,
    eps_in: f64,
    points: Option<usize>,
    reading: Reading,
    offdiag_sign: f64,
    guess: f64,
) -> Result<(f64, usize)> {
    let stable = |l: f64| -> Result<(bool, usize)> {
        let (s, t, eo) = at_lambda(shape, l, t0, units, eps_in);
        let n = points.unwrap_or_else(|| default_points(&s, t));
        let o = StabilityOptions { points: n, reading, offdiag_sign, eps_out: eo };
        Ok((is_stable(&s, t, &o)?, n))
    };
    let (mut lo, mut hi) = (guess * 0.995, guess * 1.005);
    let mut tries = 0;
    while !stable(lo)?.0 {
        lo *= 0.9;
        tries += 1;
        if tries > 40 {
            return Err(NeqkinError::invalid("params", "no stable coupling found below the guess"));
        }
    }
    let mut n = 0;
    loop {
        let (st, nn) = stable(hi)?;
        n = n.max(nn);
        if !st {
            break;
        }
        hi *= 1.1;
        tries += 1;
        if tries > 80 {
            return Err(NeqkinError::invalid("params", "no unstable coupling found above the guess"));
        }
    }
    while hi - lo > 1e-10 * hi {
        let mid = 0.5 * (lo + hi);
        if stable(mid)?.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok((0.5 * (lo + hi), n))
}
