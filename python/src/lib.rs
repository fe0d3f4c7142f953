//! `neqkin._neqkin`: the Rust half of the Python package.
//!
//! A thin layer over [`neqkin::run`], the same run layer the CLI uses: it loads a config
//! (a file, or the JSON text of a Python dict), runs the sweep on a worker thread with the
//! GIL released, and polls Python's signal handlers meanwhile, so Ctrl-C sets the run's
//! cancel flag (the sweep ends after the batch in flight is written, the folder stays
//! resumable) and then raises `KeyboardInterrupt` (SIGTERM alike, through the handler
//! `neqkin/__init__.py` installs while a run goes). Structured results cross the boundary
//! as JSON text; `neqkin/__init__.py` builds the xarray Dataset.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use serde_json::{json, Value};

use neqkin::config::Plan;
use neqkin::engine::model::ParamDefault;
use neqkin::run::{self, RunOptions};
use neqkin::NeqkinError;

create_exception!(_neqkin, ConfigError, PyException, "A config or argument is invalid; `field` names it.");
create_exception!(_neqkin, RunError, PyException, "The run failed (I/O, GPU, output folder, ...).");

/// Input errors become `ConfigError` with a `field` attribute, the rest `RunError`.
fn to_py(py: Python<'_>, e: NeqkinError) -> PyErr {
    if e.is_input_error() {
        let field = match &e {
            NeqkinError::InvalidParameter { field, .. } => Some(field.clone()),
            NeqkinError::UnknownModel(..) => Some("model".to_string()),
            _ => None,
        };
        let err = ConfigError::new_err(e.to_string());
        let _ = err.value(py).setattr("field", field);
        err
    } else {
        RunError::new_err(e.to_string())
    }
}

/// Runs a config: `config_path` (TOML, or JSON by extension) or `config_json` (the text
/// of a dict with the TOML structure). Returns the run summary as JSON text; with
/// `dry_run`, the estimate `neqkin run --dry-run` prints (nothing is created). The caps
/// are those of `neqkin run --max-memory/--max-output` (byte counts such as `16G`) and
/// `--max-points`.
#[pyfunction]
#[pyo3(signature = (config_path, config_json, out, backend, precision, progress, resume, force,
                    max_memory=None, max_output=None, max_points=None, dry_run=false))]
#[allow(clippy::too_many_arguments)]
fn run_sweep(
    py: Python<'_>,
    config_path: Option<PathBuf>,
    config_json: Option<String>,
    out: PathBuf,
    backend: &str,
    precision: &str,
    progress: bool,
    resume: bool,
    force: bool,
    max_memory: Option<String>,
    max_output: Option<String>,
    max_points: Option<u64>,
    dry_run: bool,
) -> PyResult<String> {
    let backend = backend.parse().map_err(|e| to_py(py, e))?;
    let precision = precision.parse().map_err(|e| to_py(py, e))?;
    let bytes = |field: &str, v: Option<String>| -> PyResult<Option<u64>> {
        v.map(|s| {
            run::batches::parse_bytes(&s).map_err(|e| {
                let reason = match e {
                    NeqkinError::InvalidParameter { reason, .. } => reason,
                    other => other.to_string(),
                };
                to_py(py, NeqkinError::invalid(field, reason))
            })
        })
        .transpose()
    };
    let limits = run::Limits {
        max_memory: bytes("max_memory", max_memory)?,
        max_output: bytes("max_output", max_output)?,
        max_points,
    };
    let cap = max_points.unwrap_or(neqkin::config::plan::DEFAULT_MAX_POINTS);
    let (plan, model) = match (config_path, config_json) {
        (Some(path), None) => neqkin::config::load_plan_limited(&path, cap),
        (None, Some(text)) => (|| {
            let raw = neqkin::config::parse(&text, true)?;
            let model = neqkin::models::find(&raw.model)?;
            let plan = Plan::check_limited(raw, &*model, cap)?;
            Ok((plan, model))
        })(),
        _ => Err(NeqkinError::invalid("config", "give a path or a dict")),
    }
    .map_err(|e| to_py(py, e))?;
    let cancel = Arc::new(AtomicBool::new(false));
    let opts = RunOptions {
        backend,
        precision,
        out: Some(out.clone()),
        resume,
        force,
        progress,
        cancel: Some(cancel.clone()),
        limits,
        // Whole sweep (no shard); fields the run layer gains later keep their defaults.
        ..RunOptions::default()
    };
    if dry_run {
        let (est, backend) = run::dry_run(&plan, &*model, &out, &opts).map_err(|e| to_py(py, e))?;
        return Ok(json!({
            "points_total": est.points_total,
            "points_in_shard": est.points_in_shard,
            "batches": est.batches(),
            "groups": est.groups.iter().map(|g| json!({
                "key": g.key, "points": g.points.len(), "batches": g.batches(), "batch_size": g.batch_size,
                "batch_bytes": g.batch_bytes(),
            })).collect::<Vec<_>>(),
            "max_batch_bytes": est.max_batch_bytes,
            "output_bytes": est.output_bytes(),
            "csv_bytes": est.csv_bytes,
            "array_bytes": est.array_bytes,
            "max_memory": est.max_memory,
            "max_output": est.max_output,
            "backend": backend,
            "report": format!("{}backend: {backend}\n", est.report()),
        })
        .to_string());
    }
    let worker = std::thread::Builder::new()
        .name("neqkin-run".into())
        .spawn(move || run::run_plan(&plan, &*model, &out, &opts))
        .map_err(|e| RunError::new_err(format!("cannot start the run thread: {e}")))?;
    let mut interrupt: Option<PyErr> = None;
    while !worker.is_finished() {
        py.detach(|| std::thread::sleep(Duration::from_millis(50)));
        if interrupt.is_none() {
            if let Err(e) = py.check_signals() {
                cancel.store(true, Ordering::SeqCst);
                eprintln!(
                    "neqkin: interrupted; stopping after the batch in flight (the output folder stays resumable)"
                );
                interrupt = Some(e);
            }
        }
    }
    let result = worker.join().map_err(|_| RunError::new_err("the run thread panicked"))?;
    let summary = result.map_err(|e| to_py(py, e))?;
    if let Some(e) = interrupt {
        return Err(e);
    }
    let s = &summary.sweep;
    Ok(json!({
        "out": summary.out,
        "points_total": s.points_total,
        "points_in_shard": s.points_in_shard,
        "points_skipped": s.points_skipped,
        "points_run": s.points_run,
        "points_failed": s.points_failed,
        "batches": s.batches,
        "failed_points": summary.failed_points,
        "cancelled": summary.cancelled,
    })
    .to_string())
}

