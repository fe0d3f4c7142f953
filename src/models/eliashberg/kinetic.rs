//! The nonlinear kinetic equation (supplement Eq 29) with the electron-phonon collision
//! integral (Eq 38), phonons in equilibrium at T0, on the folded grid `E_i = iε, i = 1…L`
//! with the boundary conditions (31): `f(0) = ½`, `f(−E) = 1 − f(E)`, `f(jε) = 0` for `j > L`.
//!
//! ## Σ as a functional of f (derived here)
//! The real part of the retarded Migdal self-energy with equilibrium phonons and a
//! constant density of states is
//! `Σ[f](E) = Σ_k (λ_k ω_k/2) PV∫dẼ [(N_k + 1 − f(Ẽ))/(E − Ẽ − ω_k) + (N_k + f(Ẽ))/(E − Ẽ + ω_k)]`;
//! the `N_k` and `1` terms vanish (PV over an infinite band), leaving
//! `Σ[f](E) = −Σ_k λ_k ω_k² PV∫dẼ f(Ẽ) / ((Ẽ − E)² − ω_k²)`.
//! At `f = f0` this is Eq 15 with the sign of `selfenergy.rs` (tested); it is linear in f,
//! so `Σ̇ = Σ[ḟ]` and Eq 29 reads `(diag(1 − Σ′) + diag(f′) K) ḟ = I_ep` with `K` the
//! matrix of the functional. With `h = f − ½` (odd; the constant ½ integrates to zero)
//! `Σ = K f + b`.
//!
//! ## Principal value
//! `K` comes from *product integration*: `h` is taken piecewise linear between grid
//! points (a ramp from `h_L` to −½ on `[L, L+1]`, −½ beyond), and each partial fraction
//! `1/(Ẽ − p)` of the kernel is integrated exactly against each hat function:
//! `PV∫ hat_j(x)/(x − p) dx = F(p − j)`, `F(a) = 2a ln|a| − (1+a) ln|1+a| + (1−a) ln|1−a|`
//! (finite for poles on grid points, second order in ε). [`PvRule::Drop`] is the naive
//! rectangle rule that skips the singular points (first order), kept for comparison.
//! `Σ′` and `f′` are central differences on the grid (Σ is odd, so `Σ_0 = 0`).
//! [`PvRule::ProductCubic`] (`pv = "product_cubic"`, issue 10) integrates against the
//! piecewise-cubic Lagrange interpolant instead (cardinal function [`CubicPv`], same
//! Toeplitz + Hankel form) and takes `Σ′`, `f′` by 5-point central differences: fourth
//! order in ε for Σ and for the grid Z0⁻¹ (`docs/models/eliashberg.md`).
//!
//! ## Collision integral (Eq 38) and time
//! `I_i = Σ_k π λ_k r_k [N_k(f_{i+r} + f_{i−r} − 2f_i) − f_i(f_{i+r} − f_{i−r}) + f_{i+r} − f_i]`
//! in units of ε (`2π α²F` with `α²F = Σ (λ_k ω_k/2) δ(ω − ω_k)`). It vanishes exactly
//! for the Fermi function at T0 on the grid (detailed balance, up to the cutoff).
//! Times are in units of ħ/(output unit); the linear analysis's γ (rescaled time
//! `t → πt`) corresponds to the rate `π γ` here.
//!
//! ## Linear solve and failure
//! The CPU twin [`eliashberg_kinetic`] factorises the L×L matrix densely (LU, partial
//! pivoting: the crate's one LU, [`crate::engine::dense`] on faer) at every evaluation; the WGSL kernel `shaders/eliashberg/kinetic.wgsl` applies
//! K with the workgroup and solves with Jacobi-preconditioned BiCGSTAB. When the matrix is
//! singular (smallest pivot below `PIVOT_TOL` times the largest, or BiCGSTAB not converged)
//! the derivative is set to NaN so the engine marks the member FAILED; the observable
//! `lhs_min_pivot` (and `min_zinv_grid = min_i(1 − Σ′_i)`) at the output times says how close a
//! run is to that point.

use super::alpha2f::Spectrum;
use super::stability::{bose, default_points, fermi, mode_steps};
use super::Params;
use crate::engine::dense::{self, Lu, Mat};
use crate::engine::implicit::LinearlyImplicit;
use crate::engine::model::{BatchLayout, BatchProblem, KernelSource, Observables};
use crate::{NeqkinError, Result};
use std::f64::consts::PI;

/// Principal-value rule for Σ[f] (config `params.pv`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
pub enum PvRule {
    /// Product integration against piecewise-linear f, with 3-point central differences
    /// for Σ′ and f′ (second order; `"product"` or `"product_linear"`).
    #[serde(rename = "product", alias = "product_linear")]
    Product,
    /// Product integration against piecewise-cubic (4-point Lagrange) f, with 5-point
    /// central differences for Σ′ and f′ (fourth order; `"product_cubic"`).
    #[serde(rename = "product_cubic")]
    ProductCubic,
    /// Rectangle rule skipping the singular points (first order; `"drop"`).
    #[serde(rename = "drop")]
    Drop,
}

/// The accepted spellings of `params.pv`.
pub const PV_RULE_NAMES: &[&str] = &["product", "product_linear", "product_cubic", "drop"];

impl PvRule {
    /// True when the rule pairs with 5-point derivatives of Σ and f (the cubic rule: a
    /// 3-point Σ′ would cap Z0⁻¹ at second order whatever the quadrature).
    pub fn five_point(self) -> bool {
        self == PvRule::ProductCubic
    }
}

/// Relative pivot size below which the left-hand matrix counts as singular.
pub const PIVOT_TOL: f64 = 1e-12;

fn xlogx(x: f64) -> f64 {
    if x == 0.0 {
        0.0
    } else {
        x * x.abs().ln()
    }
}

/// `PV∫ hat(u)/(u − a) du` for the unit hat on [−1, 1].
pub fn hat_pv(a: f64) -> f64 {
    2.0 * xlogx(a) - xlogx(1.0 + a) + xlogx(1.0 - a)
}

/// `∫ R(x)/(x − p) dx` for the ramp R rising from 0 at `lo` to 1 at `lo + 1` and staying 1,
/// without the divergent `ln Λ` part and the constant (both cancel between partial fractions).
fn ramp_pv(p: f64, lo: f64) -> f64 {
    xlogx(p - lo - 1.0) - xlogx(p - lo)
}

/// `ln|x|` with the principal-value convention `ln 0 → 0`: at a pole on a node the two
/// one-sided logarithms of a continuous interpolant cancel (`ln δ − ln δ`).
fn log_pv(x: f64) -> f64 {
    if x == 0.0 {
        0.0
    } else {
        x.abs().ln()
    }
}

/// A piecewise polynomial on unit intervals: `pieces[n] = (k, c)` is `Σ_m c[m] u^m` on
/// `[k, k+1]` with `u = x − k` (zero outside the pieces).
struct Piecewise {
    pieces: Vec<(i64, [f64; 4])>,
}

