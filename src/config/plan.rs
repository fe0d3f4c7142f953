//! The checked layer: a [`Plan`] built once from a [`RawConfig`], with defaults filled
//! in, ranges checked and every sweep point parsed and checked by its model
//! ([`Model::parse`]) before anything runs; the plan keeps the parsed handles, which are
//! what batches are built from.
//! Everything downstream (scheduler, output) takes a `Plan`, never raw config.

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::config::raw::{RawConfig, RawMethod, RawSweep};
use crate::engine::model::{Model, ParsedParams};
use crate::engine::solve::{ErrorScale, Method, SolveOptions};
use crate::{NeqkinError, Result};

/// What the solver does for each point.
#[derive(Clone, Debug)]
pub enum SolverPlan {
    /// Time integration with these options.
    Integrate(SolveOptions),
    /// The model's direct evaluation ([`Model::evaluate`]), no time stepping.
    Direct,
}

/// One sweep axis with its values expanded.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct SweepAxis {
    /// Parameter key set by the axis.
    pub name: String,
    /// Values in sweep order.
    pub values: Vec<f64>,
}

/// Output options, checked.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct OutputPlan {
    /// Save the model's arrays in `results.zarr`.
    pub arrays: bool,
    /// Members per batch; `None` = automatic (backend capacity).
    pub batch_size: Option<usize>,
}

/// A checked config: what to run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Model name (a key of [`crate::models::registry`]).
    pub model: String,
    /// Optional title.
    pub title: Option<String>,
    /// Solver.
    pub solver: SolverPlan,
    /// Base parameters.
    pub params: Map<String, Value>,
    /// Sweep axes (possibly none: one point).
    pub axes: Vec<SweepAxis>,
    /// Output options.
    pub output: OutputPlan,
    /// The config as given.
    pub raw: RawConfig,
    /// Every sweep point's parameters as the model parsed and checked them, by global
    /// index ([`Model::parse`], once per point in [`Plan::check`]); [`point`] hands them
    /// out with the JSON, and batches are built from them.
    parsed: Vec<ParsedParams>,
}

impl Plan {
    /// Checks `raw` and validates every sweep point with `model` (which must be the model
    /// `raw.model` names; see [`crate::models::find`]). Errors name the field:
    /// `solver.rtol`, `sweep[1].linspace`, or the model's `params.<key>` with the point.
    pub fn check(raw: RawConfig, model: &dyn Model) -> Result<Plan> {
        Plan::check_limited(raw, model, DEFAULT_MAX_POINTS)
    }

