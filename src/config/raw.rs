//! The raw layer: the config file exactly as written (TOML, or JSON by extension),
//! with unknown keys rejected at every level and every error naming its field path.
//!
//! Nothing here checks ranges or consistency; [`crate::config::Plan::check`] does that.
//! Files are first read into a JSON tree (TOML floats checked for NaN/inf on the way,
//! since JSON cannot hold them), then each section is deserialised on its own so a
//! serde error can be given its path (`solver.rtol`, `sweep[1].linspace`).

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{NeqkinError, Result};

/// A config file as written.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Model name, one of [`crate::models::registry`].
    pub model: String,
    /// Free text for the user (figure name, ...).
    #[serde(default)]
    pub title: Option<String>,
    /// Time integration.
    pub solver: RawSolver,
    /// Base model parameters, handed to the model as a JSON object.
    #[serde(default)]
    pub params: Map<String, Value>,
    /// Sweep axes; the sweep is their Cartesian product, last axis fastest.
    #[serde(default)]
    pub sweep: Vec<RawSweep>,
    /// Output options.
    #[serde(default)]
    pub output: RawOutput,
    /// The picture `neqkin plot` draws of the run: `[plot]` (one panel) or `[[plot]]`
    /// (several). The solver ignores it.
    #[serde(default, deserialize_with = "one_or_many", skip_serializing_if = "Vec::is_empty")]
    pub plot: Vec<RawPlot>,
}

/// What a plot panel shows (`plot.kind`).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PlotKind {
    /// Scalar observables (`y`) at the last output time against the sweep axis `x`, one
    /// curve per value of the other axes (`hue` first).
    Sweep,
    /// Scalar observables (`y`) against time, one curve per sweep point.
    Time,
    /// Arrays (`y`, e.g. `f`) against another array (`x`, e.g. `energy_grid`), one curve
    /// per point, at the last output time or at every output time (`outputs = "all"`).
    Profile,
    /// One scalar observable (`y`) over the two sweep axes `x` and `hue`, as colours.
    Heatmap,
    /// The scalar observables (`y`, default all) of every point as a table of numbers.
    Table,
}

/// Which output times a `profile` panel draws (`plot.outputs`).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PlotOutputs {
    /// The last output time only.
    Last,
    /// Every output time.
    All,
}

/// One panel of `[plot]` as written. Column and array names are checked when the
/// picture is drawn (they depend on the model's observables); axis names here.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawPlot {
    /// What the panel shows.
    pub kind: PlotKind,
    /// Horizontal axis: a sweep axis (`sweep`, `heatmap`) or an array name (`profile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// Quantities drawn: observable columns, or array names for `profile`.
    #[serde(default, deserialize_with = "one_or_many", skip_serializing_if = "Vec::is_empty")]
    pub y: Vec<String>,
    /// The sweep axis that tells curves apart (`sweep`, `time`), or the vertical axis of
    /// a `heatmap`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hue: Option<String>,
    /// Reference curves drawn dashed next to a `y` quantity: `{ sigma_over_sigma0 = "sigma_eq10" }`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub reference: std::collections::BTreeMap<String, String>,
    /// Panel title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Logarithmic horizontal axis.
    #[serde(default, skip_serializing_if = "is_false")]
    pub log_x: bool,
    /// Logarithmic vertical axis.
    #[serde(default, skip_serializing_if = "is_false")]
    pub log_y: bool,
    /// Output times drawn by a `profile` panel (default: all when there is one point,
    /// else the last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<PlotOutputs>,
    /// Part of the horizontal axis shown, `[lo, hi]` (`sweep`, `time`, `profile`; default:
    /// all the data), e.g. the few T around μ0 of a cavity window hundreds of T wide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_range: Option<[f64; 2]>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Accepts one value or a list of them (`[plot]` or `[[plot]]`, `y = "f"` or `y = ["f"]`).
