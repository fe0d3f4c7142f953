//! Implicit time stepping for stiff and singular-prone problems: variable-step BDF of
//! orders 1–2 for problems in linearly-implicit form `A(y) y′ = F(y)` (an ODE `y′ = F` is
//! `A = I`), on the host (CPU backend only). `solver.method = "bdf"` on a problem that offers
//! no linearly-implicit form (`BatchProblem::linearly_implicit` is None) runs the
//! variable-order BDF/NDF of [`crate::engine::bdf`] instead (sparse Jacobian on the model's
//! declared pattern); [`integrate_host`] always runs the orders 1–2 below.
//!
//! Why host-side: every step solves the nonlinear BDF equations by Newton's method with a
//! dense Jacobian and an LU factorisation (the crate's one LU, [`crate::engine::dense`] on
//! faer), which the step-program vocabulary does not carry; the GPU backend refuses this
//! method with an error naming `solver.method`.
//!
//! ## Method
//! With `t_{n+1} = t_n + h`, ratio `ω = h/h_{n−1}` and the BDF derivative
//! `v = (a0 y_{n+1} + a1 y_n + a2 y_{n−1})/h` (order 1: `a = (1, −1, 0)`; order 2, variable
//! step: `a0 = (1+2ω)/(1+ω)`, `a1 = −(1+ω)`, `a2 = ω²/(1+ω)`), each step solves
//! `G(y) = A(y) v(y) − F(y) = 0` by Newton with `∂G/∂y = (a0/h) A(y) + ∂[A(y)v − F(y)]/∂y|_v`
//! (the second term from [`LinearlyImplicit::residual_jacobian`] or by finite differences),
//! factorised once per attempt. Local error estimates: order 1 `(h/2)‖v_{n+1} − v_n‖`;
//! order 2 `(2/9) h³ y‴` with `y‴` from the difference between the corrector and the
//! quadratic extrapolation through the last three points. Both the local error and the
//! Newton corrections are measured in the explicit methods' norm (the `ErrorNorm` op's CPU
//! twin [`error_norm`]): the maximum over the model's tolerance blocks
//! ([`BatchProblem::tolerance_blocks`]) of each block's weighted RMS, with weights
//! `atol + rtol·max(|y_n|, |y_{n+1}|)`, or `atol + rtol·max(|y_n − y_ref|, |y_{n+1} − y_ref|)`
//! under `solver.error_scale = "deviation"`. Controller
//! `h·clamp(0.9 err^{−1/(k+1)}, 0.2, 2)` (2 < 1 + √2 keeps variable-step BDF2 zero-stable).
//! Order 2 is used once three points exist and the step ratio is below 2.4.
//!
//! ## Stopping
//! A member stops (FAILED, with a reason in the output) when its step size falls below
//! `1e-12·(|t| + h_output)` or `max_steps` is exceeded. The reason says *why*, from the
//! left-hand matrix at the last accepted state: its smallest LU pivot relative to its
//! largest entry and to the largest entry of the initial `A(y0)`, and its 2-norm condition
//! number (faer SVD, N ≤ 2000), each against its value at `y0`; `A(y)` counts as (nearly)
//! singular when the condition number grew by [`SINGULAR_CONDITION_GROWTH`] or the pivot
//! fell below [`SINGULAR_PIVOT_FALL`] of its initial value. Newton failures and
//! non-finite residuals only shrink the step; a member stops only through these criteria.

use crate::engine::backend::Backend;
use crate::engine::cpu::error_norm;
use crate::engine::dense::{self, Lu};
use crate::engine::model::BatchProblem;
use crate::engine::program::{status, ToleranceBlock};
use crate::engine::solve::{ErrorScale, OutputFrame, SolveOptions, SolveStats};
use crate::{NeqkinError, Result};

