//! neqkin benchmark (a bench binary, not a timed test): `cargo bench --bench solver`.
//!
//! Reports, for the CPU backend and the GPU backend (whatever adapter wgpu finds first —
//! lavapipe on GPU-less machines):
//! 1. wall time per sweep point and grid-point updates per second of fixed-step RK4 on the
//!    photoexcited-metal model for N ∈ {512, 2048, 8192} and batch ∈ {1, 64, 1024};
//! 2. achieved memory bandwidth of the right-hand-side kernel against a plain copy of the
//!    same number of bytes on the same device;
//! 3. steps, RHS evaluations and time of the stabilised method (RKC) against adaptive
//!    DOPRI5 at T/W = 0.003 with Γ_in > 0, and the σ/σ0 they agree on.
//!
//! 4. the photoexcited CPU right-hand side alone, one thread: ns per cell per evaluation
//!    (Fig 2a terms: Γ_in = 0, E = 0; and with every term on);
//! 5. the Fig 2a-type DOPRI5 sweep of issue 12 on the CPU backend (64 ω_p in [0.1, 0.9],
//!    fixed ζ ∈ {1, 5, 20}, half filling, T = 0.003, t = 10, rtol 1e-6, atol 1e-9): wall per
//!    point, RHS evaluations per point, and the wall per cell per evaluation per thread.
//! 6. the stability-limited regime (issue 12 items 3 and 4): the same sweep with `dopri5`,
//!    `rosenbrock` (DOPRI5 start, ROS34PW2 with a sparse coloured Jacobian once stiff) and
//!    `bdf` (variable-order BDF/NDF, the same sparse Jacobian), interleaved rep by rep: wall
//!    and CPU time per point, RHS evaluations per point (the implicit methods' counts include
//!    their Jacobian colours), ratios against DOPRI5, the largest |Δσ/σ0| against DOPRI5, and
//!    the method `auto` picks.
//!
//! Every figure is the median of `--reps` runs (default 3) measured in this one process,
//! so ratios are side by side. Options: `--quick` (smaller sizes), `--backends cpu,gpu`,
//! `--sizes 512,2048`, `--batches 1,64`, `--sections 1,2,3,4,5,6` (default all), `--zetas 1,5,20` (section 6), `--json PATH`.

use std::sync::Arc;
use std::time::Instant;

use neqkin::engine::backend::{Backend, Precision};
use neqkin::engine::cpu::CpuBackend;
use neqkin::engine::gpu::{copy_bandwidth, GpuBackend, GpuContext};
use neqkin::engine::model::BatchProblem;
use neqkin::engine::program::{Op, StepProgram};
use neqkin::engine::solve::{integrate, Method, SolveOptions};
use neqkin::models::photoexcited::{PhotoexcitedBatch, PhotoexcitedParams};
use serde_json::json;

struct Args {
    backends: Vec<String>,
    sizes: Vec<usize>,
    batches: Vec<usize>,
    reps: usize,
    json: Option<String>,
    stiff_sizes: Vec<usize>,
    sections: Vec<usize>,
    zetas: Vec<f64>,
}

