//! Linearly-implicit Rosenbrock-W method ROS34PW2 (Rang & Angermann 2005: order 3, embedded
//! order 2, four stages, L-stable, stiffly accurate, a W-method) on the host (CPU backend only),
//! with a sparse Jacobian from coloured finite differences on a pattern the model declares
//! ([`BatchProblem::jacobian_pattern`]) and a band LU of `W = I − γhJ` after a reverse
//! Cuthill–McKee ordering. For the stability-limited regime of the explicit methods (the
//! photoexcited model at large ζ: a real, negative Jacobian spectrum; see
//! `docs/models/photoexcited.md`).
//!
//! ## Method (Hairer–Wanner form)
//! Each step solves, for `i = 1..4`,
//! `W kᵢ = h f(tₙ + cᵢh, yₙ + Σⱼ aᵢⱼkⱼ) + h J Σⱼ γᵢⱼkⱼ + h² dᵢ ∂f/∂t`, `W = I − γhJ`,
//! and sets `yₙ₊₁ = yₙ + Σ bᵢkᵢ`; the error estimate is `Σ (bᵢ − b̂ᵢ) kᵢ` (order 2), measured
//! in the explicit methods' norm ([`error_norm`]: the model's tolerance blocks, weights
//! `atol + rtol·max(|yₙ|, |yₙ₊₁|)` or the deviation from the reference state). Controller
//! `h·clamp(0.9 err^{−1/3}, 0.2, 5)`.
//!
//! Because ROS34PW2 is a W-method, its order does not depend on `J` being the exact Jacobian:
//! `J` (and with it `W`'s LU) is kept over many steps. `J` is re-evaluated after a rejected step
//! taken with an old `J`, and when `W` must be refactorised anyway and `J` is at least
//! [`JAC_MAX_AGE`] accepted steps old; `W` is refactorised only when `h` changes, and `h` is
//! kept while the controller would grow it by less than [`GROW_MIN`].
//!
//! ## The Jacobian
//! The pattern splits the state into a sparse *core* (`0..core`, each row listing the core
//! columns it depends on) and a small dense *border* (`core..n`, e.g. a global phonon
//! occupation). Core columns are grouped by a greedy colouring (columns sharing no row), one
//! right-hand-side evaluation per colour; every border column is one evaluation; `∂f/∂t` one
//! more unless the model says the RHS is autonomous. All of them count as RHS evaluations in
//! [`SolveStats::rhs_evaluations`]. The border rows' dependence on the core is not evaluated
//! (taken as 0): exact when those rows do not depend on the core (the pattern says so with
//! `border_rows_coupled = false`), otherwise a W-method approximation that keeps the order.
//! With that, `W = [A B; 0 D]` is block upper triangular: `D` (border × border) by a small
//! dense LU, `A` (core) by a band LU without pivoting in the reverse Cuthill–McKee order (for
//! `W = I − γhJ` with `J` a Metzler matrix whose weighted column sums vanish, `A` is an
//! M-matrix and needs no pivoting; in general a pivot below `1e-12` of the largest entry
//! rejects the step and shrinks `h`, and `W → I` as `h → 0`).

// Coefficients are written as published (more digits than f64 holds); the CSR/CSC and band
// loops index several arrays with one index; `!(x > y)` is meant to be true for NaN.
#![allow(clippy::excessive_precision, clippy::needless_range_loop)]

use rayon::prelude::*;

use crate::engine::backend::Backend;
use crate::engine::cpu::error_norm;
use crate::engine::model::BatchProblem;
use crate::engine::program::{status, ToleranceBlock};
use crate::engine::solve::{OutputFrame, SolveOptions, SolveStats};
pub use crate::engine::sparse_jacobian::JacobianPattern;
use crate::engine::sparse_jacobian::{declared_pattern, Linear, Prepared};
use crate::{NeqkinError, Result};

/// Accepted steps after which `J` is re-evaluated at the next refactorisation of `W`.
pub const JAC_MAX_AGE: u64 = 12;
/// Stability-limited DOPRI5 steps (fewer than 6 others in between) after which a member switches to ROS34PW2.
pub const STIFF_STEPS: u32 = 5;
/// `h·ρ̂` above which an explicit step counts as stability-limited.
pub const STIFF_HRHO: f64 = 2.5;
/// `h` is kept (and `W`'s LU reused) while the controller would grow it by less than this.
pub const GROW_MIN: f64 = 1.5;