    /// [`Plan::check`] with a cap on the number of sweep points other than
    /// [`DEFAULT_MAX_POINTS`] (`neqkin run --max-points`). The count is checked (overflow
    /// included) before any point is expanded or validated.
    pub fn check_limited(raw: RawConfig, model: &dyn Model, max_points: u64) -> Result<Plan> {
        if raw.model != model.name() {
            return Err(NeqkinError::invalid(
                "model",
                format!("config names `{}` but was checked against `{}`", raw.model, model.name()),
            ));
        }
        let solver = check_solver(&raw)?;
        // The point count from the axes' declared lengths, before any axis is expanded
        // (two axes of 10⁷ values would take seconds and gigabytes to expand and validate).
        let declared = raw.sweep.iter().try_fold(1u64, |acc, s| {
            let n = match (&s.values, &s.linspace, &s.logspace) {
                (Some(v), _, _) => v.len() as u64,
                (None, Some(v), _) | (None, None, Some(v)) if v.len() == 3 && v[2] >= 1.0 && v[2] <= MAX_AXIS_LEN => {
                    v[2] as u64
                }
                _ => 1,
            };
            acc.checked_mul(n)
        });
        if declared.is_none_or(|n| n > max_points) {
            let lens: Vec<String> = raw
                .sweep
                .iter()
                .map(|s| {
                    s.values
                        .as_ref()
                        .map(|v| v.len() as f64)
                        .or_else(|| s.linspace.as_ref().or(s.logspace.as_ref()).and_then(|v| v.get(2).copied()))
                        .map_or("?".into(), |n| format!("{n}"))
                })
                .collect();
            return Err(NeqkinError::TooLarge(format!(
                "the sweep's axes ({}) make {} points, more than {max_points} (--max-points)",
                lens.join(" × "),
                declared.map_or("more than 2^64".to_string(), |n| n.to_string())
            )));
        }
        let mut axes: Vec<SweepAxis> = Vec::new();
        for (i, s) in raw.sweep.iter().enumerate() {
            let axis = check_axis(i, s)?;
            if axes.iter().any(|a| a.name == axis.name) {
                return Err(NeqkinError::invalid(
                    format!("sweep[{i}].name"),
                    format!("axis `{}` appears twice", axis.name),
                ));
            }
            axes.push(axis);
        }
        check_plot(&raw, &axes)?;
        let plan = Plan {
            model: raw.model.clone(),
            title: raw.title.clone(),
            solver,
            params: raw.params.clone(),
            axes,
            output: OutputPlan {
                arrays: raw.output.arrays,
                batch_size: (raw.output.batch_size > 0).then_some(raw.output.batch_size as usize),
            },
            raw,
            parsed: Vec::new(),
        };
        let lens: Vec<String> = plan.axes.iter().map(|a| a.values.len().to_string()).collect();
        let count = plan.axes.iter().try_fold(1u64, |acc, a| acc.checked_mul(a.values.len() as u64));
        match count {
            None => {
                return Err(NeqkinError::TooLarge(format!(
                    "the sweep's axes ({}) multiply to more than 2^64 points (at most {max_points}, --max-points)",
                    lens.join(" × ")
                )))
            }
            Some(0) => return Err(NeqkinError::invalid("sweep", "the sweep has no points")),
            Some(n) if n > max_points => {
                return Err(NeqkinError::TooLarge(format!(
                    "the sweep has {n} points ({}), more than {max_points} (--max-points)",
                    lens.join(" × ")
                )))
            }
            Some(_) => {}
        }
        if matches!(plan.solver, SolverPlan::Direct) && model.evaluate(&[]).is_none() {
            return Err(NeqkinError::invalid(
                "solver.method",
                format!("model `{}` has no direct evaluation", plan.model),
            ));
        }
        let direct = matches!(plan.solver, SolverPlan::Direct);
        let mut parsed = Vec::with_capacity(plan.n_points());
        for index in 0..plan.n_points() {
            let (values, params) = resolve(&plan, index);
            let at = |e: NeqkinError| match e {
                NeqkinError::InvalidParameter { field, reason } => NeqkinError::InvalidParameter {
                    field,
                    reason: format!("{reason} (at sweep point {index}{})", describe(&plan, &values)),
                },
                other => other,
            };
            let handle = model.parse(&params).map_err(at)?;
            match model.requires_direct(&handle).map_err(at)? {
                Some(true) if !direct => {
                    return Err(at(NeqkinError::invalid(
                        "solver.method",
                        "this point is a direct computation (e.g. params.task): use method = \"direct\"",
                    )))
                }
                Some(false) if direct => return Err(at(NeqkinError::invalid(
                    "solver.method",
                    "\"direct\" does not integrate in time, and this point needs it (e.g. params.task = \"kinetic\"): \
                         use dopri5, rkc, rk4 or bdf",
                ))),
                _ => {}
            }
            parsed.push(handle);
        }
        Ok(Plan { parsed, ..plan })
    }

    /// Number of sweep points (product of the axis lengths; 1 without axes).
    pub fn n_points(&self) -> usize {
        self.axes.iter().map(|a| a.values.len()).product()
    }

    /// Output times of a time integration (empty for a direct evaluation).
    pub fn output_times(&self) -> &[f64] {
        match &self.solver {
            SolverPlan::Integrate(o) => &o.output_times,
            SolverPlan::Direct => &[],
        }
    }