impl Piecewise {
    /// `PV∫ φ(x)/(x − a) dx` for an **integer** pole `a`, exactly: on each piece
    /// `∫₀¹ q(u)/(u − b) du = ∫₀¹ (q(u) − q(b))/(u − b) du + q(b)[ln|1 − b| − ln|b|]`
    /// (b = a − k), where the first integral is of a polynomial and the logarithms of a
    /// pole on a node cancel between the two pieces that meet there (φ is continuous).
    fn pv_direct(&self, a: f64) -> f64 {
        let mut acc = 0.0;
        for &(k, c) in &self.pieces {
            let b = a - k as f64;
            // (u^n − b^n)/(u − b) = Σ_{m<n} u^m b^{n−1−m}, integrated over [0, 1].
            let mut reg = 0.0;
            for (n, &cn) in c.iter().enumerate().skip(1) {
                let mut t = 0.0;
                for m in 0..n {
                    t += b.powi((n - 1 - m) as i32) / (m + 1) as f64;
                }
                reg += cn * t;
            }
            let qb = c[0] + b * (c[1] + b * (c[2] + b * c[3]));
            acc += reg + qb * (log_pv(1.0 - b) - log_pv(b));
        }
        acc
    }

    /// Moments `∫ x^n φ(x) dx`, n < count.
    fn moments(&self, count: usize) -> Vec<f64> {
        (0..count)
            .map(|n| {
                let mut acc = 0.0;
                for &(k, c) in &self.pieces {
                    // x^n = Σ_m C(n, m) k^{n−m} u^m
                    let mut binom = 1.0;
                    for m in 0..=n {
                        let um: f64 = c.iter().enumerate().map(|(q, cq)| cq / (m + q + 1) as f64).sum();
                        acc += binom * (k as f64).powi((n - m) as i32) * um;
                        binom = binom * (n - m) as f64 / (m + 1) as f64;
                    }
                }
                acc
            })
            .collect()
    }
}

/// The cardinal function of piecewise-cubic Lagrange interpolation on the integers (on
/// `[k, k+1]` the cubic through the nodes k−1…k+2), support [−2, 2], even, `φ(j) = δ_j0`,
/// `Σ_j φ(x − j) = 1`. Coefficients in `u = x − k`.
fn cubic_cardinal() -> Piecewise {
    // k = −2: (x+1)(x+2)(x+3)/6 = (u−1)u(u+1)/6 = (u³ − u)/6
    // k = −1: −(x+2)(x+1)(x−1)/2 = −(u+1)u(u−2)/2 = (−u³ + u² + 2u)/2
    // k = 0:  (x+1)(x−1)(x−2)/2 = (u+1)(u−1)(u−2)/2 = (u³ − 2u² − u + 2)/2
    // k = 1:  −(x−1)(x−2)(x−3)/6 = −u(u−1)(u−2)/6 = (−u³ + 3u² − 2u)/6
    Piecewise {
        pieces: vec![
            (-2, [0.0, -1.0 / 6.0, 0.0, 1.0 / 6.0]),
            (-1, [0.0, 1.0, 0.5, -0.5]),
            (0, [1.0, -0.5, -1.0, 0.5]),
            (1, [0.0, -1.0 / 3.0, 0.5, -1.0 / 6.0]),
        ],
    }
}

/// `Σ_{j ≥ 1} φ(x − j)` for the cubic cardinal: 0 for x ≤ −1, 1 for x ≥ 3.
fn cubic_tail() -> Piecewise {
    let phi = cubic_cardinal();
    let pieces = (-1..=2)
        .map(|m: i64| {
            let mut c = [0.0; 4];
            for &(k, ck) in &phi.pieces {
                // φ(x − j) on [m, m+1] is the piece k = m − j, j ≥ 1.
                if m - k >= 1 {
                    for q in 0..4 {
                        c[q] += ck[q];
                    }
                }
            }
            (m, c)
        })
        .collect();
    Piecewise { pieces }
}

/// `PV∫ φ(u)/(u − a) du` for the piecewise-cubic cardinal function and integer `a`:
/// exact closed form for |a| < 8, the moment series `−Σ_n M_n / a^{n+1}` beyond (the closed
/// form cancels terms of size a³ there; the series converges as (2/a)^n, 32 terms).
pub struct CubicPv {
    phi: Piecewise,
    tail: Piecewise,
    moments: Vec<f64>,
    tail_moments: Vec<f64>,
}

impl Default for CubicPv {
    fn default() -> Self {
        Self::new()
    }
}

impl CubicPv {
    /// Builds the pieces and the moments.
    pub fn new() -> CubicPv {
        let phi = cubic_cardinal();
        let moments = phi.moments(32);
        let tail = cubic_tail();
        let tail_moments = tail.moments(40);
        CubicPv { phi, tail, moments, tail_moments }
    }

    /// `PV∫ φ(u)/(u − a) du`, `a` an integer.
    pub fn phi_pv(&self, a: f64) -> f64 {
        if a.abs() < 8.0 {
            return self.phi.pv_direct(a);
        }
        moment_series(&self.moments, a)
    }

    /// `PV∫ T(x)/(x − p) dx` for the tail `T(x) = Σ_{j ≥ 1} φ(x − lo − j)` (0 below lo − 1,
    /// 1 above lo + 3), without the divergent `ln Λ` part (it cancels between partial
    /// fractions): the pieces on [lo − 1, lo + 3] plus `−ln|lo + 3 − p|`.
    fn tail_pv(&self, p: f64, lo: f64) -> f64 {
        let a = p - lo;
        // The pieces reach |v| = 3: the series converges as (3/a)^n; the closed form would
        // cancel terms of size a³ (at a ~ 2L that is ~1e-6 of Σ, the error floor we saw
        // at ε = ω/64 before this switch).
        let pieces = if a.abs() < 30.0 { self.tail.pv_direct(a) } else { moment_series(&self.tail_moments, a) };
        pieces - log_pv(3.0 - a)
    }
}

/// `∫ φ(u)/(u − a) du = −Σ_n M_n / a^{n+1}` for a pole outside the support.
fn moment_series(moments: &[f64], a: f64) -> f64 {
    let inv = 1.0 / a;
    let mut pw = inv;
    let mut acc = 0.0;
    for m in moments {
        acc -= m * pw;
        pw *= inv;
    }
    acc
}

/// The self-energy kernel in the form it is stored: `K_ij = T(i − j) + H(i + j)` (rows
/// `i = 0…L` for E = 1…L+1, columns `j = 0…L−1` for f_1…f_L), because every partial
/// fraction of the PV integral depends on `Ẽ ∓ E` only. `toeplitz[d + L − 1]` for
/// `d = i − j ∈ [−(L−1), L]`, `hankel[s]` for `s = i + j ∈ [0, 2L−1]`, and the offset `b`
/// (L+1) with `Σ_i = Σ_j K_ij f_j + b_i`, in units of ε. O(L) storage instead of the
/// dense (L+1)·L: at L = 4096 the dense f64 matrix (134 MB) exceeds common GPU storage
/// bindings (lavapipe: 128 MiB), the diagonals take 64 KB.
#[derive(Clone, Debug)]
pub struct SigmaKernel {
    /// Grid points L.
    pub l: usize,
    /// T(d), `2L` entries.
    pub toeplitz: Vec<f64>,
    /// H(s), `2L` entries.
    pub hankel: Vec<f64>,
    /// b, `L + 1` entries.
    pub offset: Vec<f64>,
}

