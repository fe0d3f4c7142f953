//! The run layer: one call from a checked config to a written output folder.
//!
//! The CLI (`neqkin run`) and the Python package (`neqkin.run`) both come through here,
//! so they choose backends, open output folders and stop on cancellation the same way.
//! It sits on top of [`crate::config`] and [`crate::engine`]; neither imports it.
//!
//! Notes for the user (a fallback to the CPU backend, why) go to stderr prefixed
//! `neqkin:`, as the CLI always printed them.

pub mod batches;
pub mod bench;
pub mod dataset;
pub mod folder;
pub mod output;
pub mod progress;
pub mod schedule;
pub mod slurm;
pub mod starter;

pub use batches::{Estimate, Limits};

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::config::{Plan, SolverPlan};
use crate::engine::backend::{Backend, Precision};
use crate::engine::cpu::CpuBackend;
use crate::engine::gpu::{self, GpuBackend, GpuContext};
use crate::engine::model::{BatchLayout, Model};
use crate::engine::solve::Method;
use crate::run::output::OpenMode;
use crate::run::schedule::{ProgressHandle, Shard, SweepOptions, SweepSummary};
use crate::{NeqkinError, Result};

/// Which compute backend runs the sweep.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendChoice {
    /// A hardware GPU when there is one, else the CPU backend.
    #[default]
    Auto,
    /// The wgpu backend (also on a software adapter such as lavapipe).
    Gpu,
    /// The f64 CPU reference backend.
    Cpu,
}

impl FromStr for BackendChoice {
    type Err = NeqkinError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(BackendChoice::Auto),
            "gpu" => Ok(BackendChoice::Gpu),
            "cpu" => Ok(BackendChoice::Cpu),
            _ => Err(NeqkinError::invalid("backend", format!("`{s}`: expected auto, gpu or cpu"))),
        }
    }
}

/// Kernel precision on the GPU (the CPU backend is f64 only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PrecisionChoice {
    /// f64 when the adapter has it, else f32.
    #[default]
    Auto,
    /// Single precision.
    F32,
    /// Double precision (refused by adapters without `SHADER_F64`).
    F64,
}

impl FromStr for PrecisionChoice {
    type Err = NeqkinError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(PrecisionChoice::Auto),
            "f32" => Ok(PrecisionChoice::F32),
            "f64" => Ok(PrecisionChoice::F64),
            _ => Err(NeqkinError::invalid("precision", format!("`{s}`: expected auto, f32 or f64"))),
        }
    }
}

/// How to run a config (what it computes is the config's business).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Compute backend.
    pub backend: BackendChoice,
    /// Kernel precision (GPU).
    pub precision: PrecisionChoice,
    /// Output folder; `None` = [`default_out`] of the config file.
    pub out: Option<PathBuf>,
    /// Continue the run recorded in the output folder.
    pub resume: bool,
    /// Delete the results in a non-empty output folder and start over.
    pub force: bool,
    /// Which points to run.
    pub shard: Shard,
    /// Report progress on stderr even when it is not a terminal (plain lines then; a bar
    /// on a terminal in any case). Ignored when `reporter` is given.
    pub progress: bool,
    /// Told after every written batch instead of the stderr reporter
    /// ([`progress::TerminalProgress`]); e.g. a Python callback.
    pub reporter: Option<ProgressHandle>,
    /// Set it to stop after the batch in flight is written (the folder stays resumable).
    pub cancel: Option<Arc<AtomicBool>>,
    /// Caps on memory per batch, output size and points, checked before anything runs.
    pub limits: Limits,
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// The output folder written.
    pub out: PathBuf,
    /// What the scheduler did in this session.
    pub sweep: SweepSummary,
    /// Points flagged `failed` in the whole folder (earlier sessions included).
    pub failed_points: usize,
    /// Whether the run stopped early on the cancel flag.
    pub cancelled: bool,
}

/// `results/<config stem>`, with `_shardIofN` for shards.
pub fn default_out(config: &Path, shard: Shard) -> PathBuf {
    let stem = config.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "run".into());
    let name = if shard.count > 1 { format!("{stem}_shard{}of{}", shard.index, shard.count) } else { stem };
    PathBuf::from("results").join(name)
}

/// Loads, checks and runs the config file `config` (TOML, or JSON by extension).
pub fn run_config(config: &Path, opts: &RunOptions) -> Result<RunSummary> {
    let max_points = opts.limits.max_points.unwrap_or(crate::config::plan::DEFAULT_MAX_POINTS);
    let (plan, model) = crate::config::load_plan_limited(config, max_points)?;
    let out = opts.out.clone().unwrap_or_else(|| default_out(config, opts.shard));
    run_plan(&plan, &*model, &out, opts)
}

