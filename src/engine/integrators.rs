//! Integrators written as step programs (see [`crate::engine::program`]) and the driver
//! that replays them.
//!
//! Every method is a static list of batched ops compiled once per batch; per-member
//! accept/reject and step-size control are ops too, so a chunk of steps runs on the device
//! with no host round-trip. Tableaux are data:
//!
//! * RK4: the classical 4-stage method (Kutta 1901), fixed step.
//! * DOPRI5: Dormand & Prince, J. Comput. Appl. Math. 6, 19 (1980), 5(4) with FSAL and
//!   the elementary controller `h·clamp(0.9·err^(-1/5), 0.2, 10)`.
//! * RKC: second-order Runge-Kutta-Chebyshev of Sommeijer, Shampine & Verwer,
//!   J. Comput. Appl. Math. 88, 315 (1997), damping ε = 2/13. Its real stability interval
//!   grows as ≈0.65·s², so s stages buy steps s² times longer than an explicit method on
//!   diffusion-dominated right-hand sides at a cost of s+1 evaluations. The stage count is
//!   chosen between chunks from the model's spectral-radius bound and the step sizes the
//!   accuracy controller asks for; each member's step is capped at its stability limit.

use std::collections::HashMap;

use crate::engine::backend::{Backend, Precision, ProgramId};
use crate::engine::model::BatchProblem;
use crate::engine::program::{status, ControlIds, ControlLaw, Op, ScalarId, StepProgram, ToleranceBlock, VecId};
use crate::engine::solve::{ErrorScale, Method, OutputFrame, SolveOptions, SolveStats};
use crate::{NeqkinError, Result};

/// Dormand-Prince 5(4) nodes.
pub(crate) const DP_C: [f64; 7] = [0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0, 1.0];
/// Dormand-Prince coupling coefficients, row `s` holds `a_{s+1, 1..=s}`.
pub(crate) const DP_A: [&[f64]; 6] = [
    &[1.0 / 5.0],
    &[3.0 / 40.0, 9.0 / 40.0],
    &[44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0],
    &[19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0],
    &[9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0, -5103.0 / 18656.0],
    &[35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0],
];
/// Difference between the 5th- and 4th-order weights (error estimate).
pub(crate) const DP_E: [f64; 7] =
    [71.0 / 57600.0, 0.0, -71.0 / 16695.0, 71.0 / 1920.0, -17253.0 / 339200.0, 22.0 / 525.0, -1.0 / 40.0];

/// RKC damping parameter ε (Verwer et al.): widens the stability region's neck.
const RKC_DAMPING: f64 = 2.0 / 13.0;
/// Fraction of the (approximate) real stability boundary `(s² − 1)·(2 − 4ε/3)/... ` used
/// as each member's step cap; conservative below the exact β(s) ≈ 0.653·s².
const RKC_STABILITY_FRACTION: f64 = 0.6;
/// Largest stage count the driver will use.
const RKC_MAX_STAGES: usize = 400;

/// Coefficients of an s-stage RKC2 method.
#[derive(Clone, Debug)]
pub struct RkcCoefficients {
    /// μ̃_1.
    pub mu_tilde_1: f64,
    /// For j = 2..=s: (μ_j, ν_j, μ̃_j, γ̃_j, c_{j−1}).
    pub stages: Vec<(f64, f64, f64, f64, f64)>,
}

/// Chebyshev polynomial T_j and its first two derivatives at x, for j = 0..=s.
fn chebyshev(s: usize, x: f64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut t = vec![0.0; s + 1];
    let mut dt = vec![0.0; s + 1];
    let mut ddt = vec![0.0; s + 1];
    t[0] = 1.0;
    if s >= 1 {
        t[1] = x;
        dt[1] = 1.0;
    }
    for j in 2..=s {
        t[j] = 2.0 * x * t[j - 1] - t[j - 2];
        dt[j] = 2.0 * t[j - 1] + 2.0 * x * dt[j - 1] - dt[j - 2];
        ddt[j] = 4.0 * dt[j - 1] + 2.0 * x * ddt[j - 1] - ddt[j - 2];
    }
    (t, dt, ddt)
}