impl SigmaKernel {
    /// `K_ij`.
    #[inline]
    pub fn entry(&self, i: usize, j: usize) -> f64 {
        self.toeplitz[i + self.l - 1 - j] + self.hankel[i + j]
    }
    /// The dense (L+1) × L matrix, row-major.
    pub fn dense(&self) -> Vec<f64> {
        let l = self.l;
        let mut k = vec![0.0; (l + 1) * l];
        for i in 0..=l {
            for j in 0..l {
                k[i * l + j] = self.entry(i, j);
            }
        }
        k
    }
}

/// The kernel of `Σ[f]` for modes `r_k` (units of ε) and couplings λ_k on L grid points.
pub fn sigma_kernel(r: &[usize], lambda: &[f64], l: usize, rule: PvRule) -> SigmaKernel {
    let mut toeplitz = vec![0.0; 2 * l];
    let mut hankel = vec![0.0; 2 * l];
    // Terms of b that are not row sums of K (the ramp to −½ beyond L, or the rectangle
    // rule's tail).
    let mut extra = vec![0.0; l + 1];
    let cubic = CubicPv::new();
    for (m, &rk) in r.iter().enumerate() {
        let rf = rk as f64;
        let lam = lambda[m];
        match rule {
            PvRule::Product => {
                // Σ(E) = −λ r²/(2r) [J(E + r) − J(E − r)],
                // J(p) = Σ_j h_j [F(p−j) − F(p+j)] − ½ G(p) − ½ G(−p), h_j = f_j − ½;
                // with p = E ± r, E = i + 1, grid index j + 1: p − (j+1) = (i − j) ± r and
                // p + (j+1) = (i + j + 2) ± r.
                let c = -0.5 * lam * rf;
                for (d_idx, t) in toeplitz.iter_mut().enumerate() {
                    let d = d_idx as f64 - (l as f64 - 1.0);
                    *t += c * (hat_pv(d + rf) - hat_pv(d - rf));
                }
                for (s_idx, h) in hankel.iter_mut().enumerate() {
                    let s = s_idx as f64 + 2.0;
                    *h -= c * (hat_pv(s + rf) - hat_pv(s - rf));
                }
                let lo = l as f64;
                for (i, x) in extra.iter_mut().enumerate() {
                    let e = (i + 1) as f64;
                    for (sgn, p) in [(1.0, e + rf), (-1.0, e - rf)] {
                        *x += c * sgn * (-0.5 * ramp_pv(p, lo) - 0.5 * ramp_pv(-p, lo));
                    }
                }
            }
            PvRule::ProductCubic => {
                // As the linear product rule with the hat replaced by the cubic cardinal
                // function φ (h = Σ_j h_j φ(x − j) over all integers, h odd, h = −½ beyond L):
                // the same partial fractions, Toeplitz in p − node and Hankel in p + node.
                let c = -0.5 * lam * rf;
                for (d_idx, t) in toeplitz.iter_mut().enumerate() {
                    let d = d_idx as f64 - (l as f64 - 1.0);
                    *t += c * (cubic.phi_pv(d + rf) - cubic.phi_pv(d - rf));
                }
                for (s_idx, h) in hankel.iter_mut().enumerate() {
                    let s = s_idx as f64 + 2.0;
                    *h -= c * (cubic.phi_pv(s + rf) - cubic.phi_pv(s - rf));
                }
                let lo = l as f64;
                for (i, x) in extra.iter_mut().enumerate() {
                    let e = (i + 1) as f64;
                    for (sgn, p) in [(1.0, e + rf), (-1.0, e - rf)] {
                        *x += c * sgn * (-0.5 * cubic.tail_pv(p, lo) - 0.5 * cubic.tail_pv(-p, lo));
                    }
                }
            }
            PvRule::Drop => {
                // kern(x = j+1; E = i+1) = 1/((j − i)² − r²) − 1/((i + j + 2)² − r²), the
                // singular points (zero denominators) dropped.
                let c = -lam * rf * rf;
                let inv = |x: f64| {
                    let d = x * x - rf * rf;
                    if d == 0.0 {
                        0.0
                    } else {
                        1.0 / d
                    }
                };
                for (d_idx, t) in toeplitz.iter_mut().enumerate() {
                    *t += c * inv(d_idx as f64 - (l as f64 - 1.0));
                }
                for (s_idx, h) in hankel.iter_mut().enumerate() {
                    *h -= c * inv(s_idx as f64 + 2.0);
                }
                for (i, x) in extra.iter_mut().enumerate() {
                    let e = (i + 1) as f64;
                    let kern = |x: f64| inv(x - e) - inv(x + e);
                    // h = −½ beyond L: sum the rectangle rule far out, then the analytic tail.
                    let far = l + 1 + 40 * (l + rk);
                    let mut tail: f64 = (l + 1..=far).map(|j| kern(j as f64)).sum();
                    let x0 = far as f64 + 0.5;
                    // ∫_x^∞ dy/((y ∓ e)² − r²) = −(1/2r) ln|(x ∓ e − r)/(x ∓ e + r)|
                    tail -= (1.0 / (2.0 * rf))
                        * (((x0 - e - rf) / (x0 - e + rf)).abs().ln() - ((x0 + e - rf) / (x0 + e + rf)).abs().ln());
                    *x += c * (-0.5 * tail);
                }
            }
        }
    }
    let mut kern = SigmaKernel { l, toeplitz, hankel, offset: vec![] };
    // h_j = f_j − ½ inside the grid: the −½ of every column.
    kern.offset = (0..=l).map(|i| extra[i] - 0.5 * (0..l).map(|j| kern.entry(i, j)).sum::<f64>()).collect();
    kern
}

/// The matrix `K` ((L+1) × L dense, rows E = 1…L+1, columns f_1…f_L) and offset `b` (L+1)
/// with `Σ_i = Σ_j K_ij f_j + b_i`, in units of ε: [`sigma_kernel`] expanded.
pub fn sigma_operator(r: &[usize], lambda: &[f64], l: usize, rule: PvRule) -> (Vec<f64>, Vec<f64>) {
    let k = sigma_kernel(r, lambda, l, rule);
    (k.dense(), k.offset)
}

/// One member's fixed data.
#[derive(Clone, Debug)]
pub struct Member {
    /// Grid points.
    pub l: usize,
    /// Mode steps r_k.
    pub r: Vec<usize>,
    /// Phonon temperature in units of ε.
    pub t0: f64,
    /// Initial electron temperature in units of ε.
    pub t_in: f64,
    /// ε in the output unit (time scale of the RHS).
    pub eps_out: f64,
    /// Total λ.
    pub lambda: f64,
    /// Principal-value rule of Σ[f] (and with it the derivative stencil).
    pub pv: PvRule,
}

/// A batch of kinetic problems.
pub struct KineticProblem {
    members: Vec<Member>,
    l: usize,
    nm: usize,
    params: Vec<f64>,
    tables: Vec<f64>,
}

