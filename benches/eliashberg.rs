//! Migdal-Eliashberg benchmark (a bench binary, not a timed test):
//! `cargo bench --bench eliashberg [-- OPTIONS]`.
//!
//! Table I's 21 modes at T0 = 0.18 g, one member, grid of N points. Reports medians of
//! `--reps` runs (default 3), all measured side by side in this one process:
//! 1. one kinetic-equation stage (RHS evaluation) on the CPU backend's twin (dense LU,
//!    `engine::dense` on faer), the share of it spent in the N×N self-energy kernel
//!    `Σ = K f + b`, and side by side the same stage with the hand-written unblocked LU that
//!    the twin used before issue 12 item 5 (kept here only for this comparison; `--no-old`
//!    skips it), with the largest difference of the two derivatives;
//! 2. one stage on the GPU backend (the WGSL kernel: K applied by the workgroup, BiCGSTAB
//!    whose iterations are two N×N matvecs each): the same right-hand side replayed in one
//!    submission, checked against the CPU twin (a NaN or a large difference means the
//!    stage did not run as timed);
//! 3. one linear-stability solve: Eqs 17–23 (analytic Z0⁻¹; Cholesky + symmetric
//!    eigensolver) and the kinetic-discretisation problem (LU + general eigensolver).
//!
//! Options: `--sizes 256,512,1024` (stages), `--gpu-sizes 256,512,1024`,
//! `--stability-sizes 256,512` (empty: none), `--backends cpu,gpu`, `--reps N`, `--no-old`,
//! `--full` (stages up to 4096, stability up to 2048). Default is cheap (≲ 1 min on 2
//! cores). The stage solve of issue 12 item 5:
//! `cargo bench --bench eliashberg -- --sizes 1024,2048,4096 --backends cpu --stability-sizes ""`.

use std::sync::Arc;
use std::time::Instant;

use neqkin::engine::backend::{Backend, Precision};
use neqkin::engine::model::BatchProblem;
use neqkin::models::eliashberg::alpha2f::Spectrum;
use neqkin::models::eliashberg::kinetic::{collision, kinetic_spectrum, KineticProblem};
use neqkin::models::eliashberg::stability::{solve, Reading, StabilityOptions};
use neqkin::models::eliashberg::Params;

struct Args {
    sizes: Vec<usize>,
    gpu_sizes: Vec<usize>,
    stability_sizes: Vec<usize>,
    backends: Vec<String>,
    reps: usize,
    old: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        sizes: vec![256, 512, 1024],
        gpu_sizes: vec![256, 512, 1024],
        stability_sizes: vec![256, 512],
        backends: vec!["cpu".into(), "gpu".into()],
        reps: 3,
        old: true,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let list = |s: &str| s.split(',').filter_map(|x| x.trim().parse().ok()).collect::<Vec<usize>>();
    let mut i = 0;
    while i < argv.len() {
        let next = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--full" => {
                a.sizes = vec![256, 512, 1024, 2048, 4096];
                a.gpu_sizes = vec![256, 512, 1024, 2048, 4096];
                a.stability_sizes = vec![256, 512, 1024, 2048];
            }
            "--sizes" => {
                a.sizes = list(&next);
                i += 1;
            }
            "--gpu-sizes" => {
                a.gpu_sizes = list(&next);
                i += 1;
            }
            "--stability-sizes" => {
                a.stability_sizes = list(&next);
                i += 1;
            }
            "--backends" => {
                a.backends = next.split(',').map(String::from).collect();
                i += 1;
            }
            "--no-old" => a.old = false,
            "--reps" => {
                a.reps = next.parse().unwrap_or(3).max(1);
                i += 1;
            }
            _ => {} // cargo bench passes `--bench`
        }
        i += 1;
    }
    a
}