fn parse_args() -> Args {
    let mut a = Args {
        backends: vec!["cpu".into(), "gpu".into()],
        sizes: vec![512, 2048, 8192],
        batches: vec![1, 64, 1024],
        reps: 3,
        json: None,
        stiff_sizes: vec![1024, 4096, 8192],
        sections: vec![1, 2, 3, 4, 5, 6],
        zetas: vec![1.0, 5.0, 20.0],
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let list = |s: &str| s.split(',').filter_map(|x| x.trim().parse().ok()).collect::<Vec<usize>>();
    let mut i = 0;
    while i < argv.len() {
        let next = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--quick" => {
                a.sizes = vec![512, 2048];
                a.batches = vec![1, 64];
                a.stiff_sizes = vec![1024];
                a.reps = 1;
            }
            "--backends" => {
                a.backends = next.split(',').map(String::from).collect();
                i += 1;
            }
            "--sizes" => {
                a.sizes = list(&next);
                i += 1;
            }
            "--batches" => {
                a.batches = list(&next);
                i += 1;
            }
            "--zetas" => {
                a.zetas = next.split(',').filter_map(|x| x.trim().parse().ok()).collect();
                i += 1;
            }
            "--sections" => {
                a.sections = list(&next);
                i += 1;
            }
            "--reps" => {
                a.reps = next.parse().unwrap_or(3);
                i += 1;
            }
            "--json" => {
                a.json = Some(next);
                i += 1;
            }
            _ => {} // cargo bench passes `--bench`
        }
        i += 1;
    }
    a
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// A sweep over phonon frequency at fixed ζ: members differ in their parameters but share
/// the band tables (the common case the scheduler packs).
fn batch(n: usize, members: usize, inelastic: f64) -> Arc<PhotoexcitedBatch> {
    let points: Vec<PhotoexcitedParams> = (0..members)
        .map(|m| {
            let w = 0.2 + 0.6 * (m as f64 + 0.5) / members as f64;
            PhotoexcitedParams::from_json(&json!({
                "grid_points": n, "temperature": 0.003, "phonon_frequency": w,
                "zeta": 20.0, "inelastic_rate": inelastic, "filling": 0.5
            }))
            .unwrap()
        })
        .collect();
    Arc::new(PhotoexcitedBatch::new(&points).unwrap())
}

struct Device {
    label: String,
    ctx: Option<Arc<GpuContext>>,
    precision: Precision,
}

impl Device {
    fn backend(&self, p: Arc<dyn BatchProblem>) -> Box<dyn Backend> {
        match &self.ctx {
            None => Box::new(CpuBackend::new(p)),
            Some(ctx) => Box::new(GpuBackend::new(ctx.clone(), p, self.precision).unwrap()),
        }
    }
}

/// Times `steps` RK4 steps (one chunk), forcing completion with a scalar readback.
fn time_rk4(dev: &Device, p: &Arc<PhotoexcitedBatch>, steps: usize) -> f64 {
    let problem: Arc<dyn BatchProblem> = p.clone();
    let mut b = dev.backend(problem);
    // A step inside RK4's real stability interval (2.78/ρ), so no member blows up and
    // stops early (which would make the timing meaningless).
    let rho = p.spectral_radius().unwrap().into_iter().fold(0.0, f64::max);
    let dt = (2.0 / rho).min(1e-3);
    let opts = SolveOptions {
        method: Method::Rk4,
        dt: Some(dt),
        output_times: vec![steps as f64 * dt * 0.999_999],
        ..Default::default()
    };
    let start = Instant::now();
    integrate(&mut *b, &**p, &opts, &mut |frame| {
        let failed = frame.status.iter().filter(|s| **s != neqkin::engine::program::status::REACHED).count();
        assert_eq!(failed, 0, "{failed} members did not reach the end: timing invalid");
        Ok(())
    })
    .unwrap();
    start.elapsed().as_secs_f64()
}