/// Per-member parameter block: `[time_scale, L, n_modes, 0, stencil]` (the 0 is a runtime
/// zero the kernel divides by to write NaN; stencil 0 = 3-point, 1 = 5-point derivatives).
pub const PARAMS_LEN: usize = 5;

impl KineticProblem {
    /// Builds from parsed parameter sets; all members share L and the number of modes.
    pub fn new(ps: &[Params]) -> Result<Self> {
        let mut pre = vec![];
        for p in ps {
            let s = p.spectrum()?;
            let eps = p.grid_step.unwrap();
            let u = p.unit(&s);
            let se: Spectrum = s.scaled(1.0 / eps);
            let r = mode_steps(&se)?;
            let t0 = p.temperature * u / eps;
            let t_in = p.initial_temperature.unwrap() * u / eps;
            let l = p.grid_points.unwrap_or_else(|| default_points(&se, t0.max(t_in)));
            if l < 10 {
                return Err(NeqkinError::invalid("params.grid_points", "must be >= 10"));
            }
            if r.iter().any(|&rk| rk >= l) {
                return Err(NeqkinError::invalid("params.grid_points", "cutoff below a phonon frequency"));
            }
            // Issue 10 audit. (a) A grid step far above T does not resolve the Fermi step:
            // f(ε) = e^{−ε/T} underflows to 0 at ε ≳ 745 T, f0 and the initial state are then
            // f ≡ 0 on every node, and the run is that constant with status reached.
            let t_min = t0.min(t_in);
            if t_min < 0.5 {
                return Err(NeqkinError::invalid(
                    "params.grid_step",
                    format!(
                        "grid step ε = {eps} input units is {:.3} times the temperature min(T0, T_in): the grid \
                         must resolve the Fermi step (ε ≤ 2T; at ε ≳ 745 T f underflows to 0 on every node)",
                        1.0 / t_min
                    ),
                ));
            }
            // (b) f = 0 beyond the cutoff (boundary conditions 31) breaks detailed balance at
            // the top by ~e^{−(Λ − ω_max)/T}: refuse a given grid_points where that exceeds
            // 1e-4 (the default cutoff 2ω_max + 25T leaves e^{−(ω_max + 25T)/T}).
            let r_max = r.iter().copied().max().unwrap_or(0);
            let t_max = t0.max(t_in);
            let leak = (-((l - r_max) as f64) / t_max).exp();
            if leak > 1e-4 {
                return Err(NeqkinError::invalid(
                    "params.grid_points",
                    format!(
                        "cutoff L = {l} leaves f(Λ − ω_max) = e^{{−(L − r_max)/T}} = {leak:.1e} > 1e-4 (r_max = {r_max}, \
                         T = {t_max:.3} in grid steps): f = 0 beyond L would break detailed balance there; \
                         raise grid_points to ≥ {} or leave it unset (default 2ω_max + 25T)",
                        r_max + (9.3 * t_max).ceil() as usize
                    ),
                ));
            }
            let pv = p.pv.unwrap_or(PvRule::Product);
            pre.push((pv, se, Member { l, r, t0, t_in, eps_out: eps / u, lambda: s.total_lambda(), pv }));
        }
        let l = pre.iter().map(|x| x.2.l).max().unwrap_or(4);
        let nm = pre.first().map(|x| x.2.r.len()).unwrap_or(0);
        if pre.iter().any(|x| x.2.r.len() != nm) {
            return Err(NeqkinError::invalid(
                "params.modes",
                "all sweep points of a kinetic batch need the same number of modes",
            ));
        }
        let mut params = vec![];
        let mut tables = vec![];
        let mut members = vec![];
        for (rule, se, mut m) in pre {
            m.l = l;
            params.extend_from_slice(&[m.eps_out, l as f64, nm as f64, 0.0, rule.five_point() as u8 as f64]);
            tables.extend(member_tables(&m, &se.lambda, rule));
            members.push(m);
        }
        Ok(KineticProblem { members, l, nm, params, tables })
    }

    /// Member data.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Σ on nodes 1…L+1 (units of ε) for member `m` and state `f`.
    pub fn sigma(&self, m: usize, f: &[f64]) -> Vec<f64> {
        let tl = table_len(self.l, self.nm);
        let tab = &self.tables[m * tl..(m + 1) * tl];
        sigma_nodes(self.l, tab, f)
    }

    /// `1 − Σ′` on nodes 1…L with the member's derivative stencil (the grid Z0⁻¹ at f0).
    pub fn zinv_grid(&self, m: usize, f: &[f64]) -> Vec<f64> {
        let s = self.sigma(m, f);
        let five = self.members[m].pv.five_point();
        (1..=self.l).map(|i| 1.0 - sigma_derivative(&s, i, five)).collect()
    }

    /// The left-hand matrix `diag(1 − Σ′) + diag(f′) K` (row-major L×L) for member `m`.
    pub fn lhs_matrix(&self, m: usize, f: &[f64]) -> Vec<f64> {
        let tl = table_len(self.l, self.nm);
        let tab = &self.tables[m * tl..(m + 1) * tl];
        lhs(self.l, tab, f, self.members[m].pv.five_point())
    }
}

/// Table block length: the kernel's Toeplitz part T (2L) and Hankel part H (2L)
/// ([`SigmaKernel`]), b (L+1), then r, πλr, N (n_modes each).
pub fn table_len(l: usize, nm: usize) -> usize {
    4 * l + (l + 1) + 3 * nm
}

/// Offset of the mode tables (r, πλr, N) in a member's table block.
fn modes_offset(l: usize) -> usize {
    5 * l + 1
}

/// `K_ij` from a member's table block (`T[i − j + L − 1] + H[2L + i + j]`).
#[inline]
fn k_entry(l: usize, tab: &[f64], i: usize, j: usize) -> f64 {
    tab[i + l - 1 - j] + tab[2 * l + i + j]
}

fn member_tables(m: &Member, lambda: &[f64], rule: PvRule) -> Vec<f64> {
    let k = sigma_kernel(&m.r, lambda, m.l, rule);
    let mut t = k.toeplitz;
    t.extend(k.hankel);
    t.extend(k.offset);
    t.extend(m.r.iter().map(|&r| r as f64));
    t.extend(m.r.iter().zip(lambda).map(|(&r, l)| PI * l * r as f64));
    t.extend(m.r.iter().map(|&r| bose(r as f64, m.t0)));
    t
}

/// f at any integer grid index with the boundary conditions (31).
#[inline]
pub fn f_ext(f: &[f64], j: i64) -> f64 {
    let l = f.len() as i64;
    if j == 0 {
        0.5
    } else if j > l {
        0.0
    } else if j > 0 {
        f[(j - 1) as usize]
    } else if -j > l {
        1.0
    } else {
        1.0 - f[(-j - 1) as usize]
    }
}

fn sigma_nodes(l: usize, tab: &[f64], f: &[f64]) -> Vec<f64> {
    let b = &tab[4 * l..5 * l + 1];
    (0..=l).map(|i| b[i] + (0..l).map(|j| k_entry(l, tab, i, j) * f[j]).sum::<f64>()).collect()
}