/// What a run of a checked plan would do, without creating or touching `out`: the
/// [`Estimate`] (points, batches by key, memory, output size; an error where a cap is
/// exceeded) and a line naming the backend that would run.
pub fn dry_run(plan: &Plan, model: &dyn Model, out: &Path, opts: &RunOptions) -> Result<(Estimate, String)> {
    let setup = backend_setup(choose_backend(plan, opts.backend)?, opts.precision)?;
    let est = batches::estimate(plan, model, opts.shard, &opts.limits, out, &*setup.capacity)?;
    Ok((est, setup.describe))
}

/// The backend after the method's constraints: the implicit method runs on the host, so
/// `auto` picks the CPU backend for it (said on stderr) and an explicit GPU request is
/// refused, naming the field.
fn choose_backend(plan: &Plan, requested: BackendChoice) -> Result<BackendChoice> {
    let host = match &plan.solver {
        SolverPlan::Integrate(o) if o.method == Method::Bdf => Some("bdf"),
        SolverPlan::Integrate(o) if o.method == Method::Rosenbrock => Some("rosenbrock"),
        _ => None,
    };
    Ok(match (host, requested) {
        (Some(name), BackendChoice::Gpu) => {
            return Err(NeqkinError::invalid(
                "solver.method",
                format!(
                "\"{name}\" (implicit, Newton/LU on the host) runs on the CPU backend only; use --backend cpu or auto"
            ),
            ))
        }
        (Some(name), BackendChoice::Auto) => {
            eprintln!("neqkin: solver.method = \"{name}\" runs on the CPU backend");
            BackendChoice::Cpu
        }
        (_, c) => c,
    })
}

/// Runs a checked plan into `out` (`opts.out` is ignored here). The limits
/// ([`RunOptions::limits`]) are checked before the output folder is created or touched.
pub fn run_plan(plan: &Plan, model: &dyn Model, out: &Path, opts: &RunOptions) -> Result<RunSummary> {
    let mode = if opts.resume && opts.force {
        return Err(NeqkinError::invalid("resume", "resume and force exclude each other"));
    } else if opts.resume {
        OpenMode::Resume
    } else if opts.force {
        OpenMode::Force
    } else {
        OpenMode::New
    };
    let mut setup = backend_setup(choose_backend(plan, opts.backend)?, opts.precision)?;
    // Batches by key and the limits, before the folder is created or touched.
    let est = batches::estimate(plan, model, opts.shard, &opts.limits, out, &*setup.capacity)?;
    output::check_folder(out, mode)?;
    let abort_after_batches = std::env::var("NEQKIN_TEST_ABORT_AFTER_BATCHES").ok().and_then(|v| v.parse().ok());
    let sweep_opts = SweepOptions {
        shard: opts.shard,
        mode: Some(mode),
        progress: Some(
            opts.reporter
                .clone()
                .unwrap_or_else(|| ProgressHandle(Arc::new(progress::TerminalProgress::new(opts.progress)))),
        ),
        abort_after_batches,
        map_device: setup.map_device.clone(),
        cancel: opts.cancel.clone(),
        groups: Some(est.batch_groups()),
    };
    let sweep = schedule::run_sweep(plan, model, out, &sweep_opts, &*setup.capacity, &mut *setup.factory)?;
    let failed_points = output::failed_points(out)?.len();
    Ok(RunSummary { out: out.to_path_buf(), cancelled: sweep.cancelled, sweep, failed_points })
}

/// The backend chosen for a run: how many members a batch may hold and how to create
/// the backend of each batch.
struct BackendSetup {
    capacity: Box<dyn Fn(&BatchLayout) -> usize>,
    factory: Box<schedule::BackendFactory<'static>>,
    /// Where models run set-up map jobs (Brillouin-zone sampling); CPU when `None`.
    map_device: Option<schedule::MapDeviceHandle>,
    /// The backend in words (`--dry-run`).
    describe: String,
}

/// Vectors and scalar arrays the integrators allocate per batch, upper bounds for the
/// GPU capacity estimate (DOPRI5: state, FSAL derivative, 9 work vectors; 10 controller
/// arrays plus stage times).
const GPU_VECTORS: usize = 16;
const GPU_SCALARS: usize = 24;
/// Largest automatic GPU batch: bigger batches gain little and make each write (and the
/// work lost to a kill) larger. `output.batch_size` overrides it.
const GPU_AUTO_BATCH_CAP: usize = 4096;

