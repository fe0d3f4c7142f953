//! Steady states by Newton's method with pseudo-transient continuation (`solver.method =
//! "newton"`), for models whose steady state is `rhs(y) = 0`.
//!
//! Why: a damped fixed-point (pseudo-time) iteration converges at the rate of the slowest
//! mode of the right-hand side's Jacobian. For diffusion-like operators on fine grids that
//! rate falls as h², so an explicit pseudo-time relaxation needs millions of steps where
//! Newton needs about ten. Most kinetic steady-state operators couple only near neighbours
//! on their grid, so the Jacobian is banded and one Newton step costs O(n).
//!
//! ## Method
//! Switched evolution relaxation (Mulder & van Leer 1985; Kelley & Keyes, SIAM J. Numer.
//! Anal. 35, 508 (1998)): per member, with `f = rhs(y)` and `J = ∂f/∂y`,
//! `(I/Δτ − J) δ = f`, `y ← y + δ`; Δτ grows by [`DTAU_GROWTH`] after a step that lowered
//! the residual and halves after one that raised it (capped at [`DTAU_MAX`]). The ratio
//! rule Δτ ∝ 1/‖f‖ of SER stalls where slow modes dominate the residual (it then grows Δτ by
//! the per-step decrease only, i.e. relaxes like pseudo-time); a fixed factor reaches
//! Newton's regime in ~14 accepted steps whatever the spectrum. Small Δτ is an implicit-Euler pseudo-time step
//! (robust far from the solution), large Δτ is Newton's method (quadratic near it). A step
//! whose residual grows by more than [`REJECT_GROWTH`] or turns non-finite is rejected and
//! retried with Δτ/4 on the same Jacobian. Converged (status `steady`) when the RMS of `f`
//! over [`BatchProblem::steady_range`] is below `solver.steady_tol`, as for the time-stepping
//! methods' steady stop.
//!
//! ## Jacobian
//! By forward differences with column colouring: for a Jacobian of band `(kl, ku)`
//! ([`BatchProblem::jacobian_band`]), columns `j ≡ c (mod kl + ku + 1)` touch disjoint rows,
//! so `kl + ku + 1` right-hand-side evaluations of the whole batch give every member's
//! Jacobian (Curtis, Powell & Reid 1974). Perturbation `√ε_machine · max(|y_j|, 10⁻³‖y‖∞)`
//! with ε of the backend's precision. A model without a band gets the dense Jacobian (n
//! evaluations; only sensible for small n). The band system is factorised by LU with
//! partial pivoting in band storage ([`BandLu`]), O(n·kl·(kl + ku)), rayon-parallel over
//! members.
//!
//! ## Backends
//! Every right-hand-side evaluation is one replay of a one-op step program on the backend
//! (the GPU backend evaluates the kernels on the device and reads back `f`); the linear
//! algebra runs on the host. Newton has no physical time: every output frame carries the
//! converged state, with `time_reached` the pseudo-time accumulated and the step counts
//! the accepted and rejected Newton steps.

use rayon::prelude::*;

use crate::engine::backend::{Backend, Precision};
use crate::engine::model::BatchProblem;
use crate::engine::program::{status, Op, StepProgram};
use crate::engine::solve::{OutputFrame, SolveOptions, SolveStats};
use crate::{NeqkinError, Result};

/// Largest pseudo-time step (effectively Newton's method).
pub const DTAU_MAX: f64 = 1e14;
/// Growth of Δτ after a step that lowered the residual.
pub const DTAU_GROWTH: f64 = 10.0;
/// A step whose residual RMS grows by more than this factor is rejected.
pub const REJECT_GROWTH: f64 = 2.0;
/// Largest state for which a dense difference Jacobian is attempted.
pub const DENSE_MAX: usize = 2048;
/// Most Newton steps per member (accepted + rejected), whatever `max_steps` says.
pub const MAX_ITERATIONS: u64 = 10_000;

/// LU factorisation with partial pivoting of an n×n band matrix with `kl` sub- and `ku`
/// super-diagonals (LINPACK `dgbfa` layout: row i holds columns `i − kl ..= i + kl + ku`,
/// the extra `kl` for the fill-in of row exchanges).
#[derive(Clone, Debug)]
pub struct BandLu {
    n: usize,
    kl: usize,
    ku: usize,
    width: usize,
    a: Vec<f64>,
    perm: Vec<usize>,
    /// Smallest |pivot| relative to the largest |entry| (0: exactly singular).
    pub min_pivot: f64,
}