/// Collision integral (Eq 38) in units of ε.
pub fn collision(l: usize, nm: usize, tab: &[f64], f: &[f64], out: &mut [f64]) {
    let base = modes_offset(l);
    let (r, c, n) = (&tab[base..base + nm], &tab[base + nm..base + 2 * nm], &tab[base + 2 * nm..base + 3 * nm]);
    for i in 1..=l as i64 {
        let fi = f_ext(f, i);
        let mut acc = 0.0;
        for k in 0..nm {
            let rk = r[k] as i64;
            let (fp, fm) = (f_ext(f, i + rk), f_ext(f, i - rk));
            acc += c[k] * (n[k] * (fp + fm - 2.0 * fi) - fi * (fp - fm) + fp - fi);
        }
        out[(i - 1) as usize] = acc;
    }
}

/// Weights of the central differences at offsets `[+1, −1, +2, −2]`: 3-point (second
/// order) or 5-point (fourth order), per grid step.
fn stencil(five: bool) -> [f64; 4] {
    if five {
        [8.0 / 12.0, -8.0 / 12.0, -1.0 / 12.0, 1.0 / 12.0]
    } else {
        [0.5, -0.5, 0.0, 0.0]
    }
}

/// Σ at node n (E = nε, n ≥ −L−1) from `s` (nodes 1…L+1): Σ is odd, Σ_0 = 0.
#[inline]
fn sigma_at(s: &[f64], n: i64) -> f64 {
    if n == 0 {
        0.0
    } else if n > 0 {
        s[(n - 1) as usize]
    } else {
        -s[(-n - 1) as usize]
    }
}

/// Σ′ at node i (1…L). The 5-point stencil needs Σ at i + 2, so the last node (i = L, the
/// cutoff, where f ≈ e^{−Λ/T}) keeps the 3-point one.
pub fn sigma_derivative(s: &[f64], i: usize, five: bool) -> f64 {
    let l = s.len() - 1;
    let w = stencil(five && i < l);
    let i = i as i64;
    let three = w[0] * sigma_at(s, i + 1) + w[1] * sigma_at(s, i - 1);
    if w[2] == 0.0 {
        three
    } else {
        three + w[2] * sigma_at(s, i + 2) + w[3] * sigma_at(s, i - 2)
    }
}

/// f′ at node i (1…L) with the boundary conditions (31) (defined at every node).
fn f_derivative(f: &[f64], i: usize, five: bool) -> f64 {
    let w = stencil(five);
    let i = i as i64;
    w[0] * f_ext(f, i + 1) + w[1] * f_ext(f, i - 1) + w[2] * f_ext(f, i + 2) + w[3] * f_ext(f, i - 2)
}

/// `(1 − Σ′_i, f′_i)` on nodes 1…L: the diagonal and the row factors of the left-hand
/// matrix `diag(1 − Σ′) + diag(f′) K`.
fn lhs_parts(l: usize, tab: &[f64], f: &[f64], five: bool) -> (Vec<f64>, Vec<f64>) {
    let s = sigma_nodes(l, tab, f);
    let zinv = (1..=l).map(|i| 1.0 - sigma_derivative(&s, i, five)).collect();
    let df = (1..=l).map(|i| f_derivative(f, i, five)).collect();
    (zinv, df)
}

/// The left-hand matrix, row-major L×L.
fn lhs(l: usize, tab: &[f64], f: &[f64], five: bool) -> Vec<f64> {
    let (zinv, df) = lhs_parts(l, tab, f, five);
    let mut a = vec![0.0; l * l];
    for i in 0..l {
        for j in 0..l {
            a[i * l + j] = df[i] * k_entry(l, tab, i, j);
        }
        a[i * l + i] += zinv[i];
    }
    a
}

/// The left-hand matrix in the column-major storage the LU factors in place (the same
/// entries as [`lhs`], bit for bit).
fn lhs_mat(l: usize, tab: &[f64], f: &[f64], five: bool) -> Mat<f64> {
    let (zinv, df) = lhs_parts(l, tab, f, five);
    Mat::from_fn(l, l, |i, j| {
        let x = df[i] * k_entry(l, tab, i, j);
        if i == j {
            x + zinv[i]
        } else {
            x
        }
    })
}

/// CPU twin of `shaders/eliashberg/kinetic.wgsl` (entry `rhs`): arguments in binding
/// order. Departs from the kernel in the solve only: dense LU here, Jacobi-preconditioned
/// BiCGSTAB there (same matrix, same right-hand side; the scratch is unused here).
pub fn eliashberg_kinetic(params: &[f64], tables: &[f64], _t: f64, y: &[f64], dy: &mut [f64], _scratch: &mut [f64]) {
    let l = params[1] as usize;
    let nm = params[2] as usize;
    let lu = Lu::factor_mat(lhs_mat(l, tables, y, params[4] > 0.5));
    let piv = lu.min_pivot();
    if piv.is_nan() || piv <= PIVOT_TOL {
        dy.iter_mut().for_each(|x| *x = f64::NAN);
        return;
    }
    collision(l, nm, tables, y, dy);
    lu.solve_in_place(dy);
    for x in dy.iter_mut() {
        *x *= params[0];
    }
}

impl BatchProblem for KineticProblem {
    fn layout(&self) -> BatchLayout {
        let tl = table_len(self.l, self.nm);
        BatchLayout {
            batch: self.members.len(),
            state_len: self.l,
            params_len: PARAMS_LEN,
            table_len: tl,
            table_stride: tl,
            scratch_len: SCRATCH_VECTORS * self.l,
        }
    }
    fn params(&self) -> &[f64] {
        &self.params
    }
    fn tables(&self) -> &[f64] {
        &self.tables
    }
    fn initial_state(&self) -> Vec<f64> {
        self.members.iter().flat_map(|m| (1..=self.l).map(move |i| fermi(i as f64, m.t_in))).collect()
    }
    fn rhs_member(
        &self,
        _m: usize,
        params: &[f64],
        tables: &[f64],
        t: f64,
        y: &[f64],
        dy: &mut [f64],
        scratch: &mut [f64],
    ) {
        eliashberg_kinetic(params, tables, t, y, dy, scratch);
    }
    fn kernel(&self) -> KernelSource {
        KernelSource {
            name: "eliashberg/kinetic".into(),
            source: include_str!("../../../shaders/eliashberg/kinetic.wgsl").into(),
        }
    }
    /// Loop iterations of one invocation of `rhs_member` per row it covers, for a solve of
    /// at most [`BUDGETED_SOLVE_ITERATIONS`] BiCGSTAB iterations ([`solve_loops_per_row`]):
    /// O(L) per row (the Σ row sum and two matvec rows per iteration), not the O(1) of a
    /// pass over the state. Solves that need more iterations are left to the run-time
    /// check of lavapipe's budget (`docs/models/eliashberg.md`, *Linear solve*).
    fn member_loops_per_component(&self) -> usize {
        solve_loops_per_row(self.l, self.nm, BUDGETED_SOLVE_ITERATIONS)
    }
    /// The equilibrium f0 at T0 that a deviation relaxes to (or grows from): rates of small
    /// deviations need errors relative to `f − f0`, not to f (`solver.error_scale`).
    fn reference_state(&self) -> Option<Vec<f64>> {
        Some(self.members.iter().flat_map(|m| (1..=self.l).map(move |i| fermi(i as f64, m.t0))).collect())
    }
    fn linearly_implicit(&self) -> Option<&dyn LinearlyImplicit> {
        Some(self)
    }
    fn observables(&self, m: usize, _t: f64, y: &[f64]) -> Observables {
        let mem = &self.members[m];
        let l = self.l;
        let dev: Vec<f64> = (1..=l).map(|i| y[i - 1] - fermi(i as f64, mem.t0)).collect();
        let norm = dev.iter().map(|x| x * x).sum::<f64>().sqrt();
        // Energy-weighted deviation Σ E_i δf_i (units of ε², times ε_out²).
        let energy = dev.iter().enumerate().map(|(i, d)| (i + 1) as f64 * d).sum::<f64>() * mem.eps_out * mem.eps_out;
        let zmin = self.zinv_grid(m, y).into_iter().fold(f64::INFINITY, f64::min);
        let tl = table_len(l, self.nm);
        let five = mem.pv.five_point();
        let piv = Lu::factor_mat(lhs_mat(l, &self.tables[m * tl..(m + 1) * tl], y, five)).min_pivot();
        Observables {
            scalars: vec![
                ("deviation_norm".into(), norm),
                ("energy_deviation".into(), 2.0 * energy),
                ("min_zinv_grid".into(), zmin),
                ("lhs_min_pivot".into(), piv),
                ("lambda".into(), mem.lambda),
            ],
            arrays: vec![("f".into(), y.to_vec()), ("delta_f".into(), dev)],
        }
    }
}