fn main() {
    let args = parse_args();
    let mut devices = vec![];
    for name in &args.backends {
        match name.as_str() {
            "cpu" => devices.push(Device {
                label: format!("cpu ({} threads, f64)", rayon::current_num_threads()),
                ctx: None,
                precision: Precision::F64,
            }),
            "gpu" => match GpuContext::new() {
                Ok(ctx) => {
                    let ctx = Arc::new(ctx);
                    let info = ctx.info();
                    for precision in [Precision::F64, Precision::F32] {
                        if precision == Precision::F64 && !ctx.supports_f64() {
                            continue;
                        }
                        devices.push(Device {
                            label: format!("gpu {} ({}, {precision})", info.name, info.api),
                            ctx: Some(ctx.clone()),
                            precision,
                        });
                    }
                }
                Err(e) => eprintln!("gpu backend not benchmarked: {e}"),
            },
            other => eprintln!("unknown backend {other}"),
        }
    }
    let mut report = serde_json::Map::new();
    let mut rows = vec![];

    let on = |k: usize| args.sections.contains(&k);
    if on(4) {
        report.insert("rhs_per_core".into(), rhs_per_core(&args).into());
    }
    if on(5) {
        report.insert("fig2a_sweep".into(), fig2a_sweep(&args).into());
    }
    if on(6) {
        report.insert("stiff_sweep".into(), stiff_sweep(&args).into());
    }
    if on(1) {
        println!("## 1. RK4 throughput, photoexcited model (ζ = 20, Γ_in = 0.01), median of {} runs", args.reps);
        println!("| device | N | batch | steps | wall/step | wall per point per step | grid-point updates/s |");
        println!("|---|---|---|---|---|---|---|");
        for dev in &devices {
            for &n in &args.sizes {
                for &members in &args.batches {
                    let p = batch(n, members, 0.01);
                    // Warm-up and calibration: aim for ≥ 0.3 s per measurement.
                    let one = time_rk4(dev, &p, 1);
                    let steps = ((0.3 / one).ceil() as usize).clamp(1, 200);
                    let t = median((0..args.reps).map(|_| time_rk4(dev, &p, steps)).collect());
                    let per_step = t / steps as f64;
                    let updates = (n * members) as f64 / per_step;
                    println!(
                        "| {} | {n} | {members} | {steps} | {:.3} ms | {:.2} µs | {:.3e} |",
                        dev.label,
                        per_step * 1e3,
                        per_step / members as f64 * 1e6,
                        updates
                    );
                    rows.push(json!({"device": dev.label, "n": n, "batch": members, "steps": steps,
                    "seconds_per_step": per_step, "grid_point_updates_per_second": updates}));
                }
            }
        }
        report.insert("throughput".into(), rows.into());
    }
    if on(2) {
        println!();
        println!("## 2. RHS kernel bandwidth vs a plain copy of the same bytes (batch 64)");
        println!("| device | N | RHS time | RHS effective GB/s (read y + write dy) | copy GB/s | ratio |");
        println!("|---|---|---|---|---|---|");
        let mut bw = vec![];
        for dev in &devices {
            for &n in &args.sizes {
                let members = 64;
                let p = batch(n, members, 0.01);
                let problem: Arc<dyn BatchProblem> = p.clone();
                let mut b = dev.backend(problem);
                let (y, dy, t) = (b.new_vector().unwrap(), b.new_vector().unwrap(), b.new_scalars().unwrap());
                b.write_vector(y, &p.initial_state()).unwrap();
                let prog = b.compile(&StepProgram { ops: vec![Op::Rhs { t, y, dy }] }).unwrap();
                b.run(prog, 1).unwrap();
                b.read_scalars(t).unwrap();
                let repeats = 20;
                let rhs = median(
                    (0..args.reps)
                        .map(|_| {
                            let s = Instant::now();
                            b.run(prog, repeats).unwrap();
                            b.read_scalars(t).unwrap();
                            s.elapsed().as_secs_f64() / repeats as f64
                        })
                        .collect(),
                );
                let real = if dev.precision == Precision::F64 { 8 } else { 4 };
                let state_len = p.layout().state_len;
                let bytes = (2 * members * state_len * real) as f64;
                let copy = match &dev.ctx {
                    Some(ctx) => copy_bandwidth(ctx, bytes as u64 / 2, dev.precision).unwrap(),
                    None => cpu_copy_bandwidth(bytes as usize / 2),
                };
                let eff = bytes / rhs / 1e9;
                println!("| {} | {n} | {:.3} ms | {eff:.3} | {copy:.3} | {:.2} |", dev.label, rhs * 1e3, eff / copy);
                bw.push(json!({"device": dev.label, "n": n, "rhs_seconds": rhs, "rhs_gbps": eff, "copy_gbps": copy}));
            }
        }
        report.insert("bandwidth".into(), bw.into());
    }
    if on(3) {
        println!();
        println!("## 3. Stiff energy diffusion: RKC vs DOPRI5 (T/W = 0.003, Γ_in = 0.05, ζ = 20, ω_p = 0.52, t = 2, rtol 1e-6, batch 1)");
        println!("| device | N | method | steps accepted | rejected | RHS evaluations | wall | σ/σ0 at t = 2 |");
        println!("|---|---|---|---|---|---|---|---|");
        let mut stiff = vec![];
        for dev in devices.iter().filter(|d| d.precision == Precision::F64) {
            for &n in &args.stiff_sizes {
                // DOPRI5 needs ~25k steps at N = 8192; on a software adapter that alone takes
                // many minutes, so the GPU rows stop at 4096 and run once.
                let on_gpu = dev.ctx.is_some();
                if on_gpu && n > 4096 {
                    continue;
                }
                let reps = if on_gpu { 1 } else { args.reps };
                let p: Arc<PhotoexcitedBatch> = Arc::new(
                    PhotoexcitedBatch::new(&[PhotoexcitedParams::from_json(&json!({
                        "grid_points": n, "temperature": 0.003, "phonon_frequency": 0.52,
                        "zeta": 20.0, "inelastic_rate": 0.05, "filling": 0.5
                    }))
                    .unwrap()])
                    .unwrap(),
                );
                let mut walls = vec![];
                for method in [Method::Dopri5, Method::Rkc] {
                    let opts =
                        SolveOptions { method, rtol: 1e-6, atol: 1e-9, output_times: vec![2.0], ..Default::default() };
                    let mut result = (0.0, 0.0, 0.0);
                    let mut evals = 0;
                    let wall = median(
                        (0..reps)
                            .map(|_| {
                                let problem: Arc<dyn BatchProblem> = p.clone();
                                let mut b = dev.backend(problem);
                                let s = Instant::now();
                                let stats = integrate(&mut *b, &*p, &opts, &mut |f| {
                                    let sig = p.observables(0, f.t, f.state).scalars[0].1;
                                    result = (f.n_accept[0], f.n_reject[0], sig);
                                    Ok(())
                                })
                                .unwrap();
                                evals = stats.rhs_evaluations;
                                s.elapsed().as_secs_f64()
                            })
                            .collect(),
                    );
                    walls.push(wall);
                    println!(
                        "| {} | {n} | {method:?} | {} | {} | {evals} | {:.3} s | {:.6} |",
                        dev.label, result.0, result.1, wall, result.2
                    );
                    stiff.push(json!({"device": dev.label, "n": n, "method": format!("{method:?}"),
                    "accepted": result.0, "rejected": result.1, "rhs_evaluations": evals,
                    "seconds": wall, "sigma_over_sigma0": result.2}));
                }
                println!("|  | {n} | speed-up RKC vs DOPRI5 | | | | {:.1}× | |", walls[0] / walls[1]);
            }
        }
        report.insert("stiff".into(), stiff.into());
    }
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
        println!("\nwrote {path}");
    }
}