impl RkcCoefficients {
    /// Coefficients for `s ≥ 2` stages (Sommeijer, Shampine & Verwer 1997, Sec. 2).
    pub fn new(s: usize) -> Self {
        assert!(s >= 2, "RKC needs at least 2 stages");
        let w0 = 1.0 + RKC_DAMPING / (s * s) as f64;
        let (t, dt, ddt) = chebyshev(s, w0);
        let w1 = dt[s] / ddt[s];
        let mut b = vec![0.0; s + 1];
        for j in 2..=s {
            b[j] = ddt[j] / (dt[j] * dt[j]);
        }
        b[0] = b[2];
        b[1] = b[2];
        let a: Vec<f64> = (0..=s).map(|j| 1.0 - b[j] * t[j]).collect();
        // c_j = w1·T_j''(w0)/T_j'(w0) for j ≥ 2, c_1 = c_2/T_2'(w0), c_s = 1.
        let mut c = vec![0.0; s + 1];
        for j in 2..=s {
            c[j] = w1 * ddt[j] / dt[j];
        }
        c[1] = c[2] / dt[2];
        let mu_tilde_1 = b[1] * w1;
        let mut stages = Vec::with_capacity(s - 1);
        for j in 2..=s {
            let mu = 2.0 * b[j] * w0 / b[j - 1];
            let nu = -b[j] / b[j - 2];
            let mu_t = 2.0 * b[j] * w1 / b[j - 1];
            let gamma_t = -a[j - 1] * mu_t;
            stages.push((mu, nu, mu_t, gamma_t, c[j - 1]));
        }
        RkcCoefficients { mu_tilde_1, stages }
    }

    /// Real stability limit of `h·ρ` used as the step cap.
    pub fn stable_h_rho(s: usize) -> f64 {
        RKC_STABILITY_FRACTION * ((s * s) as f64 - 1.0) + 1e-12
    }
}

/// Storage of one integration.
struct Workspace {
    ctrl: ControlIds,
    stage_time: ScalarId,
    y: VecId,
    /// Derivative at the current state (FSAL for DOPRI5/RKC).
    f0: VecId,
    /// Reference state of `solver.error_scale = "deviation"` (`None`: errors relative to
    /// the state).
    reference: Option<VecId>,
    scratch: Vec<VecId>,
}

fn alloc(backend: &mut dyn Backend, n_scratch: usize, deviation: bool) -> Result<Workspace> {
    let mut s = || backend.new_scalars();
    let ctrl = ControlIds {
        t: s()?,
        h: s()?,
        t_end: s()?,
        status: s()?,
        accept: s()?,
        n_accept: s()?,
        n_reject: s()?,
        h_used: s()?,
        err: s()?,
        h_max: s()?,
    };
    let stage_time = backend.new_scalars()?;
    let y = backend.new_vector()?;
    let f0 = backend.new_vector()?;
    let reference = if deviation { Some(backend.new_vector()?) } else { None };
    let scratch = (0..n_scratch).map(|_| backend.new_vector()).collect::<Result<Vec<_>>>()?;
    Ok(Workspace { ctrl, stage_time, y, f0, reference, scratch })
}

/// RK4 step program. Scratch: ytmp, ynew, k2, k3, k4.
fn rk4_program(w: &Workspace, state_len: usize) -> StepProgram {
    let (c, ts, y, k1) = (w.ctrl, w.stage_time, w.y, w.f0);
    let (ytmp, ynew, k2, k3, k4) = (w.scratch[0], w.scratch[1], w.scratch[2], w.scratch[3], w.scratch[4]);
    let h = c.h_used;
    let ops = vec![
        Op::BeginStep { ctrl: c },
        Op::Rhs { t: c.t, y, dy: k1 },
        Op::ScalarAxpy { out: ts, a: c.t, c: 0.5, h },
        Op::Lincomb { out: ytmp, plain: vec![(1.0, y)], h, scaled: vec![(0.5, k1)] },
        Op::Rhs { t: ts, y: ytmp, dy: k2 },
        Op::Lincomb { out: ytmp, plain: vec![(1.0, y)], h, scaled: vec![(0.5, k2)] },
        Op::Rhs { t: ts, y: ytmp, dy: k3 },
        Op::ScalarAxpy { out: ts, a: c.t, c: 1.0, h },
        Op::Lincomb { out: ytmp, plain: vec![(1.0, y)], h, scaled: vec![(1.0, k3)] },
        Op::Rhs { t: ts, y: ytmp, dy: k4 },
        Op::Lincomb {
            out: ynew,
            plain: vec![(1.0, y)],
            h,
            scaled: vec![(1.0 / 6.0, k1), (1.0 / 3.0, k2), (1.0 / 3.0, k3), (1.0 / 6.0, k4)],
        },
        // Only detects non-finite states: a fixed-step method has no error estimate.
        Op::ErrorNorm {
            out: c.err,
            err: ynew,
            y,
            y_new: ynew,
            reference: None,
            blocks: vec![ToleranceBlock { start: 0, end: state_len, atol: 1.0, rtol: 0.0 }],
        },
        Op::Control { ctrl: c, law: ControlLaw::Fixed },
        Op::Select { dst: y, src: ynew, flag: c.accept },
    ];
    StepProgram { ops }
}