    /// The resolved config: as given, with defaults filled and sweep values expanded.
    /// Written to `meta.json`; `--resume` and `merge` compare it.
    pub fn resolved(&self) -> Value {
        let solver = match &self.solver {
            SolverPlan::Direct => json!({ "method": "direct" }),
            SolverPlan::Integrate(o) => json!({
                "method": o.method,
                "dt": o.dt,
                "t_end": o.output_times.last(),
                "output_times": o.output_times,
                "rtol": o.rtol,
                "atol": o.atol,
                "steady_tol": o.steady_tol,
                "max_steps": o.max_steps,
            }),
        };
        json!({
            "model": self.model,
            "title": self.title,
            "solver": solver,
            "params": self.params,
            "sweep": self.axes,
            "output": self.output,
        })
    }

    /// The part of [`Plan::resolved`] that decides the results (everything but the output
    /// options and the title) as canonical JSON text: equal for runs whose rows may be
    /// mixed. Stored in `meta.json` and compared as text, because floats read back from
    /// JSON need not round-trip bit for bit.
    pub fn fingerprint(&self) -> String {
        let r = self.resolved();
        json!({
            "model": r.get("model"),
            "solver": r.get("solver"),
            "params": r.get("params"),
            "sweep": r.get("sweep"),
        })
        .to_string()
    }
}

/// Checks the `[plot]` panels against the sweep axes (the solver ignores them; column
/// and array names are checked by `neqkin plot`, which knows the run's observables).
fn check_plot(raw: &RawConfig, axes: &[SweepAxis]) -> Result<()> {
    use crate::config::raw::PlotKind;
    let many = raw.plot.len() > 1;
    for (i, panel) in raw.plot.iter().enumerate() {
        let field = |key: &str| if many { format!("plot[{i}].{key}") } else { format!("plot.{key}") };
        let names: Vec<&str> = axes.iter().map(|a| a.name.as_str()).collect();
        let axis = |key: &str, v: &Option<String>, required: bool| -> Result<()> {
            match v {
                None if required => Err(NeqkinError::invalid(
                    field(key),
                    format!("a `{:?}` panel needs a sweep axis here (axes: {})", panel.kind, names.join(", ")),
                )),
                Some(name) if !names.contains(&name.as_str()) => Err(NeqkinError::invalid(
                    field(key),
                    format!("`{name}` is not a sweep axis of this config (axes: {})", names.join(", ")),
                )),
                _ => Ok(()),
            }
        };
        match panel.kind {
            PlotKind::Sweep => {
                axis("x", &panel.x, true)?;
                axis("hue", &panel.hue, false)?;
            }
            PlotKind::Heatmap => {
                axis("x", &panel.x, true)?;
                axis("hue", &panel.hue, true)?;
                if panel.y.len() != 1 {
                    return Err(NeqkinError::invalid(field("y"), "a heatmap shows exactly one quantity"));
                }
            }
            PlotKind::Time => axis("hue", &panel.hue, false)?,
            PlotKind::Profile => {
                if panel.x.is_none() {
                    return Err(NeqkinError::invalid(
                        field("x"),
                        "a profile panel needs the array of its horizontal axis (e.g. `energy_grid`)",
                    ));
                }
            }
            PlotKind::Table => {}
        }
        if panel.kind != PlotKind::Table && panel.y.is_empty() {
            return Err(NeqkinError::invalid(field("y"), "name at least one quantity to draw"));
        }
        if let Some([lo, hi]) = panel.x_range {
            if !(lo < hi) {
                return Err(NeqkinError::invalid(
                    field("x_range"),
                    format!("must be [lo, hi] with lo < hi, got [{lo}, {hi}]"),
                ));
            }
            if matches!(panel.kind, PlotKind::Heatmap | PlotKind::Table) {
                return Err(NeqkinError::invalid(field("x_range"), "only for sweep, time and profile panels"));
            }
        }
        if panel.x.is_some() && panel.x == panel.hue {
            return Err(NeqkinError::invalid(field("hue"), "must differ from `x`"));
        }
        if let Some((key, _)) = panel.reference.iter().find(|(k, _)| !panel.y.contains(k)) {
            return Err(NeqkinError::invalid(
                field(&format!("reference.{key}")),
                format!("`{key}` is not one of `y` ({})", panel.y.join(", ")),
            ));
        }
    }
    Ok(())
}