/// BiCGSTAB iterations per solve that [`BatchProblem::member_loops_per_component`] budgets
/// for (the kernel stops at 500). A replica of the kernel's solve in
/// `tests/gpu_fused_eliashberg.rs` counts 9–10 iterations at the states of its runs (L = 60,
/// 260, 769; 6 at the Table I initial state, docs/models/eliashberg.md); near a singular
/// left-hand side the count grows, and the run-time check of lavapipe's budget takes over
/// (a fused attempt that does not fit is dropped and retried alone; one that does not fit
/// alone fails the member, never returns a truncated solve).
pub const BUDGETED_SOLVE_ITERATIONS: usize = 32;

/// Upper bound of the loop iterations one invocation of `rhs_member` in
/// `shaders/eliashberg/kinetic.wgsl` runs per row it covers, in one evaluation with at most
/// `iterations` BiCGSTAB iterations, loop entries counted as iterations. A row sum over
/// the L columns is `L/64` unrolled blocks of 64, `(L mod 64)/16` of 16 and `L mod 16`
/// single terms. An invocation covering `c ≥ 1` of the L rows (`c + 1` of the L + 1 rows
/// of Σ) runs per evaluation: Σ rows `(c + 1)(1 + row)`, collision `c(2 + n_modes)`, set-up
/// `c + 1` and one workgroup reduction, and per BiCGSTAB iteration two matvec rows per
/// row, four vector loops and five reductions (`log2 WG + 1 ≤ 9` each), then the write-out
/// and the budget check. Terms per invocation are counted per row (`c ≥ 1`), so
/// `c × (this + 1)` bounds the invocation's loops for any workgroup size.
pub fn solve_loops_per_row(l: usize, n_modes: usize, iterations: usize) -> usize {
    let row = l / 64 + (l % 64) / 16 + l % 16 + 3;
    let reduction = 9;
    let set_up = 2 * (1 + row) + (2 + n_modes) + 1 + 1 + reduction;
    let per_iteration = 1 + 2 * (1 + row) + 4 + 6 + 5 * reduction;
    let write_out = 1 + 1 + 2;
    set_up + iterations * per_iteration + write_out
}

/// Scratch vectors per member used by the WGSL BiCGSTAB.
pub const SCRATCH_VECTORS: usize = 11;

/// Jacobian `∂I_ep/∂f` of the collision integral (Eq 38, units of ε) at `f`, row-major L×L,
/// with the boundary conditions (31) (`f(−E) = 1 − f(E)` flips the sign of reflected
/// columns; `f(0) = ½` and `f(E > Λ) = 0` are constants).
pub fn collision_jacobian(l: usize, nm: usize, tab: &[f64], f: &[f64]) -> Vec<f64> {
    let base = modes_offset(l);
    let (r, c, n) = (&tab[base..base + nm], &tab[base + nm..base + 2 * nm], &tab[base + 2 * nm..base + 3 * nm]);
    let mut jac = vec![0.0; l * l];
    // d f_ext(j) / d f_col as (column, sign), or None for a constant.
    let dext = |j: i64| -> Option<(usize, f64)> {
        if j == 0 || j > l as i64 || -j > l as i64 {
            None
        } else if j > 0 {
            Some(((j - 1) as usize, 1.0))
        } else {
            Some(((-j - 1) as usize, -1.0))
        }
    };
    for i in 1..=l as i64 {
        let row = (i - 1) as usize;
        let fi = f_ext(f, i);
        for k in 0..nm {
            let rk = r[k] as i64;
            let (fp, fm) = (f_ext(f, i + rk), f_ext(f, i - rk));
            jac[row * l + row] += c[k] * (-2.0 * n[k] - (fp - fm) - 1.0);
            if let Some((col, s)) = dext(i + rk) {
                jac[row * l + col] += s * c[k] * (n[k] - fi + 1.0);
            }
            if let Some((col, s)) = dext(i - rk) {
                jac[row * l + col] += s * c[k] * (n[k] + fi);
            }
        }
    }
    jac
}

/// `∂[A(f) v]/∂f` at fixed `v` for the left-hand matrix `A(f) = diag(1 − Σ′) + diag(f′) K`
/// (row-major L×L): `Σ′_i = Σ_o w_o Σ_{i+o}` with `Σ = K f + b` (odd: `Σ_{−n} = −Σ_n`),
/// `f′_i = Σ_o w_o f_{i+o}` with the boundary conditions (31), `w` the 3- or 5-point stencil.
pub fn lhs_apply_jacobian(l: usize, tab: &[f64], v: &[f64], five: bool) -> Vec<f64> {
    let mut jac = vec![0.0; l * l];
    // ∂f_ext(n)/∂f as (column, sign), None for the constants of (31).
    let dext = |n: i64| -> Option<(usize, f64)> {
        if n == 0 || n > l as i64 || -n > l as i64 {
            None
        } else if n > 0 {
            Some(((n - 1) as usize, 1.0))
        } else {
            Some(((-n - 1) as usize, -1.0))
        }
    };
    for i in 1..=l {
        let row = i - 1;
        let kv: f64 = (0..l).map(|j| k_entry(l, tab, row, j) * v[j]).sum();
        let ws = stencil(five && i < l);
        let wf = stencil(five);
        for (o, (&w_s, &w_f)) in [1i64, -1, 2, -2].iter().zip(ws.iter().zip(&wf)) {
            let n = i as i64 + o;
            if w_s != 0.0 && n != 0 {
                // Σ_n = Σ_j K_{n−1, j} f_j + b (n > 0), −Σ_{−n} (n < 0).
                let (krow, sgn) = if n > 0 { ((n - 1) as usize, 1.0) } else { ((-n - 1) as usize, -1.0) };
                for j in 0..l {
                    jac[row * l + j] -= v[row] * w_s * sgn * k_entry(l, tab, krow, j);
                }
            }
            if w_f != 0.0 {
                if let Some((col, sgn)) = dext(n) {
                    jac[row * l + col] += kv * w_f * sgn;
                }
            }
        }
    }
    jac
}