/// DOPRI5 step program. Scratch: ytmp, ynew, err, k2..k7.
fn dopri5_program(w: &Workspace, blocks: &[ToleranceBlock], h_min: f64) -> StepProgram {
    let (c, ts, y, k1) = (w.ctrl, w.stage_time, w.y, w.f0);
    let (ytmp, ynew, e) = (w.scratch[0], w.scratch[1], w.scratch[2]);
    let k: Vec<VecId> = std::iter::once(k1).chain(w.scratch[3..9].iter().copied()).collect();
    let h = c.h_used;
    let mut ops = vec![Op::BeginStep { ctrl: c }];
    for stage in 1..6 {
        let scaled: Vec<(f64, VecId)> =
            DP_A[stage - 1].iter().enumerate().filter(|(_, a)| **a != 0.0).map(|(j, a)| (*a, k[j])).collect();
        ops.push(Op::ScalarAxpy { out: ts, a: c.t, c: DP_C[stage], h });
        ops.push(Op::Lincomb { out: ytmp, plain: vec![(1.0, y)], h, scaled });
        ops.push(Op::Rhs { t: ts, y: ytmp, dy: k[stage] });
    }
    let scaled: Vec<(f64, VecId)> =
        DP_A[5].iter().enumerate().filter(|(_, a)| **a != 0.0).map(|(j, a)| (*a, k[j])).collect();
    ops.push(Op::Lincomb { out: ynew, plain: vec![(1.0, y)], h, scaled });
    ops.push(Op::ScalarAxpy { out: ts, a: c.t, c: 1.0, h });
    ops.push(Op::Rhs { t: ts, y: ynew, dy: k[6] });
    let scaled: Vec<(f64, VecId)> =
        DP_E.iter().enumerate().filter(|(_, e)| **e != 0.0).map(|(j, e)| (*e, k[j])).collect();
    ops.push(Op::Lincomb { out: e, plain: vec![], h, scaled });
    ops.push(Op::ErrorNorm { out: c.err, err: e, y, y_new: ynew, reference: w.reference, blocks: blocks.to_vec() });
    ops.push(Op::Control {
        ctrl: c,
        law: ControlLaw::Adaptive { order: 4, safety: 0.9, min_factor: 0.2, max_factor: 10.0, h_min },
    });
    ops.push(Op::Select { dst: y, src: ynew, flag: c.accept });
    ops.push(Op::Select { dst: k1, src: k[6], flag: c.accept });
    StepProgram { ops }
}