fn positive(field: &str, v: f64) -> Result<f64> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(NeqkinError::invalid(field, format!("must be a finite number > 0, got {v}")))
    }
}

fn check_solver(raw: &RawConfig) -> Result<SolverPlan> {
    let s = &raw.solver;
    let method = match s.method.unwrap_or(RawMethod::Dopri5) {
        RawMethod::Direct => return Ok(SolverPlan::Direct),
        RawMethod::Rk4 => Method::Rk4,
        RawMethod::Dopri5 => Method::Dopri5,
        RawMethod::Rkc => Method::Rkc,
        RawMethod::Bdf => Method::Bdf,
        RawMethod::Newton => Method::Newton,
        RawMethod::Rosenbrock => Method::Rosenbrock,
        RawMethod::Auto => Method::Auto,
    };
    // Newton has no physical time: t_end only labels its output rows (default 1).
    let t_end = match (s.t_end, method) {
        (None, Method::Newton) => 1.0,
        (t_end, _) => positive(
            "solver.t_end",
            t_end.ok_or_else(|| NeqkinError::invalid("solver.t_end", "required key is missing"))?,
        )?,
    };
    let dt = s.dt.map(|dt| positive("solver.dt", dt)).transpose()?;
    if method == Method::Rk4 && dt.is_none() {
        return Err(NeqkinError::invalid("solver.dt", "rk4 needs a fixed step dt"));
    }
    if let Some(dt) = dt {
        if dt > t_end {
            return Err(NeqkinError::invalid("solver.dt", format!("{dt} exceeds t_end = {t_end}")));
        }
    }
    let output_times = match (&s.output_times, s.n_outputs) {
        (Some(_), Some(_)) => {
            return Err(NeqkinError::invalid("solver.n_outputs", "give either output_times or n_outputs, not both"))
        }
        (Some(times), None) => {
            if times.is_empty() {
                return Err(NeqkinError::invalid("solver.output_times", "must not be empty"));
            }
            if times.len() as u64 > MAX_OUTPUTS {
                return Err(NeqkinError::invalid(
                    "solver.output_times",
                    format!("{} output times: at most {MAX_OUTPUTS}", times.len()),
                ));
            }
            let mut prev = f64::NEG_INFINITY;
            for (i, &t) in times.iter().enumerate() {
                let field = format!("solver.output_times[{i}]");
                if !t.is_finite() || t < 0.0 || t > t_end {
                    return Err(NeqkinError::invalid(field, format!("{t} is not in [0, t_end = {t_end}]")));
                }
                if t <= prev {
                    return Err(NeqkinError::invalid(field, "output times must be strictly increasing"));
                }
                prev = t;
            }
            times.clone()
        }
        (None, Some(n)) => {
            if n == 0 {
                return Err(NeqkinError::invalid("solver.n_outputs", "must be ≥ 1"));
            }
            if n > MAX_OUTPUTS {
                return Err(NeqkinError::invalid(
                    "solver.n_outputs",
                    format!("{n} output times: at most {MAX_OUTPUTS} (each writes a row per point)"),
                ));
            }
            (1..=n).map(|k| if k == n { t_end } else { t_end * k as f64 / n as f64 }).collect()
        }
        (None, None) => vec![t_end],
    };
    let defaults = SolveOptions::default();
    let rtol = s.rtol.map(|v| positive("solver.rtol", v)).transpose()?.unwrap_or(defaults.rtol);
    let atol = match s.atol {
        Some(v) if !(v.is_finite() && v >= 0.0) => {
            return Err(NeqkinError::invalid("solver.atol", format!("must be a finite number ≥ 0, got {v}")))
        }
        Some(v) => v,
        None => defaults.atol,
    };
    let steady_tol = s.steady_tol.map(|v| positive("solver.steady_tol", v)).transpose()?;
    if method == Method::Newton && steady_tol.is_none() {
        return Err(NeqkinError::invalid(
            "solver.steady_tol",
            "\"newton\" needs the residual tolerance steady_tol (e.g. 1e-10)",
        ));
    }
    let max_steps = match s.max_steps {
        Some(0) => return Err(NeqkinError::invalid("solver.max_steps", "must be ≥ 1")),
        Some(n) => n,
        None => defaults.max_steps,
    };
    let error_scale = s.error_scale.unwrap_or_default();
    if error_scale == ErrorScale::Deviation && matches!(method, Method::Rk4 | Method::Newton) {
        return Err(NeqkinError::invalid(
            "solver.error_scale",
            "\"deviation\" scales the error control of the adaptive methods (dopri5, rkc, bdf); rk4 and newton have none",
        ));
    }
    if error_scale == ErrorScale::Deviation && atol <= 0.0 {
        // Components that do not deviate (or not yet) would get weight 0.
        return Err(NeqkinError::invalid(
            "solver.atol",
            "must be > 0 with error_scale = \"deviation\" (the floor where the deviation vanishes)",
        ));
    }
    Ok(SolverPlan::Integrate(SolveOptions { method, dt, rtol, atol, error_scale, output_times, steady_tol, max_steps }))
}