/// CPU time of the whole process (all threads, user + system), seconds: with wall time it
/// tells a loaded machine (CPU time per stage well below wall × threads) from a slow stage.
fn cpu_time() -> f64 {
    #[cfg(unix)]
    {
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage writes the struct it is given.
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } == 0 {
            let tv = |t: libc::timeval| t.tv_sec as f64 + 1e-6 * t.tv_usec as f64;
            return tv(ru.ru_utime) + tv(ru.ru_stime);
        }
    }
    f64::NAN
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// The hand-written unblocked LU with partial pivoting that solved the stage before issue 12
/// item 5 (row-major, in place; x overwrites rhs), kept only as the benchmark's baseline.
/// Returns the smallest |pivot| over the largest |entry|.
fn old_lu_solve(n: usize, a: &mut [f64], rhs: &mut [f64]) -> f64 {
    let scale = a.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-300);
    let mut min_piv = f64::INFINITY;
    for c in 0..n {
        let (mut p, mut best) = (c, a[c * n + c].abs());
        for r in c + 1..n {
            if a[r * n + c].abs() > best {
                best = a[r * n + c].abs();
                p = r;
            }
        }
        min_piv = min_piv.min(best / scale);
        if best == 0.0 {
            return 0.0;
        }
        if p != c {
            for j in 0..n {
                a.swap(c * n + j, p * n + j);
            }
            rhs.swap(c, p);
        }
        let d = a[c * n + c];
        for r in c + 1..n {
            let fct = a[r * n + c] / d;
            if fct != 0.0 {
                a[r * n + c] = fct;
                for j in c + 1..n {
                    a[r * n + j] -= fct * a[c * n + j];
                }
                rhs[r] -= fct * rhs[c];
            }
        }
    }
    for c in (0..n).rev() {
        let mut acc = rhs[c];
        for j in c + 1..n {
            acc -= a[c * n + j] * rhs[j];
        }
        rhs[c] = acc / a[c * n + c];
    }
    min_piv
}

/// The stage as the twin computed it before issue 12 item 5: the same left-hand matrix and
/// collision integral, solved by [`old_lu_solve`].
fn old_stage(p: &KineticProblem, y: &[f64], dy: &mut [f64]) {
    let n = y.len();
    let mut a = p.lhs_matrix(0, y);
    let nm = p.params()[2] as usize;
    collision(n, nm, p.tables(), y, dy);
    let piv = old_lu_solve(n, &mut a, dy);
    assert!(piv > 1e-12, "the bench's stage is far from singular");
    let scale = p.params()[0];
    dy.iter_mut().for_each(|x| *x *= scale);
}

fn problem(n: usize) -> Arc<KineticProblem> {
    let p = Params::parse(&serde_json::json!({
        "task": "kinetic", "comb": {"start": 40.0, "step": 1.0, "count": 21}, "lambda": 1.0,
        "units": "g", "temperature": 0.18, "initial_temperature": 0.1800001,
        "grid_step": 1.0, "grid_points": n
    }))
    .unwrap();
    Arc::new(KineticProblem::new(&[p]).unwrap())
}