fn backend_setup(choice: BackendChoice, precision: PrecisionChoice) -> Result<BackendSetup> {
    let requested: Option<Precision> = match precision {
        PrecisionChoice::Auto => None,
        PrecisionChoice::F32 => Some(Precision::F32),
        PrecisionChoice::F64 => Some(Precision::F64),
    };
    let cpu = || BackendSetup {
        capacity: Box::new(schedule::cpu_capacity),
        factory: Box::new(|p| Ok(Box::new(CpuBackend::new(p)) as Box<dyn Backend>)),
        map_device: None,
        describe: format!("cpu (f64, {} threads)", rayon::current_num_threads()),
    };
    let gpu = || -> Result<BackendSetup> {
        let ctx = Arc::new(GpuContext::new()?);
        let precision = ctx.resolve_precision(requested)?;
        let cap_ctx = ctx.clone();
        let map_device = Some(schedule::MapDeviceHandle(Arc::new(gpu::GpuMap::new(ctx.clone(), precision))));
        let a = ctx.info();
        Ok(BackendSetup {
            describe: format!("gpu {} ({}, {}, {precision:?})", a.name, a.api, a.device_type),
            map_device,
            capacity: Box::new(move |l| {
                gpu::max_batch(&cap_ctx, l, precision, GPU_VECTORS, GPU_SCALARS).min(GPU_AUTO_BATCH_CAP)
            }),
            factory: Box::new(move |p| Ok(Box::new(GpuBackend::new(ctx.clone(), p, precision)?) as Box<dyn Backend>)),
        })
    };
    let cpu_note = || {
        if precision == PrecisionChoice::F32 {
            eprintln!("neqkin: note: the CPU backend computes in f64");
        }
    };
    match choice {
        BackendChoice::Cpu => {
            if precision == PrecisionChoice::F32 {
                return Err(NeqkinError::invalid("precision", "f32: the CPU backend computes in f64 only"));
            }
            Ok(cpu())
        }
        BackendChoice::Gpu => gpu(),
        // A software adapter (lavapipe, device type Cpu) is slower than the native CPU
        // backend, so `auto` takes the GPU path only for hardware adapters; an explicit
        // GPU choice still runs on it (that is how the GPU path is tested on GPU-less
        // machines).
        BackendChoice::Auto if software_adapters_only() => {
            if let Some(a) = gpu::list_adapters().first() {
                eprintln!(
                    "neqkin: only a software adapter ({}); using the CPU backend (--backend gpu forces it)",
                    a.name
                );
            }
            cpu_note();
            Ok(cpu())
        }
        BackendChoice::Auto => match gpu() {
            Ok(setup) => Ok(setup),
            Err(NeqkinError::NoAdapter(why)) => {
                eprintln!("neqkin: no GPU adapter ({why}); using the CPU backend");
                cpu_note();
                Ok(cpu())
            }
            Err(e) => Err(e),
        },
    }
}

/// True when every adapter wgpu finds is a software one (or there is none).
fn software_adapters_only() -> bool {
    gpu::list_adapters().iter().all(|a| a.device_type == "Cpu")
}

/// One line per compute device: the CPU backend, then every GPU adapter wgpu finds.
pub fn devices() -> Result<Vec<DeviceInfo>> {
    let relaxation = crate::models::relaxation::Relaxation;
    let probe = relaxation.build(&relaxation.parse_all(&[serde_json::json!({ "grid_points": 1 })])?)?;
    let cpu = CpuBackend::new(probe).info();
    let mut list = vec![DeviceInfo {
        kind: "cpu".into(),
        name: cpu.adapter,
        api: cpu.api,
        device_type: format!("{} threads", cpu.threads),
        f64: true,
        max_storage_binding: None,
    }];
    for a in gpu::list_adapters() {
        list.push(DeviceInfo {
            kind: "gpu".into(),
            name: a.name,
            api: a.api,
            device_type: a.device_type,
            f64: a.f64,
            max_storage_binding: Some(a.max_storage_binding),
        });
    }
    Ok(list)
}

/// A compute device as [`devices`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// `cpu` or `gpu`.
    pub kind: String,
    /// Adapter name.
    pub name: String,
    /// API (`rayon`, `Vulkan`, ...).
    pub api: String,
    /// Device type (`DiscreteGpu`, `Cpu` for software adapters, thread count for the CPU backend).
    pub device_type: String,
    /// Whether f64 kernels run there.
    pub f64: bool,
    /// Largest storage buffer binding in bytes (GPU).
    pub max_storage_binding: Option<u64>,
}
