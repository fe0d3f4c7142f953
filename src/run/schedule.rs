//! The sweep scheduler: turns a [`Plan`] into batches, runs them, and hands each
//! finished batch to the output folder before starting the next.
//!
//! Model-agnostic and backend-agnostic: the model is reached through [`Model`] /
//! [`BatchProblem`], the backend through a caller-supplied factory, and the batch size
//! through a caller-supplied capacity function (the GPU's member limit, or
//! [`cpu_capacity`]). Steps:
//!
//! 1. expand the Cartesian product of the sweep axes (last axis fastest) into [`Point`]s;
//! 2. keep the points of this [`Shard`] (`index % count == shard.index`);
//! 3. drop points already finished in the output folder (`--resume`);
//! 4. pack the rest into batches, build each with [`Model::build`], create its backend,
//!    run [`integrate`] (or [`Model::evaluate`] for `method = "direct"`), write its rows.
//!
//! A batch whose build, backend or integration fails (or panics) marks its points
//! `failed` with the message and the sweep goes on; a member that diverges is flagged `failed` by its
//! status and its batch-mates go on.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use crate::config::{Plan, SolverPlan};
use crate::engine::backend::Backend;
use crate::engine::model::{BatchLayout, BatchProblem, Model, ParsedParams};
use crate::engine::solve::{integrate, OutputFrame};
use crate::run::dataset::{Layout, Probe};
use crate::run::output::{status_name, BatchRecord, OpenMode, OutputDir, PointArrays, Row};
use crate::{NeqkinError, Result};

/// Default members per batch on the CPU backend.
pub const CPU_DEFAULT_BATCH: usize = 64;

/// Capacity function for the CPU backend: [`CPU_DEFAULT_BATCH`] members.
pub fn cpu_capacity(_per_member: &BatchLayout) -> usize {
    CPU_DEFAULT_BATCH
}

pub use crate::config::plan::{point, points, Point};

/// `--shard I/N`: this process runs the points with `index % count == index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// I, in `0..count`.
    pub index: usize,
    /// N ≥ 1.
    pub count: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

impl Shard {
    /// Whether point `i` belongs to this shard.
    pub fn contains(&self, i: usize) -> bool {
        i % self.count == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = NeqkinError;
    fn from_str(s: &str) -> Result<Shard> {
        let bad = |why: &str| NeqkinError::invalid("--shard", format!("`{s}`: {why} (expected I/N with 0 ≤ I < N)"));
        let (i, n) = s.split_once('/').ok_or_else(|| bad("no `/`"))?;
        let index: usize = i.trim().parse().map_err(|_| bad("I is not a non-negative integer"))?;
        let count: usize = n.trim().parse().map_err(|_| bad("N is not a positive integer"))?;
        if count == 0 {
            return Err(bad("N must be ≥ 1"));
        }
        if index >= count {
            return Err(bad("I must be < N"));
        }
        Ok(Shard { index, count })
    }
}

/// How the sweep runs (not what it computes; that is the [`Plan`]).
#[derive(Clone, Debug, Default)]
pub struct SweepOptions {
    /// Which points to run.
    pub shard: Shard,
    /// What to do with an existing output folder.
    pub mode: Option<OpenMode>,
    /// Told after every written batch (the CLI's progress bar, Python's callback);
    /// nothing is reported when `None`.
    pub progress: Option<ProgressHandle>,
    /// Test hook: abort the process (`std::process::abort`, no cleanup) right after this
    /// many batches have been written. Set by the CLI from the environment variable
    /// `NEQKIN_TEST_ABORT_AFTER_BATCHES`; used by the resume tests to simulate a kill.
    pub abort_after_batches: Option<usize>,
    /// Where models run bulk set-up work while building batches (CPU when `None`).
    pub map_device: Option<MapDeviceHandle>,
    /// Batches grouped by the model's batch key ([`crate::engine::model::Model::batch_key`]),
    /// computed by the run layer: each group's points (global indices, any shard) share a
    /// key and run in batches of the group's size. `None`: every point in index order,
    /// batches of the plan's (or the capacity's) size.
    pub groups: Option<Vec<BatchGroup>>,
    /// Cooperative cancellation: when the flag is set, the sweep stops before starting
    /// its next batch (the batch in flight is finished and written first), so the folder
    /// stays resumable. Set by the CLI's SIGINT/SIGTERM handler and by Python's Ctrl-C.
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// Points that may share a batch (equal batch keys) and the batch size for them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchGroup {
    /// Global point indices in run order.
    pub points: Vec<usize>,
    /// Members per batch (≥ 1).
    pub batch_size: usize,
}

/// Where a sweep stands after a written batch, for [`SweepProgress`].
#[derive(Clone, Debug, PartialEq)]
pub struct BatchReport {
    /// Points of this session written so far (this batch included).
    pub points_done: usize,
    /// Points this session runs (the shard's points not already done).
    pub points_to_run: usize,
    /// Points of this session flagged `failed` so far.
    pub points_failed: usize,
    /// Points in this batch.
    pub batch_points: usize,
    /// Points of this batch flagged `failed`.
    pub batch_failed: usize,
    /// Wall time of this batch, seconds.
    pub batch_wall_s: f64,
    /// Why the whole batch failed (build error, panic), if it did.
    pub batch_error: Option<String>,
}

/// Told how a sweep advances: once before the first batch, after every batch written
/// (rows, arrays and progress record on disk), and once at the end. Implemented by the
/// run layer's terminal reporter and by callers of the library (the Python package).
pub trait SweepProgress: Send + Sync {
    /// Before the first batch: points to run now and points skipped as already done.
    fn start(&self, points_to_run: usize, points_skipped: usize) {
        let _ = (points_to_run, points_skipped);
    }
    /// After each written batch.
    fn batch_done(&self, report: &BatchReport);
    /// After the last batch (also when the sweep was cancelled).
    fn finish(&self, summary: &SweepSummary) {
        let _ = summary;
    }
}

/// Shared handle on a [`SweepProgress`] (printable in option dumps).
#[derive(Clone)]
pub struct ProgressHandle(pub Arc<dyn SweepProgress>);

impl std::fmt::Debug for ProgressHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SweepProgress")
    }
}