/// ROS34PW2 coefficients (Rang & Angermann 2005), Hairer–Wanner form.
const GAMMA: f64 = 4.358_665_215_084_590e-1;
const A: [[f64; 3]; 4] = [
    [0.0, 0.0, 0.0],
    [8.717_330_430_169_180_1e-1, 0.0, 0.0],
    [8.445_706_001_536_942_3e-1, -1.129_906_423_639_798_1e-1, 0.0],
    [0.0, 0.0, 1.0],
];
const G: [[f64; 3]; 4] = [
    [0.0, 0.0, 0.0],
    [-8.717_330_430_169_180_1e-1, 0.0, 0.0],
    [-9.033_805_701_304_408_2e-1, 5.418_067_238_809_532_6e-2, 0.0],
    [2.421_238_070_609_534_6e-1, -1.223_250_583_904_514_7, 5.452_602_553_351_021_4e-1],
];
const B: [f64; 4] =
    [2.421_238_070_609_534_6e-1, -1.223_250_583_904_514_7, 1.545_260_255_335_102_3, 4.358_665_215_084_590e-1];
const BHAT: [f64; 4] = [3.781_090_314_581_936_9e-1, -9.604_229_221_242_317_8e-2, 0.5, 2.179_332_607_542_295e-1];

/// One member's integration state.
struct Member {
    t: f64,
    y: Vec<f64>,
    /// `f(t, y)` (valid when `f0_valid`).
    f0: Vec<f64>,
    f0_valid: bool,
    h: f64,
    status: f64,
    n_accept: u64,
    n_reject: u64,
    evals: u64,
    n_jac: u64,
    n_lu: u64,
    /// Accepted steps since `J` was evaluated (`u64::MAX`: never).
    jac_age: u64,
    lin: Linear,
    reason: String,
    /// Still in the explicit DOPRI5 phase.
    explicit: bool,
    /// Explicit steps with `h·ρ̂ >` [`STIFF_HRHO`] (stability-limited) so far.
    stiff_steps: u32,
    /// Consecutive accepted explicit steps that were not stability-limited.
    nonstiff_steps: u32,
    /// Time of the switch to ROS34PW2 (NaN: not switched).
    t_switch: f64,
    /// RHS evaluations before the switch.
    evals_switch: u64,
    work: Work,
}

/// `dst = y + Σ_j c_j k_j` in one pass (`S` terms, unrolled).
#[inline(always)]
fn combine_n<const S: usize>(dst: &mut [f64], y: &[f64], c: &[f64], k: &[Vec<f64>]) {
    let n = dst.len();
    let y = &y[..n];
    let c: [f64; S] = std::array::from_fn(|j| c[j]);
    let k: [&[f64]; S] = std::array::from_fn(|j| &k[j][..n]);
    for i in 0..n {
        let mut acc = 0.0;
        for j in 0..S {
            acc += c[j] * k[j][i];
        }
        dst[i] = y[i] + acc;
    }
}

/// `dst = y + Σ_{j < c.len()} c_j k_j` in one pass (up to 7 terms).
fn combine(dst: &mut [f64], y: &[f64], c: &[f64], k: &[Vec<f64>]) {
    match c.len() {
        0 => dst.copy_from_slice(y),
        1 => combine_n::<1>(dst, y, c, k),
        2 => combine_n::<2>(dst, y, c, k),
        3 => combine_n::<3>(dst, y, c, k),
        4 => combine_n::<4>(dst, y, c, k),
        5 => combine_n::<5>(dst, y, c, k),
        6 => combine_n::<6>(dst, y, c, k),
        _ => combine_n::<7>(dst, y, c, k),
    }
}

/// Stage vectors of one member.
struct Work {
    k: Vec<Vec<f64>>,
    ys: Vec<f64>,
    y6: Vec<f64>,
    y1: Vec<f64>,
    e: Vec<f64>,
    g: Vec<f64>,
    jg: Vec<f64>,
    solve: Vec<f64>,
    /// All zeros (the base of the combinations that have none).
    zero: Vec<f64>,
}

