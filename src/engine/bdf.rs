//! Variable-order (1–5), variable-step BDF/NDF for `y′ = f(t, y)` on the host (CPU backend
//! only): `solver.method = "bdf"` for problems without a linearly-implicit form (those, with
//! `A(y) ≠ I`, keep the dense orders 1–2 of [`crate::engine::implicit`]).
//!
//! ## Method
//! Shampine & Reichelt's NDF in the backward-difference form of SciPy's `BDF` (Shampine,
//! "The MATLAB ODE suite", 1997): the state is carried as the modified divided differences
//! `D[0] = y_n, D[1] = h∇y_n, …` up to order `k + 2`. A step of order `k` predicts
//! `y⁽⁰⁾ = Σ_{j ≤ k} D[j]` and solves `d − c f(t_{n+1}, y⁽⁰⁾ + d) + ψ = 0` for the correction
//! `d` (`c = h/α_k`, `ψ = Σ_{j=1..k} γ_j D[j] / α_k`, `α_k = (1 − κ_k) γ_k`, `γ_k = Σ_{j ≤ k} 1/j`,
//! κ the NDF coefficients, 0 at order 5: plain BDF5). The local error is
//! `(κ_k γ_k + 1/(k+1))·d`, measured in the explicit methods' norm ([`error_norm`]: the model's
//! tolerance blocks, weights `atol + rtol·max(|yₙ|, |yₙ₊₁|)` or the deviation from the
//! reference state under `solver.error_scale = "deviation"`). A change of step by a factor `r`
//! rescales the differences (`D ← (R(r)U)ᵀ D`); the step is changed (and the order chosen)
//! only after `k + 1` equal steps: from the error estimates of orders `k − 1`, `k`, `k + 1`
//! (`D[k]`, `d`, `d − D[k+1]`), the order whose `err^{−1/(order+1)}` is largest, the step by
//! that factor times a safety factor (at most ×10; a gain below [`GROW_MIN`] (1.2) at an
//! unchanged order is not taken, which keeps `D`). The order-selection
//! norms use the accepted step's weights. Output times before the last are
//! interpolated with the order-`k` polynomial (the step is not cut at them); the last one is
//! reached exactly.
//!
//! ## Newton
//! Simplified Newton on `(I − cJ) δ = c f − ψ − d` in the style of CVODE: `J` is kept over
//! many steps and re-evaluated only when an iteration with an old `J` fails to converge, or
//! when the matrix must be refactorised and `J` is [`JAC_MAX_AGE`] accepted steps old; the
//! matrix `I − cJ` is refactorised only when `c` has grown by more than
//! [`REFACTOR_GROWTH`] (80 %) or shrunk by more than [`REFACTOR_CHANGE`] (30 %) from the `c`
//! of its factors (the correction is then scaled by `2/(1 + c/c_LU)`, as CVODE does) or after [`LU_MAX_AGE`] steps at a different `c`. The iteration stops when the estimated
//! remaining error `‖δ‖·min(1, rate)`, in the local-error norm times the order's error
//! constant, is below [`NEWTON_TOL`]; the convergence rate is carried from step to step, so
//! a well-converging Newton takes one RHS evaluation per step. A failure (divergence, more
//! than [`NEWTON_MAXITER`] iterations, a non-finite residual, a singular matrix) re-evaluates
//! an old `J` and retries, else shrinks `h` by 4.
//!
//! ## Newton systems without a factorisation
//! While `h` is small (the accuracy-limited start of a stiff run) `I − cJ` is close to its
//! diagonal. On the fused sparse path (declared pattern with a constant or no border, disjoint
//! tolerance blocks, no reference state) the systems are then solved by Jacobi sweeps
//! `x ← (I − c·diag J)⁻¹(r + c(J − diag J)x)` on [`SplitJacobian`] (one vectorised pass per
//! off-diagonal; no factorisation, no latency-bound band solve) whenever the ∞-norm `q(c)` of
//! the iteration matrix is at most [`JACOBI_Q_MAX`]. A solve stops when its estimated
//! remaining error `θ/(1 − θ)·‖Δx‖` (θ the largest ratio of successive increments, at least
//! `q`; weighted max-norm with the Newton weights) is below [`JACOBI_TOL`] of the Newton
//! tolerance, so the linear error left in an accepted step is ≤ 0.1 % of the local-error
//! tolerance and Newton's convergence test and the error estimate judge the step as with an
//! exact solve; the sweeps run at the step's own `c` (no `2/(1 + c/c_LU)` scaling). When the
//! sweeps contract slower than [`JACOBI_THETA_MAX`] (or need more than [`JACOBI_MAX_SWEEPS`])
//! the system is solved with the band LU factorised at that `c`, and the LU is used for every
//! `c` at least as large until `J` is re-evaluated.
//!
//! ## The Jacobian
//! With a declared sparsity ([`BatchProblem::jacobian_pattern`], else
//! [`BatchProblem::jacobian_band`]) `J` is a coloured forward-difference sparse Jacobian and
//! `I − cJ` a band LU after reverse Cuthill–McKee ([`crate::engine::sparse_jacobian`], shared
//! with `rosenbrock`): O(N·band) memory, O(N·band²) per LU, a few RHS evaluations per `J`.
//! Without one: a dense forward-difference `J` (N evaluations) and a dense LU with partial
//! pivoting ([`crate::engine::dense`]). Every RHS evaluation — Newton iterations, Jacobian
//! columns or colours, the initial-step probe — is counted in
//! [`SolveStats::rhs_evaluations`].

// The difference-array loops index several small arrays with one index; `!(h >= h_min)` is
// meant to be true for NaN.
#![allow(clippy::needless_range_loop, clippy::neg_cmp_op_on_partial_ord)]

use rayon::prelude::*;

use crate::engine::cpu::error_norm;
use crate::engine::dense::Lu;
use crate::engine::model::BatchProblem;
use crate::engine::program::{status, ToleranceBlock};
use crate::engine::solve::{OutputFrame, SolveOptions, SolveStats};
use crate::engine::sparse_jacobian::{declared_pattern, Linear, Prepared, SplitJacobian};
use crate::{NeqkinError, Result};

/// Highest order.
pub const MAX_ORDER: usize = 5;
/// Newton iterations per attempt.
pub const NEWTON_MAXITER: usize = 4;
/// Newton stops when its estimated remaining error, in the local-error norm, is below this.
pub const NEWTON_TOL: f64 = 0.1;
/// Accepted steps after which `J` is re-evaluated at the next refactorisation.
pub const JAC_MAX_AGE: u64 = 50;
/// Steps after which `I − cJ` is refactorised even if `c` has not moved.
pub const LU_MAX_AGE: u64 = 20;
/// Relative decrease of `c = h/α_k` beyond which `I − cJ` is refactorised (CVODE's 0.3).
pub const REFACTOR_CHANGE: f64 = 0.3;
/// Relative increase of `c` beyond which `I − cJ` is refactorised. CVODE's symmetric 0.3
/// refactorised at nearly every step increase; 0.8 (the correction scaled by
/// `2/(1 + c/c_LU)`) costs a few more Newton iterations and saves ~20 % of the
/// factorisations, which cost 4–13 solves each at the photoexcited bands 1–19
/// (docs/benchmarks.md §15). Decreases follow rejections and stay at 0.3: an old matrix at a
/// larger `c` left enough Newton error to break `tests/bdf.rs` (the stiff chain's error,
/// the order-3 slope).
pub const REFACTOR_GROWTH: f64 = 0.8;
/// A step increase below this factor at an unchanged order is not made (CVODE: 1.5). At
/// order 5 a step is changed only every 6 steps and its error grows as `h⁶`: a threshold of
/// 1.5 held `h` at ~0.6 of what the error allowed through whole stretches of the smoothly
/// decaying transient; 1.2 (below [`REFACTOR_GROWTH`]: such a change costs no
/// factorisation, only the rescaling of `D`) takes fewer steps.
pub const GROW_MIN: f64 = 1.2;
/// Local-error target of the initial step, in units of the tolerance (Hairer–Wanner / SciPy
/// aim at 0.01 for order 1, `h = (0.01/max(‖f₀‖, ‖f′‖))^{1/2}`; the first steps then had
/// error estimates 0.003–0.3 and the step grew only 10× per two steps).
const INITIAL_ERROR: f64 = 0.1;
/// The initial step is at most this many times the explicit-Euler guess `0.01‖y₀‖/‖f₀‖`
/// (SciPy: 100).
const INITIAL_CAP: f64 = 1e4;
const MIN_FACTOR: f64 = 0.2;
const MAX_FACTOR: f64 = 10.0;
/// The Newton systems `(I − cJ) δ = r` are solved by Jacobi iteration (no factorisation,
/// [`SplitJacobian`]) while the ∞-norm `q` of the Jacobi iteration matrix
/// `c·(I − c·diag J)⁻¹ (J − diag J)` is at most this: in the early transient, where `h` (and
/// `c`) is small and each step would otherwise cost a latency-bound band solve and every few
/// steps a factorisation (docs/benchmarks.md §15.2). 0.3 took ~10 % more LU solves on the
/// photoexcited sweep; above 0.6 the measured contraction ([`JACOBI_THETA_MAX`]) decides.
pub const JACOBI_Q_MAX: f64 = 0.6;
/// A Jacobi solve is abandoned (the band LU solves that system) when the ratio of
/// successive increments exceeds this.
pub const JACOBI_THETA_MAX: f64 = 0.5;
/// Most Jacobi sweeps per linear solve.
pub const JACOBI_MAX_SWEEPS: usize = 12;
/// A Jacobi solve stops when its estimated remaining error, in the max-norm weighted as the
/// Newton norm, is below this fraction of the Newton tolerance (so the linear error left in
/// the accepted solution is at most 0.1 % of the local-error tolerance: the Newton
/// convergence test and the error estimate stay what they are with an exact solve). 0.1
/// took about as many evaluations on the photoexcited probe (143 against 140 per point) but left `tests/bdf.rs`'s stiff chain at a global error of
/// 1.15e-5 at t = 0.5 (limit 1e-5; 0.03: the same; 0.01: 9e-7; 1e-4, 1e-6: 7.0e-6, as with
/// the LU alone: that error moves with the step sequence).
pub const JACOBI_TOL: f64 = 0.01;
/// NDF coefficients κ_k (Shampine & Reichelt 1997; κ_5 = 0: BDF5).
const KAPPA: [f64; MAX_ORDER + 1] = [0.0, -0.1850, -1.0 / 9.0, -0.0823, -0.0415, 0.0];

