//! Cavity-model throughput (issue 3): sweep points per second of each level on the CPU
//! backend and on the GPU backend (whatever adapter wgpu finds; lavapipe on GPU-less
//! machines), side by side in one process, median of `--reps` runs.
//!
//! `cargo bench --bench cavity` — cheap default: Fig S4's temperatures (T_cry = 0.1,
//! T_mir = 100, γ = 10, μ0 = ε_k = 1) in a narrow window μ0 ± 10.
//! `cargo bench --bench cavity -- --figS4` — grids that resolve Fig S4 over its whole window
//! μ0 ± 1000 (= ±5·2T_mir): level 1 on the graded grid (h = 0.025 → 0.5, n = 4239), level 2
//! uniform h = 0.025 (n = 80 001), printed S71 (Riccati) with 80 001 outputs; the
//! Fokker–Planck level by Newton on the graded grid over the whole window (`3fpn`,
//! h = 0.025 → 2.5), and by pseudo-time on a uniform grid only at μ0 ± 50 (`3fp`, n = 2001;
//! its pseudo-time relaxation is diffusive, see docs/models/cavity.md §8).
//! Options: `--backends cpu,gpu`, `--reps N` (default 3), `--batch B` (points per batch,
//! default 2), `--levels 1,1g,2,3fp,3fpn,3r` (default all; `1` = level 1 uniform, `1g`
//! graded, `3fpn` Fokker–Planck graded + Newton).
//! `--rhs`: instead, the CPU right-hand side alone of one member of each grid level on one
//! thread (ns per cell per evaluation, and per pair for the dense level-1 kernels), from the
//! thread's on-CPU time, median of max(`--reps`, 5) runs.

use std::sync::Arc;
use std::time::Instant;

use neqkin::engine::backend::{Backend, Precision};
use neqkin::engine::cpu::CpuBackend;
use neqkin::engine::gpu::{GpuBackend, GpuContext};
use neqkin::engine::model::BatchProblem;
use neqkin::engine::program::status;
use neqkin::engine::solve::{integrate, Method, SolveOptions};
use neqkin::models::cavity::{derive, CavityBatch, Scheme};
use serde_json::{json, Value};

struct Args {
    backends: Vec<String>,
    reps: usize,
    batch: usize,
    levels: Vec<String>,
    fig_s4: bool,
    rhs_only: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        backends: vec!["cpu".into(), "gpu".into()],
        reps: 3,
        batch: 2,
        levels: ["1", "1g", "2", "3fp", "3fpn", "3r"].map(String::from).to_vec(),
        fig_s4: false,
        rhs_only: false,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let next = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--figS4" => a.fig_s4 = true,
            "--rhs" => a.rhs_only = true,
            "--backends" => {
                a.backends = next.split(',').map(String::from).collect();
                i += 1;
            }
            "--levels" => {
                a.levels = next.split(',').map(String::from).collect();
                i += 1;
            }
            "--reps" => {
                a.reps = next.parse().unwrap_or(3);
                i += 1;
            }
            "--batch" => {
                a.batch = next.parse().unwrap_or(2);
                i += 1;
            }
            _ => {} // cargo bench passes `--bench`
        }
        i += 1;
    }
    a
}

