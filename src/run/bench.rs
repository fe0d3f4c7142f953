//! `neqkin bench`: a fixed suite of solves timed on the CPU backend and on every GPU
//! adapter wgpu finds (f64 where the adapter has it, and f32), so that users can compare
//! machines with one command.
//!
//! Cases (the `--quick` suite has the same cases with smaller batches and shorter runs):
//! - `photoexcited_small_batch`, `photoexcited_large_batch`: the photoexcited metal at N = 2048
//!   with batch 64 and 1024 (quick: 8 and 32)
//!   (ζ = 20, Γ_in = 0.01, ω_p swept over the batch), fixed-step RK4 inside its stability
//!   interval (the sweep of `benches/solver.rs`);
//! - `interband_phase_diagram`: Fig 2 points of the interband model (dk = 0.01, 40 momenta),
//!   DOPRI5 rtol 1e-6, a 4 × 4 (quick 2 × 2) grid of (Ω, V);
//! - `cavity_newton`: the cavity model's Fokker–Planck level on the graded grid, steady
//!   state by Newton (two couplings) to a residual of 1e-10 (f64); in f32 to 4 ε_f32 ·
//!   max|F| = 4.8e-7 ([`steady_tol_for`]: 1e-10 is below what f32 resolves, the residual
//!   stalls near 3e-8), printed in the method column.
//!
//! Per case and device: points/s, grid-point updates/s (state length × batch × batch RHS
//! evaluations / s), the RHS kernel's bandwidth (bytes of `y` read and `dy` written per
//! evaluation / s, tables not counted) against a plain copy on the same device, and on the
//! GPU dispatches per accepted step (dispatches over the most steps any member accepted) and
//! the work layout of the member kernels (threads per member, members per workgroup,
//! workgroups per member; `GpuContext::member_layout`).
//! Every time is the median of `reps` runs in this process.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use crate::engine::backend::{Backend, Precision};
use crate::engine::cpu::CpuBackend;
use crate::engine::gpu::{self, GpuBackend, GpuContext};
use crate::engine::model::BatchProblem;
use crate::engine::program::{status, Op, StepProgram};
use crate::engine::solve::{integrate, Method, SolveOptions};
use crate::Result;

/// Options of the suite.
#[derive(Clone, Copy, Debug)]
pub struct BenchOptions {
    /// Smaller batches and shorter runs (well under a minute on two cores with lavapipe).
    pub quick: bool,
    /// Timed runs per case (the median is reported).
    pub reps: usize,
}

/// One case on one device.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CaseResult {
    /// Case name (see the module docs).
    pub case: String,
    /// `cpu` or `gpu`.
    pub backend: String,
    /// Adapter name (GPU) or CPU model.
    pub adapter: String,
    /// Driver and its version (GPU; empty when the adapter gives none).
    pub driver: String,
    /// `rayon`, `Vulkan`, `Metal`, `Dx12`.
    pub api: String,
    /// Kernel precision.
    pub precision: Precision,
    /// Sweep points in the batch.
    pub batch: usize,
    /// State length of one point (grid cells).
    pub cells: usize,
    /// Integration method.
    pub method: String,
    /// Median wall time of the solve, seconds (backend set-up excluded).
    pub seconds: f64,
    /// Batch right-hand-side evaluations of one solve.
    pub rhs_evaluations: u64,
    /// Most steps any member accepted (Newton: iterations).
    pub accepted_steps: u64,
    /// Sweep points per second.
    pub points_per_s: f64,
    /// cells × batch × RHS evaluations per second.
    pub grid_point_updates_per_s: f64,
    /// Bytes of `y` read and `dy` written per RHS evaluation per second, GB/s.
    pub rhs_gbps: f64,
    /// A plain copy's read + write bandwidth on the same device, GB/s.
    pub copy_gbps: f64,
    /// `rhs_gbps / copy_gbps`.
    pub rhs_bandwidth_ratio: f64,
    /// GPU: compute dispatches per accepted step of the solve.
    pub dispatches_per_accepted_step: Option<f64>,
    /// GPU: work layout of the model's member kernels
    /// ([`crate::engine::gpu::MemberLayout`]: threads per member, members per workgroup,
    /// workgroups per member).
    pub layout: Option<String>,
    /// Steady-state solves (Newton): the residual tolerance it converged to, the case's
    /// or, where that is below what the precision resolves, [`steady_tol_for`]'s.
    pub steady_tol: Option<f64>,
}

/// A case that could not run on a device, and why.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Skipped {
    /// Case name.
    pub case: String,
    /// Device label.
    pub device: String,
    /// The error.
    pub reason: String,
}