/// Whether `I − cJ` must be refactorised for `c`: none yet, `c` grew by more than
/// [`REFACTOR_GROWTH`] or shrank by more than [`REFACTOR_CHANGE`] from the factors' `c`, or the factors are [`LU_MAX_AGE`] steps old
/// and `c` differs from theirs (with the same `c` and the same `J` the factors would be the
/// same bits: the age alone is no reason).
fn stale_factors(nw: &Newton, c: f64) -> bool {
    !(nw.c_lu.is_finite() && c / nw.c_lu - 1.0 <= REFACTOR_GROWTH && 1.0 - c / nw.c_lu <= REFACTOR_CHANGE)
        || (nw.lu_age >= LU_MAX_AGE && c != nw.c_lu)
}

/// `γ_k = Σ_{j ≤ k} 1/j`.
fn gamma(k: usize) -> f64 {
    (1..=k).map(|j| 1.0 / j as f64).sum()
}
fn alpha(k: usize) -> f64 {
    (1.0 - KAPPA[k]) * gamma(k)
}
/// Local error constant of order `k` (error = constant × correction).
fn error_const(k: usize) -> f64 {
    KAPPA[k] * gamma(k) + 1.0 / (k as f64 + 1.0)
}

/// `R(order, factor)` of SciPy's `BDF`: the difference rescaling for a step ratio `factor`.
fn compute_r(order: usize, factor: f64) -> [[f64; MAX_ORDER + 1]; MAX_ORDER + 1] {
    let mut m = [[0.0; MAX_ORDER + 1]; MAX_ORDER + 1];
    for j in 0..=order {
        m[0][j] = 1.0;
    }
    for i in 1..=order {
        for j in 1..=order {
            m[i][j] = (i as f64 - 1.0 - factor * j as f64) / i as f64;
        }
    }
    for i in 1..=order {
        for j in 0..=order {
            m[i][j] *= m[i - 1][j];
        }
    }
    m
}

/// Rescales the differences `D[0..=order]` to a step `factor` times the present one
/// (`tmp`: `MAX_ORDER + 1` rows of scratch, swapped in).
fn change_d(d: &mut [Vec<f64>], order: usize, factor: f64, tmp: &mut [Vec<f64>]) {
    let r = compute_r(order, factor);
    let u = compute_r(order, 1.0);
    // RU = R·U; D[:order+1] ← RUᵀ D[:order+1], row by row (vectorised passes).
    let mut ru = [[0.0; MAX_ORDER + 1]; MAX_ORDER + 1];
    for i in 0..=order {
        for j in 0..=order {
            ru[i][j] = (0..=order).map(|k| r[i][k] * u[k][j]).sum();
        }
    }
    let n = d[0].len();
    for t in tmp[..=order].iter_mut() {
        t.resize(n, 0.0);
    }
    rescale_d(order, d, &ru, tmp);
    for j in 0..=order {
        std::mem::swap(&mut d[j], &mut tmp[j]);
    }
}

/// `tmp[j] = Σ_{k < K} ru[k][j]·D[k]` for `j < K`, in one pass over the components (the
/// same operations per component, in the same order, as one pass per row).
#[inline(always)]
fn rescale_d_fused<const K: usize>(d: &[Vec<f64>], ru: &[[f64; MAX_ORDER + 1]; MAX_ORDER + 1], tmp: &mut [Vec<f64>]) {
    let n = d[0].len();
    let rows: [&[f64]; K] = std::array::from_fn(|k| &d[k][..n]);
    let mut it = tmp.iter_mut();
    let out: [&mut [f64]; K] = std::array::from_fn(|_| &mut it.next().unwrap()[..n]);
    let body = n / LANES * LANES;
    for c in (0..body).step_by(LANES) {
        // Fixed-size chunks of every row: the lanes vectorise (component by component the
        // rows' slices kept it scalar).
        let x: [[f64; LANES]; K] = std::array::from_fn(|k| rows[k][c..c + LANES].try_into().unwrap());
        for j in 0..K {
            let o: &mut [f64; LANES] = (&mut out[j][c..c + LANES]).try_into().unwrap();
            for q in 0..LANES {
                let mut a = ru[0][j] * x[0][q];
                for k in 1..K {
                    a += ru[k][j] * x[k][q];
                }
                o[q] = a;
            }
        }
    }
    for i in body..n {
        for j in 0..K {
            let mut a = ru[0][j] * rows[0][i];
            for k in 1..K {
                a += ru[k][j] * rows[k][i];
            }
            out[j][i] = a;
        }
    }
}

/// [`rescale_d_fused`] for an order known at run time.
#[inline(always)]
fn rescale_d_impl(order: usize, d: &[Vec<f64>], ru: &[[f64; MAX_ORDER + 1]; MAX_ORDER + 1], tmp: &mut [Vec<f64>]) {
    match order {
        0 => rescale_d_fused::<1>(d, ru, tmp),
        1 => rescale_d_fused::<2>(d, ru, tmp),
        2 => rescale_d_fused::<3>(d, ru, tmp),
        3 => rescale_d_fused::<4>(d, ru, tmp),
        4 => rescale_d_fused::<5>(d, ru, tmp),
        _ => rescale_d_fused::<6>(d, ru, tmp),
    }
}

crate::multiversion! {
    /// [`rescale_d_impl`], runtime-dispatched.
    fn rescale_d / rescale_d_portable (order: usize, d: &[Vec<f64>], ru: &[[f64; MAX_ORDER + 1]; MAX_ORDER + 1], tmp: &mut [Vec<f64>]) => rescale_d_impl
}

/// Per-member counts of one BDF run.
#[derive(Clone, Debug, Default)]
pub struct MemberReport {
    /// Accepted steps.
    pub accepted: u64,
    /// Rejected attempts (error test or Newton failure).
    pub rejected: u64,
    /// Every RHS evaluation (Newton iterations, Jacobian colours or columns, start-up).
    pub rhs_evaluations: u64,
    /// Jacobian evaluations.
    pub jacobians: u64,
    /// Factorisations of `I − cJ`.
    pub factorisations: u64,
    /// Accepted steps per order (index = order).
    pub steps_per_order: [u64; MAX_ORDER + 1],
    /// Whether `J` was the sparse (declared-pattern) one.
    pub sparse: bool,
    /// Largest number of reals held for `J` and the factors of `I − cJ`.
    pub jacobian_reals: usize,
    /// Lower and upper band of the (reordered) sparse core (0 on the dense path).
    pub band: (usize, usize),
    /// Newton linear systems solved by Jacobi iteration (no factorisation).
    pub jacobi_solves: u64,
    /// Jacobi sweeps over all those solves.
    pub jacobi_sweeps: u64,
    /// Jacobi solves abandoned for the band LU (slow contraction).
    pub jacobi_fallbacks: u64,
    /// Linear systems solved with the LU factors.
    pub lu_solves: u64,
    /// Largest number of reals held for the Jacobi split of `J` (diagonal, off-diagonals,
    /// their scaled copies, reciprocal pivots; 0 when never built).
    pub split_reals: usize,
}

