//! Step programs: the vocabulary of batched vector operations that every integrator is
//! written in and that every backend executes.
//!
//! A program is compiled once (on the GPU: one pipeline and bind group per op, uniform
//! blocks written once) and replayed for many steps. All vectors hold `batch × state_len`
//! reals, member-major (member `m`, component `i` at `m * state_len + i`); all scalar
//! arrays hold one real per member. Per-member decisions (accept/reject, step size,
//! finished) are ops too, so a whole chunk of steps runs with no host round-trip.

/// Handle of a batch vector (`batch × state_len` reals) owned by a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VecId(pub usize);

/// Handle of a per-member scalar array (`batch` reals) owned by a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ScalarId(pub usize);

/// Per-member integrator bookkeeping, each an array of `batch` scalars.
///
/// Status codes are stored as reals (exact in f32 up to 2^24) so that one scalar arena
/// holds everything; see [`status`].
#[derive(Clone, Copy, Debug)]
pub struct ControlIds {
    /// Current time of each member.
    pub t: ScalarId,
    /// Step size proposed for the next attempt.
    pub h: ScalarId,
    /// Time at which the member must stop (the next output time).
    pub t_end: ScalarId,
    /// [`status`] code.
    pub status: ScalarId,
    /// 1 if the last attempt was accepted, else 0.
    pub accept: ScalarId,
    /// Number of accepted steps.
    pub n_accept: ScalarId,
    /// Number of rejected steps.
    pub n_reject: ScalarId,
    /// Step size actually used in the current attempt (`min(h, t_end - t)`), 0 when done.
    pub h_used: ScalarId,
    /// Error norm of the last attempt (adaptive), or RMS of the proposed state
    /// (fixed step, only to detect non-finite values).
    pub err: ScalarId,
    /// Largest step allowed per member (stability limit of the stabilised method;
    /// `+inf` when unlimited).
    pub h_max: ScalarId,
}

/// Per-member status codes held in [`ControlIds::status`].
pub mod status {
    /// Still integrating toward `t_end`.
    pub const RUNNING: f64 = 0.0;
    /// Reached `t_end`.
    pub const REACHED: f64 = 1.0;
    /// Right-hand side fell below the steady-state tolerance.
    pub const STEADY: f64 = 2.0;
    /// Step size underflow or non-finite error: the member diverged.
    pub const FAILED: f64 = 3.0;
    /// Stopped by the model's host-side stop criterion
    /// ([`crate::engine::model::BatchProblem::answer_known`]): its answer is known.
    pub const STOPPED: f64 = 4.0;
}

/// Step-size control law applied per member by [`Op::Control`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ControlLaw {
    /// Fixed step: always accept; `h_used = min(h, t_end - t)`.
    Fixed,
    /// Elementary controller `h ← h · clamp(safety · err^(-1/(order+1)), min, max)`;
    /// reject when `err > 1`.
    Adaptive {
        /// Order of the embedded error estimate's lower method + 1 sets the exponent.
        order: u32,
        /// Safety factor (0.9 typical).
        safety: f64,
        /// Smallest allowed growth factor.
        min_factor: f64,
        /// Largest allowed growth factor.
        max_factor: f64,
        /// Below this step the member is marked FAILED.
        h_min: f64,
    },
}

/// One batched operation. Coefficients are the same for every member; the step size
/// `h` is per member (a [`ScalarId`]), so members advance with their own steps.
#[derive(Clone, Debug)]
pub enum Op {
    /// Start of an attempt: `h_used = status==RUNNING ? min(h, t_end - t) : 0`.
    ///
    /// Programs keep this invariant: after a `BeginStep` that finds a member not
    /// RUNNING, the rest of the program changes none of that member's persistent data
    /// (state, derivative carried between steps, time, step, status, counters); only
    /// stage scratch is rewritten. A backend may therefore skip a non-running member until
    /// the end of the chunk (the CPU backend does).
    BeginStep {
        /// Controller arrays.
        ctrl: ControlIds,
    },
    /// `dy = f(t, y)` with the model's right-hand side (the model's kernel).
    Rhs {
        /// Per-member time at which to evaluate.
        t: ScalarId,
        /// State.
        y: VecId,
        /// Output derivative.
        dy: VecId,
    },
    /// `out = Σ a_j v_j + h_m Σ b_j w_j` (out may alias none of the inputs).
    Lincomb {
        /// Destination.
        out: VecId,
        /// Terms without the step size.
        plain: Vec<(f64, VecId)>,
        /// Per-member step size multiplying `scaled`.
        h: ScalarId,
        /// Terms multiplied by `h_m`.
        scaled: Vec<(f64, VecId)>,
    },
    /// `out_m = a_m + c · h_m` on scalars (stage times).
    ScalarAxpy {
        /// Destination.
        out: ScalarId,
        /// Base value.
        a: ScalarId,
        /// Coefficient.
        c: f64,
        /// Per-member step.
        h: ScalarId,
    },
    /// `out_m = sqrt(mean_i (e_i / (atol + rtol·max(|y_i − r_i|, |y_new_i − r_i|)))²)`, per
    /// member, over component range `[start, end)` of the state and with per-range
    /// tolerances; `r` is the reference state (`solver.error_scale = "deviation"`) or 0.
    ErrorNorm {
        /// Destination (per member).
        out: ScalarId,
        /// Error estimate vector (already multiplied by h).
        err: VecId,
        /// State at the start of the step.
        y: VecId,
        /// Proposed state.
        y_new: VecId,
        /// Reference state deviations are measured from; `None`: errors relative to the
        /// state itself.
        reference: Option<VecId>,
        /// Tolerance blocks: `(start, end, atol, rtol)`; components in no block are
        /// not controlled. The norm is the maximum over blocks of each block's RMS.
        blocks: Vec<ToleranceBlock>,
    },
    /// Accept/reject and new step size per member, from `ctrl.err`.
    Control {
        /// Controller arrays.
        ctrl: ControlIds,
        /// Control law.
        law: ControlLaw,
    },
    /// `dst = src` for members whose `flag` is nonzero. When the program rewrites `src` in
    /// full before reading it again (going round the replayed program, e.g. DOPRI5's
    /// `ynew` and `k7`), a backend may leave the old `dst` in `src` instead of a copy (the
    /// CPU backend swaps the two vectors); hosts read no such scratch vector.
    Select {
        /// Destination.
        dst: VecId,
        /// Source.
        src: VecId,
        /// Per-member flag.
        flag: ScalarId,
    },
    /// Mark members STEADY when `rms(dy) < tol` (only running members that accepted).
    SteadyCheck {
        /// Controller arrays.
        ctrl: ControlIds,
        /// Derivative to measure.
        dy: VecId,
        /// Component range measured.
        range: (usize, usize),
        /// Threshold on the RMS of the derivative.
        tol: f64,
    },
}

/// A block of state components sharing one absolute and relative tolerance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ToleranceBlock {
    /// First component (inclusive).
    pub start: usize,
    /// Last component (exclusive).
    pub end: usize,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance.
    pub rtol: f64,
}

/// The ops of one step, replayed by a backend.
#[derive(Clone, Debug, Default)]
pub struct StepProgram {
    /// Ops in execution order.
    pub ops: Vec<Op>,
}