/// The whole report (`--json`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchReport {
    /// neqkin version.
    pub version: String,
    /// Whether the quick suite ran.
    pub quick: bool,
    /// Timed runs per case.
    pub reps: usize,
    /// Results, device by device.
    pub cases: Vec<CaseResult>,
    /// Cases a device could not run.
    pub skipped: Vec<Skipped>,
}

/// Solver options of a case, from the built problem (RK4's step from its spectral radius)
/// and the precision the device runs it at (a steady tolerance the precision can reach).
type OptionsFor = Box<dyn Fn(&dyn BatchProblem, Precision) -> SolveOptions>;

/// The cavity case's Newton tolerance in f64 (RMS of the steady-state residual).
pub const CAVITY_NEWTON_TOL: f64 = 1e-10;

/// The steady tolerance a Newton solve of `problem` can be asked for at `precision`:
/// `tol`, raised to 4 ε · max|y0| where that is larger (ε the precision's machine epsilon,
/// y0 the initial state, which sets the state's scale). Why 4 ε · max|y|: the steady state
/// itself is held only to ε/2 · |y| per component, which moves a Jacobi-preconditioned
/// residual (the cavity's P_i(…), Gershgorin row sums of P·J ≤ 2, the bound its
/// `spectral_radius` states) by up to ε · max|y|; evaluating the residual rounds sums whose
/// terms are at most 2 max|y| after preconditioning (P normalises the coefficients' sum to
/// 1), a few ε · max|y| more. A residual below about ε · max|y| is noise. f32: 4 × 1.19e-7
/// × 1 = 4.8e-7 for the cavity case, whose residual stalls at 2.7e-8 RMS on lavapipe
/// (above the f64 tolerance 1e-10: it never converged); f64: 8.9e-16, `tol` stands.
pub fn steady_tol_for(problem: &dyn BatchProblem, precision: Precision, tol: f64) -> f64 {
    let scale = problem.initial_state().iter().fold(0.0f64, |m, y| m.max(y.abs()));
    let eps = match precision {
        Precision::F32 => f32::EPSILON as f64,
        Precision::F64 => f64::EPSILON,
    };
    tol.max(4.0 * eps * scale)
}

struct Case {
    name: &'static str,
    model: &'static str,
    points: Vec<Value>,
    /// Solver options for the built problem.
    opts: OptionsFor,
}

fn suite(quick: bool) -> Vec<Case> {
    let photo = |name, members: usize, steps: usize| {
        let points = (0..members)
            .map(|m| {
                let w = 0.2 + 0.6 * (m as f64 + 0.5) / members as f64;
                json!({"grid_points": 2048, "temperature": 0.003, "phonon_frequency": w,
                       "zeta": 20.0, "inelastic_rate": 0.01, "filling": 0.5})
            })
            .collect();
        Case {
            name,
            model: "photoexcited",
            points,
            opts: Box::new(move |p: &dyn BatchProblem, _| {
                // A step inside RK4's real stability interval (2.78/ρ): no member stops early.
                let rho = p.spectral_radius().unwrap_or_default().into_iter().fold(1.0, f64::max);
                let dt = (2.0 / rho).min(1e-3);
                SolveOptions {
                    method: Method::Rk4,
                    dt: Some(dt),
                    output_times: vec![steps as f64 * dt * 0.999_999],
                    ..Default::default()
                }
            }),
        }
    };
    let side = if quick { 2 } else { 4 };
    let t_end = if quick { 5.0 } else { 50.0 };
    let interband = (0..side * side)
        .map(|k| {
            let omega = 0.5 * (k / side) as f64 / (side - 1) as f64;
            let v = 8.0 * (k % side) as f64 / (side - 1) as f64;
            json!({"band_a1": 7.0, "band_a2": 24.0, "gamma_ph": 0.02, "gamma_rr": 0.002, "cutoff": 0.2,
                   "phonon_velocity": 0.1, "grid_step": 0.01, "rabi_frequency": omega, "coupling_v": v})
        })
        .collect();
    let cavity = (0..2)
        .map(|k| {
            json!({"coupling_g": 0.1 + 0.2 * k as f64, "t_cry": 0.1, "t_mir": 100.0, "nu0": 1.0,
                   "gamma": 10.0, "mu0": 1.0, "omega_min": -9.0, "omega_max": 11.0,
                   "level": 3, "grid": "graded", "h_fine": 0.025, "h_coarse": 0.5})
        })
        .collect();
    vec![
        if quick { photo("photoexcited_small_batch", 8, 4) } else { photo("photoexcited_small_batch", 64, 40) },
        if quick { photo("photoexcited_large_batch", 32, 2) } else { photo("photoexcited_large_batch", 1024, 10) },
        Case {
            name: "interband_phase_diagram",
            model: "interband",
            points: interband,
            opts: Box::new(move |_, _| SolveOptions {
                method: Method::Dopri5,
                rtol: 1e-6,
                atol: 1e-9,
                output_times: vec![t_end],
                ..Default::default()
            }),
        },
        Case {
            name: "cavity_newton",
            model: "cavity",
            points: cavity,
            opts: Box::new(|p, precision| SolveOptions {
                method: Method::Newton,
                steady_tol: Some(steady_tol_for(p, precision, CAVITY_NEWTON_TOL)),
                ..Default::default()
            }),
        },
    ]
}