/// RKC step program with `s` stages. Scratch: three rotating stage vectors, ftmp, fnew, err.
fn rkc_program(w: &Workspace, s: usize, blocks: &[ToleranceBlock], h_min: f64) -> StepProgram {
    let coeffs = RkcCoefficients::new(s);
    let (c, ts, y, f0) = (w.ctrl, w.stage_time, w.y, w.f0);
    let rot = [w.scratch[0], w.scratch[1], w.scratch[2]];
    let (ftmp, fnew, e) = (w.scratch[3], w.scratch[4], w.scratch[5]);
    let h = c.h_used;
    let mut ops = vec![Op::BeginStep { ctrl: c }];
    // stage(j) = buffer of Y_j; Y_0 is y itself.
    let stage = |j: usize| if j == 0 { y } else { rot[(j - 1) % 3] };
    ops.push(Op::Lincomb { out: stage(1), plain: vec![(1.0, y)], h, scaled: vec![(coeffs.mu_tilde_1, f0)] });
    for j in 2..=s {
        let (mu, nu, mu_t, gamma_t, c_prev) = coeffs.stages[j - 2];
        ops.push(Op::ScalarAxpy { out: ts, a: c.t, c: c_prev, h });
        ops.push(Op::Rhs { t: ts, y: stage(j - 1), dy: ftmp });
        let mut plain = vec![(mu, stage(j - 1)), (nu, stage(j - 2))];
        if j == 2 {
            // Y_{j-2} is y: merge the two y terms.
            plain = vec![(1.0 - mu, y), (mu, stage(1))];
        } else {
            plain.insert(0, (1.0 - mu - nu, y));
        }
        ops.push(Op::Lincomb { out: stage(j), plain, h, scaled: vec![(mu_t, ftmp), (gamma_t, f0)] });
    }
    let ynew = stage(s);
    ops.push(Op::ScalarAxpy { out: ts, a: c.t, c: 1.0, h });
    ops.push(Op::Rhs { t: ts, y: ynew, dy: fnew });
    // Local error estimate of Sommeijer et al.: (12(y0 − y1) + 6h(F0 + F1))/15.
    ops.push(Op::Lincomb { out: e, plain: vec![(0.8, y), (-0.8, ynew)], h, scaled: vec![(0.4, f0), (0.4, fnew)] });
    ops.push(Op::ErrorNorm { out: c.err, err: e, y, y_new: ynew, reference: w.reference, blocks: blocks.to_vec() });
    ops.push(Op::Control {
        ctrl: c,
        law: ControlLaw::Adaptive { order: 2, safety: 0.8, min_factor: 0.1, max_factor: 10.0, h_min },
    });
    ops.push(Op::Select { dst: y, src: ynew, flag: c.accept });
    ops.push(Op::Select { dst: f0, src: fnew, flag: c.accept });
    StepProgram { ops }
}

/// Number of right-hand-side evaluations in one attempt of a program.
fn rhs_count(p: &StepProgram) -> u64 {
    p.ops.iter().filter(|o| matches!(o, Op::Rhs { .. })).count() as u64
}

fn weighted_rms(v: &[f64], y: &[f64], atol: f64, rtol: f64) -> f64 {
    let s: f64 = v.iter().zip(y).map(|(a, b)| (a / (atol + rtol * b.abs())).powi(2)).sum();
    (s / v.len().max(1) as f64).sqrt()
}

/// Stiffness `ρ·t_end` (the model's bound on the Jacobian's spectral radius times the
/// integration span, largest member) from which `solver.method = "auto"` picks an implicit
/// method on the CPU backend. Measured on the photoexcited Fig 2a sweep (docs/benchmarks.md
/// §10, §15.2): ρ·t_end ≈ 100 / 310 / 1070 at ζ = 1 / 5 / 20; at ζ = 5 both implicit methods
/// need fewer RHS evaluations than DOPRI5 but more time, at ζ = 20 they need 4–8× fewer and
/// less time.
pub const AUTO_STIFFNESS: f64 = 500.0;
/// Smallest state length for which `auto` picks `bdf`: below it the per-step vector passes
/// cost more than the saved evaluations (docs/benchmarks.md §15.2, ζ = 20: `bdf` as fast as
/// DOPRI5 in CPU time at N = 256, 1.5× faster at N = 512, and at N = 2048–8192 1.45–1.6×,
/// as fast as or faster than `rosenbrock`).
pub const AUTO_MIN_STATE: usize = 512;
/// Smallest state length for which `auto` picks `rosenbrock` for a problem that `bdf` runs
/// only on its dense path (a linearly-implicit form `A(y) y′ = f`): below it the linear
/// algebra costs more than the saved evaluations (docs/benchmarks.md §10).
pub const AUTO_MIN_STATE_ROSENBROCK: usize = 1024;