fn one_or_many<'de, D, T>(d: D) -> std::result::Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany<T> {
        Many(Vec<T>),
        One(T),
    }
    Ok(match OneOrMany::<T>::deserialize(d)? {
        OneOrMany::Many(v) => v,
        OneOrMany::One(x) => vec![x],
    })
}

/// Method names accepted in `solver.method`.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RawMethod {
    /// Fixed-step RK4.
    Rk4,
    /// Adaptive Dormand-Prince 5(4).
    Dopri5,
    /// Runge-Kutta-Chebyshev (stabilised explicit).
    Rkc,
    /// Variable-order (1–5) BDF/NDF on the host (orders 1–2 for linearly-implicit models;
    /// CPU backend only).
    Bdf,
    /// Steady state by Newton's method (pseudo-transient continuation); needs steady_tol.
    Newton,
    /// Rosenbrock-W ROS34PW2 with a sparse Jacobian on the host (CPU backend only).
    Rosenbrock,
    /// `rosenbrock` where the problem is stiff enough for it to pay, else `dopri5`.
    Auto,
    /// No time integration: the model's [`crate::engine::model::Model::evaluate`].
    Direct,
}

/// `[solver]` as written.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawSolver {
    /// Method (default `dopri5`).
    #[serde(default)]
    pub method: Option<RawMethod>,
    /// RK4 step / adaptive initial step.
    #[serde(default)]
    pub dt: Option<f64>,
    /// End time (required unless `method = "direct"`).
    #[serde(default)]
    pub t_end: Option<f64>,
    /// Explicit output times.
    #[serde(default)]
    pub output_times: Option<Vec<f64>>,
    /// Number of uniform output times in `(0, t_end]`.
    #[serde(default)]
    pub n_outputs: Option<u64>,
    /// Relative tolerance.
    #[serde(default)]
    pub rtol: Option<f64>,
    /// Absolute tolerance.
    #[serde(default)]
    pub atol: Option<f64>,
    /// What `rtol` is relative to: `"state"` (default) or `"deviation"` (from the model's
    /// reference state).
    #[serde(default)]
    pub error_scale: Option<crate::engine::solve::ErrorScale>,
    /// Steady-state threshold on the RMS of the derivative.
    #[serde(default)]
    pub steady_tol: Option<f64>,
    /// Step attempts per member per output interval.
    #[serde(default)]
    pub max_steps: Option<u64>,
}

/// One `[[sweep]]` axis as written: a name and exactly one of three value specs.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawSweep {
    /// Parameter key the axis sets.
    pub name: String,
    /// Explicit values.
    #[serde(default)]
    pub values: Option<Vec<f64>>,
    /// `[a, b, n]`: n values uniform in `[a, b]`.
    #[serde(default)]
    pub linspace: Option<Vec<f64>>,
    /// `[a, b, n]`: n values log10-uniform in `[a, b]`, both > 0.
    #[serde(default)]
    pub logspace: Option<Vec<f64>>,
}

/// `[output]` as written.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawOutput {
    /// Save the model's arrays in `results.zarr` (default true).
    #[serde(default = "default_true")]
    pub arrays: bool,
    /// Members per batch; 0 = automatic.
    #[serde(default)]
    pub batch_size: u64,
}

fn default_true() -> bool {
    true
}

impl Default for RawOutput {
    fn default() -> Self {
        RawOutput { arrays: true, batch_size: 0 }
    }
}

/// Reads a config file: `.json` as JSON, anything else as TOML.
pub fn load(path: &Path) -> Result<RawConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| NeqkinError::io(path, e))?;
    let is_json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
    parse(&text, is_json).map_err(|e| match e {
        NeqkinError::ConfigParse { reason, .. } => {
            NeqkinError::ConfigParse { path: path.display().to_string(), reason }
        }
        other => other,
    })
}