fn main() {
    let a = parse_args();
    // Large sizes get fewer repetitions (the N = 4096 LU is ~a minute here).
    let reps_for = |n: usize| if n >= 2048 { 1 } else { a.reps };
    println!("# neqkin eliashberg bench; Table I modes, T0 = 0.18 g, one member; medians of --reps {}", a.reps);
    if a.backends.iter().any(|b| b == "cpu") {
        println!("\n## CPU kinetic stage (twin: dense LU, engine::dense on faer) and the N×N Σ kernel");
        println!(
            "faer LU: medians of {} reps; unblocked LU (before issue 12 item 5): {} reps up to N = 1024, 1 above",
            a.reps, a.reps
        );
        println!(
            "| N | stage (s) | stage CPU time, all threads (s) | Σ kernel (s) | kernel share | stage, unblocked LU (s) | unblocked / faer | max |Δḟ| / max |ḟ| |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for &n in &a.sizes {
            let p = problem(n);
            let y = p.initial_state();
            let mut dy = vec![0.0; n];
            let mut scr = vec![0.0; p.layout().scratch_len];
            let (mut st, mut cpu, mut ke, mut old) = (vec![], vec![], vec![], vec![]);
            for _ in 0..a.reps {
                let (t, c) = (Instant::now(), cpu_time());
                p.rhs_member(0, &p.params()[..p.layout().params_len], p.tables(), 0.0, &y, &mut dy, &mut scr);
                st.push(t.elapsed().as_secs_f64());
                cpu.push(cpu_time() - c);
                let t = Instant::now();
                std::hint::black_box(p.sigma(0, &y));
                ke.push(t.elapsed().as_secs_f64());
            }
            let mut dy_old = vec![0.0; n];
            if a.old {
                for _ in 0..reps_for(n) {
                    let t = Instant::now();
                    old_stage(&p, &y, &mut dy_old);
                    old.push(t.elapsed().as_secs_f64());
                }
            }
            let (s, c, k) = (median(st), median(cpu), median(ke));
            if a.old {
                let o = median(old);
                let scale = dy_old.iter().fold(0.0f64, |m, x| m.max(x.abs()));
                let diff = dy.iter().zip(&dy_old).fold(0.0f64, |m, (p, q)| m.max((p - q).abs())) / scale;
                println!(
                    "| {n} | {s:.3e} | {c:.3e} | {k:.3e} | {:.2} % | {o:.3e} | {:.1} | {diff:.1e} |",
                    100.0 * k / s,
                    o / s
                );
            } else {
                println!("| {n} | {s:.3e} | {c:.3e} | {k:.3e} | {:.2} % | | | |", 100.0 * k / s);
            }
        }
    }
    if a.backends.iter().any(|b| b == "gpu") {
        match neqkin::engine::gpu::GpuContext::new() {
            Err(e) => println!("\nGPU: no adapter ({e})"),
            Ok(ctx) => {
                let ctx = Arc::new(ctx);
                let prec = if ctx.supports_f64() { Precision::F64 } else { Precision::F32 };
                let info = ctx.info();
                println!("\n## GPU kinetic stage: adapter {} ({}), {prec}", info.name, info.device_type);
                println!("| N | stage (s) | stages timed | max |ḟ_gpu − ḟ_cpu| / max |ḟ_cpu| |");
                println!("|---|---|---|---|");
                for &n in &a.gpu_sizes {
                    let p = problem(n);
                    let y0 = p.initial_state();
                    // The same stage as the CPU row: one right-hand side at the initial state,
                    // replayed `stages` times in one submission after a warm-up (pipeline
                    // compilation, upload), then read back and checked against the twin.
                    let stages = if n >= 2048 { 4 } else { 16 };
                    let run = || -> neqkin::Result<(Vec<f64>, Vec<f64>)> {
                        use neqkin::engine::program::{Op, StepProgram};
                        let mut gpu = neqkin::engine::gpu::GpuBackend::new(ctx.clone(), p.clone(), prec)?;
                        let t = gpu.new_scalars()?;
                        let (y, dy) = (gpu.new_vector()?, gpu.new_vector()?);
                        let prog = gpu.compile(&StepProgram { ops: vec![Op::Rhs { t, y, dy }] })?;
                        gpu.write_vector(y, &y0)?;
                        gpu.run(prog, 1)?;
                        gpu.read_vector(dy)?;
                        let mut times = vec![];
                        for _ in 0..reps_for(n) {
                            let t0 = Instant::now();
                            gpu.run(prog, stages)?;
                            let out = gpu.read_vector(dy)?;
                            times.push(t0.elapsed().as_secs_f64() / stages as f64);
                            std::hint::black_box(out);
                        }
                        Ok((times, gpu.read_vector(dy)?))
                    };
                    match run() {
                        Err(e) => println!("| {n} | failed: {e} | | |"),
                        Ok((times, got)) => {
                            let mut want = vec![0.0; n];
                            let mut scr = vec![0.0; p.layout().scratch_len];
                            p.rhs_member(
                                0,
                                &p.params()[..p.layout().params_len],
                                p.tables(),
                                0.0,
                                &y0,
                                &mut want,
                                &mut scr,
                            );
                            let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
                            let err = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0.0f64, f64::max) / scale;
                            println!("| {n} | {:.3e} | {stages} | {err:.1e} |", median(times));
                        }
                    }
                }
            }
        }
    }
    println!("\n## Linear stability solve (Table I modes, λ = 1.2, T0 = 0.18 g)");
    println!("| N | Eqs 17–23 (Cholesky + symmetric eig) (s) | kinetic discretisation (LU + general eig) (s) |");
    println!("|---|---|---|");
    for &n in &a.stability_sizes {
        let s = Spectrum::comb(40.0, 1.0, 21, 1.2);
        let t_eps = 0.18 * s.g();
        let opts = StabilityOptions { points: n, reading: Reading::Derived, offdiag_sign: 1.0, eps_out: 1.0 / s.g() };
        let (mut an, mut ki) = (vec![], vec![]);
        let p = Params::parse(&serde_json::json!({
            "task": "kinetic", "comb": {"start": 40.0, "step": 1.0, "count": 21}, "lambda": 1.2,
            "units": "g", "temperature": 0.18, "initial_temperature": 0.18, "grid_step": 1.0, "grid_points": n
        }))
        .unwrap();
        let kp = KineticProblem::new(&[p]).unwrap();
        for _ in 0..reps_for(n) {
            let t = Instant::now();
            std::hint::black_box(solve(&s, t_eps, &opts).unwrap());
            an.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            let (am, mm) = kp.linearisation(0);
            std::hint::black_box(kinetic_spectrum(n, &am, &mm).unwrap());
            ki.push(t.elapsed().as_secs_f64());
        }
        println!("| {n} | {:.3e} | {:.3e} |", median(an), median(ki));
    }
}
