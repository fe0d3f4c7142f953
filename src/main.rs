//! The `neqkin` command line: `run`, `devices`, `merge`.
//!
//! The only place that uses `anyhow`; errors are printed with `{:#}` (the whole chain)
//! and mapped to fixed exit codes:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the run finished, but some points are flagged `failed` |
//! | 2 | bad config or usage (including a non-empty output folder without `--resume`/`--force`) |
//! | 3 | runtime error (I/O, GPU, ...) |
//!
//! Test hook: the environment variable `NEQKIN_TEST_ABORT_AFTER_BATCHES=N` makes `run`
//! abort the process (no cleanup, like a kill) right after N batches have been written;
//! the resume tests use it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use neqkin::engine::backend::{Backend, Precision};
use neqkin::engine::cpu::CpuBackend;
use neqkin::engine::gpu::{self, GpuBackend, GpuContext};
use neqkin::engine::model::{BatchLayout, Model};
use neqkin::engine::output::{self, OpenMode};
use neqkin::engine::schedule::{self, Shard, SweepOptions};
use neqkin::NeqkinError;

/// Exit code: some points failed.
const EXIT_FAILED_POINTS: u8 = 1;
/// Exit code: bad config or usage.
const EXIT_USAGE: u8 = 2;
/// Exit code: runtime error.
const EXIT_RUNTIME: u8 = 3;