/// Shared handle on a [`crate::engine::model::MapDevice`] (printable in option dumps).
#[derive(Clone)]
pub struct MapDeviceHandle(pub std::sync::Arc<dyn crate::engine::model::MapDevice>);

impl std::fmt::Debug for MapDeviceHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MapDevice({})", self.0.describe())
    }
}

/// What a sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepSummary {
    /// Points in the whole sweep.
    pub points_total: usize,
    /// Points of this shard.
    pub points_in_shard: usize,
    /// Points skipped because they were already done.
    pub points_skipped: usize,
    /// Points run now.
    pub points_run: usize,
    /// Points run now that are flagged failed.
    pub points_failed: usize,
    /// Batches run now.
    pub batches: usize,
    /// The sweep stopped early because [`SweepOptions::cancel`] was set.
    pub cancelled: bool,
}

/// Creates a backend for one batch. The GPU factory captures a shared device context.
pub type BackendFactory<'a> = dyn FnMut(Arc<dyn BatchProblem>) -> Result<Box<dyn Backend>> + 'a;

/// Runs the sweep of `plan` for `model` into the output folder `out`.
///
/// `capacity` maps the layout of a one-member batch to the largest batch the backend
/// takes (used when the config's `output.batch_size` is 0); `factory` creates the backend
/// of each batch. Returns an error only for failures of the output folder or the
/// plan itself; failing batches and members are recorded as `failed` rows.
pub fn run_sweep(
    plan: &Plan,
    model: &dyn Model,
    out: &std::path::Path,
    opts: &SweepOptions,
    capacity: &dyn Fn(&BatchLayout) -> usize,
    factory: &mut BackendFactory<'_>,
) -> Result<SweepSummary> {
    let shard = opts.shard;
    let mut dir = OutputDir::open(out, plan, shard, opts.mode.unwrap_or(OpenMode::New))?;
    if let Some((p, why)) = dir.repaired().first() {
        let n = dir.repaired().len();
        eprintln!(
            "neqkin: {n} point{} recorded finished {} incomplete in the folder and {} redone (point {p}: {why})",
            if n == 1 { "" } else { "s" },
            if n == 1 { "is" } else { "are" },
            if n == 1 { "is" } else { "are" },
        );
    }
    let in_shard: Vec<usize> = (0..plan.n_points()).filter(|i| shard.contains(*i)).collect();
    let todo: Vec<Point> = in_shard.iter().filter(|i| !dir.done().contains(i)).map(|i| point(plan, *i)).collect();
    let mut summary = SweepSummary {
        points_total: plan.n_points(),
        points_in_shard: in_shard.len(),
        points_skipped: in_shard.len() - todo.len(),
        ..Default::default()
    };

    // A one-member probe gives the per-member layout (for the capacity function) and the
    // observable names (for the CSV header), also when resuming with nothing left to do.
    let probe_point = todo.first().cloned().unwrap_or_else(|| point(plan, in_shard.first().copied().unwrap_or(0)));
    // A failing probe is not an error here: its batch fails and is recorded like any other.
    let (per_member, observable_names) = probe(plan, model, &probe_point).unwrap_or_default();
    let axes: Vec<String> = plan.axes.iter().map(|a| a.name.clone()).collect();
    dir.set_columns(&axes, &observable_names)?;
    dir.set_dataset(&dataset_layout(plan, model))?;
    let batch_size =
        plan.output.batch_size.unwrap_or_else(|| per_member.as_ref().map_or(CPU_DEFAULT_BATCH, capacity)).max(1);

    let progress = opts.progress.as_ref().map(|p| &p.0);
    if let Some(p) = progress {
        p.start(todo.len(), summary.points_skipped);
    }
    let cancelled = || opts.cancel.as_ref().is_some_and(|c| c.load(std::sync::atomic::Ordering::SeqCst));
    let batches: Vec<Vec<Point>> = match &opts.groups {
        Some(groups) => {
            let todo_set: std::collections::HashSet<usize> = todo.iter().map(|p| p.index).collect();
            let batches: Vec<Vec<Point>> = groups
                .iter()
                .flat_map(|g| {
                    let pts: Vec<Point> =
                        g.points.iter().filter(|i| todo_set.contains(i)).map(|i| point(plan, *i)).collect();
                    pts.chunks(g.batch_size.max(1)).map(|c| c.to_vec()).collect::<Vec<_>>()
                })
                .collect();
            let grouped: usize = batches.iter().map(|b| b.len()).sum();
            if grouped != todo.len() {
                return Err(NeqkinError::invalid(
                    "params",
                    format!("batch groups hold {grouped} of the {} points to run", todo.len()),
                ));
            }
            batches
        }
        None => todo.chunks(batch_size).map(|c| c.to_vec()).collect(),
    };
    for chunk in batches.iter().map(|b| b.as_slice()) {
        if cancelled() {
            summary.cancelled = true;
            break;
        }
        let started = Instant::now();
        // A panic in a model or backend fails this batch only; the sweep goes on.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_batch(plan, model, chunk, factory, opts.map_device.as_ref())
        }))
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(NeqkinError::Panic(what))
        });
        let (rows, arrays, error, backend, dispatches, accepted_steps, rhs_evaluations) = match outcome {
            Ok(b) => (b.rows, b.arrays, None, b.backend, b.dispatches, b.accepted_steps, b.rhs_evaluations_per_point),
            Err(e) => (failed_rows(plan, chunk, &e.to_string()), Vec::new(), Some(e.to_string()), None, None, 0, None),
        };
        if let Some(info) = &backend {
            dir.set_backend(info)?;
        }
        let mut failed: Vec<usize> = rows.iter().filter(|r| r.status == "failed").map(|r| r.point).collect();
        failed.dedup();
        let indices: Vec<usize> = chunk.iter().map(|p| p.index).collect();
        let record = BatchRecord {
            points: (indices[0], *indices.last().expect("non-empty chunk")),
            size: chunk.len(),
            wall_s: started.elapsed().as_secs_f64(),
            failed: failed.len(),
            error: error.clone(),
            layout: backend.as_ref().and_then(|b| b.layout.clone()),
            backend: backend.map(|b| format!("{} {} ({}, {})", b.backend, b.adapter, b.api, b.precision)),
            dispatches,
            accepted_steps: dispatches.map(|_| accepted_steps),
            rhs_evaluations_per_point: rhs_evaluations,
        };
        let wall = record.wall_s;
        let arrays = if plan.output.arrays { arrays } else { Vec::new() };
        dir.write_batch(&rows, &arrays, record, &indices)?;
        summary.batches += 1;
        summary.points_run += chunk.len();
        summary.points_failed += failed.len();
        if let Some(p) = progress {
            p.batch_done(&BatchReport {
                points_done: summary.points_run,
                points_to_run: todo.len(),
                points_failed: summary.points_failed,
                batch_points: chunk.len(),
                batch_failed: failed.len(),
                batch_wall_s: wall,
                batch_error: error.clone(),
            });
        }
        if opts.abort_after_batches == Some(summary.batches) {
            std::process::abort();
        }
    }
    if let Some(p) = progress {
        p.finish(&summary);
    }
    let complete = in_shard.iter().all(|i| dir.done().contains(i));
    dir.finish(complete)?;
    Ok(summary)
}

