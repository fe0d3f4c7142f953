//! `relaxation`: the engine's exact-solution fixture.
//!
//! A grid of `n` values relaxing linearly toward a target, optionally with diffusion
//! between neighbours (zero-flux ends):
//!
//! ```text
//! dy_i/dt = -rate·(y_i - target) + diffusion·(y_{i+1} - 2 y_i + y_{i-1}) / dx²,
//! dx = 1/n, cell centres x_i = (i + ½)·dx, the missing neighbour at each end is y_i.
//! ```
//!
//! With `diffusion = 0`, or with a uniform initial value (an eigenvector of the discrete
//! Laplacian with eigenvalue 0), the solution is exact:
//! `y_i(t) = target + (y_i(0) - target)·exp(-rate·t)`; the observable `error_vs_exact`
//! is the largest deviation from it (NaN where no exact solution is known). It exists
//! so that engine, scheduler, output and GPU tests have a model whose answer is known,
//! whose cost is tiny and which can be made to diverge on purpose (a large negative
//! `rate` under RK4 overflows to non-finite values).
//!
//! Parameters (`[params]`): `grid_points` (integer ≥ 1, default 32; it is the model's
//! batch key, so a sweep over it runs in one batch per grid size), `rate` (default 1), `target` (default 0), `initial`
//! (a number, or an array of `grid_points` numbers; default 1), `diffusion` (≥ 0,
//! default 0). Observables: scalars `mean`, `error_vs_exact`; arrays `y` (the state) and
//! `grid_x` (cell centres, a shared grid).

use std::sync::Arc;

use serde_json::Value;

use crate::engine::model::{downcast_all, BatchLayout, BatchProblem, KernelSource, Model, Observables, ParsedParams};
use crate::{NeqkinError, Result};

/// Reals per member in the parameter block (kept in sync with shaders/relaxation/rhs.wgsl).
pub const PARAMS_LEN: usize = 3;
/// Offset of `rate` in the parameter block.
pub const P_RATE: usize = 0;
/// Offset of `target`.
pub const P_TARGET: usize = 1;
/// Offset of `c = diffusion / dx²`.
pub const P_C: usize = 2;
/// Largest grid accepted.
pub const MAX_GRID_POINTS: u64 = 1 << 22;

/// The relaxation model (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct Relaxation;

/// One point's parameters, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct RelaxationParams {
    /// Grid size.
    pub grid_points: usize,
    /// Relaxation rate (any sign; negative grows).
    pub rate: f64,
    /// Value relaxed toward.
    pub target: f64,
    /// Initial profile: one value everywhere (kept as one number, so a plan holding
    /// every sweep point's parameters holds no grid-sized arrays for it), or
    /// `grid_points` values as given.
    pub initial: Initial,
    /// Diffusion constant (≥ 0).
    pub diffusion: f64,
}

/// `[params]` as written (serde, unknown keys refused); [`RelaxationParams::from_json`]
/// checks it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParams {
    #[serde(default = "default_grid_points")]
    grid_points: u64,
    #[serde(default = "one")]
    rate: f64,
    #[serde(default)]
    target: f64,
    #[serde(default)]
    initial: Option<Initial>,
    #[serde(default)]
    diffusion: f64,
}

/// `params.initial`: one number or a profile.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(untagged)]
pub enum Initial {
    /// The same value at every grid point.
    Uniform(f64),
    /// One value per grid point.
    Profile(Vec<f64>),
}

fn default_grid_points() -> u64 {
    32
}

fn one() -> f64 {
    1.0
}