/// Parameters of one benchmark case at member k (g = 0.1 + 0.2k).
fn point(level: &str, fig_s4: bool, k: usize) -> Value {
    let mut p = json!({"coupling_g": 0.1 + 0.2 * k as f64, "t_cry": 0.1, "t_mir": 100.0, "nu0": 1.0,
                       "gamma": 10.0, "mu0": 1.0});
    let half = if fig_s4 { 1000.0 } else { 10.0 };
    let set = |p: &mut Value, kv: Value| {
        for (key, v) in kv.as_object().unwrap() {
            p[key] = v.clone();
        }
    };
    set(&mut p, json!({"omega_min": 1.0 - half, "omega_max": 1.0 + half}));
    match level {
        "1" => set(
            &mut p,
            json!({"level": 1, "gamma_ph": 0.2, "n_omega": if fig_s4 { 2001 } else { 401 },
                                  "omega_min": if fig_s4 { -49.0 } else { -9.0 },
                                  "omega_max": if fig_s4 { 51.0 } else { 11.0 }}),
        ),
        "1g" => set(
            &mut p,
            json!({"level": 1, "gamma_ph": 1.0, "grid": "graded", "h_fine": 0.025,
                                   "h_coarse": 0.5}),
        ),
        "2" => set(&mut p, json!({"level": 2, "n_omega": if fig_s4 { 80001 } else { 801 }})),
        "3fp" => set(
            &mut p,
            json!({"level": 3, "n_omega": if fig_s4 { 2001 } else { 401 },
                                    "omega_min": if fig_s4 { -49.0 } else { -9.0 },
                                    "omega_max": if fig_s4 { 51.0 } else { 11.0 }}),
        ),
        "3fpn" => set(
            &mut p,
            json!({"level": 3, "grid": "graded", "h_fine": 0.025, "h_coarse": if fig_s4 { 2.5 } else { 0.5 }}),
        ),
        "3r" => set(&mut p, json!({"level": 3, "variant": "riccati_s71", "n_omega": if fig_s4 { 80001 } else { 801 }})),
        other => panic!("unknown level `{other}` (1, 1g, 2, 3fp, 3fpn, 3r)"),
    }
    p
}

/// One solve of the whole batch: (seconds, converged members, max residual).
fn solve(backend: &mut dyn Backend, problem: &CavityBatch, newton: bool) -> (f64, usize, f64) {
    let riccati = problem.scheme() == Scheme::RiccatiS71;
    let opts = if newton {
        SolveOptions { method: Method::Newton, steady_tol: Some(1e-10), ..Default::default() }
    } else if riccati {
        SolveOptions {
            method: Method::Dopri5,
            rtol: 1e-8,
            atol: 1e-10,
            output_times: problem.riccati_output_times(),
            ..Default::default()
        }
    } else {
        // Pseudo-time: preconditioned RK4 with dτ = 1 (a stable damped fixed point).
        SolveOptions {
            method: Method::Rk4,
            dt: Some(1.0),
            output_times: vec![1e7],
            steady_tol: Some(1e-9),
            ..Default::default()
        }
    };
    let n = problem.layout().state_len;
    let t0 = Instant::now();
    let mut ok = 0;
    let mut res = 0.0f64;
    integrate(backend, problem, &opts, &mut |fr| {
        ok = fr.status.iter().filter(|s| **s == status::STEADY || **s == status::REACHED).count();
        if !riccati {
            for (m, y) in fr.state.chunks(n).enumerate() {
                let r = problem.residual(m, y);
                res = res.max((r.iter().map(|x| x * x).sum::<f64>() / r.len() as f64).sqrt());
            }
        }
        Ok(())
    })
    .unwrap();
    (t0.elapsed().as_secs_f64(), ok, res)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Seconds this thread has run on a CPU (Linux `/proc/thread-self/schedstat`); `None`
/// elsewhere (then wall time is used).
fn thread_cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(s.split_whitespace().next()?.parse::<f64>().ok()? * 1e-9)
}