/// The layout of `results.zarr`: the same for every shard and session of a plan (one
/// probe of the first point of each batch key of the whole sweep gives the arrays and
/// their lengths; none without `output.arrays`).
fn dataset_layout(plan: &Plan, model: &dyn Model) -> Layout {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut axes: Vec<(String, Vec<f64>)> =
        plan.axes.iter().map(|a| (a.name.clone(), Vec::with_capacity(plan.n_points()))).collect();
    for p in points(plan) {
        for (a, v) in axes.iter_mut().zip(&p.values) {
            a.1.push(*v);
        }
        if plan.output.arrays {
            let key = model.batch_key(&p.parsed).unwrap_or_default();
            let g = *index.entry(key).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[g].push(p.index);
        }
    }
    let probes: Vec<Probe> = groups
        .into_iter()
        .map(|pts| {
            let arrays = probe_arrays(plan, model, &point(plan, pts[0])).ok();
            (pts, arrays)
        })
        .collect();
    let statics = model.static_arrays();
    let is_static = |n: &str| n.starts_with("grid_") || statics.iter().any(|s| s == n);
    Layout::new(plan.n_points(), plan.output_times().to_vec(), axes, &probes, &is_static)
}

/// The arrays (name, length) one point writes, from a one-member batch at `t = 0` (or its
/// direct evaluation).
fn probe_arrays(plan: &Plan, model: &dyn Model, p: &Point) -> Result<Vec<(String, usize)>> {
    let arrays = if matches!(plan.solver, SolverPlan::Direct) {
        let obs = model.evaluate(std::slice::from_ref(&p.parsed)).unwrap_or_else(|| Ok(Vec::new()))?;
        obs.into_iter().next().map(|o| o.arrays).unwrap_or_default()
    } else {
        let problem = model.build(std::slice::from_ref(&p.parsed))?;
        let y0 = problem.initial_state();
        problem.observables(0, 0.0, &y0).arrays
    };
    Ok(arrays.into_iter().map(|(n, v)| (n, v.len())).collect())
}

