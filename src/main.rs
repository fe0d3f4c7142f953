//! The `neqkin` command line: `run`, `devices`, `bench`, `params`, `init`, `merge`, `slurm`,
//! `plot`, `completions`.
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
//! | 130 | stopped by SIGINT/SIGTERM after the batch in flight was written (`--resume` continues) |
//!
//! The run itself is [`neqkin::run`], shared with the Python package; this file only
//! parses arguments, hooks the signals and maps errors to exit codes.
//!
//! Test hook: the environment variable `NEQKIN_TEST_ABORT_AFTER_BATCHES=N` makes `run`
//! abort the process (no cleanup, like a kill) right after N batches have been written;
//! the resume tests use it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use neqkin::run::output;
use neqkin::run::schedule::Shard;
use neqkin::run::{self, RunOptions};
use neqkin::NeqkinError;

/// Exit code: some points failed.
const EXIT_FAILED_POINTS: u8 = 1;
/// Exit code: bad config or usage.
const EXIT_USAGE: u8 = 2;
/// Exit code: runtime error.
const EXIT_RUNTIME: u8 = 3;
/// Exit code: stopped by SIGINT/SIGTERM (128 + SIGINT); the folder is resumable.
const EXIT_INTERRUPTED: u8 = 130;

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
    /// Time a fixed suite (photoexcited, interband, cavity Newton) on the CPU and on every
    /// GPU adapter, f64 and f32: points/s, grid-point updates/s, RHS bandwidth against a
    /// copy, dispatches per step.
    Bench {
        /// Smaller batches and shorter runs (well under a minute on two cores).
        #[arg(long)]
        quick: bool,
        /// Also write the results as JSON to this file.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Timed runs per case (the median is printed).
        #[arg(long, default_value_t = 3)]
        reps: usize,
    },
    /// Every parameter of a model: default, unit, allowed range, meaning.
    Params {
        /// Model name (`neqkin devices` lists them).
        model: String,
    },
    /// Print a commented starter config for a model (`neqkin init MODEL > run.toml`).
    Init {
        /// Model name.
        model: String,
    },
    /// Join the output folders of shards (`run --shard I/N`) into one.
    Merge {
        /// Folder to create.
        out: PathBuf,
        /// Shard output folders.
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        /// Delete the results in `out` if it is a non-empty folder neqkin made.
        #[arg(long)]
        force: bool,
        /// Merge what there is: skip missing shard folders, take the finished points of
        /// incomplete shards (otherwise those are errors, exit 2).
        #[arg(long)]
        allow_partial: bool,
    },
    /// Draw the standard picture of a run (the config's `[plot]`, else the model's).
    Plot {
        /// Output folder of `neqkin run`.
        out: PathBuf,
        /// PNG file to write (default: OUT/plot.png).
        #[arg(long)]
        png: Option<PathBuf>,
    },
    /// Print a shell completion script (e.g. `neqkin completions bash > /etc/bash_completion.d/neqkin`).
    Completions {
        /// Shell.
        shell: clap_complete::Shell,
    },
    /// Write (and with --submit, submit) a Slurm job array with one shard per task and a
    /// merge job that runs after it; requeued or resubmitted tasks resume their shard.
    Slurm(SlurmArgs),
}