/// Growth of the condition number of `A(y)` over that of `A(y0)` above which a stopped run
/// reports `A` as (nearly) singular.
pub const SINGULAR_CONDITION_GROWTH: f64 = 1e3;
/// Fall of the smallest LU pivot of `A(y)` (scaled by the largest entry of `A(y0)`) below
/// this fraction of its initial value makes a stopped run report `A` as (nearly) singular.
pub const SINGULAR_PIVOT_FALL: f64 = 1e-2;
/// Newton iterations per attempt.
const NEWTON_MAX: usize = 7;

/// A problem in linearly-implicit form `A(y) y′ = F(y)` for one member.
pub trait LinearlyImplicit: Send + Sync {
    /// Writes `A(t, y)` row-major (`n × n`).
    fn lhs_matrix(&self, member: usize, t: f64, y: &[f64], a: &mut [f64]);
    /// Writes `F(t, y)`.
    fn force(&self, member: usize, t: f64, y: &[f64], out: &mut [f64]);
    /// Writes `∂[A(y) v − F(y)]/∂y` at fixed `v` (row-major) and returns true, or returns
    /// false to let the engine use finite differences.
    fn residual_jacobian(&self, member: usize, t: f64, y: &[f64], v: &[f64], jac: &mut [f64]) -> bool {
        let _ = (member, t, y, v, jac);
        false
    }
}

/// `y′ = F(y)` from a batch problem's CPU right-hand side (`A = I`).
struct Explicit<'a>(&'a dyn BatchProblem);

impl LinearlyImplicit for Explicit<'_> {
    fn lhs_matrix(&self, _m: usize, _t: f64, y: &[f64], a: &mut [f64]) {
        let n = y.len();
        a.iter_mut().for_each(|x| *x = 0.0);
        for i in 0..n {
            a[i * n + i] = 1.0;
        }
    }
    fn force(&self, m: usize, t: f64, y: &[f64], out: &mut [f64]) {
        let lay = self.0.layout();
        let p = &self.0.params()[m * lay.params_len..(m + 1) * lay.params_len];
        let tab = &self.0.tables()[m * lay.table_stride..m * lay.table_stride + lay.table_len];
        let mut scratch = vec![0.0; lay.scratch_len];
        self.0.rhs_member(m, p, tab, t, y, out, &mut scratch);
    }
}

/// How singular `A(y)` is: (smallest LU pivot relative to the largest entry, 2-norm
/// condition number or NaN above N = 2000), both from [`dense`].
pub fn singularity(n: usize, a: &[f64]) -> (f64, f64) {
    let piv = Lu::factor(n, a).min_pivot();
    let cond = if n <= 2000 { dense::condition_number(n, a) } else { f64::NAN };
    (piv, cond)
}

/// One member's integration state.
struct Member {
    t: f64,
    y: Vec<f64>,
    /// Previous accepted points (t, y), most recent first (at most 2).
    hist: Vec<(f64, Vec<f64>)>,
    /// BDF derivative at the last accepted point.
    v: Vec<f64>,
    h: f64,
    status: f64,
    n_accept: u64,
    n_reject: u64,
    evals: u64,
    reason: String,
    /// Largest |entry| of `A(y0)` (the scale singularity is judged against).
    a_scale: f64,
    /// Smallest pivot (scaled by `a_scale`) and condition number of `A(y0)`.
    initial: (f64, f64),
}

struct Ctx<'a> {
    sys: &'a dyn LinearlyImplicit,
    n: usize,
    opts: &'a SolveOptions,
    /// The model's tolerance blocks: the same weighted RMS norm as the explicit methods'
    /// `ErrorNorm` op ([`error_norm`]), for the local error and the Newton corrections.
    blocks: Vec<ToleranceBlock>,
    /// Per component, the size below which a finite-difference Jacobian column is perturbed
    /// by a fixed amount (the tolerance blocks' `atol/rtol`, at most 1e-6): a block with a
    /// tiny `atol` controls tiny components relatively, so their columns must be too.
    fd_floor: Vec<f64>,
    /// `batch × n` reference state of `solver.error_scale = "deviation"`.
    reference: Option<Vec<f64>>,
}