impl RelaxationParams {
    /// Checks a JSON parameter set, naming the field `params.<key>` on error.
    pub fn from_json(v: &Value) -> Result<Self> {
        let raw: RawParams = crate::engine::model::parse_params(v)?;
        let grid_points = raw.grid_points;
        if !(1..=MAX_GRID_POINTS).contains(&grid_points) {
            return Err(NeqkinError::invalid(
                "params.grid_points",
                format!("must be an integer in [1, {MAX_GRID_POINTS}], got {grid_points}"),
            ));
        }
        let grid_points = grid_points as usize;
        let finite = |k: &str, x: f64| crate::engine::model::check_finite(&format!("params.{k}"), x);
        let (rate, target, diffusion) =
            (finite("rate", raw.rate)?, finite("target", raw.target)?, finite("diffusion", raw.diffusion)?);
        if diffusion < 0.0 {
            return Err(NeqkinError::invalid("params.diffusion", format!("must be ≥ 0, got {diffusion}")));
        }
        let initial = match raw.initial {
            None => Initial::Uniform(1.0),
            Some(Initial::Uniform(x)) => Initial::Uniform(finite("initial", x)?),
            Some(Initial::Profile(a)) => {
                if a.len() != grid_points {
                    return Err(NeqkinError::invalid(
                        "params.initial",
                        format!("profile has {} values but grid_points = {grid_points}", a.len()),
                    ));
                }
                for (i, x) in a.iter().enumerate() {
                    finite(&format!("initial[{i}]"), *x)?;
                }
                Initial::Profile(a)
            }
        };
        Ok(RelaxationParams { grid_points, rate, target, initial, diffusion })
    }

    /// The initial profile, `grid_points` values.
    pub fn initial_profile(&self) -> Vec<f64> {
        match &self.initial {
            Initial::Uniform(x) => vec![*x; self.grid_points],
            Initial::Profile(a) => a.clone(),
        }
    }

    /// Exact solution at time `t`, where known (diffusion 0 or uniform initial value).
    pub fn exact(&self, t: f64) -> Option<Vec<f64>> {
        (self.diffusion == 0.0 || matches!(self.initial, Initial::Uniform(_))).then(|| {
            let d = (-self.rate * t).exp();
            self.initial_profile().iter().map(|y0| self.target + (y0 - self.target) * d).collect()
        })
    }
}

impl Model for Relaxation {
    fn name(&self) -> &'static str {
        "relaxation"
    }
    #[rustfmt::skip]
    fn parameters(&self) -> Vec<crate::engine::model::ParamDoc> {
        use crate::engine::model::ParamDoc as P;
        use serde_json::json;
        vec![
            P::new("grid_points", json!(32), "—", "integer in [1, 4194304] (batch key: sweepable)", "number of values y_i (cells of [0, 1])"),
            P::new("rate", json!(1.0), "1/time", "finite (negative grows)", "relaxation rate toward target"),
            P::new("target", json!(0.0), "—", "finite", "value every y_i relaxes to"),
            P::new("initial", json!(1.0), "—", "a number or grid_points numbers", "initial profile y_i(0)"),
            P::new("diffusion", json!(0.0), "1/time", "≥ 0", "diffusion constant between neighbours (zero-flux ends)"),
        ]
    }
    fn starter(&self) -> crate::engine::model::Starter {
        use serde_json::json;
        crate::engine::model::Starter {
            what: "exact exponential relaxation toward a target, a rate sweep",
            solver: "method = \"dopri5\"\nt_end = 5.0\nn_outputs = 5\nrtol = 1e-8\natol = 1e-10",
            params: vec![("initial", json!(2.0))],
            sweep: Some(("rate", vec![0.1, 1.0, 10.0])),
        }
    }
    fn parse(&self, params: &Value) -> Result<ParsedParams> {
        RelaxationParams::from_json(params).map(ParsedParams::new)
    }
    fn batch_key(&self, params: &ParsedParams) -> Result<String> {
        Ok(format!("grid_points={}", params.downcast::<RelaxationParams>()?.grid_points))
    }
    fn footprint(&self, params: &ParsedParams) -> Result<Option<crate::engine::model::Footprint>> {
        let n = params.downcast::<RelaxationParams>()?.grid_points as u64;
        Ok(Some(crate::engine::model::Footprint {
            state_len: n,
            params_len: PARAMS_LEN as u64,
            table_len: 1,
            table_shared: true,
            scratch_len: 0,
            work_bytes: 0,
            array_reals: 2 * n,
            // grid_x.
            static_array_reals: n,
            jacobian_band: Some((1, 1)),
            jacobian_pattern_band: None,
        }))
    }
    fn build(&self, points: &[ParsedParams]) -> Result<Arc<dyn BatchProblem>> {
        let members: Vec<RelaxationParams> = downcast_all::<RelaxationParams>(points)?.into_iter().cloned().collect();
        let n = members.first().ok_or_else(|| NeqkinError::invalid("params", "empty batch"))?.grid_points;
        if let Some(m) = members.iter().find(|m| m.grid_points != n) {
            return Err(NeqkinError::invalid(
                "params.grid_points",
                format!("must be equal within a batch ({} vs {n}): group points by Model::batch_key", m.grid_points),
            ));
        }
        let dx = 1.0 / n as f64;
        let params = members.iter().flat_map(|m| [m.rate, m.target, m.diffusion / (dx * dx)]).collect();
        Ok(Arc::new(RelaxationBatch { n, members, params, tables: vec![0.0] }))
    }
}