/// Bandwidth of a plain slice copy on the CPU (read + write bytes per second).
fn cpu_copy_bandwidth(bytes: usize) -> f64 {
    let n = bytes / 8;
    let src = vec![1.0f64; n];
    let mut dst = vec![0.0f64; n];
    let reps = 20;
    let s = Instant::now();
    for _ in 0..reps {
        dst.copy_from_slice(&src);
        std::hint::black_box(&mut dst);
    }
    2.0 * bytes as f64 * reps as f64 / s.elapsed().as_secs_f64() / 1e9
}

/// Seconds this thread has run on a CPU (Linux `/proc/thread-self/schedstat`), so a timing
/// on a loaded machine does not count the time the thread waited for a core; `None`
/// elsewhere.
fn thread_cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(s.split_whitespace().next()?.parse::<f64>().ok()? * 1e-9)
}

/// CPU seconds (user + system) of this whole process (Linux `/proc/self/stat`, 10 ms ticks).
fn process_cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0)
}

/// Section 4: the photoexcited CPU right-hand side of one member on one thread.
fn rhs_per_core(args: &Args) -> Vec<serde_json::Value> {
    println!(
        "## 4. Photoexcited CPU RHS, one thread, ns per cell per evaluation (median of {} runs)",
        args.reps.max(5)
    );
    println!("| terms | N | ns per cell per evaluation (on-CPU time) | (wall time) | evaluations timed |");
    println!("|---|---|---|---|---|");
    let mut out = vec![];
    for (label, inelastic, field) in
        [("Fig 2a (Γ_in = 0, E = 0, ζ = 20)", 0.0, 0.0), ("all terms (Γ_in = 0.01, E = 0.1)", 0.01, 0.1)]
    {
        for &n in &args.sizes {
            let p = PhotoexcitedBatch::new(&[PhotoexcitedParams::from_json(&json!({
                "grid_points": n, "temperature": 0.003, "phonon_frequency": 0.52, "zeta": 20.0,
                "inelastic_rate": inelastic, "electric_field": field, "filling": 0.5
            }))
            .unwrap()])
            .unwrap();
            let l = p.layout();
            // A state away from equilibrium: the initial state advanced by a few Euler steps.
            let mut y = p.initial_state();
            let mut dy = vec![0.0; l.state_len];
            let mut scratch = vec![0.0; l.scratch_len.max(1)];
            let (params, tables) = (&p.params()[..l.params_len], &p.tables()[..l.table_len]);
            for _ in 0..10 {
                p.rhs_member(0, params, tables, 0.0, &y, &mut dy, &mut scratch);
                for (yi, di) in y.iter_mut().zip(&dy) {
                    *yi += 1e-3 * di;
                }
            }
            // Calibrate on the thread's CPU time when there is one (its resolution is a
            // scheduler tick, so each timed run gets ≥ 0.2 s of it).
            let s = Instant::now();
            let c0 = thread_cpu_seconds();
            let spent = || match (c0, thread_cpu_seconds()) {
                (Some(a), Some(b)) => b - a,
                _ => s.elapsed().as_secs_f64(),
            };
            let mut calib = 0usize;
            while spent() < 0.05 {
                p.rhs_member(0, params, tables, 0.0, &y, &mut dy, &mut scratch);
                calib += 1;
            }
            let evals = (calib * 4).max(10);
            let (cpu, wall): (Vec<f64>, Vec<f64>) = (0..args.reps.max(5))
                .map(|_| {
                    let c = thread_cpu_seconds();
                    let s = Instant::now();
                    for _ in 0..evals {
                        p.rhs_member(0, params, tables, 0.0, std::hint::black_box(&y), &mut dy, &mut scratch);
                    }
                    std::hint::black_box(&dy);
                    let wall = s.elapsed().as_secs_f64();
                    let cpu = match (c, thread_cpu_seconds()) {
                        (Some(a), Some(b)) => b - a,
                        _ => wall,
                    };
                    let scale = 1e9 / (evals * n) as f64;
                    (cpu * scale, wall * scale)
                })
                .unzip();
            let (ns, ns_wall) = (median(cpu), median(wall));
            println!("| {label} | {n} | {ns:.2} | {ns_wall:.2} | {evals} |");
            out.push(json!({"terms": label, "n": n, "ns_per_cell_per_evaluation": ns, "ns_wall": ns_wall, "evaluations": evals}));
        }
    }
    println!();
    out
}