enum Device {
    Cpu,
    Gpu(Arc<GpuContext>, Precision),
}

impl Device {
    fn backend(&self, p: Arc<dyn BatchProblem>) -> Result<Box<dyn Backend>> {
        Ok(match self {
            Device::Cpu => Box::new(CpuBackend::new(p)),
            Device::Gpu(ctx, precision) => Box::new(GpuBackend::new(ctx.clone(), p, *precision)?),
        })
    }

    fn label(&self) -> String {
        match self {
            Device::Cpu => format!("cpu ({} threads, f64)", rayon::current_num_threads()),
            Device::Gpu(ctx, p) => format!("gpu {} ({}, {p})", ctx.info().name, ctx.info().api),
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Every device the suite runs on: the CPU backend, then each adapter at f64 (when it
/// has it) and f32. Adapters that fail to open are reported in `skipped`.
fn devices(skipped: &mut Vec<Skipped>) -> Vec<Device> {
    let mut list = vec![Device::Cpu];
    for a in gpu::list_adapters() {
        match GpuContext::with_adapter(Some(&a.name)) {
            Ok(ctx) => {
                let ctx = Arc::new(ctx);
                for p in [Precision::F64, Precision::F32] {
                    if p == Precision::F32 || ctx.supports_f64() {
                        list.push(Device::Gpu(ctx.clone(), p));
                    }
                }
            }
            Err(e) => skipped.push(Skipped { case: "*".into(), device: a.name, reason: e.to_string() }),
        }
    }
    list
}

/// Runs the suite, calling `on_result` after each case (for printing as it goes).
pub fn run_suite(opts: BenchOptions, on_result: &mut dyn FnMut(&CaseResult)) -> Result<BenchReport> {
    let reps = opts.reps.max(1);
    let mut report = BenchReport {
        version: env!("CARGO_PKG_VERSION").into(),
        quick: opts.quick,
        reps,
        cases: Vec::new(),
        skipped: Vec::new(),
    };
    let devices = devices(&mut report.skipped);
    let cases = suite(opts.quick);
    for dev in &devices {
        for case in &cases {
            match run_case(dev, case, reps) {
                Ok(r) => {
                    on_result(&r);
                    report.cases.push(r);
                }
                Err(reason) => report.skipped.push(Skipped { case: case.name.into(), device: dev.label(), reason }),
            }
        }
    }
    Ok(report)
}

/// One case on one device; the error text explains a case the device cannot run.
fn run_case(dev: &Device, case: &Case, reps: usize) -> std::result::Result<CaseResult, String> {
    measure(dev, case, reps).map_err(|e| e.to_string())?.map_err(|why| format!("{}: {why}; not timed", case.name))
}

/// `Ok(Err(why))` when a member failed (the timing would be meaningless).
fn measure(dev: &Device, case: &Case, reps: usize) -> Result<std::result::Result<CaseResult, String>> {
    let model = crate::models::find(case.model)?;
    let problem = model.build(&model.parse_all(&case.points)?)?;
    let layout = problem.layout();
    let precision = match dev {
        Device::Cpu => Precision::F64,
        Device::Gpu(_, p) => *p,
    };
    let opts = (case.opts)(&*problem, precision);
    let mut walls = Vec::with_capacity(reps);
    let (mut evals, mut accepted, mut dispatches, mut member_layout) = (0u64, 0u64, None, None);
    for _ in 0..reps {
        let mut backend = dev.backend(problem.clone())?;
        let mut failed = None;
        let mut steps = 0.0f64;
        let start = Instant::now();
        let stats = integrate(&mut *backend, &*problem, &opts, &mut |f| {
            if let Some(m) = f.status.iter().position(|s| *s == status::FAILED) {
                failed = Some(format!(
                    "member {m} failed at t = {:e}: {}",
                    f.time_reached[m],
                    f.messages.get(m).map_or("", String::as_str)
                ));
            }
            steps = f.n_accept.iter().copied().fold(steps, f64::max);
            Ok(())
        })?;
        walls.push(start.elapsed().as_secs_f64());
        if let Some(why) = failed {
            return Ok(Err(why));
        }
        // The Newton driver counts member evaluations; the integrators batch evaluations.
        evals = if opts.method == Method::Newton {
            stats.rhs_evaluations / layout.batch as u64
        } else {
            stats.rhs_evaluations
        };
        accepted = steps as u64;
        let info = backend.info();
        dispatches = info.dispatches;
        member_layout = info.layout;
    }
    let seconds = median(walls);
    let (rhs_gbps, copy_gbps) = rhs_bandwidth(dev, &problem, reps)?;
    let info = dev.backend(problem.clone())?.info();
    let driver = match dev {
        Device::Gpu(ctx, _) => ctx.info().driver,
        Device::Cpu => String::new(),
    };
    let cells = layout.state_len;
    Ok(Ok(CaseResult {
        case: case.name.into(),
        backend: info.backend,
        adapter: info.adapter,
        driver,
        api: info.api,
        precision: info.precision,
        batch: layout.batch,
        cells,
        method: format!("{:?}", opts.method).to_lowercase(),
        seconds,
        rhs_evaluations: evals,
        accepted_steps: accepted,
        points_per_s: layout.batch as f64 / seconds,
        grid_point_updates_per_s: (cells * layout.batch) as f64 * evals as f64 / seconds,
        rhs_gbps,
        copy_gbps,
        rhs_bandwidth_ratio: rhs_gbps / copy_gbps,
        dispatches_per_accepted_step: dispatches.map(|d| d as f64 / accepted.max(1) as f64),
        layout: member_layout,
        steady_tol: opts.steady_tol,
    }))
}

/// (RHS GB/s, copy GB/s): the RHS alone, repeated, against a copy of the same bytes.
fn rhs_bandwidth(dev: &Device, problem: &Arc<dyn BatchProblem>, reps: usize) -> Result<(f64, f64)> {
    let layout = problem.layout();
    let mut b = dev.backend(problem.clone())?;
    let (y, dy, t) = (b.new_vector()?, b.new_vector()?, b.new_scalars()?);
    b.write_vector(y, &problem.initial_state())?;
    let prog = b.compile(&StepProgram { ops: vec![Op::Rhs { t, y, dy }] })?;
    b.run(prog, 1)?;
    b.read_scalars(t)?;
    let repeats = 5;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let s = Instant::now();
        b.run(prog, repeats)?;
        b.read_scalars(t)?;
        times.push(s.elapsed().as_secs_f64() / repeats as f64);
    }
    let rhs = median(times);
    let real = match dev {
        Device::Gpu(_, Precision::F32) => 4,
        _ => 8,
    };
    let bytes = (2 * layout.batch * layout.state_len * real) as f64;
    let copy = match dev {
        Device::Cpu => cpu_copy_bandwidth(bytes as usize / 2),
        Device::Gpu(ctx, p) => gpu::copy_bandwidth(ctx, bytes as u64 / 2, *p)?,
    };
    Ok((bytes / rhs / 1e9, copy))
}

/// Read + write bandwidth of a plain slice copy on the CPU, GB/s (median of 5).
fn cpu_copy_bandwidth(bytes: usize) -> f64 {
    let n = (bytes / 8).max(1);
    let src = vec![1.0f64; n];
    let mut dst = vec![0.0f64; n];
    let times = (0..5)
        .map(|_| {
            let s = Instant::now();
            for _ in 0..10 {
                dst.copy_from_slice(std::hint::black_box(&src));
                std::hint::black_box(&mut dst);
            }
            s.elapsed().as_secs_f64() / 10.0
        })
        .collect();
    2.0 * (n * 8) as f64 / median(times) / 1e9
}

/// The results as a Markdown table, one row per case and device.
pub fn table(report: &BenchReport) -> String {
    let mut s = String::from(
        "| case | backend | adapter | driver | api | prec | batch | cells | method | s (median) | points/s | grid-point updates/s | RHS GB/s | copy GB/s | RHS/copy | dispatches/step | layout |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in &report.cases {
        s.push_str(&row(r));
    }
    s
}

/// One row of [`table`].
pub fn row(r: &CaseResult) -> String {
    format!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.4} | {:.3e} | {:.3e} | {:.3} | {:.3} | {:.3} | {} | {} |\n",
        r.case,
        r.backend,
        r.adapter,
        if r.driver.is_empty() { "-" } else { &r.driver },
        r.api,
        r.precision,
        r.batch,
        r.cells,
        match r.steady_tol {
            Some(tol) => format!("{} (tol {tol:.1e})", r.method),
            None => r.method.clone(),
        },
        r.seconds,
        r.points_per_s,
        r.grid_point_updates_per_s,
        r.rhs_gbps,
        r.copy_gbps,
        r.rhs_bandwidth_ratio,
        r.dispatches_per_accepted_step.map_or("-".into(), |d| format!("{d:.1}")),
        r.layout.as_deref().unwrap_or("-"),
    )
}