impl BandLu {
    /// An all-zero band matrix.
    pub fn zeros(n: usize, kl: usize, ku: usize) -> Self {
        let width = 2 * kl + ku + 1;
        BandLu { n, kl, ku, width, a: vec![0.0; n * width], perm: (0..n).collect(), min_pivot: f64::NAN }
    }

    #[inline]
    fn idx(&self, i: usize, j: usize) -> usize {
        i * self.width + (j + self.kl - i)
    }

    /// Whether `(i, j)` lies in the band `−kl ≤ j − i ≤ ku`.
    #[inline]
    pub fn in_band(&self, i: usize, j: usize) -> bool {
        j + self.kl >= i && j <= i + self.ku
    }

    /// Sets entry `(i, j)` (must be in the band).
    #[inline]
    pub fn set(&mut self, i: usize, j: usize, v: f64) {
        debug_assert!(self.in_band(i, j));
        let k = self.idx(i, j);
        self.a[k] = v;
    }

    /// Entry `(i, j)` before factorisation (0 outside the band).
    pub fn get(&self, i: usize, j: usize) -> f64 {
        if i < self.n && j < self.n && self.in_band(i, j) {
            self.a[self.idx(i, j)]
        } else {
            0.0
        }
    }

    /// Factorises in place; returns false when a pivot is exactly zero or not finite.
    pub fn factor(&mut self) -> bool {
        let (n, kl, ku) = (self.n, self.kl, self.ku);
        let scale = self.a.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(f64::MIN_POSITIVE);
        let mut min_piv = f64::INFINITY;
        for k in 0..n {
            let last_row = (k + kl).min(n - 1);
            let last_col = (k + kl + ku).min(n - 1);
            let (mut p, mut best) = (k, self.a[self.idx(k, k)].abs());
            for r in k + 1..=last_row {
                let v = self.a[self.idx(r, k)].abs();
                if v > best {
                    best = v;
                    p = r;
                }
            }
            min_piv = min_piv.min(best / scale);
            if best == 0.0 || !best.is_finite() {
                self.min_pivot = 0.0;
                return false;
            }
            self.perm[k] = p;
            if p != k {
                for j in k..=last_col {
                    let (x, y) = (self.idx(k, j), self.idx(p, j));
                    self.a.swap(x, y);
                }
            }
            let d = self.a[self.idx(k, k)];
            for r in k + 1..=last_row {
                let ir = self.idx(r, k);
                let l = self.a[ir] / d;
                self.a[ir] = l;
                if l != 0.0 {
                    for j in k + 1..=last_col {
                        let (x, y) = (self.idx(r, j), self.idx(k, j));
                        self.a[x] -= l * self.a[y];
                    }
                }
            }
        }
        self.min_pivot = min_piv;
        true
    }

    /// Solves `A x = b` with the factors (x overwrites b).
    #[allow(clippy::needless_range_loop)] // band index arithmetic reads clearer with indices
    pub fn solve(&self, b: &mut [f64]) {
        let (n, kl, ku) = (self.n, self.kl, self.ku);
        for k in 0..n {
            b.swap(k, self.perm[k]);
            let bk = b[k];
            if bk != 0.0 {
                for r in k + 1..=(k + kl).min(n - 1) {
                    b[r] -= self.a[self.idx(r, k)] * bk;
                }
            }
        }
        for k in (0..n).rev() {
            let mut s = b[k];
            for j in k + 1..=(k + kl + ku).min(n - 1) {
                s -= self.a[self.idx(k, j)] * b[j];
            }
            b[k] = s / self.a[self.idx(k, k)];
        }
    }
}

fn rms(v: &[f64]) -> f64 {
    (v.iter().map(|x| x * x).sum::<f64>() / (v.len().max(1) as f64)).sqrt()
}

/// One member's Newton state.
struct Member {
    y: Vec<f64>,
    f: Vec<f64>,
    /// Residual RMS over the steady range.
    res: f64,
    dtau: f64,
    tau: f64,
    status: f64,
    n_accept: u64,
    n_reject: u64,
    /// The difference Jacobian at `y` (band entries, `None` until computed).
    jac: Option<BandLu>,
    trial: Vec<f64>,
    reason: String,
}