/// The linear stability problem of the kinetic equation **on its own discretisation**:
/// linearising `A(f) ḟ = I_ep[f]` at `f0` (where `I_ep[f0] = 0`, so the derivative of `A`
/// drops out) gives `A(f0) δḟ = (∂I_ep/∂f) δf`, i.e. `γ A φ = M φ` with
/// `A = diag(1 − Σ′) + diag(f0′) K` and `M = −(1/π) ∂I_ep/∂f` (the rescaled time `t → πt` of
/// Eqs 17–23: a mode decays as `e^{−π γ t}` in the kinetic equation's time).
/// Returns `(A, M)` row-major, in units of ε, for member `m` at its phonon temperature.
impl KineticProblem {
    /// Left- and right-hand matrices `(A, M)` of the kinetic linearisation at f0.
    pub fn linearisation(&self, m: usize) -> (Vec<f64>, Vec<f64>) {
        let tl = table_len(self.l, self.nm);
        let tab = &self.tables[m * tl..(m + 1) * tl];
        let f0: Vec<f64> = (1..=self.l).map(|i| fermi(i as f64, self.members[m].t0)).collect();
        let a = lhs(self.l, tab, &f0, self.members[m].pv.five_point());
        let mm = collision_jacobian(self.l, self.nm, tab, &f0).into_iter().map(|x| -x / PI).collect();
        (a, mm)
    }
}