/// Parses config text (TOML, or JSON when `is_json`).
pub fn parse(text: &str, is_json: bool) -> Result<RawConfig> {
    let parse_err = |reason: String| NeqkinError::ConfigParse { path: "<text>".into(), reason };
    let tree = if is_json {
        serde_json::from_str::<Value>(text).map_err(|e| parse_err(e.to_string()))?
    } else {
        let table = toml::from_str::<toml::Table>(text).map_err(|e| parse_err(e.to_string()))?;
        toml_to_json(&toml::Value::Table(table), "")?
    };
    from_tree(tree)
}

/// Deserialises a JSON tree into a [`RawConfig`], each section separately so errors
/// carry their path.
pub fn from_tree(tree: Value) -> Result<RawConfig> {
    let Value::Object(top) = &tree else {
        return Err(NeqkinError::invalid("<config>", "must be a table/object"));
    };
    if let Some(v) = top.get("solver") {
        section::<RawSolver>("solver.", v)?;
    }
    if let Some(v) = top.get("output") {
        section::<RawOutput>("output.", v)?;
    }
    match top.get("plot") {
        Some(Value::Array(panels)) => {
            for (i, v) in panels.iter().enumerate() {
                section::<RawPlot>(&format!("plot[{i}]."), v)?;
            }
        }
        Some(v) => {
            section::<RawPlot>("plot.", v)?;
        }
        None => {}
    }
    if let Some(Value::Array(axes)) = top.get("sweep") {
        for (i, v) in axes.iter().enumerate() {
            section::<RawSweep>(&format!("sweep[{i}]."), v)?;
        }
    }
    section::<RawConfig>("", &tree)
}

/// Deserialises one section; on error finds the key at fault and names it `prefix + key`.
fn section<T: DeserializeOwned>(prefix: &str, v: &Value) -> Result<T> {
    let err = match serde_json::from_value::<T>(v.clone()) {
        Ok(t) => return Ok(t),
        Err(e) => e.to_string(),
    };
    let quoted = |msg: &str, lead: &str| -> Option<String> {
        let rest = msg.strip_prefix(lead)?;
        Some(rest.split('`').next()?.to_string())
    };
    if let Some(key) = quoted(&err, "unknown field `") {
        return Err(NeqkinError::invalid(format!("{prefix}{key}"), format!("unknown key ({err})")));
    }
    if let Some(key) = quoted(&err, "missing field `") {
        return Err(NeqkinError::invalid(format!("{prefix}{key}"), "required key is missing"));
    }
    let whole = prefix.trim_end_matches('.').to_string();
    let Value::Object(map) = v else {
        let field = if whole.is_empty() { "<config>".to_string() } else { whole };
        return Err(NeqkinError::invalid(field, format!("must be a table ({err})")));
    };
    // A type error: serde reports it at the first bad key it meets, missing keys only at
    // the end, so the key whose value alone fails with something else is the culprit.
    for (key, value) in map {
        let mut alone = Map::new();
        alone.insert(key.clone(), value.clone());
        if let Err(e) = serde_json::from_value::<T>(Value::Object(alone)) {
            let msg = e.to_string();
            if !msg.starts_with("missing field") {
                return Err(NeqkinError::invalid(format!("{prefix}{key}"), msg));
            }
        }
    }
    Err(NeqkinError::invalid(if whole.is_empty() { "<config>".into() } else { whole }, err))
}

/// Converts a TOML tree to JSON, rejecting NaN and infinities with their path
/// (JSON has no such numbers; serde_json would turn them into `null` silently).
pub fn toml_to_json(v: &toml::Value, path: &str) -> Result<Value> {
    Ok(match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => {
            if !f.is_finite() {
                return Err(NeqkinError::invalid(path, format!("must be a finite number, got {f}")));
            }
            Value::from(*f)
        }
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(
            a.iter().enumerate().map(|(i, x)| toml_to_json(x, &format!("{path}[{i}]"))).collect::<Result<_>>()?,
        ),
        toml::Value::Table(t) => {
            let mut m = Map::new();
            for (k, x) in t {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                m.insert(k.clone(), toml_to_json(x, &p)?);
            }
            Value::Object(m)
        }
    })
}