/// `J` and the factors of `I − cJ` of one member.
struct Newton {
    /// Sparse path (a declared pattern).
    lin: Linear,
    /// Dense path: row-major `J`, and the LU of `I − cJ`.
    dense_j: Vec<f64>,
    dense_lu: Option<Lu>,
    /// `c` of the present factors (NaN: none).
    c_lu: f64,
    /// Accepted steps since `J` was evaluated (`u64::MAX`: never).
    jac_age: u64,
    /// Steps since the last factorisation.
    lu_age: u64,
    /// `J` evaluated since the last accepted step.
    current: bool,
    /// Newton convergence rate estimate, carried across steps (1 after a refactorisation).
    rate: f64,
    /// Diagonal/off-diagonal split of `J` for the Jacobi solves (built on first use for the
    /// present `J`; None when not applicable).
    split: Option<SplitJacobian>,
    /// `split` has been built (or found not applicable) for the present `J`.
    split_built: bool,
    /// Jacobi solves are tried only for `c` below this (a failed one at `c` sets it to `c`;
    /// reset with `J`).
    jacobi_c_max: f64,
}

struct Member {
    t: f64,
    h: f64,
    order: usize,
    n_equal_steps: usize,
    /// Modified divided differences, `MAX_ORDER + 3` rows of `n`.
    d: Vec<Vec<f64>>,
    status: f64,
    reason: String,
    newton: Newton,
    report: MemberReport,
}

/// Work vectors of one attempt.
struct Work {
    y_pred: Vec<f64>,
    psi: Vec<f64>,
    y: Vec<f64>,
    corr: Vec<f64>,
    f: Vec<f64>,
    dy: Vec<f64>,
    e: Vec<f64>,
    solve: Vec<f64>,
    scratch: Vec<f64>,
    /// Rows for [`change_d`].
    tmp: Vec<Vec<f64>>,
    /// Inverse weights of the predictor (Newton norm) and of the step (error norms).
    iw_pred: Vec<f64>,
    iw_step: Vec<f64>,
    /// Iterates of the Jacobi solves.
    jx: Vec<f64>,
    jx_new: Vec<f64>,
}

struct Ctx<'a> {
    problem: &'a dyn BatchProblem,
    /// Member's prepared pattern (None: dense), built on first use.
    prepared: Vec<std::sync::OnceLock<Option<Prepared>>>,
    opts: &'a SolveOptions,
    blocks: Vec<ToleranceBlock>,
    fd_floor: Vec<f64>,
    reference: Option<Vec<f64>>,
    n: usize,
    /// Highest order used (≤ [`MAX_ORDER`]).
    max_order: usize,
    /// The tolerance blocks do not overlap: norms from precomputed inverse weights (one
    /// division per component per step, not per norm); else [`error_norm`] each time.
    disjoint: bool,
    /// Disjoint blocks and no reference state: the step's vector work runs in the fused
    /// passes below (prediction with its weights, Newton update with its norm, error test
    /// with its weights, difference update), each one loop over the state.
    fused: bool,
    /// Per component: the tolerances of its block (`atol = ∞` outside every block, so that
    /// its inverse weight is 0).
    atol_c: Vec<f64>,
    rtol_c: Vec<f64>,
    /// `0..n` cut into `(start, end, block)` runs (`block = usize::MAX` between blocks).
    segments: Vec<(usize, usize, usize)>,
}

/// `y⁽⁰⁾ = Σ_{k < K} D[k]`, `ψ = Σ_{1 ≤ k < K} g_k D[k]` and the inverse weights
/// `1/(atol + rtol·|y⁽⁰⁾|)` in one pass (`K = order + 1`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn predict_fused<const K: usize>(
    d: &[Vec<f64>],
    g: &[f64; MAX_ORDER + 1],
    atol: &[f64],
    rtol: &[f64],
    y_pred: &mut [f64],
    psi: &mut [f64],
    iw: &mut [f64],
) {
    let n = y_pred.len();
    let dk: [&[f64]; K] = std::array::from_fn(|k| &d[k][..n]);
    let (atol, rtol, psi, iw) = (&atol[..n], &rtol[..n], &mut psi[..n], &mut iw[..n]);
    for i in 0..n {
        let mut yp = dk[0][i];
        let mut ps = 0.0;
        for k in 1..K {
            yp += dk[k][i];
            ps += g[k] * dk[k][i];
        }
        y_pred[i] = yp;
        psi[i] = ps;
        iw[i] = 1.0 / (atol[i] + rtol[i] * yp.abs());
    }
}

/// [`predict_fused`] for an order known at run time.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn predict_impl(
    order: usize,
    d: &[Vec<f64>],
    g: &[f64; MAX_ORDER + 1],
    atol: &[f64],
    rtol: &[f64],
    y_pred: &mut [f64],
    psi: &mut [f64],
    iw: &mut [f64],
) {
    match order {
        1 => predict_fused::<2>(d, g, atol, rtol, y_pred, psi, iw),
        2 => predict_fused::<3>(d, g, atol, rtol, y_pred, psi, iw),
        3 => predict_fused::<4>(d, g, atol, rtol, y_pred, psi, iw),
        4 => predict_fused::<5>(d, g, atol, rtol, y_pred, psi, iw),
        _ => predict_fused::<6>(d, g, atol, rtol, y_pred, psi, iw),
    }
}

/// [`update_d_fused`] for an order known at run time.
#[inline(always)]
fn update_d_impl(order: usize, d: &mut [Vec<f64>], corr: &[f64]) {
    match order {
        1 => update_d_fused::<4>(d, corr),
        2 => update_d_fused::<5>(d, corr),
        3 => update_d_fused::<6>(d, corr),
        4 => update_d_fused::<7>(d, corr),
        _ => update_d_fused::<8>(d, corr),
    }
}

crate::multiversion! {
    /// [`predict_impl`], runtime-dispatched to the widest vectors the CPU has.
    fn predict / predict_portable (order: usize, d: &[Vec<f64>], g: &[f64; MAX_ORDER + 1], atol: &[f64], rtol: &[f64], y_pred: &mut [f64], psi: &mut [f64], iw: &mut [f64]) => predict_impl
}

crate::multiversion! {
    /// [`update_d_impl`], runtime-dispatched.
    fn update_d / update_d_portable (order: usize, d: &mut [Vec<f64>], corr: &[f64]) => update_d_impl
}

/// Lanes of the sums of squares below: independent partial sums, so that a pass is not one
/// chain of dependent additions (one add latency per component) and vectorises.
const LANES: usize = 8;