/// λc of the kinetic discretisation: the smallest λ at which `A(f0) = diag(1 − Σ′) +
/// diag(f0′)K` stops being positive definite (the linearisation `γAφ = Mφ` then has a
/// negative γ, through γ = ∞). K is symmetric (T(d) = T(−d), H) and f0′ < 0, so with
/// `P = diag|f0′|^{1/2}`, `P⁻¹AP = diag(1 − Σ′) − PKP` (the diagonal of A kept as it is) is symmetric: A has real eigenvalues,
/// and its inertia is that of this matrix, tested by Cholesky (Sylvester), as for
/// `lambda_c_linear`. (A determinant sign is not enough: on fine grids two nodes enter the
/// negative window of Z0⁻¹ at almost the same λ.) Bracketed around `guess` (e.g. the
/// analytic λc), then bisection to 1e-10 relative, on a fixed grid: ε = `grid_step` and L =
/// `grid_points`, or the default cutoff at `guess`. Uses `p.pv` (rule and stencil).
/// Returns `(λc, L)`.
pub fn lambda_c_kinetic(p: &Params, guess: f64) -> Result<(f64, usize)> {
    let build = |lam: f64, l: Option<usize>| -> Result<KineticProblem> {
        let mut kp = p.clone();
        kp.task = super::Task::Kinetic;
        kp.lambda = Some(lam);
        kp.initial_temperature = Some(p.temperature);
        kp.grid_points = l;
        KineticProblem::new(&[kp])
    };
    let l = build(guess, p.grid_points)?.l;
    let stable = |lam: f64| -> Result<bool> {
        let prob = build(lam, Some(l))?;
        let five = prob.members[0].pv.five_point();
        let f0: Vec<f64> = (1..=l).map(|i| fermi(i as f64, prob.members[0].t0)).collect();
        let a = prob.lhs_matrix(0, &f0);
        let df: Vec<f64> = (1..=l).map(|i| f_derivative(&f0, i, five)).collect();
        // The cutoff (f = 0 beyond L) can give the 5-point f0′ a wrong sign at the last nodes,
        // at the size of f0(Λ) ~ e^{−Λ/T0}: such rows are decoupled (their coupling is that
        // small); a wrong sign anywhere else is refused.
        let big = df.iter().fold(0.0f64, |m, d| m.max(d.abs()));
        if df.iter().any(|&d| d >= 0.0 && d > 1e-10 * big) {
            return Err(NeqkinError::invalid(
                "params.grid_step",
                "the grid's f0′ is not negative everywhere (grid step above ~2 T0): no symmetric form for λc",
            ));
        }
        let sq: Vec<f64> = df.iter().map(|d| (-d).max(0.0).sqrt()).collect();
        let tl = table_len(l, prob.nm);
        let tab = &prob.tables[..tl];
        let sym = Mat::from_fn(l, l, |i, j| {
            if i == j {
                a[i * l + i]
            } else {
                -sq[i] * sq[j] * 0.5 * (k_entry(l, tab, i, j) + k_entry(l, tab, j, i))
            }
        });
        Ok(dense::is_positive_definite(sym.as_ref()))
    };
    let (mut lo, mut hi) = (guess * 0.99, guess * 1.01);
    let mut tries = 0;
    while !stable(lo)? {
        lo *= 0.9;
        tries += 1;
        if tries > 40 {
            return Err(NeqkinError::invalid("params.lambda", "no kinetically stable coupling found below the guess"));
        }
    }
    while stable(hi)? {
        hi *= 1.02;
        tries += 1;
        if tries > 120 {
            return Err(NeqkinError::invalid(
                "params.lambda",
                "no kinetically unstable coupling found above the guess",
            ));
        }
    }
    while hi - lo > 1e-10 * hi {
        let mid = 0.5 * (lo + hi);
        if stable(mid)? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok((0.5 * (lo + hi), l))
}

/// Solution of the kinetic-discretisation eigenproblem `γ A φ = M φ`.
#[derive(Clone, Debug)]
pub struct KineticSpectrum {
    /// Real parts of γ (units of ε), ascending.
    pub gamma: Vec<f64>,
    /// Largest |Im γ| over the spectrum relative to max |γ| (the problem is not symmetric;
    /// on every grid tried the spectrum is real to rounding).
    pub max_imag_rel: f64,
}

/// Eigenvalues of `A⁻¹ M` (general real matrix; LU then Hessenberg QR, [`dense`]).
pub fn kinetic_spectrum(l: usize, a: &[f64], m: &[f64]) -> Result<KineticSpectrum> {
    let lu = Lu::factor(l, a);
    if lu.is_singular() {
        return Err(NeqkinError::invalid("params", "the kinetic left-hand matrix A(f0) is singular on this grid"));
    }
    let b = lu.solve_mat(dense::from_row_major(l, m).as_ref());
    let ev = dense::eigenvalues(b.as_ref())
        .ok_or_else(|| NeqkinError::invalid("params", "the eigenvalues of A(f0)⁻¹M did not converge"))?;
    let scale = ev.iter().map(|z| z.norm()).fold(0.0, f64::max).max(1e-300);
    let max_imag_rel = ev.iter().map(|z| z.im.abs()).fold(0.0, f64::max) / scale;
    let mut gamma: Vec<f64> = ev.iter().map(|z| z.re).collect();
    gamma.sort_by(|x, y| x.partial_cmp(y).unwrap());
    Ok(KineticSpectrum { gamma, max_imag_rel })
}

/// Eigenvector of `A⁻¹ M` for the (real) eigenvalue `gamma` by inverse iteration,
/// normalised to max |φ| = 1.
pub fn kinetic_eigenvector(l: usize, a: &[f64], m: &[f64], gamma: f64) -> Option<Vec<f64>> {
    // (M − γ A) φ = 0; shift slightly off γ so the matrix is invertible.
    let shift = gamma + 1e-9 * gamma.abs().max(1e-12);
    let shifted: Vec<f64> = m.iter().zip(a).map(|(mv, av)| mv - av * shift).collect();
    let lu = Lu::factor(l, &shifted);
    if lu.is_singular() {
        return None;
    }
    let mut x = vec![1.0; l];
    for _ in 0..4 {
        let mut ax: Vec<f64> = (0..l).map(|i| a[i * l..(i + 1) * l].iter().zip(&x).map(|(p, q)| p * q).sum()).collect();
        lu.solve_in_place(&mut ax);
        x = ax;
        let mx = x.iter().fold(0.0f64, |s, v| if v.abs() > s.abs() { *v } else { s });
        if mx == 0.0 || !mx.is_finite() {
            return None;
        }
        x.iter_mut().for_each(|v| *v /= mx);
    }
    Some(x)
}

/// Eq 29 as the implicit method sees it: `A(f) ḟ = (ε in the output unit) · I_ep[f]`, with
/// the analytic Jacobian `∂[A(f)v]/∂f − ε ∂I_ep/∂f`.
impl LinearlyImplicit for KineticProblem {
    fn lhs_matrix(&self, m: usize, _t: f64, y: &[f64], a: &mut [f64]) {
        a.copy_from_slice(&self.lhs_matrix(m, y));
    }
    fn force(&self, m: usize, _t: f64, y: &[f64], out: &mut [f64]) {
        let tl = table_len(self.l, self.nm);
        collision(self.l, self.nm, &self.tables[m * tl..(m + 1) * tl], y, out);
        let scale = self.members[m].eps_out;
        out.iter_mut().for_each(|x| *x *= scale);
    }
    fn residual_jacobian(&self, m: usize, _t: f64, y: &[f64], v: &[f64], jac: &mut [f64]) -> bool {
        let tl = table_len(self.l, self.nm);
        let tab = &self.tables[m * tl..(m + 1) * tl];
        let ja = lhs_apply_jacobian(self.l, tab, v, self.members[m].pv.five_point());
        let jc = collision_jacobian(self.l, self.nm, tab, y);
        let scale = self.members[m].eps_out;
        for (k, x) in jac.iter_mut().enumerate() {
            *x = ja[k] - scale * jc[k];
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 20-point Gauss-Legendre of `g` on [a, b] split into `n` panels (regular integrands).
    fn gauss(g: &dyn Fn(f64) -> f64, a: f64, b: f64, n: usize) -> f64 {
        // 8-point rule, nodes/weights on [−1, 1].
        let x = [0.1834346424956498, 0.525532409916329, 0.7966664774136267, 0.9602898564975363];
        let w = [0.362683783378362, 0.3137066458778873, 0.2223810344533745, 0.1012285362903763];
        let h = (b - a) / n as f64;
        let mut acc = 0.0;
        for p in 0..n {
            let m = a + (p as f64 + 0.5) * h;
            for k in 0..4 {
                acc += w[k] * 0.5 * h * (g(m + 0.5 * h * x[k]) + g(m - 0.5 * h * x[k]));
            }
        }
        acc
    }

    fn phi(x: f64) -> f64 {
        let c = cubic_cardinal();
        for (k, q) in &c.pieces {
            let u = x - *k as f64;
            if (0.0..=1.0).contains(&u) {
                return q[0] + u * (q[1] + u * (q[2] + u * q[3]));
            }
        }
        0.0
    }

    #[test]
    fn cubic_cardinal_interpolates_and_sums_to_one() {
        for j in -3..=3 {
            assert!((phi(j as f64) - if j == 0 { 1.0 } else { 0.0 }).abs() < 1e-15, "φ({j})");
        }
        for x in [0.1, 0.37, 0.5, 0.93] {
            let s: f64 = (-4..=4).map(|j| phi(x - j as f64)).sum();
            let sx: f64 = (-4..=4).map(|j| j as f64 * phi(x - j as f64)).sum();
            let sx3: f64 = (-4..=4).map(|j| (j as f64).powi(3) * phi(x - j as f64)).sum();
            assert!((s - 1.0).abs() < 1e-14 && (sx - x).abs() < 1e-14 && (sx3 - x.powi(3)).abs() < 1e-13);
        }
        let m = cubic_cardinal().moments(4);
        assert!((m[0] - 1.0).abs() < 1e-15 && m[1].abs() < 1e-15, "{m:?}");
    }

    #[test]
    fn pv_integrals_match_quadrature_and_the_linear_hat() {
        // Off the support the integrand is regular: Gauss quadrature is the reference, and
        // it checks the closed form (|a| < 8) and the moment series (|a| ≥ 8) alike.
        let cp = CubicPv::new();
        for a in [3.0, 5.0, -7.0, 8.0, 15.0, 16.0, -17.0, 40.0, 1000.0] {
            let q = gauss(&|x| phi(x) / (x - a), -2.0, 2.0, 64);
            let got = cp.phi_pv(a);
            assert!((got - q).abs() < 1e-12 * q.abs() + 1e-16, "a = {a}: {got} vs {q}");
        }
        // The closed form and the series agree where both apply (cardinal and tail).
        for a in [8.0, 9.0, -12.0] {
            let d = cp.phi.pv_direct(a);
            assert!((d - cp.phi_pv(a)).abs() < 1e-12, "a = {a}");
        }
        for a in [30.0, -31.0, 45.0] {
            let d = cp.tail.pv_direct(a);
            let m = moment_series(&cp.tail_moments, a);
            assert!((d - m).abs() < 1e-11, "tail a = {a}: {d} vs {m}");
        }
        // The same machinery on the hat reproduces `hat_pv` at every integer pole,
        // singular ones included.
        let hat = Piecewise { pieces: vec![(-1, [0.0, 1.0, 0.0, 0.0]), (0, [1.0, -1.0, 0.0, 0.0])] };
        for a in -5..=5 {
            let a = a as f64;
            assert!((hat.pv_direct(a) - hat_pv(a)).abs() < 1e-14, "a = {a}");
        }
        // A pole on a node inside the support: PV by symmetric exclusion of (a − δ, a + δ),
        // each side with x = a ± e^t (so φ(x)/(x − a) dx = ±φ(a ± e^t) dt, regular).
        for a in [-1.0, 0.0, 1.0] {
            let lnd = (1e-9f64).ln();
            let right = gauss(&|t: f64| phi(a + t.exp()), lnd, (2.0 - a).ln(), 4000);
            let left = gauss(&|t: f64| phi(a - t.exp()), lnd, (a + 2.0).ln(), 4000);
            let q = right - left;
            // the excluded part is δ (φ′₋ + φ′₊) = O(1e-9)
            assert!((cp.phi_pv(a) - q).abs() < 1e-6, "a = {a}: {} vs {q}", cp.phi_pv(a));
        }
    }
}