#[derive(clap::Args)]
struct SlurmArgs {
    /// Config file (copied into the job folder; the jobs run the copy).
    config: PathBuf,
    /// Number of shards = array tasks.
    #[arg(long)]
    shards: usize,
    /// Folder of the merged dataset (default: `results/<config name>`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Job folder for the config copy, scripts, logs and shards (default: `<out>.slurm`).
    #[arg(long)]
    job_dir: Option<PathBuf>,
    /// Slurm partition.
    #[arg(long)]
    partition: Option<String>,
    /// Time limit of each task (sbatch --time, e.g. 2:00:00).
    #[arg(long)]
    time: Option<String>,
    /// CPUs per task (also the CPU backend's thread count; default 1).
    #[arg(long)]
    cpus: Option<u32>,
    /// GPUs per task (sbatch --gpus: N or TYPE:N); the tasks then use the GPU backend.
    #[arg(long)]
    gpus: Option<String>,
    /// Memory per task (sbatch --mem, e.g. 8G).
    #[arg(long)]
    mem: Option<String>,
    /// Slurm account.
    #[arg(long)]
    account: Option<String>,
    /// Run at most K tasks at once (--array=…%K).
    #[arg(long, value_name = "K")]
    max_parallel: Option<usize>,
    /// Another #SBATCH line for the array tasks, verbatim (repeatable): --sbatch-arg=--qos=long.
    #[arg(long, value_name = "OPTION", allow_hyphen_values = true)]
    sbatch_arg: Vec<String>,
    /// Backend of each task (default: gpu with --gpus, else cpu).
    #[arg(long, value_enum)]
    backend: Option<BackendChoice>,
    /// Submit with sbatch now and print the job ids (default: write the scripts and print
    /// the sbatch commands).
    #[arg(long)]
    submit: bool,
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
    /// Print what the run would do (points, batches by key, memory per batch, output
    /// size, backend) and stop; nothing is written.
    #[arg(long)]
    dry_run: bool,
    /// Most memory one batch may need, e.g. 16G (default: half the machine's memory).
    #[arg(long, value_name = "BYTES")]
    max_memory: Option<String>,
    /// Most bytes the run may write, e.g. 500G (default: the free space where it writes).
    #[arg(long, value_name = "BYTES")]
    max_output: Option<String>,
    /// Most sweep points (default 1000000).
    #[arg(long, value_name = "N")]
    max_points: Option<u64>,
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

impl From<BackendChoice> for run::BackendChoice {
    fn from(c: BackendChoice) -> Self {
        match c {
            BackendChoice::Auto => run::BackendChoice::Auto,
            BackendChoice::Gpu => run::BackendChoice::Gpu,
            BackendChoice::Cpu => run::BackendChoice::Cpu,
        }
    }
}

impl From<PrecisionChoice> for run::PrecisionChoice {
    fn from(c: PrecisionChoice) -> Self {
        match c {
            PrecisionChoice::Auto => run::PrecisionChoice::Auto,
            PrecisionChoice::F32 => run::PrecisionChoice::F32,
            PrecisionChoice::F64 => run::PrecisionChoice::F64,
        }
    }
}

/// An error with the exit code it maps to.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl Failure {
    fn context(self, c: String) -> Failure {
        Failure { code: self.code, error: self.error.context(c) }
    }
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
        Command::Bench { quick, json, reps } => bench(quick, json.as_deref(), reps),
        Command::Params { model } => neqkin::models::find(&model)
            .map(|m| print!("{}", run::starter::params_table(&*m)))
            .map(|_| 0)
            .map_err(usage),
        Command::Init { model } => {
            neqkin::models::find(&model).map(|m| print!("{}", run::starter::init_toml(&*m))).map(|_| 0).map_err(usage)
        }
        Command::Merge { out, shards, force, allow_partial } => {
            merge(&out, &shards, output::MergeOptions { force, allow_partial })
        }
        Command::Slurm(args) => slurm(args),
        Command::Plot { out, png } => plot(&out, png.as_deref()),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "neqkin", &mut std::io::stdout());
            Ok(0)
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("neqkin: error: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

fn run(args: RunArgs) -> Result<u8, Failure> {
    let bytes = |flag: &str, v: &Option<String>| -> Result<Option<u64>, Failure> {
        v.as_deref()
            .map(|s| run::batches::parse_bytes(s).map_err(|e| usage(anyhow::anyhow!("{flag}: {e}"))))
            .transpose()
    };
    let limits = run::Limits {
        max_memory: bytes("--max-memory", &args.max_memory)?,
        max_output: bytes("--max-output", &args.max_output)?,
        max_points: args.max_points,
    };
    let max_points = limits.max_points.unwrap_or(neqkin::config::plan::DEFAULT_MAX_POINTS);
    let (plan, model) = neqkin::config::load_plan_limited(&args.config, max_points)
        .map_err(|e| usage(anyhow::Error::new(e).context(format!("config {}", args.config.display()))))?;
    let shard: Shard = match &args.shard {
        Some(s) => s.parse().map_err(usage)?,
        None => Shard::default(),
    };
    let out = args.out.clone().unwrap_or_else(|| run::default_out(&args.config, shard));
    // SIGINT/SIGTERM set the flag; the sweep ends after the batch in flight is written.
    // A second signal exits at once (code 130), like a kill: `--resume` still recovers.
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(EXIT_INTERRUPTED as i32);
        }
        eprintln!("neqkin: interrupted; stopping after the batch in flight (again to kill now)");
    });
    let opts = RunOptions {
        backend: args.backend.into(),
        precision: args.precision.into(),
        out: Some(out.clone()),
        resume: args.resume,
        force: args.force,
        shard,
        progress: args.progress,
        reporter: None,
        cancel: Some(cancel),
        limits,
    };
    if args.dry_run {
        let (est, backend) = run::dry_run(&plan, &*model, &out, &opts).map_err(classify)?;
        print!("{}", est.report());
        println!("backend: {backend}");
        println!("output folder: {} (not created)", out.display());
        return Ok(0);
    }
    let summary = run::run_plan(&plan, &*model, &out, &opts).map_err(classify)?;
    let s = &summary.sweep;
    eprintln!(
        "neqkin: {} of {} points in shard {shard} done now ({} skipped as already done), {} batches; \
         {} points failed in total; results in {}",
        s.points_run,
        s.points_in_shard,
        s.points_skipped,
        s.batches,
        summary.failed_points,
        out.display()
    );
    if summary.cancelled {
        eprintln!("neqkin: run interrupted; continue it with --resume --out {}", out.display());
        return Ok(EXIT_INTERRUPTED);
    }
    Ok(if summary.failed_points == 0 { 0 } else { EXIT_FAILED_POINTS })
}