/// Sum of `LANES` partial sums, pairwise.
#[inline(always)]
fn reduce_lanes(acc: [f64; LANES]) -> f64 {
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

/// The error test's pass over one block: `iw = 1/(atol + rtol·max(|y0|, |y1|))` stored, and
/// `Σ (ec·corr·iw)²` returned.
#[inline(always)]
fn error_weights_impl(
    y0: &[f64],
    y1: &[f64],
    corr: &[f64],
    atol: &[f64],
    rtol: &[f64],
    iw: &mut [f64],
    ec: f64,
) -> f64 {
    let n = iw.len().min(y0.len()).min(y1.len()).min(corr.len()).min(atol.len()).min(rtol.len());
    let (y0, y1, corr, atol, rtol, iw) = (&y0[..n], &y1[..n], &corr[..n], &atol[..n], &rtol[..n], &mut iw[..n]);
    let mut acc = [0.0; LANES];
    let body = n / LANES * LANES;
    for c in (0..body).step_by(LANES) {
        // Fixed-size chunks: one bounds check per chunk, and the lanes vectorise.
        let r = c..c + LANES;
        let (y0, y1, corr): (&[f64; LANES], &[f64; LANES], &[f64; LANES]) =
            (y0[r.clone()].try_into().unwrap(), y1[r.clone()].try_into().unwrap(), corr[r.clone()].try_into().unwrap());
        let (atol, rtol): (&[f64; LANES], &[f64; LANES]) =
            (atol[r.clone()].try_into().unwrap(), rtol[r.clone()].try_into().unwrap());
        let iw: &mut [f64; LANES] = (&mut iw[r]).try_into().unwrap();
        for q in 0..LANES {
            let wi = 1.0 / (atol[q] + rtol[q] * y0[q].abs().max(y1[q].abs()));
            iw[q] = wi;
            let e = ec * corr[q] * wi;
            acc[q] += e * e;
        }
    }
    let mut sum = reduce_lanes(acc);
    for i in body..n {
        let wi = 1.0 / (atol[i] + rtol[i] * y0[i].abs().max(y1[i].abs()));
        iw[i] = wi;
        let e = ec * corr[i] * wi;
        sum += e * e;
    }
    sum
}

/// The Newton update's pass over one block: `d = scale·dy`, `y = base + d`, `corr = corr0 + d`
/// (`first`: `base = y⁽⁰⁾`, `corr0 = 0`; else `base = y`, `corr0 = corr`), returning
/// `Σ (d·iw)²`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn newton_update_impl(
    first: bool,
    dy: &[f64],
    iw: &[f64],
    y_pred: &[f64],
    y: &mut [f64],
    corr: &mut [f64],
    scale: f64,
) -> f64 {
    let n = dy.len().min(iw.len()).min(y_pred.len()).min(y.len()).min(corr.len());
    let (dy, iw, y_pred, y, corr) = (&dy[..n], &iw[..n], &y_pred[..n], &mut y[..n], &mut corr[..n]);
    let mut acc = [0.0; LANES];
    let body = n / LANES * LANES;
    for c in (0..body).step_by(LANES) {
        // Fixed-size chunks: one bounds check per chunk, and the lanes vectorise.
        let r = c..c + LANES;
        let (dy, iw, yp): (&[f64; LANES], &[f64; LANES], &[f64; LANES]) = (
            dy[r.clone()].try_into().unwrap(),
            iw[r.clone()].try_into().unwrap(),
            y_pred[r.clone()].try_into().unwrap(),
        );
        let y: &mut [f64; LANES] = (&mut y[r.clone()]).try_into().unwrap();
        let corr: &mut [f64; LANES] = (&mut corr[r]).try_into().unwrap();
        if first {
            for q in 0..LANES {
                let d = dy[q] * scale;
                y[q] = yp[q] + d;
                corr[q] = d;
                acc[q] += (d * iw[q]) * (d * iw[q]);
            }
        } else {
            for q in 0..LANES {
                let d = dy[q] * scale;
                y[q] += d;
                corr[q] += d;
                acc[q] += (d * iw[q]) * (d * iw[q]);
            }
        }
    }
    let mut sum = reduce_lanes(acc);
    for i in body..n {
        let d = dy[i] * scale;
        if first {
            y[i] = y_pred[i] + d;
            corr[i] = d;
        } else {
            y[i] += d;
            corr[i] += d;
        }
        sum += (d * iw[i]) * (d * iw[i]);
    }
    sum
}

/// `Σ (scale·x·iw)²`.
#[inline(always)]
fn sum_sq_scaled_impl(x: &[f64], iw: &[f64], scale: f64) -> f64 {
    let n = x.len().min(iw.len());
    let (x, iw) = (&x[..n], &iw[..n]);
    let mut acc = [0.0; LANES];
    let body = n / LANES * LANES;
    for c in (0..body).step_by(LANES) {
        let r = c..c + LANES;
        let (x, iw): (&[f64; LANES], &[f64; LANES]) = (x[r.clone()].try_into().unwrap(), iw[r].try_into().unwrap());
        for q in 0..LANES {
            let e = scale * x[q] * iw[q];
            acc[q] += e * e;
        }
    }
    let mut sum = reduce_lanes(acc);
    for i in body..n {
        let e = scale * x[i] * iw[i];
        sum += e * e;
    }
    sum
}

crate::multiversion! {
    /// [`error_weights_impl`], runtime-dispatched.
    fn error_weights / error_weights_portable (y0: &[f64], y1: &[f64], corr: &[f64], atol: &[f64], rtol: &[f64], iw: &mut [f64], ec: f64) -> f64 => error_weights_impl
}

crate::multiversion! {
    /// [`newton_update_impl`], runtime-dispatched.
    fn newton_update / newton_update_portable (first: bool, dy: &[f64], iw: &[f64], y_pred: &[f64], y: &mut [f64], corr: &mut [f64], scale: f64) -> f64 => newton_update_impl
}

crate::multiversion! {
    /// [`sum_sq_scaled_impl`], runtime-dispatched.
    fn sum_sq_scaled / sum_sq_scaled_portable (x: &[f64], iw: &[f64], scale: f64) -> f64 => sum_sq_scaled_impl
}

/// After an accepted step of order `K − 3` with correction `corr`: `D[K−1] = corr − D[K−2]`,
/// `D[K−2] = corr`, then `D[k] += D[k+1]` downwards, in one pass (`K = order + 3`).
#[inline(always)]
fn update_d_fused<const K: usize>(d: &mut [Vec<f64>], corr: &[f64]) {
    let n = corr.len();
    let mut it = d.iter_mut();
    let rows: [&mut [f64]; K] = std::array::from_fn(|_| &mut it.next().unwrap()[..n]);
    for i in 0..n {
        let c = corr[i];
        let dk1 = rows[K - 2][i];
        rows[K - 1][i] = c - dk1;
        rows[K - 2][i] = c;
        let mut acc = c;
        for k in (0..K - 2).rev() {
            acc += rows[k][i];
            rows[k][i] = acc;
        }
    }
}

