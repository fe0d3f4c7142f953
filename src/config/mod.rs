//! Configuration: raw files, checked plans and sweep axes.
//!
//! Two layers, as in ripgrep's `LowArgs` → `HiArgs`: [`raw`] is the file exactly as
//! written (serde, unknown keys rejected), [`plan`] is the one checked [`Plan`] built from
//! it, with defaults filled in and every sweep point validated by the model. Errors name
//! the field by its path (`solver.rtol`, `sweep[1].linspace`, `params.temperature`).
//!
//! ```toml
//! model = "relaxation"
//! title = "optional text"
//! [solver]
//! method = "dopri5"        # rk4 | dopri5 | rkc | direct
//! dt = 0.01                # rk4 step / adaptive initial step
//! t_end = 10.0
//! output_times = [1.0, 10.0]   # or n_outputs = 50; default [t_end]
//! rtol = 1e-6
//! atol = 1e-9
//! steady_tol = 1e-8        # optional
//! max_steps = 1000000
//! [params]                 # base parameters, free-form for the model
//! rate = 0.5
//! [[sweep]]                # zero or more; Cartesian product, last axis fastest
//! name = "rate"
//! linspace = [0.1, 1.0, 10]    # or values = [...], logspace = [a, b, n]
//! [output]
//! arrays = true
//! batch_size = 0           # 0 = automatic
//! ```

pub mod plan;
pub mod raw;

pub use plan::{OutputPlan, Plan, SolverPlan, SweepAxis};
pub use raw::{load, parse, RawConfig};

use crate::engine::model::Model;
use crate::Result;

/// Reads `path` and checks it against its model from [`crate::models::registry`]:
/// the whole input pipeline in one call. Returns the model with the plan.
pub fn load_plan(path: &std::path::Path) -> Result<(Plan, Box<dyn Model>)> {
    load_plan_limited(path, plan::DEFAULT_MAX_POINTS)
}

/// [`load_plan`] with a cap on the number of sweep points (`neqkin run --max-points`).
pub fn load_plan_limited(path: &std::path::Path, max_points: u64) -> Result<(Plan, Box<dyn Model>)> {
    let raw = load(path)?;
    let model = crate::models::find(&raw.model)?;
    let plan = Plan::check_limited(raw, &*model, max_points)?;
    Ok((plan, model))
}