/// Builds a one-member batch: its layout and its observable names at `t = 0`.
fn probe(plan: &Plan, model: &dyn Model, p: &Point) -> Result<(Option<BatchLayout>, Vec<String>)> {
    if matches!(plan.solver, SolverPlan::Direct) {
        let obs = model.evaluate(std::slice::from_ref(&p.parsed)).unwrap_or_else(|| Ok(Vec::new()))?;
        let names = obs.first().map(|o| o.scalars.iter().map(|(n, _)| n.clone()).collect()).unwrap_or_default();
        return Ok((None, names));
    }
    let problem = model.build(std::slice::from_ref(&p.parsed))?;
    let y0 = problem.initial_state();
    let obs = problem.observables(0, 0.0, &y0);
    let mut names: Vec<String> = obs.scalars.into_iter().map(|(n, _)| n).collect();
    names.extend(problem.summary_names());
    Ok((Some(problem.layout()), names))
}

struct BatchOutcome {
    rows: Vec<Row>,
    arrays: Vec<PointArrays>,
    backend: Option<crate::engine::backend::BackendInfo>,
    /// GPU dispatches of the integration (None on the CPU or without one).
    dispatches: Option<u64>,
    /// Accepted steps of the batch: the most any member took (members advance together,
    /// one step program per step for the whole batch).
    accepted_steps: u64,
    /// Right-hand-side evaluations per point (None for direct evaluations).
    rhs_evaluations_per_point: Option<f64>,
}

fn failed_rows(plan: &Plan, chunk: &[Point], message: &str) -> Vec<Row> {
    let times: Vec<f64> = match plan.output_times() {
        [] => vec![0.0],
        t => t.to_vec(),
    };
    chunk
        .iter()
        .flat_map(|p| {
            times.iter().enumerate().map(move |(k, t)| Row {
                point: p.index,
                axis_values: p.values.clone(),
                output: k,
                t: *t,
                t_reached: f64::NAN,
                status: "failed",
                steps_accepted: 0,
                steps_rejected: 0,
                observables: Vec::new(),
                message: message.to_string(),
            })
        })
        .collect()
}