/// The compute devices as JSON text (a list of objects).
#[pyfunction]
fn devices(py: Python<'_>) -> PyResult<String> {
    let list = py.detach(run::devices).map_err(|e| to_py(py, e))?;
    let v: Vec<Value> = list
        .into_iter()
        .map(|d| {
            json!({
                "kind": d.kind, "name": d.name, "api": d.api, "device_type": d.device_type,
                "f64": d.f64, "max_storage_binding": d.max_storage_binding,
            })
        })
        .collect();
    Ok(Value::Array(v).to_string())
}

/// Every model with its parameters as JSON text.
#[pyfunction]
fn models() -> String {
    let v: Vec<Value> = neqkin::models::registry()
        .iter()
        .map(|m| {
            let params: Vec<Value> = m
                .parameters()
                .into_iter()
                .map(|p| {
                    let (default, status) = match &p.default {
                        ParamDefault::Value(v) => (v.clone(), "default".to_string()),
                        ParamDefault::Unset(why) => (Value::Null, format!("unset: {why}")),
                        ParamDefault::Required => (Value::Null, "required".to_string()),
                    };
                    json!({
                        "name": p.name, "default": default, "status": status, "unit": p.unit,
                        "range": p.range, "meaning": p.meaning,
                    })
                })
                .collect();
            json!({ "name": m.name(), "starter": m.starter().what, "parameters": params })
        })
        .collect();
    Value::Array(v).to_string()
}

/// The commented starter config of a model (`neqkin init MODEL`).
#[pyfunction]
fn init_toml(py: Python<'_>, model: &str) -> PyResult<String> {
    let m = neqkin::models::find(model).map_err(|e| to_py(py, e))?;
    Ok(run::starter::init_toml(&*m))
}

/// The parameter table of a model (`neqkin params MODEL`).
#[pyfunction]
fn params_table(py: Python<'_>, model: &str) -> PyResult<String> {
    let m = neqkin::models::find(model).map_err(|e| to_py(py, e))?;
    Ok(run::starter::params_table(&*m))
}

#[pymodule]
fn _neqkin(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("ConfigError", m.py().get_type::<ConfigError>())?;
    m.add("RunError", m.py().get_type::<RunError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(run_sweep, m)?)?;
    m.add_function(wrap_pyfunction!(devices, m)?)?;
    m.add_function(wrap_pyfunction!(models, m)?)?;
    m.add_function(wrap_pyfunction!(init_toml, m)?)?;
    m.add_function(wrap_pyfunction!(params_table, m)?)?;
    Ok(())
}