impl Ctx<'_> {
    /// Member `m`'s reference state, if errors are relative to the deviation from it.
    fn reference(&self, m: usize) -> Option<&[f64]> {
        self.reference.as_ref().map(|r| &r[m * self.n..(m + 1) * self.n])
    }

    fn residual(&self, m: usize, t: f64, y: &[f64], v: &[f64], a: &mut [f64], out: &mut Vec<f64>) {
        let n = self.n;
        self.sys.lhs_matrix(m, t, y, a);
        let mut f = vec![0.0; n];
        self.sys.force(m, t, y, &mut f);
        out.clear();
        out.extend((0..n).map(|i| a[i * n..(i + 1) * n].iter().zip(v).map(|(p, q)| p * q).sum::<f64>() - f[i]));
    }

    /// Newton matrix `(a0/h) A(y) + ∂[A v − F]/∂y`.
    fn newton_matrix(&self, m: usize, t: f64, y: &[f64], v: &[f64], c0: f64, evals: &mut u64) -> Vec<f64> {
        let n = self.n;
        let mut a = vec![0.0; n * n];
        self.sys.lhs_matrix(m, t, y, &mut a);
        let mut jac = vec![0.0; n * n];
        if !self.sys.residual_jacobian(m, t, y, v, &mut jac) {
            // Forward differences, column by column.
            let mut scratch = vec![0.0; n * n];
            let mut g0 = Vec::new();
            self.residual(m, t, y, v, &mut scratch, &mut g0);
            let mut g1 = Vec::new();
            let mut yp = y.to_vec();
            for j in 0..n {
                let d = 1e-8 * y[j].abs().max(self.fd_floor[j]);
                yp[j] = y[j] + d;
                self.residual(m, t, &yp, v, &mut scratch, &mut g1);
                yp[j] = y[j];
                for i in 0..n {
                    jac[i * n + j] = (g1[i] - g0[i]) / d;
                }
            }
            *evals += n as u64 + 1;
        }
        for k in 0..n * n {
            jac[k] += c0 * a[k];
        }
        jac
    }

    /// The initial derivative `A(y0)⁻¹ F(y0)`.
    fn initial_derivative(&self, m: usize, t: f64, y: &[f64]) -> Option<Vec<f64>> {
        let n = self.n;
        let mut a = vec![0.0; n * n];
        self.sys.lhs_matrix(m, t, y, &mut a);
        let mut f = vec![0.0; n];
        self.sys.force(m, t, y, &mut f);
        let lu = Lu::factor(n, &a);
        if lu.is_singular() {
            return None;
        }
        let v = lu.solve(&f);
        v.iter().all(|x| x.is_finite()).then_some(v)
    }

    /// One attempt of step `h` from the member's state with order `k`; returns the new
    /// state, its BDF derivative and the error norm, or None when Newton failed.
    fn attempt(&self, m: usize, mem: &mut Member, h: f64, k: usize) -> Option<(Vec<f64>, Vec<f64>, f64)> {
        let n = self.n;
        let t1 = mem.t + h;
        // Coefficients and predictor.
        let (a0, a1, a2, pred): (f64, f64, f64, Vec<f64>) = if k == 1 {
            (1.0, -1.0, 0.0, mem.y.iter().zip(&mem.v).map(|(y, v)| y + h * v).collect())
        } else {
            let (tp, yp) = &mem.hist[0];
            let w = h / (mem.t - tp);
            let (a0, a1, a2) = ((1.0 + 2.0 * w) / (1.0 + w), -(1.0 + w), w * w / (1.0 + w));
            let pred = quadratic_extrapolation(&mem.hist, mem.t, &mem.y, t1);
            let _ = yp;
            (a0, a1, a2, pred)
        };
        let c: Vec<f64> = (0..n).map(|i| a1 * mem.y[i] + if k == 2 { a2 * mem.hist[0].1[i] } else { 0.0 }).collect();
        let mut y = pred.clone();
        let vof = |y: &[f64]| -> Vec<f64> { (0..n).map(|i| (a0 * y[i] + c[i]) / h).collect() };
        let mut v = vof(&y);
        let lu = Lu::factor(n, &self.newton_matrix(m, t1, &y, &v, a0 / h, &mut mem.evals));
        if lu.is_singular() {
            return None;
        }
        let mut amat = vec![0.0; n * n];
        let mut g = Vec::new();
        let mut prev = f64::INFINITY;
        let mut converged = false;
        for it in 0..NEWTON_MAX {
            self.residual(m, t1, &y, &v, &mut amat, &mut g);
            mem.evals += 1;
            if !g.iter().all(|x| x.is_finite()) {
                return None;
            }
            let d = lu.solve(&g);
            let y_before = y.clone();
            for i in 0..n {
                y[i] -= d[i];
            }
            v = vof(&y);
            let dn = error_norm(&d, &y_before, &y, self.reference(m), &self.blocks);
            if !dn.is_finite() {
                return None;
            }
            // Converged when the correction is well below the error tolerance, or when a
            // contracting iteration (rate ρ = dn/prev < 1) has at most ρ/(1 − ρ)·dn left.
            if dn < 1e-3 || (it > 0 && dn < prev && dn * dn / (prev - dn) < 0.03) {
                converged = true;
                break;
            }
            if it > 1 && dn > 0.9 * prev {
                return None; // diverging or too slow
            }
            prev = dn;
        }
        if !converged {
            return None;
        }
        let err_vec: Vec<f64> = if k == 1 {
            (0..n).map(|i| 0.5 * h * (v[i] - mem.v[i])).collect()
        } else {
            let h1 = mem.t - mem.hist[0].0;
            let h2 = if mem.hist.len() > 1 { mem.hist[0].0 - mem.hist[1].0 } else { h1 };
            let f = (2.0 / 9.0) * h * h * h * 6.0 / (h * (h + h1) * (h + h1 + h2));
            (0..n).map(|i| f * (y[i] - pred[i])).collect()
        };
        let err = error_norm(&err_vec, &mem.y, &y, self.reference(m), &self.blocks);
        Some((y, v, if err.is_finite() { err } else { f64::INFINITY }))
    }

    /// Advances one member to `t_out`.
    fn advance(&self, m: usize, mem: &mut Member, t_out: f64, span: f64) {
        if mem.status != status::RUNNING {
            return;
        }
        let mut steps = 0u64;
        let mut order = 1usize;
        while mem.t < t_out {
            let h_min = 1e-12 * (mem.t.abs() + span);
            if mem.h < h_min {
                self.stop(m, mem, &format!("step size underflow (h = {:.3e} < {h_min:.1e})", mem.h));
                return;
            }
            if steps >= self.opts.max_steps {
                self.stop(m, mem, &format!("max_steps = {} exceeded", self.opts.max_steps));
                return;
            }
            steps += 1;
            let last = t_out - mem.t <= mem.h * (1.0 + 1e-12);
            let h = if last { t_out - mem.t } else { mem.h };
            let k = if mem.hist.len() >= 2 && order == 2 {
                let ratio = h / (mem.t - mem.hist[0].0);
                if ratio < 2.4 {
                    2
                } else {
                    1
                }
            } else {
                1
            };
            match self.attempt(m, mem, h, k) {
                None => {
                    mem.n_reject += 1;
                    mem.h = h * 0.25;
                }
                Some((y, v, err)) if err <= 1.0 => {
                    let old = std::mem::replace(&mut mem.y, y);
                    mem.hist.insert(0, (mem.t, old));
                    mem.hist.truncate(2);
                    mem.t = if last { t_out } else { mem.t + h };
                    mem.v = v;
                    mem.n_accept += 1;
                    if mem.hist.len() >= 2 {
                        order = 2;
                    }
                    let fac = (0.9 * err.max(1e-10).powf(-1.0 / (k as f64 + 1.0))).clamp(0.2, 2.0);
                    // A step cut short by an output time does not shrink the next one.
                    mem.h = if last { mem.h.max(h * fac) } else { h * fac };
                }
                Some((_, _, err)) => {
                    mem.n_reject += 1;
                    let fac = (0.9 * err.powf(-1.0 / (k as f64 + 1.0))).clamp(0.1, 0.9);
                    mem.h = h * if fac.is_finite() { fac } else { 0.1 };
                }
            }
        }
    }

    fn stop(&self, m: usize, mem: &mut Member, what: &str) {
        let n = self.n;
        let mut a = vec![0.0; n * n];
        self.sys.lhs_matrix(m, mem.t, &mem.y, &mut a);
        let amax = a.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let (piv, cond) = singularity(n, &a);
        let piv0 = piv * amax / mem.a_scale.max(1e-300);
        let (p_init, c_init) = mem.initial;
        let singular = cond > SINGULAR_CONDITION_GROWTH * c_init || piv0 < SINGULAR_PIVOT_FALL * p_init || piv == 0.0;
        mem.status = status::FAILED;
        mem.reason = format!(
            "stopped at t = {:.6e}: {what}; {} (smallest LU pivot / max|A(y0)|: {piv0:.3e}, initially {p_init:.3e}; condition number {cond:.3e}, initially {c_init:.3e})",
            mem.t,
            if singular {
                "the left-hand matrix A(y) is (nearly) singular"
            } else {
                "A(y) is not singular: stiffness or a blow-up of F"
            }
        );
    }
}