/// `--rhs`: the CPU right-hand side of one member of each grid level on this thread.
fn rhs_alone(args: &Args) {
    let reps = args.reps.max(5);
    println!(
        "## Cavity CPU RHS alone, one thread, {} sizes, median of {reps} (on-CPU time; wall in brackets)",
        if args.fig_s4 { "Fig S4" } else { "cheap (μ0 ± 10)" }
    );
    println!("| level | n | ns per cell per evaluation | ns per pair (dense levels) | evaluations timed |");
    println!("|---|---|---|---|---|");
    for level in &args.levels {
        if level == "3r" {
            continue; // one state variable: nothing per cell to time
        }
        let problem = CavityBatch::new(vec![derive(&point(level, args.fig_s4, 1)).unwrap()]).unwrap();
        let l = problem.layout();
        let n = l.state_len;
        let (params, tables) = (&problem.params()[..l.params_len], &problem.tables()[..l.table_len]);
        // Away from F0: the initial state with a deterministic ripple.
        let mut y = problem.initial_state();
        for (i, v) in y.iter_mut().enumerate() {
            *v = (*v * 0.9 + 0.05 * (((i * 7919) % 101) as f64 / 101.0 - 0.5)).clamp(-1.0, 1.0);
        }
        let mut dy = vec![0.0; n];
        let mut scratch = vec![0.0; l.scratch_len.max(1)];
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
        let evals = (calib * 4).max(4);
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
        let dense = level == "1" || level == "1g";
        let per_pair = if dense { format!("{:.3} ({:.3})", ns / n as f64, ns_wall / n as f64) } else { "-".into() };
        println!("| {level} | {n} | {ns:.2} ({ns_wall:.2}) | {per_pair} | {evals} |");
    }
}

fn main() {
    let args = parse_args();
    if args.rhs_only {
        rhs_alone(&args);
        return;
    }
    let ctx = if args.backends.iter().any(|b| b == "gpu") {
        match GpuContext::new() {
            Ok(c) => Some(Arc::new(c)),
            Err(e) => {
                println!("no GPU adapter ({e}): CPU only");
                None
            }
        }
    } else {
        None
    };
    let adapter = ctx.as_ref().map(|c| c.info().name.clone()).unwrap_or_else(|| "-".into());
    println!(
        "cavity bench: {} sizes, batch {}, median of {} reps; CPU backend (rayon, {} threads) vs GPU `{adapter}` (f64)",
        if args.fig_s4 { "Fig S4" } else { "cheap (μ0 ± 10)" },
        args.batch,
        args.reps,
        rayon::current_num_threads()
    );
    println!(
        "{:<24} {:>7} {:>14} {:>14} {:>8} {:>13} {:>9} {:>9}",
        "level", "n", "CPU points/s", "GPU points/s", "GPU/CPU", "ok CPU/GPU", "res. CPU", "res. GPU"
    );
    for level in &args.levels {
        let members = (0..args.batch).map(|k| derive(&point(level, args.fig_s4, k)).unwrap()).collect();
        let problem = Arc::new(CavityBatch::new(members).unwrap());
        let n = problem.members()[0].n;
        let name = match level.as_str() {
            "1" => "1 consistent uniform",
            "1g" => "1 consistent graded",
            "2" => "2 consistent",
            "3fp" => "3 fokker_planck",
            "3fpn" => "3 fokker_planck newton",
            _ => "3 riccati_s71",
        };
        let newton = level == "3fpn";
        let rate = |backend: &mut dyn Backend| {
            let mut times = vec![];
            let (mut ok, mut res) = (0, 0.0);
            for _ in 0..args.reps {
                let (t, o, r) = solve(backend, &problem, newton);
                times.push(t);
                (ok, res) = (o, r);
            }
            (args.batch as f64 / median(times), ok, res)
        };
        let mut cpu = CpuBackend::new(problem.clone());
        let (r_cpu, ok, res) = rate(&mut cpu);
        let (r_gpu, ok_gpu, res_gpu) = match &ctx {
            Some(c) => {
                let mut gpu = GpuBackend::new(c.clone(), problem.clone(), Precision::F64).unwrap();
                rate(&mut gpu)
            }
            None => (f64::NAN, 0, f64::NAN),
        };
        println!(
            "{name:<24} {n:>7} {r_cpu:>14.4} {r_gpu:>14.4} {:>8.3} {:>13} {res:>9.1e} {res_gpu:>9.1e}",
            r_gpu / r_cpu,
            format!("{ok}/{ok_gpu} of {}", args.batch)
        );
    }
}