/// Section 5: the Fig 2a-type sweep of issue 12 on the CPU backend (whole batch, all threads).
fn fig2a_sweep(args: &Args) -> Vec<serde_json::Value> {
    let threads = rayon::current_num_threads();
    println!(
        "## 5. Fig 2a-type DOPRI5 sweep, CPU backend ({threads} threads): 64 ω_p in [0.1, 0.9], t = 10, rtol 1e-6, atol 1e-9, median of {} runs",
        args.reps
    );
    println!("| N | ζ | wall per point | CPU time per point | RHS evaluations per point | CPU ns per cell per evaluation | mean σ/σ0 |");
    println!("|---|---|---|---|---|---|---|");
    let mut out = vec![];
    for &n in &args.sizes {
        for zeta in [1.0, 5.0, 20.0] {
            let points: Vec<PhotoexcitedParams> = (0..64)
                .map(|m| {
                    PhotoexcitedParams::from_json(&json!({
                        "grid_points": n, "temperature": 0.003, "phonon_frequency": 0.1 + 0.8 * m as f64 / 63.0,
                        "zeta": zeta, "filling": 0.5
                    }))
                    .unwrap()
                })
                .collect();
            let p = Arc::new(PhotoexcitedBatch::new(&points).unwrap());
            let opts = SolveOptions {
                method: Method::Dopri5,
                rtol: 1e-6,
                atol: 1e-9,
                output_times: vec![10.0],
                ..Default::default()
            };
            let mut evals = 0u64;
            let mut sigma = 0.0;
            let (walls, cpus): (Vec<f64>, Vec<f64>) = (0..args.reps)
                .map(|_| {
                    let problem: Arc<dyn BatchProblem> = p.clone();
                    let mut b = CpuBackend::new(problem);
                    let c0 = process_cpu_seconds();
                    let s = Instant::now();
                    let mut attempts = 0.0;
                    integrate(&mut b, &*p, &opts, &mut |f| {
                        attempts = f.n_accept.iter().zip(f.n_reject).map(|(a, r)| a + r).sum::<f64>();
                        sigma = (0..64)
                            .map(|m| {
                                p.observables(
                                    m,
                                    f.t,
                                    &f.state[m * p.layout().state_len..(m + 1) * p.layout().state_len],
                                )
                                .scalars[0]
                                    .1
                            })
                            .sum::<f64>()
                            / 64.0;
                        Ok(())
                    })
                    .unwrap();
                    // Per member: 1 initial evaluation + 6 per attempt (FSAL).
                    evals = (64.0 + 6.0 * attempts) as u64;
                    let wall = s.elapsed().as_secs_f64();
                    let cpu = match (c0, process_cpu_seconds()) {
                        (Some(a), Some(b)) => b - a,
                        _ => wall * threads as f64,
                    };
                    (wall, cpu)
                })
                .unzip();
            let (wall, cpu) = (median(walls), median(cpus));
            let per_point = wall / 64.0;
            let evals_pt = evals as f64 / 64.0;
            let ns = cpu * 1e9 / (evals as f64 * n as f64);
            println!(
                "| {n} | {zeta} | {:.2} ms | {:.2} ms | {evals_pt:.0} | {ns:.2} | {sigma:.9} |",
                per_point * 1e3,
                cpu / 64.0 * 1e3
            );
            out.push(json!({"n": n, "zeta": zeta, "seconds_per_point": per_point, "cpu_seconds_per_point": cpu / 64.0,
                "rhs_evaluations_per_point": evals_pt, "cpu_ns_per_cell_per_evaluation": ns, "mean_sigma_over_sigma0": sigma}));
        }
    }
    println!();
    out
}