#[derive(Parser)]
#[command(name = "neqkin", version, about = "Batched solver for non-equilibrium kinetic equations")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the sweep of a config file (TOML, or JSON by extension).
    Run(RunArgs),
    /// List the compute devices neqkin can use.
    Devices,
    /// Join the output folders of shards (`run --shard I/N`) into one.
    Merge {
        /// Folder to create.
        out: PathBuf,
        /// Shard output folders.
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        /// Overwrite `out` if it is not empty.
        #[arg(long)]
        force: bool,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Config file.
    config: PathBuf,
    /// Output folder (default: `results/<config name>`, with `_shardIofN` for shards).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
    /// Kernel precision (GPU; the CPU backend is f64).
    #[arg(long, value_enum, default_value_t = PrecisionChoice::Auto)]
    precision: PrecisionChoice,
    /// Continue the run in the output folder, redoing only unfinished points.
    #[arg(long, conflicts_with = "force")]
    resume: bool,
    /// Delete the results in a non-empty output folder and start over.
    #[arg(long)]
    force: bool,
    /// Run only the points with index % N == I (`I/N`).
    #[arg(long)]
    shard: Option<String>,
    /// Report progress on stderr even when it is not a terminal.
    #[arg(long)]
    progress: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BackendChoice {
    Auto,
    Gpu,
    Cpu,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum PrecisionChoice {
    Auto,
    F32,
    F64,
}

/// An error with the exit code it maps to.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

fn usage(e: impl Into<anyhow::Error>) -> Failure {
    Failure { code: EXIT_USAGE, error: e.into() }
}

/// Input errors (and an output folder that cannot be used as asked) map to the usage
/// code, everything else to the runtime code.
fn classify(e: NeqkinError) -> Failure {
    let code = if e.is_input_error() || matches!(e, NeqkinError::Output { .. }) { EXIT_USAGE } else { EXIT_RUNTIME };
    Failure { code, error: e.into() }
}

fn main() -> ExitCode {
    // Mesa's Vulkan drivers complain on stderr at every adapter query when this is unset
    // (headless batch jobs); the directory is never written to by neqkin.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Devices => devices(),
        Command::Merge { out, shards, force } => merge(&out, &shards, force),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("neqkin: error: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

/// The backend chosen for a run: how many members a batch may hold and how to create
/// the backend of each batch.
struct BackendSetup {
    capacity: Box<dyn Fn(&BatchLayout) -> usize>,
    factory: Box<schedule::BackendFactory<'static>>,
    /// Where models run set-up map jobs (Brillouin-zone sampling); CPU when `None`.
    map_device: Option<schedule::MapDeviceHandle>,
}

/// Vectors and scalar arrays the integrators allocate per batch, upper bounds for the
/// GPU capacity estimate (DOPRI5: state, FSAL derivative, 9 work vectors; 10 controller
/// arrays plus stage times).
const GPU_VECTORS: usize = 16;
const GPU_SCALARS: usize = 24;
/// Largest automatic GPU batch: bigger batches gain little and make each write (and the
/// work lost to a kill) larger. `output.batch_size` overrides it.
const GPU_AUTO_BATCH_CAP: usize = 4096;

fn backend_setup(choice: BackendChoice, precision: PrecisionChoice) -> Result<BackendSetup, Failure> {
    let requested: Option<Precision> = match precision {
        PrecisionChoice::Auto => None,
        PrecisionChoice::F32 => Some(Precision::F32),
        PrecisionChoice::F64 => Some(Precision::F64),
    };
    let cpu = || BackendSetup {
        capacity: Box::new(schedule::cpu_capacity),
        factory: Box::new(|p| Ok(Box::new(CpuBackend::new(p)) as Box<dyn Backend>)),
        map_device: None,
    };
    let gpu = || -> neqkin::Result<BackendSetup> {
        let ctx = Arc::new(GpuContext::new()?);
        let precision = ctx.resolve_precision(requested)?;
        let cap_ctx = ctx.clone();
        let map_device = Some(schedule::MapDeviceHandle(Arc::new(gpu::GpuMap::new(ctx.clone(), precision))));
        Ok(BackendSetup {
            map_device,
            capacity: Box::new(move |l| {
                gpu::max_batch(&cap_ctx, l, precision, GPU_VECTORS, GPU_SCALARS).min(GPU_AUTO_BATCH_CAP)
            }),
            factory: Box::new(move |p| Ok(Box::new(GpuBackend::new(ctx.clone(), p, precision)?) as Box<dyn Backend>)),
        })
    };
    match choice {
        BackendChoice::Cpu => {
            if precision == PrecisionChoice::F32 {
                return Err(usage(anyhow::anyhow!("--precision f32: the CPU backend computes in f64 only")));
            }
            Ok(cpu())
        }
        BackendChoice::Gpu => gpu().map_err(classify),
        // A software adapter (lavapipe, device type Cpu) is slower than the native CPU
        // backend, so `auto` takes the GPU path only for hardware adapters; `--backend gpu`
        // still runs on it (that is how the GPU path is tested on GPU-less machines).
        BackendChoice::Auto if software_adapters_only() => {
            if let Some(a) = gpu::list_adapters().first() {
                eprintln!(
                    "neqkin: only a software adapter ({}); using the CPU backend (--backend gpu forces it)",
                    a.name
                );
            }
            if precision == PrecisionChoice::F32 {
                eprintln!("neqkin: note: the CPU backend computes in f64");
            }
            Ok(cpu())
        }
        BackendChoice::Auto => match gpu() {
            Ok(setup) => Ok(setup),
            Err(NeqkinError::NoAdapter(why)) => {
                eprintln!("neqkin: no GPU adapter ({why}); using the CPU backend");
                if precision == PrecisionChoice::F32 {
                    eprintln!("neqkin: note: the CPU backend computes in f64");
                }
                Ok(cpu())
            }
            Err(e) => Err(classify(e)),
        },
    }
}

/// True when every adapter wgpu finds is a software one (or there is none).
fn software_adapters_only() -> bool {
    gpu::list_adapters().iter().all(|a| a.device_type == "Cpu")
}

fn default_out(config: &Path, shard: Shard) -> PathBuf {
    let stem = config.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "run".into());
    let name = if shard.count > 1 { format!("{stem}_shard{}of{}", shard.index, shard.count) } else { stem };
    PathBuf::from("results").join(name)
}

fn run(args: RunArgs) -> Result<u8, Failure> {
    let (plan, model) = neqkin::config::load_plan(&args.config)
        .map_err(|e| usage(anyhow::Error::new(e).context(format!("config {}", args.config.display()))))?;
    let shard: Shard = match &args.shard {
        Some(s) => s.parse().map_err(usage)?,
        None => Shard::default(),
    };
    let out = args.out.clone().unwrap_or_else(|| default_out(&args.config, shard));
    let mode = if args.resume {
        OpenMode::Resume
    } else if args.force {
        OpenMode::Force
    } else {
        OpenMode::New
    };
    output::check_folder(&out, mode).map_err(usage)?;
    // The implicit method runs on the host: `auto` picks the CPU backend for it (said on
    // stderr); an explicit `--backend gpu` is refused, naming the field.
    let implicit = matches!(&plan.solver, neqkin::config::SolverPlan::Integrate(o)
        if o.method == neqkin::engine::solve::Method::Bdf);
    let backend_choice = match (implicit, args.backend) {
        (true, BackendChoice::Gpu) => return Err(usage(anyhow::Error::new(NeqkinError::invalid(
            "solver.method",
            "\"bdf\" (implicit, dense Newton/LU on the host) runs on the CPU backend only; use --backend cpu or auto",
        )))),
        (true, BackendChoice::Auto) => {
            eprintln!("neqkin: solver.method = \"bdf\" runs on the CPU backend");
            BackendChoice::Cpu
        }
        (_, c) => c,
    };
    let mut setup = backend_setup(backend_choice, args.precision)?;
    let abort_after_batches = std::env::var("NEQKIN_TEST_ABORT_AFTER_BATCHES").ok().and_then(|v| v.parse().ok());
    let opts = SweepOptions {
        shard,
        mode: Some(mode),
        progress: args.progress,
        abort_after_batches,
        map_device: setup.map_device.clone(),
    };
    let summary =
        schedule::run_sweep(&plan, &*model, &out, &opts, &*setup.capacity, &mut *setup.factory).map_err(classify)?;
    let failed = output::failed_points(&out).map_err(classify)?;
    eprintln!(
        "neqkin: {} of {} points in shard {shard} done now ({} skipped as already done), {} batches; \
         {} points failed in total; results in {}",
        summary.points_run,
        summary.points_in_shard,
        summary.points_skipped,
        summary.batches,
        failed.len(),
        out.display()
    );
    Ok(if failed.is_empty() { 0 } else { EXIT_FAILED_POINTS })
}

fn devices() -> Result<u8, Failure> {
    let probe =
        neqkin::models::relaxation::Relaxation.build(&[serde_json::json!({ "grid_points": 1 })]).map_err(classify)?;
    let cpu = CpuBackend::new(probe).info();
    println!("cpu: {} ({}, {} threads, {}) — always available", cpu.adapter, cpu.api, cpu.threads, cpu.precision);
    let adapters = gpu::list_adapters();
    if adapters.is_empty() {
        println!("gpu: no Vulkan, Metal or DX12 adapter found");
    }
    for a in adapters {
        println!(
            "gpu: {} ({}, {}, f64: {}, max storage binding {} MiB)",
            a.name,
            a.api,
            a.device_type,
            if a.f64 { "yes" } else { "no" },
            a.max_storage_binding >> 20
        );
    }
    let names: Vec<&str> = neqkin::models::registry().iter().map(|m| m.name()).collect();
    println!("models: {}", names.join(", "));
    Ok(0)
}

fn merge(out: &Path, shards: &[PathBuf], force: bool) -> Result<u8, Failure> {
    output::check_folder(out, if force { OpenMode::Force } else { OpenMode::New }).map_err(usage)?;
    let s = output::merge(out, shards, force).map_err(|e| {
        let code = if matches!(e, NeqkinError::Output { .. }) { EXIT_USAGE } else { EXIT_RUNTIME };
        Failure { code, error: anyhow::Error::new(e).context(format!("merging into {}", out.display())) }
    })?;
    eprintln!("neqkin: merged {} points into {}", s.points, out.display());
    if s.missing > 0 {
        eprintln!("neqkin: warning: {} points of the sweep are in no shard", s.missing);
    }
    let failed = output::failed_points(out).map_err(classify)?;
    Ok(if failed.is_empty() { 0 } else { EXIT_FAILED_POINTS })
}