/// Default cap on the number of sweep points ([`Plan::check_limited`] takes another).
pub const DEFAULT_MAX_POINTS: u64 = 1_000_000;

/// Most output times of one run (`solver.n_outputs`, `solver.output_times`).
pub const MAX_OUTPUTS: u64 = 1_000_000;

/// Largest number of values one axis may expand to.
const MAX_AXIS_LEN: f64 = 1e7;

fn check_axis(i: usize, s: &RawSweep) -> Result<SweepAxis> {
    let base = format!("sweep[{i}]");
    if s.name.is_empty() {
        return Err(NeqkinError::invalid(format!("{base}.name"), "must not be empty"));
    }
    let given: Vec<&str> =
        [("values", s.values.is_some()), ("linspace", s.linspace.is_some()), ("logspace", s.logspace.is_some())]
            .iter()
            .filter(|(_, g)| *g)
            .map(|(n, _)| *n)
            .collect();
    if given.len() != 1 {
        let field = if given.is_empty() { base.clone() } else { format!("{base}.{}", given[1]) };
        return Err(NeqkinError::invalid(
            field,
            format!("give exactly one of values, linspace, logspace (got {})", given.len()),
        ));
    }
    let spec = |name: &str, v: &[f64]| -> Result<(f64, f64, usize)> {
        let field = format!("{base}.{name}");
        if v.len() != 3 {
            return Err(NeqkinError::invalid(field, format!("must be [start, stop, count], got {} numbers", v.len())));
        }
        let (a, b, n) = (v[0], v[1], v[2]);
        if !(a.is_finite() && b.is_finite()) {
            return Err(NeqkinError::invalid(field, "start and stop must be finite"));
        }
        if !(n >= 1.0 && n.fract() == 0.0 && n <= MAX_AXIS_LEN) {
            return Err(NeqkinError::invalid(
                field,
                format!("count must be an integer in [1, {MAX_AXIS_LEN:e}], got {n}"),
            ));
        }
        Ok((a, b, n as usize))
    };
    let lin = |a: f64, b: f64, n: usize| -> Vec<f64> {
        (0..n)
            .map(|k| match (k, n) {
                (0, _) => a,
                (k, n) if k == n - 1 => b,
                // Rounded to 14 significant digits so decimal grids print and compare as
                // written (0.51, not 0.5099999999999999); far below any physical resolution.
                (k, n) => {
                    let x = (a * (n - 1 - k) as f64 + b * k as f64) / (n - 1) as f64;
                    format!("{x:.13e}").parse().unwrap_or(x)
                }
            })
            .collect()
    };
    let values = if let Some(v) = &s.values {
        if v.is_empty() {
            return Err(NeqkinError::invalid(format!("{base}.values"), "must not be empty"));
        }
        if let Some(k) = v.iter().position(|x| !x.is_finite()) {
            return Err(NeqkinError::invalid(format!("{base}.values[{k}]"), "must be finite"));
        }
        v.clone()
    } else if let Some(v) = &s.linspace {
        let (a, b, n) = spec("linspace", v)?;
        lin(a, b, n)
    } else {
        let (a, b, n) = spec("logspace", s.logspace.as_deref().unwrap_or_default())?;
        if !(a > 0.0 && b > 0.0) {
            return Err(NeqkinError::invalid(format!("{base}.logspace"), "start and stop must be > 0"));
        }
        let exps = lin(a.log10(), b.log10(), n);
        let mut v: Vec<f64> = exps.iter().map(|e| 10f64.powf(*e)).collect();
        v[0] = a;
        let last = v.len() - 1;
        v[last] = b;
        v
    };
    Ok(SweepAxis { name: s.name.clone(), values })
}