/// Lagrange extrapolation through `(hist[1], hist[0], (t, y))` (or linear with two points).
fn quadratic_extrapolation(hist: &[(f64, Vec<f64>)], t: f64, y: &[f64], t1: f64) -> Vec<f64> {
    let (ta, ya) = (&hist[0].0, &hist[0].1);
    if hist.len() < 2 {
        let w = (t1 - t) / (t - ta);
        return y.iter().zip(ya).map(|(a, b)| a + w * (a - b)).collect();
    }
    let (tb, yb) = (&hist[1].0, &hist[1].1);
    let l0 = (t1 - ta) * (t1 - tb) / ((t - ta) * (t - tb));
    let l1 = (t1 - t) * (t1 - tb) / ((ta - t) * (ta - tb));
    let l2 = (t1 - t) * (t1 - ta) / ((tb - t) * (tb - ta));
    (0..y.len()).map(|i| l0 * y[i] + l1 * ya[i] + l2 * yb[i]).collect()
}

/// Integrates one batch with variable-step BDF on the host. `backend` must be the CPU
/// backend (checked: other backends get an error naming `solver.method`).
pub fn drive(
    backend: &mut dyn Backend,
    problem: &dyn BatchProblem,
    opts: &SolveOptions,
    on_output: &mut dyn FnMut(&OutputFrame<'_>) -> Result<()>,
) -> Result<SolveStats> {
    let info = backend.info();
    if info.backend != "cpu" {
        return Err(NeqkinError::invalid(
            "solver.method",
            format!(
                "\"bdf\" (implicit, Newton/LU on the host) runs on the CPU backend only, not on {} ({}); use --backend cpu",
                info.backend, info.adapter
            ),
        ));
    }
    if problem.linearly_implicit().is_none() {
        // `y′ = f`: variable-order BDF/NDF with the model's declared sparsity.
        return crate::engine::bdf::integrate_host(problem, opts, on_output).map(|(stats, _)| stats);
    }
    let explicit = Explicit(problem);
    let sys: &dyn LinearlyImplicit = problem.linearly_implicit().unwrap_or(&explicit);
    let n = problem.layout().state_len;
    let mut blocks = problem.tolerance_blocks(opts.atol, opts.rtol);
    for b in &mut blocks {
        b.end = b.end.min(n);
    }
    let reference = crate::engine::integrators::reference_state(problem, opts)?;
    integrate_host_with(sys, problem.layout().batch, n, problem.initial_state(), opts, &blocks, reference, on_output)
}

/// Integrates `batch` members of `sys` from `y0` (member-major) with variable-step BDF and
/// one tolerance block `(solver.atol, solver.rtol)` over the whole state (deviations, under
/// `error_scale = "deviation"`, from `y0`).
pub fn integrate_host(
    sys: &dyn LinearlyImplicit,
    batch: usize,
    n: usize,
    y0: Vec<f64>,
    opts: &SolveOptions,
    on_output: &mut dyn FnMut(&OutputFrame<'_>) -> Result<()>,
) -> Result<SolveStats> {
    let blocks = [ToleranceBlock { start: 0, end: n, atol: opts.atol, rtol: opts.rtol }];
    let reference = (opts.error_scale == ErrorScale::Deviation).then(|| y0.clone());
    integrate_host_with(sys, batch, n, y0, opts, &blocks, reference, on_output)
}

/// Integrates `batch` members of `sys` from `y0` (member-major) with variable-step BDF,
/// measuring local errors and Newton corrections in the norm of the `ErrorNorm` op over
/// `blocks` (components in no block are not controlled), with weights from the deviation
/// from `reference` (`batch × n`) when given.
#[allow(clippy::too_many_arguments)]
pub fn integrate_host_with(
    sys: &dyn LinearlyImplicit,
    batch: usize,
    n: usize,
    y0: Vec<f64>,
    opts: &SolveOptions,
    blocks: &[ToleranceBlock],
    reference: Option<Vec<f64>>,
    on_output: &mut dyn FnMut(&OutputFrame<'_>) -> Result<()>,
) -> Result<SolveStats> {
    use rayon::prelude::*;
    let mut fd_floor = vec![1e-6f64; n];
    for b in blocks {
        let floor = if b.rtol > 0.0 { (b.atol / b.rtol).min(1e-6) } else { 1e-6 };
        for x in &mut fd_floor[b.start.min(n)..b.end.min(n)] {
            *x = x.min(floor).max(1e-290);
        }
    }
    let ctx = Ctx { sys, n, opts, blocks: blocks.to_vec(), fd_floor, reference };
    let span = opts.output_times.last().copied().unwrap_or(1.0);
    let mut members: Vec<Member> = (0..batch)
        .map(|m| {
            let y = y0[m * n..(m + 1) * n].to_vec();
            let mut mem = Member {
                t: 0.0,
                y,
                hist: Vec::new(),
                v: vec![0.0; n],
                h: opts.dt.unwrap_or(1e-6 * opts.output_times.first().copied().unwrap_or(1.0)),
                status: status::RUNNING,
                n_accept: 0,
                n_reject: 0,
                evals: 1,
                reason: String::new(),
                a_scale: 1.0,
                initial: (1.0, 1.0),
            };
            let mut a = vec![0.0; n * n];
            sys.lhs_matrix(m, 0.0, &mem.y, &mut a);
            mem.a_scale = a.iter().fold(0.0f64, |s, x| s.max(x.abs()));
            mem.initial = singularity(n, &a);
            match ctx.initial_derivative(m, 0.0, &mem.y) {
                Some(v) => mem.v = v,
                None => ctx.stop(m, &mut mem, "the initial left-hand matrix cannot be solved"),
            }
            mem
        })
        .collect();
    let mut stats = SolveStats::default();
    for (index, &t_out) in opts.output_times.iter().enumerate() {
        members.par_iter_mut().enumerate().for_each(|(m, mem)| {
            ctx.advance(m, mem, t_out, span);
            if mem.status == status::RUNNING && mem.t >= t_out {
                mem.status = status::REACHED;
            }
        });
        let state: Vec<f64> = members.iter().flat_map(|m| m.y.iter().cloned()).collect();
        let reached: Vec<f64> = members.iter().map(|m| m.t).collect();
        let st: Vec<f64> = members.iter().map(|m| m.status).collect();
        let na: Vec<f64> = members.iter().map(|m| m.n_accept as f64).collect();
        let nr: Vec<f64> = members.iter().map(|m| m.n_reject as f64).collect();
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
    stats.rhs_evaluations = members.iter().map(|m| m.evals).sum();
    stats.rhs_evaluations_per_member = stats.rhs_evaluations as f64 / members.len().max(1) as f64;
    stats.program_runs = members.iter().map(|m| m.n_accept + m.n_reject).sum();
    Ok(stats)
}