impl Work {
    fn new(n: usize) -> Work {
        let v = || vec![0.0; n];
        Work {
            k: (0..7).map(|_| v()).collect(),
            ys: v(),
            y6: v(),
            y1: v(),
            e: v(),
            g: v(),
            jg: v(),
            solve: v(),
            zero: v(),
        }
    }
}

struct Ctx<'a> {
    problem: &'a dyn BatchProblem,
    /// Each member's prepared pattern, built when it first needs a Jacobian.
    prepared: Vec<std::sync::OnceLock<Prepared>>,
    opts: &'a SolveOptions,
    blocks: Vec<ToleranceBlock>,
    fd_floor: Vec<f64>,
    reference: Option<Vec<f64>>,
    n: usize,
    trace: bool,
    explicit_start: bool,
}

thread_local! {
    /// Stage vectors, reused by the members a thread integrates one after another.
    static POOL: std::cell::RefCell<Vec<Work>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Ctx<'_> {
    /// Member `m`'s prepared Jacobian pattern (built on first use).
    fn prepared(&self, m: usize) -> &Prepared {
        self.prepared[m].get_or_init(|| {
            let n = self.n;
            let pat = declared_pattern(self.problem, m).unwrap_or_else(|| JacobianPattern::dense(n));
            Prepared::new(&pat, n)
        })
    }

    fn rhs(&self, m: usize, t: f64, y: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        let lay = self.problem.layout();
        let p = &self.problem.params()[m * lay.params_len..(m + 1) * lay.params_len];
        let tab = &self.problem.tables()[m * lay.table_stride..m * lay.table_stride + lay.table_len];
        self.problem.rhs_member(m, p, tab, t, y, out, scratch);
    }

    /// Evaluates `J` (and `∂f/∂t`) at the member's state; `f0` must be valid.
    #[inline(never)]
    fn jacobian(&self, m: usize, mem: &mut Member, scratch: &mut [f64]) {
        let p = self.prepared(m);
        let mut rhs = |t: f64, y: &[f64], out: &mut [f64]| self.rhs(m, t, y, out, scratch);
        mem.evals += mem.lin.evaluate(p, &mut rhs, mem.t, &mem.y, &mem.f0, &self.fd_floor, true, mem.h);
        mem.n_jac += 1;
        mem.jac_age = 0;
    }

    /// One attempt of step `h`: writes the new state to `work.y1` and returns its error
    /// norm, or None (singular `W`, non-finite stage).
    #[inline(never)]
    fn attempt(&self, m: usize, mem: &mut Member, h: f64, scratch: &mut [f64]) -> Option<f64> {
        let p = self.prepared(m);
        let n = self.n;
        if mem.lin.band.is_none() || mem.lin.gh != GAMMA * h {
            mem.n_lu += 1;
            if !mem.lin.factor(p, GAMMA * h) {
                mem.lin.band = None;
                return None;
            }
        }
        if !mem.f0_valid {
            let mut f0 = std::mem::take(&mut mem.f0);
            self.rhs(m, mem.t, &mem.y, &mut f0, scratch);
            mem.f0 = f0;
            mem.f0_valid = true;
            mem.evals += 1;
        }
        let w = &mut mem.work;
        for s in 0..4 {
            let mut rhs = std::mem::take(&mut w.k[s]);
            if s == 0 {
                for (r, f) in rhs.iter_mut().zip(&mem.f0) {
                    *r = h * f;
                }
            } else {
                let (a, g) = (&A[s][..s], &G[s][..s]);
                combine(&mut w.ys, &mem.y, a, &w.k);
                combine(&mut w.g, &w.zero, g, &w.k);
                let c: f64 = a.iter().sum();
                self.rhs(m, mem.t + c * h, &w.ys, &mut rhs, scratch);
                mem.evals += 1;
                mem.lin.matvec(p, &w.g, &mut w.jg);
                for (r, jg) in rhs.iter_mut().zip(&w.jg) {
                    *r = h * (*r + jg);
                }
            }
            if !mem.lin.ft.is_empty() {
                let d = h * h * (GAMMA + G[s].iter().sum::<f64>());
                for (r, ft) in rhs.iter_mut().zip(&mem.lin.ft) {
                    *r += d * ft;
                }
            }
            mem.lin.solve(p, &mut rhs, &mut w.solve);
            let finite = rhs.iter().all(|x| x.is_finite());
            w.k[s] = rhs;
            if !finite {
                return None;
            }
        }
        combine(&mut w.y1, &mem.y, &B, &w.k);
        let eb: [f64; 4] = std::array::from_fn(|s| B[s] - BHAT[s]);
        combine(&mut w.e, &w.zero, &eb, &w.k);
        let reference = self.reference.as_ref().map(|r| &r[m * n..(m + 1) * n]);
        let err = error_norm(&w.e, &mem.y, &w.y1, reference, &self.blocks);
        Some(if err.is_finite() { err } else { f64::INFINITY })
    }

    /// One DOPRI5 attempt from the member's state (`f0` valid): accept/reject, the new
    /// step, and the switch to ROS34PW2 once the step is stability-limited.
    #[inline(never)]
    fn explicit_step(&self, m: usize, mem: &mut Member, h: f64, last: bool, t_out: f64, scratch: &mut [f64]) {
        use crate::engine::integrators::{DP_A, DP_C, DP_E};
        let n = self.n;
        let w = &mut mem.work;
        // k[0] = f(y); k[1..=6] the stages; stage 6 (c = 1, 5th-order weights) is y_new.
        w.k[0].copy_from_slice(&mem.f0);
        for stage in 1..7 {
            let a = DP_A[stage - 1];
            let dst = if stage == 5 { &mut w.y6 } else { &mut w.ys };
            let mut c = [0.0; 7];
            for (cj, aj) in c.iter_mut().zip(a) {
                *cj = h * aj;
            }
            combine(dst, &mem.y, &c[..a.len()], &w.k);
            let mut f = std::mem::take(&mut w.k[stage]);
            let src = if stage == 5 { &w.y6 } else { &w.ys };
            self.rhs(m, mem.t + DP_C[stage] * h, src, &mut f, scratch);
            w.k[stage] = f;
            mem.evals += 1;
        }
        let c: [f64; 7] = std::array::from_fn(|j| h * DP_E[j]);
        combine(&mut w.e, &w.zero, &c, &w.k);
        let reference = self.reference.as_ref().map(|r| &r[m * n..(m + 1) * n]);
        let err = error_norm(&w.e, &mem.y, &w.ys, reference, &self.blocks);
        let err = if err.is_finite() { err } else { f64::INFINITY };
        if err <= 1.0 {
            // Hairer's stiffness estimate ρ̂ = ‖f(y_new) − f(y₆)‖ / ‖y_new − y₆‖.
            let (mut num, mut den) = (0.0, 0.0);
            for i in 0..n {
                num += (w.k[6][i] - w.k[5][i]).powi(2);
                den += (w.ys[i] - w.y6[i]).powi(2);
            }
            // Hairer's test (dopri5.f), with the threshold below DOPRI5's real stability
            // boundary 3.3: stability-limited steps fluctuate about it, with rejections.
            if den > 0.0 && h * (num / den).sqrt() > STIFF_HRHO {
                mem.stiff_steps += 1;
                mem.nonstiff_steps = 0;
            } else {
                mem.nonstiff_steps += 1;
                if mem.nonstiff_steps >= 6 {
                    mem.stiff_steps = 0;
                }
            }
            std::mem::swap(&mut mem.y, &mut w.ys);
            mem.f0.copy_from_slice(&w.k[6]);
            mem.f0_valid = true;
            mem.t = if last { t_out } else { mem.t + h };
            mem.n_accept += 1;
            let fac = (0.9 * err.max(1e-10).powf(-0.2)).clamp(0.2, 10.0);
            mem.h = if last { mem.h.max(h * fac) } else { h * fac };
            if mem.stiff_steps >= STIFF_STEPS {
                mem.explicit = false;
                mem.t_switch = mem.t;
                mem.evals_switch = mem.evals;
                mem.h = h;
                mem.jac_age = u64::MAX;
            }
        } else {
            mem.n_reject += 1;
            let fac = (0.9 * err.powf(-0.2)).clamp(0.2, 0.9);
            mem.h = h * if fac.is_finite() { fac } else { 0.2 };
        }
    }

    /// Advances one member to `t_out` with a thread's pooled stage vectors.
    fn advance(&self, m: usize, mem: &mut Member, t_out: f64, span: f64) {
        let n = self.n;
        let work = POOL.with(|p| p.borrow_mut().pop()).filter(|w| w.ys.len() == n).unwrap_or_else(|| Work::new(n));
        mem.work = work;
        self.advance_with(m, mem, t_out, span);
        let work = std::mem::replace(&mut mem.work, Work::new(0));
        POOL.with(|p| p.borrow_mut().push(work));
    }

    fn advance_with(&self, m: usize, mem: &mut Member, t_out: f64, span: f64) {
        if mem.status != status::RUNNING {
            return;
        }
        let mut scratch = vec![0.0; self.problem.layout().scratch_len.max(1)];
        let mut steps = 0u64;
        while mem.t < t_out {
            let h_min = 1e-12 * (mem.t.abs() + span);
            if mem.h < h_min || !mem.h.is_finite() {
                mem.status = status::FAILED;
                mem.reason = format!("stopped at t = {:.6e}: step size underflow (h = {:.3e})", mem.t, mem.h);
                return;
            }
            if steps >= self.opts.max_steps {
                mem.status = status::FAILED;
                mem.reason = format!("stopped at t = {:.6e}: max_steps = {} exceeded", mem.t, self.opts.max_steps);
                return;
            }
            steps += 1;
            if !mem.f0_valid {
                let mut f0 = std::mem::take(&mut mem.f0);
                self.rhs(m, mem.t, &mem.y, &mut f0, &mut scratch);
                mem.f0 = f0;
                mem.f0_valid = true;
                mem.evals += 1;
            }
            let last = t_out - mem.t <= mem.h * (1.0 + 1e-12);
            let h = if last { t_out - mem.t } else { mem.h };
            if mem.explicit {
                self.explicit_step(m, mem, h, last, t_out, &mut scratch);
                continue;
            }
            if mem.jac_age == u64::MAX {
                self.jacobian(m, mem, &mut scratch);
            }
            match self.attempt(m, mem, h, &mut scratch) {
                Some(err) if err <= 1.0 => {
                    if self.trace {
                        eprintln!("trace m {m} t {:.4e} h {:.3e} err {:.3e} jac_age {}", mem.t, h, err, mem.jac_age);
                    }
                    std::mem::swap(&mut mem.y, &mut mem.work.y1);
                    mem.t = if last { t_out } else { mem.t + h };
                    mem.f0_valid = false;
                    mem.n_accept += 1;
                    mem.jac_age += 1;
                    let fac = (0.9 * err.max(1e-10).powf(-1.0 / 3.0)).min(5.0);
                    let grow = if fac >= GROW_MIN {
                        fac
                    } else if fac >= 1.0 {
                        1.0
                    } else {
                        fac.max(0.2)
                    };
                    // A step cut short by an output time does not shrink the next one.
                    mem.h = if last { mem.h.max(h * grow) } else { h * grow };
                    if mem.lin.gh != GAMMA * mem.h && mem.jac_age >= JAC_MAX_AGE {
                        // W must be refactorised: refresh J first (at the new state).
                        let mut f0 = std::mem::take(&mut mem.f0);
                        self.rhs(m, mem.t, &mem.y, &mut f0, &mut scratch);
                        mem.f0 = f0;
                        mem.f0_valid = true;
                        mem.evals += 1;
                        self.jacobian(m, mem, &mut scratch);
                    }
                }
                other => {
                    mem.n_reject += 1;
                    let fac = match other {
                        Some(err) => (0.9 * err.powf(-1.0 / 3.0)).clamp(0.2, 0.9),
                        None => 0.25,
                    };
                    mem.h = h * if fac.is_finite() { fac } else { 0.2 };
                    if mem.jac_age > 0 {
                        self.jacobian(m, mem, &mut scratch);
                    }
                }
            }
        }
    }
}

