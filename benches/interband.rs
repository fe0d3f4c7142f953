//! Interband phase-diagram benchmark (a bench binary, not a timed test):
//! `cargo bench --bench interband`.
//!
//! Reports, for the CPU backend and the GPU backend (whatever adapter wgpu finds first —
//! lavapipe on GPU-less machines), side by side in one process:
//! 1. phase-diagram throughput: points/s of a sub-grid of the Fig 2 diagram (Ω ∈ [0, 0.5],
//!    V ∈ [0, 8], Fig 2 parameters, one batch), with and without early stopping
//!    (`early_stop`, see `analysis::answer_known`), and the accepted steps per point;
//! 2. cost of one point as the momentum grid grows (dk = 0.01, 0.005, 0.002 → 40, 80, 200
//!    momenta): seconds per point and per accepted step, 8 points per batch.
//!
//! 3. (`--rhs`: this section only) the CPU right-hand side alone, one member on one thread:
//!    ns per momentum per evaluation, from the thread's on-CPU time (so a loaded machine's
//!    waiting for a core is not counted), median of max(`--reps`, 5) runs.
//!
//! Every figure is the median of `--reps` runs (default 3). Defaults are cheap (a 4 × 4
//! sub-grid to t = 3000, grid-size scan to t = 1000, CPU only with `--backends cpu`);
//! `--full` runs the 8 × 8 sub-grid to the paper's t = 12000 and the grid scan to t = 3000.
//! Options: `--backends cpu,gpu`, `--side N` (sub-grid N × N), `--t-end T`, `--scan-t-end T`,
//! `--dks 0.01,0.005`, `--reps R`, `--json PATH`.

use std::sync::Arc;
use std::time::Instant;

use neqkin::engine::backend::{Backend, Precision};
use neqkin::engine::cpu::CpuBackend;
use neqkin::engine::gpu::{GpuBackend, GpuContext};
use neqkin::engine::model::{BatchProblem, Model};
use neqkin::engine::program::status;
use neqkin::engine::solve::{integrate, SolveOptions};
use neqkin::models::interband::Interband;
use serde_json::json;

struct Args {
    backends: Vec<String>,
    side: usize,
    t_end: f64,
    scan_t_end: f64,
    dks: Vec<f64>,
    reps: usize,
    json: Option<String>,
    rhs_only: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        backends: vec!["cpu".into(), "gpu".into()],
        side: 4,
        t_end: 3000.0,
        scan_t_end: 1000.0,
        dks: vec![0.01, 0.005, 0.002],
        reps: 3,
        json: None,
        rhs_only: false,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let next = argv.get(i + 1).cloned().unwrap_or_default();
        let mut used = true;
        match argv[i].as_str() {
            "--full" => {
                a.side = 8;
                a.t_end = 12000.0;
                a.scan_t_end = 3000.0;
                used = false;
            }
            "--backends" => a.backends = next.split(',').map(String::from).collect(),
            "--side" => a.side = next.parse().expect("--side N"),
            "--t-end" => a.t_end = next.parse().expect("--t-end T"),
            "--scan-t-end" => a.scan_t_end = next.parse().expect("--scan-t-end T"),
            "--dks" => a.dks = next.split(',').map(|x| x.trim().parse().expect("--dks list")).collect(),
            "--reps" => a.reps = next.parse::<usize>().expect("--reps R").max(1),
            "--json" => a.json = Some(next),
            "--rhs" => {
                a.rhs_only = true;
                used = false;
            }
            _ => used = false, // cargo bench passes --bench
        }
        i += if used { 2 } else { 1 };
    }
    a
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

struct Device {
    label: String,
    ctx: Option<Arc<GpuContext>>,
}

impl Device {
    fn backend(&self, p: Arc<dyn BatchProblem>) -> Box<dyn Backend> {
        match &self.ctx {
            None => Box::new(CpuBackend::new(p)),
            Some(ctx) => Box::new(GpuBackend::new(ctx.clone(), p, Precision::F64).unwrap()),
        }
    }
}

/// Fig 2 parameters at one (Ω, V).
fn point(omega: f64, v: f64, dk: f64, early_stop: bool) -> serde_json::Value {
    json!({"band_a1": 7.0, "band_a2": 24.0, "gamma_ph": 0.02, "gamma_rr": 0.002, "cutoff": 0.2,
           "phonon_velocity": 0.1, "grid_step": dk, "rabi_frequency": omega, "coupling_v": v,
           "early_stop": early_stop})
}