/// One sweep point.
#[derive(Clone, Debug)]
pub struct Point {
    /// Global index (row-major over the axes, last axis fastest); shard-independent.
    pub index: usize,
    /// The value of each axis at this point, in axis order.
    pub values: Vec<f64>,
    /// Base parameters with this point's axis values substituted (for messages and
    /// output; the model works on `parsed`).
    pub params: Value,
    /// The same parameters as the model parsed and checked them when the plan was
    /// checked: what [`Model::build`], [`Model::evaluate`], [`Model::batch_key`] and
    /// [`Model::footprint`] take.
    pub parsed: ParsedParams,
}

impl PartialEq for Point {
    /// Equal index, axis values and parameters (`parsed` follows from `params`).
    fn eq(&self, o: &Point) -> bool {
        self.index == o.index && self.values == o.values && self.params == o.params
    }
}

impl Point {
    /// `" (a = 1, b = 2)"`, or empty without axes; for messages.
    pub fn describe(&self, plan: &Plan) -> String {
        describe(plan, &self.values)
    }
}

fn describe(plan: &Plan, values: &[f64]) -> String {
    if plan.axes.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = plan.axes.iter().zip(values).map(|(a, v)| format!("{} = {v}", a.name)).collect();
    format!(": {}", parts.join(", "))
}

/// A JSON number for an axis value: an integer when the value is integral (so a model
/// reading an integer parameter accepts a swept one), a float otherwise.
fn json_number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Value::from(v as i64)
    } else {
        Value::from(v)
    }
}

/// The point with global index `index` (< [`Plan::n_points`]).
pub fn point(plan: &Plan, index: usize) -> Point {
    let (values, params) = resolve(plan, index);
    Point { index, values, params, parsed: plan.parsed[index].clone() }
}

/// Axis values and parameter set (JSON) of the point with global index `index`.
fn resolve(plan: &Plan, index: usize) -> (Vec<f64>, Value) {
    let mut rem = index;
    let mut values = vec![0.0; plan.axes.len()];
    for (k, axis) in plan.axes.iter().enumerate().rev() {
        let n = axis.values.len();
        values[k] = axis.values[rem % n];
        rem /= n;
    }
    let mut params = plan.params.clone();
    for (axis, v) in plan.axes.iter().zip(&values) {
        params.insert(axis.name.clone(), json_number(*v));
    }
    (values, Value::Object(params))
}

/// Every point of the plan in index order.
pub fn points(plan: &Plan) -> impl Iterator<Item = Point> + '_ {
    (0..plan.n_points()).map(move |i| point(plan, i))
}