/// Integrates one batch with ROS34PW2 on the host. `backend` must be the CPU backend.
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
                "\"rosenbrock\" (linearly implicit, sparse LU on the host) runs on the CPU backend only, not on {} ({}); use --backend cpu",
                info.backend, info.adapter
            ),
        ));
    }
    integrate_host(problem, opts, true, on_output)
}

/// Integrates `problem` on the host (no backend needed): DOPRI5 while its step is
/// accuracy-limited, then ROS34PW2 (`explicit_start = false`: ROS34PW2 from the start).
pub fn integrate_host(
    problem: &dyn BatchProblem,
    opts: &SolveOptions,
    explicit_start: bool,
    on_output: &mut dyn FnMut(&OutputFrame<'_>) -> Result<()>,
) -> Result<SolveStats> {
    let lay = problem.layout();
    let (batch, n) = (lay.batch, lay.state_len);
    if opts.output_times.is_empty() {
        return Err(NeqkinError::invalid("solver.output_times", "no output time requested"));
    }
    let mut blocks = problem.tolerance_blocks(opts.atol, opts.rtol);
    for b in &mut blocks {
        b.end = b.end.min(n);
    }
    let mut fd_floor = vec![1e-6f64; n];
    for b in &blocks {
        let floor = if b.rtol > 0.0 { (b.atol / b.rtol).min(1e-6) } else { 1e-6 };
        for x in &mut fd_floor[b.start.min(n)..b.end.min(n)] {
            *x = x.min(floor).max(1e-290);
        }
    }
    let reference = crate::engine::integrators::reference_state(problem, opts)?;
    let prepared = (0..batch).map(|_| std::sync::OnceLock::new()).collect();
    let trace = std::env::var_os("NEQKIN_ROSENBROCK_TRACE").is_some();
    let ctx = Ctx { problem, prepared, opts, blocks, fd_floor, reference, n, trace, explicit_start };
    let span = *opts.output_times.last().unwrap();
    let y0 = problem.initial_state();
    let mut members: Vec<Member> = (0..batch)
        .into_par_iter()
        .map(|m| {
            let y = y0[m * n..(m + 1) * n].to_vec();
            let mut mem = Member {
                t: 0.0,
                y,
                f0: vec![0.0; n],
                f0_valid: false,
                h: 0.0,
                status: status::RUNNING,
                n_accept: 0,
                n_reject: 0,
                evals: 0,
                n_jac: 0,
                n_lu: 0,
                jac_age: u64::MAX,
                lin: Linear::empty(),
                reason: String::new(),
                explicit: ctx.explicit_start,
                stiff_steps: 0,
                nonstiff_steps: 0,
                t_switch: f64::NAN,
                evals_switch: 0,
                work: Work::new(0),
            };
            let mut scratch = vec![0.0; lay.scratch_len.max(1)];
            let mut f0 = vec![0.0; n];
            ctx.rhs(m, 0.0, &mem.y, &mut f0, &mut scratch);
            mem.evals += 1;
            // Initial step: 1% of the time in which f would change y by its own size
            // (weighted norms), at most 1% of the first output time.
            let reference = ctx.reference.as_ref().map(|r| &r[m * n..(m + 1) * n]);
            let zero = vec![0.0; n];
            let d0 = error_norm(&mem.y, &zero, &zero, None, &ctx.blocks).max(1e-300);
            let d1 = error_norm(&f0, &mem.y, &mem.y, reference, &ctx.blocks);
            let first = opts.output_times[0].max(1e-300);
            mem.h = opts.dt.unwrap_or(if d1 > 0.0 && d1.is_finite() {
                (0.01 * d0 / d1).min(0.01 * first)
            } else {
                0.01 * first
            });
            mem.f0 = f0;
            mem.f0_valid = true;
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
    if std::env::var_os("NEQKIN_ROSENBROCK_STATS").is_some() {
        for (i, m) in members.iter().enumerate() {
            let p = ctx.prepared(i);
            eprintln!(
                "rosenbrock member {i}: accepted {} rejected {} rhs {} jacobians {} LUs {} colours {} band ({}, {}) switched at t = {:.4} after {} evaluations",
                m.n_accept, m.n_reject, m.evals, m.n_jac, m.n_lu, p.n_colours(), p.kl, p.ku, m.t_switch, m.evals_switch
            );
        }
    }
    Ok(stats)
}