/// Integrates one batch to `t_end` with the Fig 2 solver settings (DOPRI5, rtol 1e-6,
/// atol 1e-9, outputs every 100); returns (seconds, accepted steps summed over members,
/// members stopped early).
fn run(dev: &Device, points: &[serde_json::Value], t_end: f64) -> (f64, f64, usize) {
    let problem = Interband.build(&Interband.parse_all(points).unwrap()).unwrap();
    let n_out = (t_end / 100.0).round().max(1.0) as usize;
    let opts = SolveOptions {
        output_times: (1..=n_out).map(|k| t_end * k as f64 / n_out as f64).collect(),
        ..Default::default()
    };
    let start = Instant::now();
    let mut b = dev.backend(problem.clone());
    let (mut steps, mut stopped) = (0.0, 0);
    integrate(&mut *b, &*problem, &opts, &mut |f| {
        if f.index + 1 == n_out {
            assert!(f.status.iter().all(|s| *s != status::FAILED), "a point failed: timing invalid");
            steps = f.n_accept.iter().sum();
            stopped = f.status.iter().filter(|s| **s == status::STOPPED).count();
        }
        Ok(())
    })
    .unwrap();
    (start.elapsed().as_secs_f64(), steps, stopped)
}

/// Seconds this thread has run on a CPU (Linux `/proc/thread-self/schedstat`); `None`
/// elsewhere (then wall time is used).
fn thread_cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(s.split_whitespace().next()?.parse::<f64>().ok()? * 1e-9)
}