fn run_batch(
    plan: &Plan,
    model: &dyn Model,
    chunk: &[Point],
    factory: &mut BackendFactory<'_>,
    map_device: Option<&MapDeviceHandle>,
) -> Result<BatchOutcome> {
    let params: Vec<ParsedParams> = chunk.iter().map(|p| p.parsed.clone()).collect();
    let opts = match &plan.solver {
        SolverPlan::Direct => {
            let obs = model
                .evaluate(&params)
                .unwrap_or_else(|| Err(NeqkinError::invalid("solver.method", "model has no direct evaluation")))?;
            if obs.len() != chunk.len() {
                return Err(NeqkinError::invalid(
                    "solver.method",
                    format!("direct evaluation returned {} results for {} points", obs.len(), chunk.len()),
                ));
            }
            let mut rows = Vec::new();
            let mut arrays = Vec::new();
            for (p, o) in chunk.iter().zip(obs) {
                rows.push(Row {
                    point: p.index,
                    axis_values: p.values.clone(),
                    output: 0,
                    t: 0.0,
                    t_reached: 0.0,
                    status: "reached",
                    steps_accepted: 0,
                    steps_rejected: 0,
                    observables: o.scalars,
                    message: String::new(),
                });
                arrays.push(PointArrays {
                    point: p.index,
                    arrays: o.arrays.into_iter().map(|(n, v)| (n, vec![v])).collect(),
                });
            }
            return Ok(BatchOutcome {
                rows,
                arrays,
                backend: None,
                dispatches: None,
                accepted_steps: 0,
                rhs_evaluations_per_point: None,
            });
        }
        SolverPlan::Integrate(o) => o,
    };
    let problem = match &map_device {
        Some(d) => model.build_with(&params, &*d.0)?,
        None => model.build(&params)?,
    };
    let layout = problem.layout();
    if layout.batch != chunk.len() {
        return Err(NeqkinError::invalid(
            "params",
            format!("model built {} members for {} points", layout.batch, chunk.len()),
        ));
    }
    let mut backend = factory(problem.clone())?;
    let info = backend.info();
    let n = layout.state_len;
    let mut rows: Vec<Vec<Row>> = vec![Vec::new(); chunk.len()];
    let mut arrays: Vec<PointArrays> =
        chunk.iter().map(|p| PointArrays { point: p.index, arrays: Vec::new() }).collect();
    let mut on_output = |f: &OutputFrame<'_>| -> Result<()> {
        for (m, p) in chunk.iter().enumerate() {
            let y = &f.state[m * n..(m + 1) * n];
            let obs = problem.observables(m, f.time_reached[m], y);
            let status = status_name(f.status[m]);
            rows[m].push(Row {
                point: p.index,
                axis_values: p.values.clone(),
                output: f.index,
                t: f.t,
                t_reached: f.time_reached[m],
                status,
                steps_accepted: f.n_accept[m] as u64,
                steps_rejected: f.n_reject[m] as u64,
                observables: obs.scalars,
                message: if let Some(why) = f.messages.get(m).filter(|s| !s.is_empty()) {
                    why.clone()
                } else if status == "failed" {
                    format!("failed at t = {:.6e} (the integrator gave no reason)", f.time_reached[m])
                } else if status == "stopped" {
                    format!("stopped at t = {:.6e}: {}", f.time_reached[m], problem.stop_reason(m))
                } else {
                    String::new()
                },
            });
            for (name, v) in obs.arrays {
                match arrays[m].arrays.iter_mut().find(|(nm, _)| *nm == name) {
                    Some((_, frames)) => frames.push(v),
                    None => arrays[m].arrays.push((name, vec![v])),
                }
            }
        }
        Ok(())
    };
    let stats = integrate(&mut *backend, &*problem, opts, &mut on_output)?;
    let dispatches = backend.info().dispatches;
    let accepted_steps = rows.iter().filter_map(|r| r.last()).map(|r| r.steps_accepted).max().unwrap_or(0);
    // Per-point summaries over the whole history go on the last row; earlier rows get
    // NaN in those columns so every row has the header's width.
    let summary_names = problem.summary_names();
    if !summary_names.is_empty() {
        for (m, point_rows) in rows.iter_mut().enumerate() {
            let history: Vec<(f64, Vec<(String, f64)>)> =
                point_rows.iter().map(|r| (r.t_reached, r.observables.clone())).collect();
            let values = problem.summary(m, &history);
            let last = point_rows.len().saturating_sub(1);
            for (k, row) in point_rows.iter_mut().enumerate() {
                for (j, name) in summary_names.iter().enumerate() {
                    let v = if k == last { values.get(j).copied().unwrap_or(f64::NAN) } else { f64::NAN };
                    row.observables.push((name.clone(), v));
                }
            }
        }
    }
    Ok(BatchOutcome {
        rows: rows.into_iter().flatten().collect(),
        arrays,
        backend: Some(info),
        dispatches,
        accepted_steps,
        rhs_evaluations_per_point: Some(stats.rhs_evaluations_per_member),
    })
}
