//! The solve driver: runs an integrator's step program on a backend in chunks until every
//! member reaches each requested output time, reading back only status scalars between
//! chunks and the state at output times.

use crate::engine::backend::Backend;
use crate::engine::model::BatchProblem;
use crate::Result;

/// Time-integration method chosen by the user.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Classical fixed-step Runge-Kutta 4 with step `dt`.
    Rk4,
    /// Adaptive Dormand-Prince 5(4), per-member step size.
    Dopri5,
    /// Adaptive second-order Runge-Kutta-Chebyshev (stabilised explicit; for the
    /// energy-diffusion terms whose explicit limit is ~dε²).
    Rkc,
    /// Implicit BDF on the host, CPU backend only: variable order 1–5 with the model's sparse
    /// Jacobian for stiff `y′ = f` ([`crate::engine::bdf`]); orders 1–2 with dense Newton/LU
    /// for linearly-implicit problems `A(y) y′ = F(y)` whose `A` may turn singular
    /// ([`crate::engine::implicit`]).
    Bdf,
    /// Steady state `rhs(y) = 0` by Newton's method with pseudo-transient continuation and
    /// a banded difference Jacobian (see [`crate::engine::steady`]); any backend.
    Newton,
    /// Linearly-implicit Rosenbrock-W ROS34PW2 (order 3) with a sparse coloured
    /// difference Jacobian on the model's pattern and a band LU, on the host; CPU backend
    /// only (see [`crate::engine::rosenbrock`]).
    Rosenbrock,
    /// `bdf` or `rosenbrock` on the CPU backend where the problem is stiff enough for an
    /// implicit method to pay (see [`crate::engine::integrators::auto_method`]), else `dopri5`.
    Auto,
}

/// What the relative tolerance is relative to (`solver.error_scale`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorScale {
    /// Weights `atol + rtol·max(|y_n|, |y_{n+1}|)`: errors relative to the state itself.
    #[default]
    State,
    /// Weights `atol + rtol·max(|y_n − y_ref|, |y_{n+1} − y_ref|)` with `y_ref` the model's
    /// reference state ([`crate::engine::model::BatchProblem::reference_state`], e.g. the
    /// equilibrium a small deviation relaxes to; default the initial state): errors relative
    /// to the deviation, so a deviation of 1e-7 is resolved to `rtol` of itself whatever the
    /// size of the state. `atol` is the floor where the deviation vanishes.
    Deviation,
}

/// Options of one integration, filled with defaults once by the config layer.
#[derive(Clone, Debug)]
pub struct SolveOptions {
    /// Method.
    pub method: Method,
    /// Fixed step (RK4) or initial step (adaptive; `None`: chosen automatically).
    pub dt: Option<f64>,
    /// Relative tolerance (adaptive).
    pub rtol: f64,
    /// Absolute tolerance (adaptive).
    pub atol: f64,
    /// What `rtol` is relative to (adaptive methods: dopri5, rkc, bdf).
    pub error_scale: ErrorScale,
    /// Increasing output times (> 0); the state is reported at each.
    pub output_times: Vec<f64>,
    /// Stop a member once the RMS of its derivative is below this.
    pub steady_tol: Option<f64>,
    /// Maximum number of step attempts per member per output interval.
    pub max_steps: u64,
}

impl Default for SolveOptions {
    fn default() -> Self {
        SolveOptions {
            method: Method::Dopri5,
            dt: None,
            rtol: 1e-6,
            atol: 1e-9,
            error_scale: ErrorScale::State,
            output_times: vec![1.0],
            steady_tol: None,
            max_steps: 10_000_000,
        }
    }
}

/// The batch's state at one output time, handed to the output callback.
pub struct OutputFrame<'a> {
    /// Index into `output_times`.
    pub index: usize,
    /// Requested output time.
    pub t: f64,
    /// `batch × state_len` state.
    pub state: &'a [f64],
    /// Per-member time actually reached (equals `t` unless steady or failed earlier).
    pub time_reached: &'a [f64],
    /// Per-member status code ([`crate::engine::program::status`]).
    pub status: &'a [f64],
    /// Per-member accepted steps so far.
    pub n_accept: &'a [f64],
    /// Per-member rejected steps so far.
    pub n_reject: &'a [f64],
    /// Per-member reason a member stopped (empty slice, or empty strings, when the method
    /// gives none).
    pub messages: &'a [String],
}

/// Counters of a finished integration.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SolveStats {
    /// Step programs replayed (summed over chunks).
    pub program_runs: u64,
    /// Right-hand-side evaluations per member per step attempt times attempts.
    pub rhs_evaluations: u64,
    /// Host submissions (chunks).
    pub submissions: u64,
    /// Stages of the stabilised method at the end (RKC only).
    pub rkc_stages: usize,
    /// Right-hand-side evaluations per member, the same figure whichever driver ran (the
    /// fields above count per step program for explicit methods, where the whole batch
    /// advances in lockstep, but summed over members for the host-side drivers): for the
    /// explicit methods the evaluations of one step program times the programs run (a
    /// member that finished early is counted as if it ran on), for the host-side drivers
    /// (`rosenbrock`, `bdf`, Newton) the members' own counts averaged, Jacobian columns
    /// included. `results.zarr`/`meta.json` report it per batch.
    pub rhs_evaluations_per_member: f64,
}

/// Integrates one batch, calling `on_output` at every output time.
pub fn integrate(
    backend: &mut dyn Backend,
    problem: &dyn BatchProblem,
    opts: &SolveOptions,
    on_output: &mut dyn FnMut(&OutputFrame<'_>) -> Result<()>,
) -> Result<SolveStats> {
    crate::engine::integrators::drive(backend, problem, opts, on_output)
}

/// One member's scalar observables `(t, [(name, value)])` at every output so far.
type History = Vec<(f64, Vec<(String, f64)>)>;

/// Per-member histories of scalar observables kept by the driver for
/// [`BatchProblem::answer_known`].
pub(crate) struct StopCriterion {
    history: Vec<History>,
}

impl StopCriterion {
    /// `None` when the problem has no stop criterion (nothing is computed then).
    pub(crate) fn new(problem: &dyn BatchProblem) -> Option<Self> {
        problem.has_stop_criterion().then(|| StopCriterion { history: vec![Vec::new(); problem.layout().batch] })
    }

    /// After output frame `frame`: asks the problem about every member that reached this
    /// output and returns the new status array when any member stops.
    pub(crate) fn apply(&mut self, problem: &dyn BatchProblem, frame: &OutputFrame<'_>) -> Option<Vec<f64>> {
        use crate::engine::program::status;
        let n = problem.layout().state_len;
        let mut stopped = false;
        let mut st = frame.status.to_vec();
        for (m, s) in st.iter_mut().enumerate() {
            if *s != status::REACHED {
                continue;
            }
            let y = &frame.state[m * n..(m + 1) * n];
            let obs = problem.observables(m, frame.t, y);
            self.history[m].push((frame.t, obs.scalars));
            if problem.answer_known(m, frame.t, y, &self.history[m]) {
                *s = status::STOPPED;
                stopped = true;
            }
        }
        stopped.then_some(st)
    }
}