/// Section 3: the CPU right-hand side of one member (Fig 2 parameters, Ω = 0.25, V = 5)
/// on this thread, at each grid step of `--dks`; ns per momentum per evaluation.
fn rhs_alone(args: &Args) -> Vec<serde_json::Value> {
    let reps = args.reps.max(5);
    println!("## 3. Interband CPU RHS alone, one thread, ns per momentum per evaluation (median of {reps})");
    println!("| dk | momenta | ns per momentum per evaluation (on-CPU) | (wall) | evaluations timed |");
    println!("|---|---|---|---|---|");
    let mut out = vec![];
    for &dk in &args.dks {
        let problem = Interband.build(&Interband.parse_all(&[point(0.25, 5.0, dk, false)]).unwrap()).unwrap();
        let l = problem.layout();
        let n = l.state_len / 6;
        let (params, tables) = (&problem.params()[..l.params_len], &problem.tables()[..l.table_len]);
        // A state with every component in play: the initial state advanced by Euler steps.
        let mut y = problem.initial_state();
        for (i, v) in y.iter_mut().enumerate() {
            *v += 1e-3 * ((i * 7919) % 101) as f64 / 101.0;
        }
        let mut dy = vec![0.0; l.state_len];
        let mut scratch = vec![0.0; l.scratch_len.max(1)];
        for _ in 0..10 {
            problem.rhs_member(0, params, tables, 0.0, &y, &mut dy, &mut scratch);
            for (yi, di) in y.iter_mut().zip(&dy) {
                *yi += 1e-2 * di;
            }
        }
        let s = Instant::now();
        let c0 = thread_cpu_seconds();
        let spent = || match (c0, thread_cpu_seconds()) {
            (Some(a), Some(b)) => b - a,
            _ => s.elapsed().as_secs_f64(),
        };
        let mut calib = 0usize;
        while spent() < 0.05 {
            problem.rhs_member(0, params, tables, 0.0, &y, &mut dy, &mut scratch);
            calib += 1;
        }
        let evals = (calib * 4).max(10);
        let (cpu, wall): (Vec<f64>, Vec<f64>) = (0..reps)
            .map(|_| {
                let c = thread_cpu_seconds();
                let s = Instant::now();
                for _ in 0..evals {
                    problem.rhs_member(0, params, tables, 0.0, std::hint::black_box(&y), &mut dy, &mut scratch);
                    std::hint::black_box(&mut dy);
                }
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
        println!("| {dk} | {n} | {ns:.2} | {ns_wall:.2} | {evals} |");
        out.push(json!({"dk": dk, "momenta": n, "ns_per_momentum_per_evaluation": ns, "ns_wall": ns_wall, "evaluations": evals}));
    }
    println!();
    out
}

fn main() {
    let args = parse_args();
    if args.rhs_only {
        let rows = rhs_alone(&args);
        if let Some(path) = args.json {
            std::fs::write(&path, serde_json::to_string_pretty(&json!({"rhs": rows})).unwrap()).unwrap();
            eprintln!("wrote {path}");
        }
        return;
    }
    let mut devices = vec![];
    for name in &args.backends {
        match name.as_str() {
            "cpu" => devices
                .push(Device { label: format!("cpu ({} threads, f64)", rayon::current_num_threads()), ctx: None }),
            "gpu" => match GpuContext::new() {
                Ok(ctx) if ctx.supports_f64() => {
                    let info = ctx.info();
                    devices.push(Device {
                        label: format!("gpu {} ({}, f64)", info.name, info.api),
                        ctx: Some(Arc::new(ctx)),
                    })
                }
                Ok(_) => eprintln!("gpu backend not benchmarked: no f64 on this adapter"),
                Err(e) => eprintln!("gpu backend not benchmarked: {e}"),
            },
            other => eprintln!("unknown backend {other}"),
        }
    }
    let mut report = serde_json::Map::new();

    let side = args.side;
    let lin = |a: f64, b: f64, k: usize| if side == 1 { a } else { a + (b - a) * k as f64 / (side - 1) as f64 };
    println!(
        "## 1. Phase-diagram throughput: {side} × {side} sub-grid of Fig 2 (Ω ∈ [0, 0.5], V ∈ [0, 8]), dk = 0.01 (40 momenta), t = {}, one batch, median of {}",
        args.t_end, args.reps
    );
    println!("| device | early stop | points | wall | points/s | accepted steps/point | stopped early |");
    println!("|---|---|---|---|---|---|---|");
    let mut rows = vec![];
    // Early stop needs a window of 60 phonon times (1500 here) in the last quarter of the
    // run, so it cannot fire before t = 6000: below that, only the plain run is timed.
    let modes: &[bool] = if args.t_end >= 6000.0 { &[false, true] } else { &[false] };
    for dev in &devices {
        for &early in modes {
            let pts: Vec<_> = (0..side)
                .flat_map(|i| (0..side).map(move |j| (i, j)))
                .map(|(i, j)| point(lin(0.0, 0.5, i), lin(0.0, 8.0, j), 0.01, early))
                .collect();
            let mut walls = vec![];
            let mut last = (0.0, 0);
            for _ in 0..args.reps {
                let (w, s, st) = run(dev, &pts, args.t_end);
                walls.push(w);
                last = (s, st);
            }
            let wall = median(walls);
            let np = pts.len() as f64;
            println!(
                "| {} | {} | {} | {:.2} s | {:.3} | {:.0} | {} |",
                dev.label,
                if early { "on" } else { "off" },
                pts.len(),
                wall,
                np / wall,
                last.0 / np,
                last.1
            );
            rows.push(json!({"device": dev.label, "early_stop": early, "points": pts.len(), "t_end": args.t_end,
                "wall_s": wall, "points_per_s": np / wall, "steps_per_point": last.0 / np, "stopped": last.1}));
        }
    }
    report.insert("phase_diagram".into(), json!(rows));

    println!(
        "\n## 2. Cost of one point vs grid size: 8 points (V = 5, Ω ∈ [0.05, 0.45]) per batch, t = {}, median of {}",
        args.scan_t_end, args.reps
    );
    println!("| device | dk | momenta | wall per point | µs per accepted step per point | points/s |");
    println!("|---|---|---|---|---|---|");
    let mut rows = vec![];
    for dev in &devices {
        for &dk in &args.dks {
            let pts: Vec<_> = (0..8).map(|i| point(0.05 + 0.4 * i as f64 / 8.0, 5.0, dk, false)).collect();
            let mut walls = vec![];
            let mut steps = 0.0;
            for _ in 0..args.reps {
                let (w, s, _) = run(dev, &pts, args.scan_t_end);
                walls.push(w);
                steps = s;
            }
            let wall = median(walls);
            let n = 2 * (0.2 / dk).round() as usize;
            println!(
                "| {} | {dk} | {n} | {:.3} s | {:.2} | {:.3} |",
                dev.label,
                wall / 8.0,
                1e6 * wall / steps,
                8.0 / wall
            );
            rows.push(json!({"device": dev.label, "dk": dk, "momenta": n, "t_end": args.scan_t_end,
                "wall_per_point_s": wall / 8.0, "us_per_step_per_point": 1e6 * wall / steps, "points_per_s": 8.0 / wall}));
        }
    }
    report.insert("grid_scan".into(), json!(rows));

    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
        eprintln!("wrote {path}");
    }
}