/// Section 6: the Fig 2a-type sweep with `dopri5`, `rosenbrock` and `bdf`, interleaved.
fn stiff_sweep(args: &Args) -> Vec<serde_json::Value> {
    let threads = rayon::current_num_threads();
    println!(
        "## 6. Stability-limited regime: dopri5 vs rosenbrock vs bdf, CPU backend ({threads} threads), 64 ω_p in [0.1, 0.9], t = 10, rtol 1e-6, atol 1e-9, medians of {} interleaved runs",
        args.reps
    );
    println!("| N | ζ | auto picks | method | wall/point | CPU/point | RHS evals/point | wall ratio dopri5/method | CPU ratio | RHS ratio | max \\|Δσ/σ0\\| vs dopri5 |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut out = vec![];
    for &n in &args.sizes {
        for &zeta in &args.zetas {
            let points: Vec<PhotoexcitedParams> = (0..64)
                .map(|m| {
                    PhotoexcitedParams::from_json(&json!({
                        "grid_points": n, "temperature": 0.003, "phonon_frequency": 0.1 + 0.8 * m as f64 / 63.0,
                        "zeta": zeta, "filling": 0.5
                    }))
                    .unwrap()
                })
                .collect();
            let p = Arc::new(PhotoexcitedBatch::new(&points).unwrap());
            let ns = p.layout().state_len;
            let run = |method: Method| -> (f64, f64, f64, Vec<f64>) {
                let opts =
                    SolveOptions { method, rtol: 1e-6, atol: 1e-9, output_times: vec![10.0], ..Default::default() };
                let problem: Arc<dyn BatchProblem> = p.clone();
                let mut b = CpuBackend::new(problem);
                let c0 = process_cpu_seconds();
                let s = Instant::now();
                let mut attempts = 0.0;
                let mut sigma = vec![];
                let stats = integrate(&mut b, &*p, &opts, &mut |f| {
                    attempts = f.n_accept.iter().zip(f.n_reject).map(|(a, r)| a + r).sum::<f64>();
                    sigma = (0..64)
                        .map(|m| {
                            let obs = p.observables(m, f.t, &f.state[m * ns..(m + 1) * ns]);
                            obs.scalars.iter().find(|s| s.0 == "sigma_over_sigma0").unwrap().1
                        })
                        .collect();
                    Ok(())
                })
                .unwrap();
                let wall = s.elapsed().as_secs_f64();
                let cpu = match (c0, process_cpu_seconds()) {
                    (Some(a), Some(b)) => b - a,
                    _ => wall * threads as f64,
                };
                // DOPRI5: 1 initial evaluation + 6 per attempt (FSAL); rosenbrock and bdf count
                // every evaluation themselves (stages, Newton iterations, Jacobian colours).
                let evals = if method == Method::Dopri5 { 64.0 + 6.0 * attempts } else { stats.rhs_evaluations as f64 };
                (wall, cpu, evals / 64.0, sigma)
            };
            const METHODS: [Method; 3] = [Method::Dopri5, Method::Rosenbrock, Method::Bdf];
            let mut wall: [Vec<f64>; 3] = Default::default();
            let mut cpu: [Vec<f64>; 3] = Default::default();
            let (mut evals, mut dmax) = ([0.0; 3], [0.0f64; 3]);
            for _ in 0..args.reps {
                let mut sigma0 = vec![];
                for (q, &method) in METHODS.iter().enumerate() {
                    let r = run(method);
                    wall[q].push(r.0);
                    cpu[q].push(r.1);
                    evals[q] = r.2;
                    if q == 0 {
                        sigma0 = r.3;
                    } else {
                        dmax[q] = sigma0.iter().zip(&r.3).fold(dmax[q], |m, (a, b)| m.max((a - b).abs()));
                    }
                }
            }
            let wall: Vec<f64> = wall.into_iter().map(|w| median(w) / 64.0).collect();
            let cpu: Vec<f64> = cpu.into_iter().map(|c| median(c) / 64.0).collect();
            let opts = SolveOptions { output_times: vec![10.0], ..Default::default() };
            let problem: Arc<dyn BatchProblem> = p.clone();
            let auto = neqkin::engine::integrators::auto_method(&CpuBackend::new(problem), &*p, &opts);
            let mut row = json!({"n": n, "zeta": zeta, "auto": format!("{auto:?}")});
            for (q, method) in METHODS.iter().enumerate() {
                println!(
                    "| {n} | {zeta} | {auto:?} | {method:?} | {:.2} ms | {:.2} ms | {:.0} | {:.2}× | {:.2}× | {:.2}× | {:.1e} |",
                    wall[q] * 1e3,
                    cpu[q] * 1e3,
                    evals[q],
                    wall[0] / wall[q],
                    cpu[0] / cpu[q],
                    evals[0] / evals[q],
                    dmax[q]
                );
                row[format!("{method:?}").to_lowercase()] = json!({"seconds_per_point": wall[q],
                    "cpu_seconds_per_point": cpu[q], "rhs_evaluations_per_point": evals[q],
                    "max_abs_sigma_difference": dmax[q]});
            }
            out.push(row);
        }
    }
    println!();
    out
}