/// The method `solver.method = "auto"` runs. On the CPU backend, when the model bounds the
/// spectral radius ρ of its Jacobian, declares a Jacobian pattern for every member
/// ([`BatchProblem::jacobian_pattern`]) and `ρ·t_end ≥` [`AUTO_STIFFNESS`] for some member
/// (DOPRI5 would then need about `6·ρ·t_end/3.3` evaluations for stability alone): `bdf` for
/// `y′ = f` problems with at least [`AUTO_MIN_STATE`] components whose pattern has no border
/// or a constant one (its Newton systems by Jacobi sweeps while `h` is small, the band LU
/// after), `rosenbrock` for linearly-implicit problems and those with a coupled border from
/// [`AUTO_MIN_STATE_ROSENBROCK`]; else `dopri5`.
pub fn auto_method(backend: &dyn Backend, problem: &dyn BatchProblem, opts: &SolveOptions) -> Method {
    let t_end = opts.output_times.last().copied().unwrap_or(0.0);
    let batch = problem.layout().batch;
    let n = problem.layout().state_len;
    let stiff = problem.spectral_radius().is_some_and(|r| r.iter().any(|&r| r * t_end >= AUTO_STIFFNESS));
    if backend.info().backend != "cpu" || !stiff || !(0..batch).all(|m| problem.jacobian_pattern(m).is_some()) {
        return Method::Dopri5;
    }
    // `bdf` only where its border is absent or constant (the regime measured, §15.2): with a
    // coupled border (photoexcited with ζ evolving or the self-consistent field) the border
    // rows' dependence on the core is not in `J`, and with the self-consistent field
    // `bdf`'s Newton iteration can accept a wrong E*² without failing (tests/bdf_hostile.rs).
    let border_constant = (0..batch).all(|m| {
        problem.jacobian_pattern(m).is_some_and(|p| p.core >= n || p.border_constant || !p.border_rows_coupled)
    });
    if problem.linearly_implicit().is_none() && border_constant {
        if n >= AUTO_MIN_STATE {
            Method::Bdf
        } else {
            Method::Dopri5
        }
    } else if n >= AUTO_MIN_STATE_ROSENBROCK {
        Method::Rosenbrock
    } else {
        Method::Dopri5
    }
}

/// Smallest adaptive step before a member fails: 1e-14 · max(t_final, 1) in f64 (about 45
/// units of roundoff of t), the same multiple of the unit roundoff in f32 (≈ 5.4e-6 ·
/// max(t_final, 1)). Why precision-aware: in f32 a step below the spacing of representable
/// times leaves `t + h == t`; a member whose right-hand side turns non-finite at some time
/// then shrinks its step below that spacing, evaluates its stages at the old `t`, has them
/// accepted without advancing, grows `h` into the bad time again, and repeats for ever instead
/// of failing (seen on lavapipe, tests/gpu_layout_hostile.rs).
pub(crate) fn min_step(precision: Precision, t_final: f64) -> f64 {
    1e-14 * (precision.unit_roundoff() / Precision::F64.unit_roundoff()) * t_final.max(1.0)
}