impl Ctx<'_> {
    fn prepared(&self, m: usize) -> Option<&Prepared> {
        self.prepared[m].get_or_init(|| declared_pattern(self.problem, m).map(|p| Prepared::new(&p, self.n))).as_ref()
    }

    fn reference(&self, m: usize) -> Option<&[f64]> {
        self.reference.as_ref().map(|r| &r[m * self.n..(m + 1) * self.n])
    }

    /// Inverse weights `1/(atol + rtol·max(|y0 − y_ref|, |y1 − y_ref|))` per component of
    /// the tolerance blocks (0 outside them), as [`error_norm`] weighs.
    fn inv_weights(&self, m: usize, y0: &[f64], y1: &[f64], iw: &mut [f64]) {
        if !self.disjoint {
            return;
        }
        iw.iter_mut().for_each(|x| *x = 0.0);
        let reference = self.reference(m);
        for b in &self.blocks {
            match reference {
                None => {
                    for i in b.start..b.end {
                        iw[i] = 1.0 / (b.atol + b.rtol * y0[i].abs().max(y1[i].abs()));
                    }
                }
                Some(r) => {
                    for i in b.start..b.end {
                        iw[i] = 1.0 / (b.atol + b.rtol * (y0[i] - r[i]).abs().max((y1[i] - r[i]).abs()));
                    }
                }
            }
        }
    }

    /// [`error_norm`] of `x` with the weights of `(y0, y1)`, from `iw` (filled by
    /// [`Self::inv_weights`] from the same states) when the blocks are disjoint.
    fn norm(&self, m: usize, x: &[f64], y0: &[f64], y1: &[f64], iw: &[f64]) -> f64 {
        if !self.disjoint {
            return error_norm(x, y0, y1, self.reference(m), &self.blocks);
        }
        let mut norm: f64 = 0.0;
        for b in &self.blocks {
            let sum: f64 = x[b.start..b.end].iter().zip(&iw[b.start..b.end]).map(|(e, w)| (e * w) * (e * w)).sum();
            let block = (sum / ((b.end - b.start).max(1) as f64)).sqrt();
            if !block.is_finite() {
                return f64::NAN;
            }
            norm = norm.max(block);
        }
        norm
    }

    /// The norm from per-block sums of squared weighted components (NaN when one is not
    /// finite), as [`Self::norm`] forms it.
    fn norm_from_sums(&self, sums: &[f64]) -> f64 {
        let mut norm: f64 = 0.0;
        for (b, &sum) in self.blocks.iter().zip(sums) {
            let block = (sum / ((b.end - b.start).max(1) as f64)).sqrt();
            if !block.is_finite() {
                return f64::NAN;
            }
            norm = norm.max(block);
        }
        norm
    }

    /// `‖scale·x‖` with the inverse weights `iw` (fused path), one pass.
    fn norm_scaled(&self, x: &[f64], scale: f64, iw: &[f64]) -> f64 {
        let mut sums = [0.0; 8];
        let mut big = vec![];
        let sums: &mut [f64] = if self.blocks.len() <= 8 {
            &mut sums[..self.blocks.len()]
        } else {
            big.resize(self.blocks.len(), 0.0);
            &mut big
        };
        for (b, sum) in self.blocks.iter().zip(sums.iter_mut()) {
            *sum = sum_sq_scaled(&x[b.start..b.end], &iw[b.start..b.end], scale);
        }
        self.norm_from_sums(sums)
    }

    fn rhs(&self, m: usize, t: f64, y: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        let lay = self.problem.layout();
        let p = &self.problem.params()[m * lay.params_len..(m + 1) * lay.params_len];
        let tab = &self.problem.tables()[m * lay.table_stride..m * lay.table_stride + lay.table_len];
        self.problem.rhs_member(m, p, tab, t, y, out, scratch);
    }

    /// Evaluates `J` at `(t, y)` with `f0 = f(t, y)`.
    fn jacobian(&self, m: usize, mem: &mut Member, t: f64, y: &[f64], f0: &[f64], scratch: &mut [f64]) {
        let n = self.n;
        let nw = &mut mem.newton;
        let mut rhs = |t: f64, y: &[f64], out: &mut [f64]| self.rhs(m, t, y, out, scratch);
        match self.prepared(m) {
            Some(p) => {
                mem.report.rhs_evaluations += nw.lin.evaluate(p, &mut rhs, t, y, f0, &self.fd_floor, false, mem.h);
            }
            None => {
                // Dense forward differences, column by column (no pattern declared).
                nw.dense_j.resize(n * n, 0.0);
                let mut yp = y.to_vec();
                let mut f1 = vec![0.0; n];
                for j in 0..n {
                    let dlt = 1e-8 * y[j].abs().max(self.fd_floor[j]);
                    yp[j] = y[j] + dlt;
                    rhs(t, &yp, &mut f1);
                    yp[j] = y[j];
                    for i in 0..n {
                        nw.dense_j[i * n + j] = (f1[i] - f0[i]) / dlt;
                    }
                }
                mem.report.rhs_evaluations += n as u64;
                nw.dense_lu = None;
            }
        }
        nw.c_lu = f64::NAN;
        nw.jac_age = 0;
        nw.current = true;
        nw.split = None;
        nw.split_built = false;
        nw.jacobi_c_max = f64::INFINITY;
        mem.report.jacobians += 1;
    }

    /// Factorises `I − cJ`; false when it is singular (or a band pivot is tiny).
    fn factor(&self, m: usize, mem: &mut Member, c: f64) -> bool {
        let n = self.n;
        let nw = &mut mem.newton;
        mem.report.factorisations += 1;
        nw.lu_age = 0;
        nw.rate = 1.0;
        nw.c_lu = c;
        let ok = match self.prepared(m) {
            Some(p) => {
                let ok = nw.lin.factor(p, c);
                if !ok {
                    nw.lin.band = None;
                }
                ok
            }
            None => {
                let mut a: Vec<f64> = nw.dense_j.iter().map(|j| -c * j).collect();
                for i in 0..n {
                    a[i * n + i] += 1.0;
                }
                let lu = Lu::factor(n, &a);
                let ok = !lu.is_singular();
                nw.dense_lu = ok.then_some(lu);
                ok
            }
        };
        if !ok {
            nw.c_lu = f64::NAN;
        }
        let reals = nw.lin.stored_reals() + nw.dense_j.len() + nw.dense_lu.as_ref().map_or(0, |l| l.n() * l.n());
        mem.report.jacobian_reals = mem.report.jacobian_reals.max(reals);
        ok
    }

    /// Whether this attempt's linear systems are solved by Jacobi iteration at `c`: the fused
    /// sparse path, a split of the present `J` (built here on first use), `c` below the last
    /// `c` where the iteration did not pay, and the iteration matrix's ∞-norm `q(c)` at most
    /// [`JACOBI_Q_MAX`] (the split is rescaled to `c`, one pass over `J`). `q` grows with `c`
    /// (for `J_ii ≤ 0`), so a `q` above the bound also bars every larger `c` until `J` is
    /// re-evaluated.
    fn jacobi_ready(&self, m: usize, mem: &mut Member, c: f64) -> bool {
        let nw = &mut mem.newton;
        if !self.fused || nw.jac_age == u64::MAX || !(c < nw.jacobi_c_max) {
            return false;
        }
        let Some(p) = self.prepared(m) else {
            return false;
        };
        if !nw.split_built {
            nw.split = SplitJacobian::new(p, &nw.lin);
            nw.split_built = true;
            let reals = nw.split.as_ref().map_or(0, |s| s.stored_reals());
            mem.report.split_reals = mem.report.split_reals.max(reals);
        }
        let Some(split) = nw.split.as_mut() else {
            return false;
        };
        if split.rescale(c) <= JACOBI_Q_MAX {
            true
        } else {
            nw.jacobi_c_max = c;
            false
        }
    }

    fn solve(&self, m: usize, nw: &Newton, b: &mut [f64], work: &mut Vec<f64>) {
        match self.prepared(m) {
            Some(p) => nw.lin.solve(p, b, work),
            None => nw.dense_lu.as_ref().unwrap().solve_in_place(b),
        }
    }

    /// Solves the corrector equation of an order-`order` step to `t_new` (`c`, predictor
    /// and `ψ` in `w`); the correction ends in `w.corr`, the solution in `w.y`. Returns the
    /// iterations, or None when Newton failed. `f_pred` holds `f(t_new, y⁽⁰⁾)` when valid;
    /// `jacobi`: the systems by Jacobi sweeps (see [`Self::newton_fused`]).
    #[allow(clippy::too_many_arguments)]
    fn newton(
        &self,
        m: usize,
        mem: &mut Member,
        t_new: f64,
        c: f64,
        w: &mut Work,
        f_pred_valid: bool,
        jacobi: bool,
    ) -> Option<usize> {
        let n = self.n;
        let tol = NEWTON_TOL / error_const(mem.order);
        // The Jacobi solves are at the step's own c.
        let scale = if jacobi || mem.newton.c_lu == c { 1.0 } else { 2.0 / (1.0 + c / mem.newton.c_lu) };
        if self.fused {
            return self.newton_fused(m, mem, t_new, c, scale, tol, w, f_pred_valid, jacobi);
        }
        self.inv_weights(m, &w.y_pred, &w.y_pred, &mut w.iw_pred);
        w.y.copy_from_slice(&w.y_pred);
        w.corr.iter_mut().for_each(|x| *x = 0.0);
        let mut dy_old = f64::NAN;
        for k in 0..NEWTON_MAXITER {
            if !(k == 0 && f_pred_valid) {
                let mut f = std::mem::take(&mut w.f);
                self.rhs(m, t_new, &w.y, &mut f, &mut w.scratch);
                w.f = f;
                mem.report.rhs_evaluations += 1;
            }
            if !w.f.iter().all(|x| x.is_finite()) {
                return None;
            }
            for i in 0..n {
                w.dy[i] = c * w.f[i] - w.psi[i] - w.corr[i];
            }
            self.solve(m, &mem.newton, &mut w.dy, &mut w.solve);
            mem.report.lu_solves += 1;
            for ((dy, y), corr) in w.dy.iter_mut().zip(w.y.iter_mut()).zip(w.corr.iter_mut()) {
                *dy *= scale;
                *y += *dy;
                *corr += *dy;
            }
            let dy_norm = self.norm(m, &w.dy, &w.y_pred, &w.y_pred, &w.iw_pred);
            if !dy_norm.is_finite() {
                return None;
            }
            if k > 0 {
                mem.newton.rate = (0.3 * mem.newton.rate).max(dy_norm / dy_old);
            }
            if dy_norm * mem.newton.rate.min(1.0) <= tol || dy_norm == 0.0 {
                return Some(k + 1);
            }
            if k > 0 && dy_norm > 2.0 * dy_old {
                return None;
            }
            dy_old = dy_norm;
        }
        None
    }

    /// [`Self::newton`] on the fused path: the first iteration starts from `y⁽⁰⁾` and a zero
    /// correction without copying them, each iteration is one pass for the residual, the
    /// solve, and one pass that updates `y` and the correction and sums the norm (a
    /// non-finite residual shows as a non-finite norm). `w.iw_pred` holds the predictor's
    /// inverse weights ([`predict_fused`]). With `jacobi` the systems are solved by Jacobi
    /// iteration ([`SplitJacobian::solve`]) to [`JACOBI_TOL`] of the Newton tolerance; one
    /// that contracts too slowly is solved with the band LU factorised at `c` instead (and
    /// the rest of the attempt with it).
    #[allow(clippy::too_many_arguments)]
    fn newton_fused(
        &self,
        m: usize,
        mem: &mut Member,
        t_new: f64,
        c: f64,
        scale: f64,
        tol: f64,
        w: &mut Work,
        f_pred_valid: bool,
        mut jacobi: bool,
    ) -> Option<usize> {
        let n = self.n;
        let mut dy_old = f64::NAN;
        let mut sums = vec![0.0; self.blocks.len()];
        for k in 0..NEWTON_MAXITER {
            if !(k == 0 && f_pred_valid) {
                let mut f = std::mem::take(&mut w.f);
                let y = if k == 0 { &w.y_pred } else { &w.y };
                self.rhs(m, t_new, y, &mut f, &mut w.scratch);
                w.f = f;
                mem.report.rhs_evaluations += 1;
            }
            let (f, psi, dy) = (&w.f[..n], &w.psi[..n], &mut w.dy[..n]);
            if k == 0 {
                for i in 0..n {
                    dy[i] = c * f[i] - psi[i];
                }
            } else {
                let corr = &w.corr[..n];
                for i in 0..n {
                    dy[i] = c * f[i] - psi[i] - corr[i];
                }
            }
            let mut solved = false;
            if jacobi {
                let split = mem.newton.split.as_ref().unwrap();
                let lin_tol = JACOBI_TOL * tol;
                let (jx, jx_new) = (&mut w.jx, &mut w.jx_new);
                match split.solve(&mut w.dy, &w.iw_pred, lin_tol, JACOBI_THETA_MAX, JACOBI_MAX_SWEEPS, jx, jx_new) {
                    Some(sweeps) => {
                        mem.report.jacobi_solves += 1;
                        mem.report.jacobi_sweeps += sweeps as u64;
                        solved = true;
                    }
                    None => {
                        // Contracts too slowly at this c: the band LU at exactly c (scale
                        // stays 1), for this attempt and every c at least this large.
                        mem.report.jacobi_fallbacks += 1;
                        mem.newton.jacobi_c_max = c;
                        jacobi = false;
                        if mem.newton.c_lu != c && !self.factor(m, mem, c) {
                            return None;
                        }
                    }
                }
            }
            if !solved {
                self.solve(m, &mem.newton, &mut w.dy, &mut w.solve);
                mem.report.lu_solves += 1;
            }
            let mut gaps = 0.0;
            for &(lo, hi, b) in &self.segments {
                let dy = &w.dy[lo..hi];
                let iw = &w.iw_pred[lo..hi];
                let (y, corr) = (&mut w.y[lo..hi], &mut w.corr[lo..hi]);
                let sum = newton_update(k == 0, dy, iw, &w.y_pred[lo..hi], y, corr, scale);
                if b == usize::MAX {
                    // Outside the blocks: weighs nothing, but must be finite.
                    gaps += dy.iter().map(|d| d * 0.0).sum::<f64>();
                } else {
                    sums[b] = sum;
                }
            }
            let dy_norm = if gaps == 0.0 { self.norm_from_sums(&sums) } else { f64::NAN };
            if !dy_norm.is_finite() {
                return None;
            }
            if k > 0 {
                mem.newton.rate = (0.3 * mem.newton.rate).max(dy_norm / dy_old);
            }
            if dy_norm * mem.newton.rate.min(1.0) <= tol || dy_norm == 0.0 {
                return Some(k + 1);
            }
            if k > 0 && dy_norm > 2.0 * dy_old {
                return None;
            }
            dy_old = dy_norm;
        }
        None
    }

    /// One accepted step (with as many attempts as it takes) towards `t_bound`; false when
    /// the member stopped.
    fn step(&self, m: usize, mem: &mut Member, t_bound: f64, span: f64, w: &mut Work) -> bool {
        loop {
            let h_min = 1e-12 * (mem.t.abs() + span);
            if !(mem.h >= h_min) {
                self.stop(mem, &format!("step size underflow (h = {:.3e} < {h_min:.1e})", mem.h));
                return false;
            }
            let order = mem.order;
            let mut h = mem.h;
            let mut t_new = mem.t + h;
            if t_new >= t_bound || t_bound - t_new <= 1e-12 * h {
                t_new = t_bound;
                let factor = (t_new - mem.t) / h;
                change_d(&mut mem.d, order, factor, &mut w.tmp);
                mem.n_equal_steps = 0;
                h = t_new - mem.t;
                mem.h = h;
            }
            // y⁽⁰⁾ = Σ_{k ≤ order} D[k], ψ = Σ_{k=1..order} (γ_k/α_order) D[k], in one pass.
            let g: [f64; MAX_ORDER + 1] = std::array::from_fn(|k| gamma(k) / alpha(order));
            if self.fused {
                // …and the predictor's inverse weights (Newton's norm).
                let (a, r) = (&self.atol_c, &self.rtol_c);
                let (yp, ps, iw) = (&mut w.y_pred, &mut w.psi, &mut w.iw_pred);
                predict(order, &mem.d, &g, a, r, yp, ps, iw);
            } else {
                w.y_pred.copy_from_slice(&mem.d[0]);
                w.psi.iter_mut().for_each(|x| *x = 0.0);
                for k in 1..=order {
                    for ((yp, ps), dk) in w.y_pred.iter_mut().zip(w.psi.iter_mut()).zip(&mem.d[k]) {
                        *yp += dk;
                        *ps += g[k] * dk;
                    }
                }
            }
            let c = h / alpha(order);
            let mut result = None;
            loop {
                let nw = &mem.newton;
                let stale_lu = stale_factors(nw, c);
                let mut f_pred_valid = false;
                if nw.jac_age == u64::MAX || (stale_lu && nw.jac_age >= JAC_MAX_AGE && !nw.current) {
                    let mut f = std::mem::take(&mut w.f);
                    self.rhs(m, t_new, &w.y_pred, &mut f, &mut w.scratch);
                    mem.report.rhs_evaluations += 1;
                    if f.iter().all(|x| x.is_finite()) {
                        let y_pred = std::mem::take(&mut w.y_pred);
                        self.jacobian(m, mem, t_new, &y_pred, &f, &mut w.scratch);
                        w.y_pred = y_pred;
                        f_pred_valid = true;
                    }
                    w.f = f;
                }
                let jacobi = self.jacobi_ready(m, mem, c);
                let nw = &mem.newton;
                let stale_lu = stale_factors(nw, c);
                if !jacobi
                    && (stale_lu || nw.c_lu.is_nan())
                    && mem.newton.jac_age != u64::MAX
                    && !self.factor(m, mem, c)
                {
                    break;
                }
                if mem.newton.jac_age == u64::MAX {
                    break;
                }
                result = self.newton(m, mem, t_new, c, w, f_pred_valid, jacobi);
                if result.is_some() || mem.newton.current {
                    break;
                }
                // Not converged with an old J: re-evaluate it at the predictor and retry.
                mem.newton.jac_age = u64::MAX;
            }
            let Some(n_iter) = result else {
                mem.report.rejected += 1;
                mem.h *= 0.25;
                change_d(&mut mem.d, order, 0.25, &mut w.tmp);
                mem.n_equal_steps = 0;
                continue;
            };
            let safety = 0.9 * (2 * NEWTON_MAXITER + 1) as f64 / (2 * NEWTON_MAXITER + n_iter) as f64;
            let ec = error_const(order);
            let err = if self.fused {
                // Weights of (y_n, y_{n+1}) and the norm of ec·d in one pass.
                let mut sums = vec![0.0; self.blocks.len()];
                for &(lo, hi, b) in &self.segments {
                    let (y0, y1, corr) = (&mem.d[0][lo..hi], &w.y[lo..hi], &w.corr[lo..hi]);
                    let (a, r, iw) = (&self.atol_c[lo..hi], &self.rtol_c[lo..hi], &mut w.iw_step[lo..hi]);
                    let sum = error_weights(y0, y1, corr, a, r, iw, ec);
                    if b != usize::MAX {
                        sums[b] = sum;
                    }
                }
                self.norm_from_sums(&sums)
            } else {
                for (e, c) in w.e.iter_mut().zip(&w.corr) {
                    *e = ec * c;
                }
                self.inv_weights(m, &mem.d[0], &w.y, &mut w.iw_step);
                self.norm(m, &w.e, &mem.d[0], &w.y, &w.iw_step)
            };
            let err = if err.is_finite() { err } else { f64::INFINITY };
            if err > 1.0 {
                mem.report.rejected += 1;
                let factor = (safety * err.powf(-1.0 / (order as f64 + 1.0))).clamp(MIN_FACTOR, 0.9);
                mem.h *= factor;
                change_d(&mut mem.d, order, factor, &mut w.tmp);
                mem.n_equal_steps = 0;
                continue;
            }
            // Accepted.
            mem.report.accepted += 1;
            mem.report.steps_per_order[order] += 1;
            mem.newton.current = false;
            mem.newton.jac_age = mem.newton.jac_age.saturating_add(1);
            mem.newton.lu_age += 1;
            mem.n_equal_steps += 1;
            mem.t = t_new;
            // D[order+2] = d − D[order+1]; D[order+1] = d; D[i] += D[i+1] downwards.
            update_d(order, &mut mem.d, &w.corr);
            if mem.n_equal_steps < order + 1 {
                return true;
            }
            // Order and step selection from the neighbouring orders' error estimates.
            let err_m = if order > 1 && self.fused {
                self.norm_scaled(&mem.d[order], error_const(order - 1), &w.iw_step)
            } else if order > 1 {
                let ec = error_const(order - 1);
                for (e, dk) in w.e.iter_mut().zip(&mem.d[order]) {
                    *e = ec * dk;
                }
                self.norm(m, &w.e, &w.y, &w.y, &w.iw_step)
            } else {
                f64::INFINITY
            };
            let err_p = if order < self.max_order && self.fused {
                self.norm_scaled(&mem.d[order + 2], error_const(order + 1), &w.iw_step)
            } else if order < self.max_order {
                let ec = error_const(order + 1);
                for (e, dk) in w.e.iter_mut().zip(&mem.d[order + 2]) {
                    *e = ec * dk;
                }
                self.norm(m, &w.e, &w.y, &w.y, &w.iw_step)
            } else {
                f64::INFINITY
            };
            let factors = [err_m, err, err_p]
                .iter()
                .enumerate()
                .map(|(q, e)| {
                    let e = if e.is_nan() { f64::INFINITY } else { e.max(1e-300) };
                    e.powf(-1.0 / (order + q) as f64)
                })
                .collect::<Vec<f64>>();
            let best = (0..3).fold(1, |b, q| if factors[q] > factors[b] { q } else { b });
            let new_order = order + best - 1;
            let factor = (safety * factors[best]).min(MAX_FACTOR);
            mem.n_equal_steps = 0;
            if new_order == order && (1.0..GROW_MIN).contains(&factor) {
                // Too small a gain to pay for rescaling D: keep h, look again after
                // order + 1 steps.
                return true;
            }
            mem.order = new_order;
            mem.h *= factor;
            change_d(&mut mem.d, new_order, factor, &mut w.tmp);
            mem.n_equal_steps = 0;
            return true;
        }
    }

    fn stop(&self, mem: &mut Member, what: &str) {
        mem.status = status::FAILED;
        mem.reason = format!("stopped at t = {:.6e}: {what}", mem.t);
    }

    /// Advances member `m` to `t_out`; returns its state there (interpolated when its last
    /// step went past an output time before the last).
    fn advance(&self, m: usize, mem: &mut Member, t_out: f64, span: f64, out: &mut [f64]) {
        if mem.status == status::RUNNING {
            let n = self.n;
            let lay = self.problem.layout();
            let v = || vec![0.0; n];
            let mut w = Work {
                y_pred: v(),
                psi: v(),
                y: v(),
                corr: v(),
                f: v(),
                dy: v(),
                e: v(),
                solve: v(),
                scratch: vec![0.0; lay.scratch_len.max(1)],
                tmp: (0..=MAX_ORDER).map(|_| Vec::with_capacity(n)).collect(),
                iw_pred: v(),
                iw_step: v(),
                jx: v(),
                jx_new: v(),
            };
            let mut steps = 0u64;
            while mem.t < t_out {
                if steps >= self.opts.max_steps {
                    self.stop(mem, &format!("max_steps = {} exceeded", self.opts.max_steps));
                    break;
                }
                steps += 1;
                if !self.step(m, mem, span, span, &mut w) {
                    break;
                }
            }
        }
        if mem.t > t_out && mem.status == status::RUNNING {
            // The order-k interpolant through the last k + 1 points (differences at spacing h).
            let (h, k) = (mem.h, mem.order);
            let mut p = [0.0; MAX_ORDER];
            let mut acc = 1.0;
            for j in 0..k {
                acc *= (t_out - (mem.t - h * j as f64)) / (h * (1 + j) as f64);
                p[j] = acc;
            }
            for i in 0..self.n {
                out[i] = mem.d[0][i] + (0..k).map(|j| mem.d[j + 1][i] * p[j]).sum::<f64>();
            }
        } else {
            out.copy_from_slice(&mem.d[0]);
        }
    }
}