/// Finds every member's steady state; see the module doc.
pub fn drive(
    backend: &mut dyn Backend,
    problem: &dyn BatchProblem,
    opts: &SolveOptions,
    on_output: &mut dyn FnMut(&OutputFrame<'_>) -> Result<()>,
) -> Result<SolveStats> {
    let layout = problem.layout();
    let (batch, n) = (layout.batch, layout.state_len);
    let tol = opts.steady_tol.ok_or_else(|| {
        NeqkinError::invalid("solver.steady_tol", "\"newton\" needs the residual tolerance steady_tol (e.g. 1e-10)")
    })?;
    let (kl, ku) = match problem.jacobian_band() {
        Some((kl, ku)) => (kl.min(n - 1), ku.min(n - 1)),
        None => (n - 1, n - 1),
    };
    if problem.jacobian_band().is_none() && n > DENSE_MAX {
        return Err(NeqkinError::invalid(
            "solver.method",
            format!(
                "\"newton\" needs a banded Jacobian above {DENSE_MAX} unknowns; this model's is dense \
                 ({n} unknowns: {n} right-hand-side evaluations per step); use a time-stepping method with steady_tol"
            ),
        ));
    }
    let colours = (kl + ku + 1).min(n);
    let (r0, r1) = problem.steady_range();
    let fd_rel = match backend.info().precision {
        Precision::F64 => f64::EPSILON.sqrt(),
        Precision::F32 => (f32::EPSILON as f64).sqrt(),
    };

    let t = backend.new_scalars()?;
    let yv = backend.new_vector()?;
    let dyv = backend.new_vector()?;
    let prog = backend.compile(&StepProgram { ops: vec![Op::Rhs { t, y: yv, dy: dyv }] })?;
    let mut evaluations = 0u64;
    let mut eval = |backend: &mut dyn Backend, y: &[f64]| -> Result<Vec<f64>> {
        backend.write_vector(yv, y)?;
        backend.run(prog, 1)?;
        evaluations += 1;
        backend.read_vector(dyv)
    };

    let y0 = problem.initial_state();
    let f0 = eval(backend, &y0)?;
    let dtau0 = opts.dt.unwrap_or(1.0);
    let mut members: Vec<Member> = (0..batch)
        .map(|m| {
            let f = f0[m * n..(m + 1) * n].to_vec();
            let res = rms(&f[r0..r1]);
            Member {
                y: y0[m * n..(m + 1) * n].to_vec(),
                f,
                res,
                dtau: dtau0,
                tau: 0.0,
                status: if res.is_finite() { status::RUNNING } else { status::FAILED },
                n_accept: 0,
                n_reject: 0,
                jac: None,
                trial: Vec::new(),
                reason: if res.is_finite() {
                    String::new()
                } else {
                    "newton: the initial residual is not finite".into()
                },
            }
        })
        .collect();

    let max_iter = opts.max_steps.min(MAX_ITERATIONS);
    loop {
        for mem in members.iter_mut().filter(|m| m.status == status::RUNNING) {
            if mem.res < tol {
                mem.status = status::STEADY;
                mem.reason = format!(
                    "newton: residual {:.3e} < steady_tol after {} steps ({} rejected)",
                    mem.res, mem.n_accept, mem.n_reject
                );
                mem.jac = None;
            } else if mem.n_accept + mem.n_reject >= max_iter {
                mem.status = status::FAILED;
                mem.reason = format!("newton: no convergence in {max_iter} steps (residual {:.3e})", mem.res);
                mem.jac = None;
            }
        }
        if members.iter().all(|m| m.status != status::RUNNING) {
            break;
        }
        // Difference Jacobians of the members that moved, colour by colour.
        let need: Vec<bool> = members.iter().map(|m| m.status == status::RUNNING && m.jac.is_none()).collect();
        if need.iter().any(|&x| x) {
            let mut jacs: Vec<Option<BandLu>> = need.iter().map(|&x| x.then(|| BandLu::zeros(n, kl, ku))).collect();
            let steps: Vec<Vec<f64>> = members
                .iter()
                .map(|mem| {
                    let ymax = mem.y.iter().fold(0.0f64, |s, v| s.max(v.abs()));
                    mem.y.iter().map(|v| fd_rel * v.abs().max(1e-3 * ymax).max(f64::MIN_POSITIVE)).collect()
                })
                .collect();
            let mut yp: Vec<f64> = Vec::with_capacity(batch * n);
            for c in 0..colours {
                yp.clear();
                for (m, mem) in members.iter().enumerate() {
                    yp.extend_from_slice(&mem.y);
                    if need[m] {
                        for j in (c..n).step_by(colours) {
                            yp[m * n + j] += steps[m][j];
                        }
                    }
                }
                let fp = eval(backend, &yp)?;
                jacs.par_iter_mut().zip(members.par_iter()).enumerate().for_each(|(m, (jac, mem))| {
                    let Some(jac) = jac else { return };
                    for j in (c..n).step_by(colours) {
                        let d = steps[m][j];
                        for i in j.saturating_sub(ku)..=(j + kl).min(n - 1) {
                            jac.set(i, j, (fp[m * n + i] - mem.f[i]) / d);
                        }
                    }
                });
            }
            for (mem, jac) in members.iter_mut().zip(jacs) {
                if jac.is_some() {
                    mem.jac = jac;
                }
            }
        }
        // Trial steps (I/Δτ − J) δ = f.
        members.par_iter_mut().filter(|m| m.status == status::RUNNING).for_each(|mem| {
            let jac = mem.jac.as_ref().expect("jacobian computed above");
            let mut a = BandLu::zeros(n, kl, ku);
            for i in 0..n {
                for j in i.saturating_sub(kl)..=(i + ku).min(n - 1) {
                    a.set(i, j, -jac.get(i, j));
                }
                let d = a.get(i, i) + 1.0 / mem.dtau;
                a.set(i, i, d);
            }
            let mut delta = mem.f.clone();
            mem.trial = if a.factor() {
                a.solve(&mut delta);
                mem.y.iter().zip(&delta).map(|(y, d)| y + d).collect()
            } else {
                vec![f64::NAN; n]
            };
        });
        let trial_all: Vec<f64> = members
            .iter()
            .flat_map(|m| if m.status == status::RUNNING { m.trial.iter() } else { m.y.iter() }.cloned())
            .collect();
        let f_trial = if trial_all.iter().all(|x| x.is_finite()) {
            eval(backend, &trial_all)?
        } else {
            // Keep non-finite trials out of the kernels; those members reject below.
            let safe: Vec<f64> = trial_all
                .chunks(n)
                .zip(&members)
                .flat_map(|(t, m)| if t.iter().all(|x| x.is_finite()) { t.iter() } else { m.y.iter() }.cloned())
                .collect();
            let mut f = eval(backend, &safe)?;
            for (m, t) in trial_all.chunks(n).enumerate() {
                if !t.iter().all(|x| x.is_finite()) {
                    f[m * n..(m + 1) * n].iter_mut().for_each(|x| *x = f64::NAN);
                }
            }
            f
        };
        for (m, mem) in members.iter_mut().enumerate() {
            if mem.status != status::RUNNING {
                continue;
            }
            let fm = &f_trial[m * n..(m + 1) * n];
            let res = rms(&fm[r0..r1]);
            if res.is_finite() && res <= REJECT_GROWTH * mem.res {
                mem.y = std::mem::take(&mut mem.trial);
                mem.f = fm.to_vec();
                mem.tau += mem.dtau;
                let growth = if res < mem.res { DTAU_GROWTH } else { 0.5 };
                mem.dtau = (mem.dtau * growth).min(DTAU_MAX);
                mem.res = res;
                mem.n_accept += 1;
                mem.jac = None;
            } else {
                mem.n_reject += 1;
                mem.dtau *= 0.25;
                if mem.dtau < 1e-12 * dtau0 {
                    mem.status = status::FAILED;
                    mem.reason = format!(
                        "newton: pseudo-time step underflow (Δτ = {:.3e}) at residual {:.3e} after {} steps",
                        mem.dtau, mem.res, mem.n_accept
                    );
                    mem.jac = None;
                }
            }
        }
    }

    let state: Vec<f64> = members.iter().flat_map(|m| m.y.iter().cloned()).collect();
    let reached: Vec<f64> = members.iter().map(|m| m.tau).collect();
    let st: Vec<f64> = members.iter().map(|m| m.status).collect();
    let na: Vec<f64> = members.iter().map(|m| m.n_accept as f64).collect();
    let nr: Vec<f64> = members.iter().map(|m| m.n_reject as f64).collect();
    let messages: Vec<String> = members.iter().map(|m| m.reason.clone()).collect();
    for (index, &t_out) in opts.output_times.iter().enumerate() {
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
    }
    Ok(SolveStats {
        program_runs: evaluations,
        rhs_evaluations: evaluations * batch as u64,
        submissions: evaluations,
        rkc_stages: 0,
        rhs_evaluations_per_member: evaluations as f64,
    })
}