fn devices() -> Result<u8, Failure> {
    let list = run::devices().map_err(classify)?;
    for d in &list {
        match d.kind.as_str() {
            "cpu" => println!("cpu: {} ({}, {}, f64) — always available", d.name, d.api, d.device_type),
            _ => println!(
                "gpu: {} ({}, {}, f64: {}, max storage binding {} MiB)",
                d.name,
                d.api,
                d.device_type,
                if d.f64 { "yes" } else { "no" },
                d.max_storage_binding.unwrap_or(0) >> 20
            ),
        }
    }
    if list.iter().all(|d| d.kind != "gpu") {
        println!("gpu: no Vulkan, Metal or DX12 adapter found");
    }
    let names: Vec<&str> = neqkin::models::registry().iter().map(|m| m.name()).collect();
    println!("models: {}", names.join(", "));
    Ok(0)
}

fn bench(quick: bool, json: Option<&Path>, reps: usize) -> Result<u8, Failure> {
    use neqkin::run::bench;
    println!(
        "neqkin {} bench{}: median of {reps} runs per case; machine load affects every figure",
        env!("CARGO_PKG_VERSION"),
        if quick { " --quick" } else { "" }
    );
    let header = bench::table(&bench::BenchReport {
        version: String::new(),
        quick,
        reps,
        cases: Vec::new(),
        skipped: Vec::new(),
    });
    print!("{header}");
    let report = bench::run_suite(bench::BenchOptions { quick, reps }, &mut |r| print!("{}", bench::row(r)))
        .map_err(classify)?;
    for s in &report.skipped {
        println!("skipped: {} on {}: {}", s.case, s.device, s.reason);
    }
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&report).expect("the report serialises");
        std::fs::write(path, text).map_err(|e| Failure {
            code: EXIT_RUNTIME,
            error: anyhow::Error::new(e).context(format!("writing {}", path.display())),
        })?;
        println!("wrote {}", path.display());
    }
    Ok(0)
}