/// Integrates `problem` (`y′ = f`) on the host with variable-order BDF/NDF; also returns
/// each member's counts.
pub fn integrate_host(
    problem: &dyn BatchProblem,
    opts: &SolveOptions,
    on_output: &mut dyn FnMut(&OutputFrame<'_>) -> Result<()>,
) -> Result<(SolveStats, Vec<MemberReport>)> {
    integrate_host_up_to(problem, opts, MAX_ORDER, on_output)
}

/// As [`integrate_host`] with orders `1..=max_order` only (convergence tests).
pub fn integrate_host_up_to(
    problem: &dyn BatchProblem,
    opts: &SolveOptions,
    max_order: usize,
    on_output: &mut dyn FnMut(&OutputFrame<'_>) -> Result<()>,
) -> Result<(SolveStats, Vec<MemberReport>)> {
    let max_order = max_order.clamp(1, MAX_ORDER);
    let lay = problem.layout();
    let (batch, n) = (lay.batch, lay.state_len);
    if opts.output_times.is_empty() {
        return Err(NeqkinError::invalid("solver.output_times", "no output time requested"));
    }
    let mut blocks = problem.tolerance_blocks(opts.atol, opts.rtol);
    for b in &mut blocks {
        b.end = b.end.min(n);
    }
    // A block with a tiny atol controls tiny components relatively: so must their columns.
    let mut fd_floor = vec![1e-6f64; n];
    for b in &blocks {
        let floor = if b.rtol > 0.0 { (b.atol / b.rtol).min(1e-6) } else { 1e-6 };
        for x in &mut fd_floor[b.start.min(n)..b.end.min(n)] {
            *x = x.min(floor).max(1e-290);
        }
    }
    let reference = crate::engine::integrators::reference_state(problem, opts)?;
    let prepared = (0..batch).map(|_| std::sync::OnceLock::new()).collect();
    let disjoint = {
        let mut sorted: Vec<(usize, usize)> = blocks.iter().map(|b| (b.start, b.end)).collect();
        sorted.sort_unstable();
        sorted.windows(2).all(|p| p[0].1 <= p[1].0)
    };
    let fused = disjoint && reference.is_none();
    let (mut atol_c, mut rtol_c) = (vec![f64::INFINITY; n], vec![0.0; n]);
    let mut segments = Vec::new();
    if fused {
        let mut order: Vec<usize> = (0..blocks.len()).collect();
        order.sort_by_key(|&b| blocks[b].start);
        let mut at = 0;
        for b in order {
            let (lo, hi) = (blocks[b].start.min(n), blocks[b].end.min(n));
            if lo >= hi {
                continue;
            }
            if at < lo {
                segments.push((at, lo, usize::MAX));
            }
            atol_c[lo..hi].iter_mut().for_each(|x| *x = blocks[b].atol);
            rtol_c[lo..hi].iter_mut().for_each(|x| *x = blocks[b].rtol);
            segments.push((lo, hi, b));
            at = hi;
        }
        if at < n {
            segments.push((at, n, usize::MAX));
        }
    }
    let ctx = Ctx {
        problem,
        prepared,
        opts,
        blocks,
        fd_floor,
        reference,
        n,
        max_order,
        disjoint,
        fused,
        atol_c,
        rtol_c,
        segments,
    };
    let span = *opts.output_times.last().unwrap();
    let y0 = problem.initial_state();
    let mut members: Vec<Member> = (0..batch)
        .into_par_iter()
        .map(|m| {
            let y = y0[m * n..(m + 1) * n].to_vec();
            let mut scratch = vec![0.0; lay.scratch_len.max(1)];
            let mut f0 = vec![0.0; n];
            ctx.rhs(m, 0.0, &y, &mut f0, &mut scratch);
            let mut report = MemberReport {
                rhs_evaluations: 1,
                sparse: ctx.prepared(m).is_some(),
                band: ctx.prepared(m).map_or((0, 0), |p| (p.kl, p.ku)),
                ..Default::default()
            };
            // Initial step (Hairer–Wanner's rule for order 1, as SciPy, aiming at
            // INITIAL_ERROR of the tolerance instead of 0.01): one Euler probe.
            let reference = ctx.reference(m);
            let d0 = error_norm(&y, &y, &y, None, &ctx.blocks);
            let d1 = error_norm(&f0, &y, &y, reference, &ctx.blocks);
            let mut h0 = if d0 < 1e-5 || d1 < 1e-5 || !d1.is_finite() { 1e-6 } else { 0.01 * d0 / d1 };
            h0 = h0.min(span);
            let h = match opts.dt {
                Some(dt) => dt,
                None => {
                    let y1: Vec<f64> = y.iter().zip(&f0).map(|(a, b)| a + h0 * b).collect();
                    let mut f1 = vec![0.0; n];
                    ctx.rhs(m, h0, &y1, &mut f1, &mut scratch);
                    report.rhs_evaluations += 1;
                    let df: Vec<f64> = f1.iter().zip(&f0).map(|(a, b)| a - b).collect();
                    let d2 = error_norm(&df, &y, &y, reference, &ctx.blocks) / h0;
                    let h1 = if d1 <= 1e-15 && d2 <= 1e-15 || !d2.is_finite() {
                        (h0 * 1e-3).max(1e-6)
                    } else {
                        (INITIAL_ERROR / d1.max(d2)).sqrt()
                    };
                    (INITIAL_CAP * h0).min(h1).min(span)
                }
            };
            let mut d = vec![vec![0.0; n]; MAX_ORDER + 3];
            d[0].copy_from_slice(&y);
            for (a, b) in d[1].iter_mut().zip(&f0) {
                *a = h * b;
            }
            Member {
                t: 0.0,
                h,
                order: 1,
                n_equal_steps: 0,
                d,
                status: status::RUNNING,
                reason: String::new(),
                newton: Newton {
                    lin: Linear::empty(),
                    dense_j: Vec::new(),
                    dense_lu: None,
                    c_lu: f64::NAN,
                    jac_age: u64::MAX,
                    lu_age: 0,
                    current: false,
                    rate: 1.0,
                    split: None,
                    split_built: false,
                    jacobi_c_max: f64::INFINITY,
                },
                report,
            }
        })
        .collect();
    let mut state = vec![0.0; batch * n];
    for (index, &t_out) in opts.output_times.iter().enumerate() {
        members.par_iter_mut().zip(state.par_chunks_mut(n.max(1))).enumerate().for_each(|(m, (mem, out))| {
            ctx.advance(m, mem, t_out, span, out);
            if mem.status == status::RUNNING && mem.t >= t_out {
                mem.status = status::REACHED;
            }
        });
        let reached: Vec<f64> = members.iter().map(|m| if m.status == status::REACHED { t_out } else { m.t }).collect();
        let st: Vec<f64> = members.iter().map(|m| m.status).collect();
        let na: Vec<f64> = members.iter().map(|m| m.report.accepted as f64).collect();
        let nr: Vec<f64> = members.iter().map(|m| m.report.rejected as f64).collect();
        let messages: Vec<String> = members.iter().map(|m| m.reason.clone()).collect();
        on_output(&OutputFrame {
            index,
            t: t_out,
            state: &state,
            time_reached: &reached,
            status: &st,
            n_accept: &na,
            n_reject: &nr,
            messages: &messages,
        })?;
        for m in members.iter_mut() {
            if m.status == status::REACHED {
                m.status = status::RUNNING;
            }
        }
    }
    let reports: Vec<MemberReport> = members.into_iter().map(|m| m.report).collect();
    let stats = SolveStats {
        rhs_evaluations: reports.iter().map(|r| r.rhs_evaluations).sum(),
        program_runs: reports.iter().map(|r| r.accepted + r.rejected).sum(),
        rhs_evaluations_per_member: reports.iter().map(|r| r.rhs_evaluations as f64).sum::<f64>()
            / reports.len().max(1) as f64,
        ..Default::default()
    };
    if std::env::var_os("NEQKIN_BDF_STATS").is_some() {
        for (i, r) in reports.iter().enumerate() {
            eprintln!("bdf member {i}: {r:?}");
        }
    }
    Ok((stats, reports))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass rescaling of the differences gives the bits of the row-by-row formula
    /// `D[j] ← Σ_k (RU)[k][j]·D[k]`, and the dispatched predictor and difference update those
    /// of their portable builds, at every order.
    #[test]
    fn fused_difference_passes_match_the_row_formulas() {
        let n = 37;
        let rows = |seed: f64| -> Vec<Vec<f64>> {
            (0..MAX_ORDER + 3).map(|k| (0..n).map(|i| ((i * 7 + k) as f64 * seed).sin()).collect()).collect()
        };
        for order in 1..=MAX_ORDER {
            let factor = 1.7;
            let mut d = rows(0.3);
            let d0 = d.clone();
            let mut tmp: Vec<Vec<f64>> = (0..=MAX_ORDER).map(|_| Vec::new()).collect();
            change_d(&mut d, order, factor, &mut tmp);
            let (r, u) = (compute_r(order, factor), compute_r(order, 1.0));
            for j in 0..=order {
                let ru: Vec<f64> = (0..=order).map(|k| (0..=order).map(|q| r[k][q] * u[q][j]).sum::<f64>()).collect();
                for i in 0..n {
                    let mut a = ru[0] * d0[0][i];
                    for k in 1..=order {
                        a += ru[k] * d0[k][i];
                    }
                    assert_eq!(d[j][i], a, "order {order} row {j} component {i}");
                }
            }
            let g: [f64; MAX_ORDER + 1] = std::array::from_fn(|k| gamma(k) / alpha(order));
            let (atol, rtol) = (vec![1e-9; n], vec![1e-6; n]);
            let mut a = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
            let mut b = a.clone();
            predict(order, &d0, &g, &atol, &rtol, &mut a.0, &mut a.1, &mut a.2);
            predict_portable(order, &d0, &g, &atol, &rtol, &mut b.0, &mut b.1, &mut b.2);
            assert_eq!(a, b);
            let (mut da, mut db) = (d0.clone(), d0.clone());
            update_d(order, &mut da, &d0[7]);
            update_d_portable(order, &mut db, &d0[7]);
            assert_eq!(da, db);
        }
    }

    /// The lane-summed passes of the step agree with the plain sums to rounding, and the
    /// dispatched builds with the portable ones bit for bit (lengths not a multiple of the
    /// lanes included).
    #[test]
    fn lane_sums_agree_with_plain_sums() {
        let mut seed = 7u64;
        let mut rnd = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        for n in [0usize, 1, 7, 8, 9, 2051] {
            let v = |r: &mut dyn FnMut() -> f64| (0..n).map(|_| r()).collect::<Vec<f64>>();
            let (y0, y1, corr, dy) = (v(&mut rnd), v(&mut rnd), v(&mut rnd), v(&mut rnd));
            let atol = vec![1e-9; n];
            let rtol = vec![1e-6; n];
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1e-300);
            let (mut iw, mut iw_p) = (vec![0.0; n], vec![0.0; n]);
            let s = error_weights(&y0, &y1, &corr, &atol, &rtol, &mut iw, 0.3);
            let sp = error_weights_portable(&y0, &y1, &corr, &atol, &rtol, &mut iw_p, 0.3);
            let plain: f64 = (0..n)
                .map(|i| {
                    let w = 1.0 / (atol[i] + rtol[i] * y0[i].abs().max(y1[i].abs()));
                    (0.3 * corr[i] * w).powi(2)
                })
                .sum();
            assert!(close(s, plain), "n {n}: {s} vs {plain}");
            assert_eq!((s, &iw), (sp, &iw_p));
            let ss = sum_sq_scaled(&dy, &iw, 0.7);
            let plain: f64 = (0..n).map(|i| (0.7 * dy[i] * iw[i]).powi(2)).sum();
            assert!(close(ss, plain) && ss == sum_sq_scaled_portable(&dy, &iw, 0.7));
            for first in [true, false] {
                let (mut y, mut c) = (y1.clone(), corr.clone());
                let (mut yp, mut cp) = (y1.clone(), corr.clone());
                let s = newton_update(first, &dy, &iw, &y0, &mut y, &mut c, 0.9);
                let sp = newton_update_portable(first, &dy, &iw, &y0, &mut yp, &mut cp, 0.9);
                assert_eq!((s, &y, &c), (sp, &yp, &cp));
                let plain: f64 = (0..n).map(|i| (0.9 * dy[i] * iw[i]).powi(2)).sum();
                assert!(close(s, plain), "n {n}: {s} vs {plain}");
                for i in 0..n {
                    let d = 0.9 * dy[i];
                    let (ye, ce) = if first { (y0[i] + d, d) } else { (y1[i] + d, corr[i] + d) };
                    assert_eq!((y[i], c[i]), (ye, ce));
                }
            }
        }
    }
}