/// A batch of relaxation points.
pub struct RelaxationBatch {
    n: usize,
    members: Vec<RelaxationParams>,
    params: Vec<f64>,
    tables: Vec<f64>,
}

/// CPU twin of `rhs` in `shaders/relaxation/rhs.wgsl` for one member; arguments in
/// binding order (params, tables, t, y, dy, scratch).
pub fn rhs(params: &[f64], _tables: &[f64], _t: f64, y: &[f64], dy: &mut [f64], _scratch: &mut [f64]) {
    let (rate, tgt, c) = (params[P_RATE], params[P_TARGET], params[P_C]);
    let n = y.len();
    for i in 0..n {
        let yi = y[i];
        let left = if i > 0 { y[i - 1] } else { yi };
        let right = if i + 1 < n { y[i + 1] } else { yi };
        dy[i] = -rate * (yi - tgt) + c * (left - 2.0 * yi + right);
    }
}

impl BatchProblem for RelaxationBatch {
    fn layout(&self) -> BatchLayout {
        BatchLayout {
            batch: self.members.len(),
            state_len: self.n,
            params_len: PARAMS_LEN,
            // One dummy real shared by all members: no tables, but a non-empty binding.
            table_len: 1,
            table_stride: 0,
            scratch_len: 0,
        }
    }
    fn params(&self) -> &[f64] {
        &self.params
    }
    fn tables(&self) -> &[f64] {
        &self.tables
    }
    fn initial_state(&self) -> Vec<f64> {
        self.members.iter().flat_map(|m| m.initial_profile()).collect()
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
        rhs(params, tables, t, y, dy, scratch)
    }
    fn kernel(&self) -> KernelSource {
        KernelSource {
            name: "relaxation/rhs".into(),
            source: include_str!("../../../shaders/relaxation/rhs.wgsl").into(),
        }
    }
    fn spectral_radius(&self) -> Option<Vec<f64>> {
        Some(self.params.chunks(PARAMS_LEN).map(|p| p[P_RATE].abs() + 4.0 * p[P_C]).collect())
    }
    /// Each cell couples to its two neighbours (the footprint's band): without it `bdf`,
    /// `rosenbrock` and `newton` ran on a dense N×N Jacobian and LU while the run layer's
    /// memory estimate counted the band.
    fn jacobian_band(&self) -> Option<(usize, usize)> {
        Some((1, 1))
    }
    fn observables(&self, member: usize, t: f64, y: &[f64]) -> Observables {
        let m = &self.members[member];
        let mean = y.iter().sum::<f64>() / y.len() as f64;
        let err = match m.exact(t) {
            Some(ex) => {
                ex.iter()
                    .zip(y)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, |acc: f64, d| if d.is_nan() || d > acc { d } else { acc })
            }
            None => f64::NAN,
        };
        let dx = 1.0 / self.n as f64;
        Observables {
            scalars: vec![("mean".into(), mean), ("error_vs_exact".into(), err)],
            arrays: vec![
                ("y".into(), y.to_vec()),
                ("grid_x".into(), (0..self.n).map(|i| (i as f64 + 0.5) * dx).collect()),
            ],
        }
    }
}