fn plot(out: &Path, png: Option<&Path>) -> Result<u8, Failure> {
    let report = neqkin::plot::plot(out, png).map_err(|e| Failure {
        code: if e.is_input_error() || matches!(e, NeqkinError::Output { .. }) { EXIT_USAGE } else { EXIT_RUNTIME },
        error: anyhow::Error::new(e).context(format!("plotting {}", out.display())),
    })?;
    eprintln!(
        "neqkin: {} panel(s), {}×{} px, written to {}",
        report.panels.len(),
        report.size.0,
        report.size.1,
        report.png.display()
    );
    Ok(0)
}

fn merge(out: &Path, shards: &[PathBuf], opts: output::MergeOptions) -> Result<u8, Failure> {
    let s = output::merge(out, shards, opts).map_err(|e| {
        let code = if matches!(e, NeqkinError::Output { .. }) { EXIT_USAGE } else { EXIT_RUNTIME };
        Failure { code, error: anyhow::Error::new(e).context(format!("merging into {}", out.display())) }
    })?;
    for w in &s.warnings {
        eprintln!("neqkin: warning (--allow-partial): {w}");
    }
    eprintln!("neqkin: merged {} points into {}", s.points, out.display());
    if s.missing > 0 {
        eprintln!("neqkin: warning: {} points of the sweep are in no shard (meta.json: complete = false)", s.missing);
    }
    let failed = output::failed_points(out).map_err(classify)?;
    Ok(if failed.is_empty() { 0 } else { EXIT_FAILED_POINTS })
}

fn slurm(args: SlurmArgs) -> Result<u8, Failure> {
    use neqkin::run::slurm;
    let opts = slurm::SlurmOptions {
        shards: args.shards,
        out: args.out,
        job_dir: args.job_dir,
        partition: args.partition,
        time: args.time,
        cpus: args.cpus,
        gpus: args.gpus,
        mem: args.mem,
        account: args.account,
        max_parallel: args.max_parallel,
        sbatch_args: args.sbatch_arg,
        backend: args.backend.map(Into::into),
        neqkin: None,
    };
    // A config that cannot be read or checked is a usage error, as for `run`.
    neqkin::config::load_plan(&args.config)
        .map_err(|e| usage(anyhow::Error::new(e).context(format!("config {}", args.config.display()))))?;
    let job = slurm::prepare(&args.config, &opts)
        .map_err(|e| classify(e).context(format!("config {}", args.config.display())))?;
    eprintln!(
        "neqkin: {} {} for {} shards of {} points ({}, {}, {}); merged dataset: {}",
        if job.reused { "rewrote the scripts in" } else { "wrote" },
        job.job_dir.display(),
        job.shards,
        job.points,
        slurm::ARRAY_SCRIPT,
        slurm::MERGE_SCRIPT,
        slurm::SUBMIT_SCRIPT,
        job.out.display()
    );
    if !args.submit {
        eprintln!(
            "neqkin: nothing submitted; submit with these two commands (or `sh {}`, or add --submit):",
            job.submit_script.display()
        );
        for c in job.sbatch_commands() {
            println!("{c}");
        }
        return Ok(0);
    }
    let s = slurm::submit(&job).map_err(|e| Failure { code: EXIT_RUNTIME, error: e.into() })?;
    println!(
        "array job {} ({} tasks: {}_0 … {}_{}), merge job {} (after {} succeeds)",
        s.array,
        job.shards,
        s.array,
        s.array,
        job.shards - 1,
        s.merge,
        s.array
    );
    eprintln!(
        "neqkin: logs in {}/logs; the merged dataset will be {}; if tasks are cancelled or time out, \
         the same command resubmits and they resume",
        job.job_dir.display(),
        job.out.display()
    );
    Ok(0)
}