/// Drives an integration; see [`crate::engine::solve::integrate`].
pub fn drive(
    backend: &mut dyn Backend,
    problem: &dyn BatchProblem,
    opts: &SolveOptions,
    on_output: &mut dyn FnMut(&OutputFrame<'_>) -> Result<()>,
) -> Result<SolveStats> {
    let layout = problem.layout();
    let (batch, n) = (layout.batch, layout.state_len);
    if opts.output_times.is_empty() {
        return Err(NeqkinError::invalid("solver.output_times", "no output time requested"));
    }
    let t_final = *opts.output_times.last().unwrap();
    let mut blocks = problem.tolerance_blocks(opts.atol, opts.rtol);
    for b in &mut blocks {
        b.end = b.end.min(n);
    }
    let h_min = min_step(backend.info().precision, t_final);
    let n_scratch = match opts.method {
        Method::Rk4 => 5,
        Method::Dopri5 => 9,
        Method::Rkc => 6,
        Method::Bdf => return crate::engine::implicit::drive(backend, problem, opts, on_output),
        Method::Newton => return crate::engine::steady::drive(backend, problem, opts, on_output),
        Method::Rosenbrock => return crate::engine::rosenbrock::drive(backend, problem, opts, on_output),
        Method::Auto => {
            let opts = SolveOptions { method: auto_method(&*backend, problem, opts), ..opts.clone() };
            return drive(backend, problem, &opts, on_output);
        }
    };
    let deviation = opts.error_scale == ErrorScale::Deviation && opts.method != Method::Rk4;
    let w = alloc(backend, n_scratch, deviation)?;
    let y0 = problem.initial_state();
    backend.write_vector(w.y, &y0)?;
    let y_ref = reference_state(problem, opts)?;
    if let (Some(r), Some(v)) = (&y_ref, w.reference) {
        backend.write_vector(v, r)?;
    }
    let mut stats = SolveStats::default();

    // f0 = f(0, y0): FSAL start and the initial step heuristic.
    let init = backend.compile(&StepProgram { ops: vec![Op::Rhs { t: w.ctrl.t, y: w.y, dy: w.f0 }] })?;
    backend.run(init, 1)?;
    let f_init = backend.read_vector(w.f0)?;

    let rho = match opts.method {
        Method::Rkc => Some(problem.spectral_radius().ok_or_else(|| {
            NeqkinError::invalid("solver.method", "this model gives no spectral-radius bound; RKC cannot be used")
        })?),
        _ => None,
    };
    let h_init: Vec<f64> = (0..batch)
        .map(|m| {
            if let (Method::Rk4, Some(dt)) = (opts.method, opts.dt) {
                return dt;
            }
            if let Some(dt) = opts.dt {
                return dt;
            }
            // Hairer-Wanner heuristic h0 = 0.01·‖y0‖/‖f0‖ in the tolerance-weighted norm
            // (‖y0 − y_ref‖ for deviation-relative errors).
            let (ym, fm) = (&y0[m * n..(m + 1) * n], &f_init[m * n..(m + 1) * n]);
            let scale: Vec<f64> = match &y_ref {
                Some(r) => ym.iter().zip(&r[m * n..(m + 1) * n]).map(|(y, r)| y - r).collect(),
                None => ym.to_vec(),
            };
            let d0 = weighted_rms(&scale, &scale, opts.atol, opts.rtol);
            let d1 = weighted_rms(fm, &scale, opts.atol, opts.rtol);
            let h = if d0 < 1e-5 || d1 < 1e-5 { 1e-6 } else { 0.01 * d0 / d1 };
            h.clamp(1e-10 * t_final, 0.1 * opts.output_times[0])
        })
        .collect();
    if matches!(opts.method, Method::Rk4) && opts.dt.is_none() {
        return Err(NeqkinError::invalid("solver.dt", "RK4 needs a fixed step dt"));
    }
    backend.write_scalars(w.ctrl.h, &h_init)?;
    backend.write_scalars(w.ctrl.h_max, &vec![f64::INFINITY; batch])?;

    let mut rkc_stages = 0usize;
    let mut programs: HashMap<usize, (ProgramId, u64)> = HashMap::new();
    let mut compile_for = |backend: &mut dyn Backend, s: usize| -> Result<(ProgramId, u64)> {
        if let Some(p) = programs.get(&s) {
            return Ok(*p);
        }
        let prog = match opts.method {
            Method::Rk4 => rk4_program(&w, n),
            Method::Dopri5 => dopri5_program(&w, &blocks, h_min),
            Method::Rkc => rkc_program(&w, s, &blocks, h_min),
            Method::Bdf | Method::Newton | Method::Rosenbrock | Method::Auto => {
                unreachable!("bdf, newton and rosenbrock are driven on the host, auto is resolved")
            }
        };
        let steady =
            opts.steady_tol.map(|tol| Op::SteadyCheck { ctrl: w.ctrl, dy: w.f0, range: problem.steady_range(), tol });
        let mut prog = prog;
        prog.ops.extend(steady);
        let id = backend.compile(&prog)?;
        let entry = (id, rhs_count(&prog));
        programs.insert(s, entry);
        Ok(entry)
    };
    let set_rkc_stages = |backend: &mut dyn Backend, s: usize| -> Result<()> {
        let rho = rho.as_ref().expect("RKC has rho");
        let cap: Vec<f64> = rho.iter().map(|r| RkcCoefficients::stable_h_rho(s) / r.max(1e-300)).collect();
        backend.write_scalars(w.ctrl.h_max, &cap)
    };
    if let Some(rho) = &rho {
        // Start with enough stages for the initial step.
        let need = h_init.iter().zip(rho).map(|(h, r)| h * r).fold(0.0, f64::max);
        rkc_stages = stages_for(need);
        set_rkc_stages(backend, rkc_stages)?;
    }

    let mut stop = crate::engine::solve::StopCriterion::new(problem);
    // Why each failed member stopped, for `results.csv`'s `message`.
    let mut reasons = vec![String::new(); batch];
    let mut t_prev = 0.0;
    // Mean step attempts per member at the last output (for the per-member RHS count).
    let mut mean_attempts = 0.0;
    for (index, &t_out) in opts.output_times.iter().enumerate() {
        if !(t_out > t_prev) && !(index == 0 && t_out == 0.0) {
            return Err(NeqkinError::invalid("solver.output_times", "output times must be increasing and ≥ 0"));
        }
        t_prev = t_out;
        // Members that reached the previous output run on; steady and failed ones stay.
        let mut st = backend.read_scalars(w.ctrl.status)?;
        for s in st.iter_mut() {
            if *s == status::REACHED {
                *s = status::RUNNING;
            }
        }
        backend.write_scalars(w.ctrl.status, &st)?;
        backend.write_scalars(w.ctrl.t_end, &vec![t_out; batch])?;
        let mut attempts: u64 = 0;
        let mut chunk: usize = 4;
        loop {
            let st = backend.read_scalars(w.ctrl.status)?;
            let running = st.iter().filter(|s| **s == status::RUNNING).count();
            if running == 0 {
                break;
            }
            if attempts >= opts.max_steps {
                let t_now = backend.read_scalars(w.ctrl.t)?;
                let failed: Vec<f64> =
                    st.iter().map(|s| if *s == status::RUNNING { status::FAILED } else { *s }).collect();
                for m in (0..batch).filter(|m| st[*m] == status::RUNNING) {
                    reasons[m] = format!(
                        "max_steps reached at t = {:.6e}: {} step attempts before the output time {t_out}",
                        t_now[m], opts.max_steps
                    );
                }
                backend.write_scalars(w.ctrl.status, &failed)?;
                break;
            }
            if rho.is_some() {
                let h = backend.read_scalars(w.ctrl.h)?;
                let rho = rho.as_ref().unwrap();
                let need = (0..batch).filter(|m| st[*m] == status::RUNNING).map(|m| h[m] * rho[m]).fold(0.0, f64::max);
                let s_need = stages_for(need);
                if s_need > rkc_stages || s_need * 2 < rkc_stages {
                    rkc_stages = s_need;
                    set_rkc_stages(backend, rkc_stages)?;
                }
            }
            let (prog, evals) = compile_for(backend, rkc_stages)?;
            let repeats = chunk.min((opts.max_steps - attempts) as usize).max(1);
            backend.run(prog, repeats)?;
            attempts += repeats as u64;
            stats.program_runs += repeats as u64;
            stats.rhs_evaluations += evals * repeats as u64;
            stats.submissions += 1;
            chunk = (chunk * 2).min(256);
        }
        let state = backend.read_vector(w.y)?;
        let t_reached = backend.read_scalars(w.ctrl.t)?;
        let st = backend.read_scalars(w.ctrl.status)?;
        let n_acc = backend.read_scalars(w.ctrl.n_accept)?;
        let n_rej = backend.read_scalars(w.ctrl.n_reject)?;
        mean_attempts = n_acc.iter().zip(&n_rej).map(|(a, r)| a + r).sum::<f64>() / batch.max(1) as f64;
        if st.iter().zip(&reasons).any(|(s, r)| *s == status::FAILED && r.is_empty()) {
            let (h, err) = (backend.read_scalars(w.ctrl.h)?, backend.read_scalars(w.ctrl.err)?);
            let lavapipe = is_lavapipe(&backend.info());
            for (m, why) in reasons.iter_mut().enumerate() {
                if st[m] == status::FAILED && why.is_empty() {
                    *why = failure_reason(opts.method, t_reached[m], h[m], h_min, err[m]);
                    if lavapipe && (opts.method == Method::Rk4 || !err[m].is_finite()) {
                        why.push_str(LOOP_BUDGET_HINT);
                    }
                }
            }
        }
        let frame = OutputFrame {
            index,
            t: t_out,
            state: &state,
            time_reached: &t_reached,
            status: &st,
            n_accept: &n_acc,
            n_reject: &n_rej,
            messages: &reasons,
        };
        on_output(&frame)?;
        if let Some(new_status) = stop.as_mut().and_then(|s| s.apply(problem, &frame)) {
            backend.write_scalars(w.ctrl.status, &new_status)?;
        }
    }
    stats.rkc_stages = rkc_stages;
    // A program run is one step attempt for every member still running (the others skip
    // it), so a member's evaluations are its own attempts times the evaluations per program
    // (averaged over the run: RKC changes its stage count), plus the FSAL start `f(0, y0)`.
    let evals_per_program = stats.rhs_evaluations as f64 / stats.program_runs.max(1) as f64;
    stats.rhs_evaluations_per_member = 1.0 + evals_per_program * mean_attempts;
    Ok(stats)
}

/// The reference state of `solver.error_scale = "deviation"` (`batch × state_len`, the
/// model's [`BatchProblem::reference_state`] or the initial state), `None` for `"state"`.
pub(crate) fn reference_state(problem: &dyn BatchProblem, opts: &SolveOptions) -> Result<Option<Vec<f64>>> {
    if opts.error_scale != ErrorScale::Deviation {
        return Ok(None);
    }
    let l = problem.layout();
    let r = problem.reference_state().unwrap_or_else(|| problem.initial_state());
    if r.len() != l.batch * l.state_len || !r.iter().all(|x| x.is_finite()) {
        return Err(NeqkinError::invalid(
            "solver.error_scale",
            format!(
                "\"deviation\": the model's reference state has {} reals (need {}) or non-finite entries",
                r.len(),
                l.batch * l.state_len
            ),
        ));
    }
    Ok(Some(r))
}

/// Why the `Control` op failed a member (the only other way to fail, `max_steps`, is
/// recorded by the driver when it happens).
/// Whether `info` is the GPU backend on Mesa's lavapipe (llvmpipe), whose loop budget
/// fails a member's kernel with NaN (see [`LOOP_BUDGET_HINT`]).
fn is_lavapipe(info: &crate::engine::backend::BackendInfo) -> bool {
    info.backend == "gpu" && info.adapter.to_ascii_lowercase().contains("llvmpipe")
}

/// Appended to a non-finite failure on lavapipe: there a NaN derivative is also how a GPU
/// kernel reports that the driver's loop budget cut it short (shared/rhs_bindings), so the
/// user learns the cause and the way out.
const LOOP_BUDGET_HINT: &str =
    "; on lavapipe (llvmpipe) this is also how a kernel cut short by the driver's loop budget \
     (65 535 loop iterations per invocation and dispatch: components per workgroup thread × inner loops, e.g. phonon \
     lines) fails: rerun with --backend cpu or on a hardware GPU, or with fewer grid points / phonon lines";

fn failure_reason(method: Method, t: f64, h: f64, h_min: f64, err: f64) -> String {
    let too_small = NeqkinError::StepSizeTooSmall { t, h };
    match method {
        Method::Rk4 => format!(
            "non-finite state at t = {t:.6e}: fixed step dt too large for stability, or the right-hand side returned NaN/inf"
        ),
        _ if !err.is_finite() => format!(
            "{too_small}, h_min = {h_min:.1e}: non-finite state in every trial step (the right-hand side returned NaN/inf or overflowed)"
        ),
        _ => format!(
            "{too_small}, h_min = {h_min:.1e}: error norm {err:.3e} > 1: stiffness beyond the method, or a blow-up of the solution"
        ),
    }
}

/// Smallest RKC stage count whose stability limit covers `h·ρ`.
fn stages_for(h_rho: f64) -> usize {
    let mut s = 2;
    while s < RKC_MAX_STAGES && RkcCoefficients::stable_h_rho(s) < h_rho {
        s += 1;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RKC stability polynomial must stay within [-1, 1] on the claimed interval.
    #[test]
    fn rkc_stability_interval() {
        for s in [2usize, 3, 5, 10, 40] {
            let co = RkcCoefficients::new(s);
            let limit = RkcCoefficients::stable_h_rho(s);
            for k in 0..=400 {
                let z = -limit * k as f64 / 400.0;
                // Apply the stage recursion to y' = λy with hλ = z.
                let mut ym2 = 1.0;
                let mut ym1 = 1.0 + co.mu_tilde_1 * z;
                for (j, (mu, nu, mu_t, gamma_t, _)) in co.stages.iter().enumerate() {
                    let yj = if j == 0 {
                        (1.0 - mu) * 1.0 + mu * ym1 + mu_t * z * ym1 + gamma_t * z
                    } else {
                        (1.0 - mu - nu) + mu * ym1 + nu * ym2 + mu_t * z * ym1 + gamma_t * z
                    };
                    ym2 = ym1;
                    ym1 = yj;
                }
                assert!(ym1.abs() <= 1.0 + 1e-9, "s={s} z={z} R={ym1}");
            }
        }
    }
}
