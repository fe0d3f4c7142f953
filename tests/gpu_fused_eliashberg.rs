//! Issue 13 item 3 for the Migdal-Eliashberg kinetic model: its right-hand side
//! (`shaders/eliashberg/kinetic.wgsl`, a BiCGSTAB solve with O(L²) work per member) as the
//! `rhs_member` of fused step kernels (src/engine/gpu/fused.rs), against the op-by-op run
//! of the same step programs on the same GPU backend and against the CPU backend (dense LU).
//!
//! Step for step: f64 the same accepted and rejected steps per member and states within
//! 1e-12 of the largest component at every output time; f32 states within 1e-4 (the
//! compiler may contract multiply-adds differently in the two kernels and the f32 solve
//! stops at a relative residual of ~1e-6, so adaptive steps may differ; compared as
//! solutions). Against the CPU twin: the tolerances of tests/eliashberg_gpu.rs (f64 1e-8,
//! f32 2e-3 of max |f − f0|). The GPU integrations of this model are explicit (DOPRI5,
//! RK4; RKC is refused without a spectral radius, BDF runs on the CPU only), so those are
//! the programs covered.
//!
//! Sizes on lavapipe (65 535 loop iterations per invocation and dispatch): L = 60 (member
//! workgroup of 64 threads) and L = 260 (256 threads, two rows per invocation) fit a fused
//! attempt; at L = 769 a DOPRI5 attempt (6 evaluations) does not, and the backend must run
//! it op by op (the same dispatches and bit-identical frames as the op-by-op run), while
//! an RK4 attempt (4 evaluations) at the same L still fits and is fused.
//!
//! GPU policy: `neqkin::engine::gpu::testing` (skipped with a notice without an adapter,
//! failed when `NEQKIN_REQUIRE_GPU=1`, as in CI).

use std::sync::{Arc, OnceLock};

use neqkin::engine::backend::{Backend, Precision};
use neqkin::engine::cpu::CpuBackend;
use neqkin::engine::gpu::{GpuBackend, GpuContext};
use neqkin::engine::model::BatchProblem;
use neqkin::engine::solve::{integrate, ErrorScale, Method, SolveOptions};
use neqkin::models::eliashberg::kinetic::{self, KineticProblem, BUDGETED_SOLVE_ITERATIONS};
use neqkin::models::eliashberg::Params;

fn gpu() -> Option<Arc<GpuContext>> {
    static CTX: OnceLock<Option<Arc<GpuContext>>> = OnceLock::new();
    CTX.get_or_init(|| neqkin::engine::gpu::testing::gpu_context("gpu_fused_eliashberg")).clone()
}

/// Two members (modes 8ε and 9ε, T0 = 3ε, from T = 3.3ε) at couplings `lambdas`, L grid points.
fn problem(l: usize, lambdas: [f64; 2]) -> Arc<KineticProblem> {
    let ps: Vec<Params> = lambdas
        .iter()
        .map(|&lam| {
            Params::parse(&serde_json::json!({
                "task": "kinetic", "modes": [[8.0, 0.5 * lam], [9.0, 0.5 * lam]], "units": "input",
                "temperature": 3.0, "initial_temperature": 3.3, "grid_step": 1.0, "grid_points": l
            }))
            .unwrap()
        })
        .collect();
    Arc::new(KineticProblem::new(&ps).unwrap())
}

/// Per output time: (state, status, n_accept, n_reject); and the backend's dispatches.
type Frames = Vec<(Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>)>;

fn run(backend: &mut dyn Backend, p: &KineticProblem, opts: &SolveOptions) -> Frames {
    let mut frames = vec![];
    integrate(backend, p, opts, &mut |f| {
        frames.push((f.state.to_vec(), f.status.to_vec(), f.n_accept.to_vec(), f.n_reject.to_vec()));
        Ok(())
    })
    .unwrap();
    frames
}

fn gpu_run(
    ctx: &Arc<GpuContext>,
    p: &Arc<KineticProblem>,
    prec: Precision,
    fused: bool,
    opts: &SolveOptions,
) -> (Frames, u64, f64) {
    let problem: Arc<dyn BatchProblem> = p.clone();
    let mut b = GpuBackend::new(ctx.clone(), problem, prec).unwrap();
    b.set_fused(fused);
    let t0 = std::time::Instant::now();
    let frames = run(&mut b, p, opts);
    (frames, b.info().dispatches.unwrap(), t0.elapsed().as_secs_f64())
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// Jacobi-preconditioned BiCGSTAB iterations of the kernel's solve (same algorithm, same
/// stopping rule, f64 on the CPU) for member `m` at state `f`: how many the runs below
/// need, against [`BUDGETED_SOLVE_ITERATIONS`].
fn solve_iterations(p: &KineticProblem, m: usize, f: &[f64]) -> usize {
    let lay = p.layout();
    let l = lay.state_len;
    let a = p.lhs_matrix(m, f);
    let tab = &p.tables()[m * lay.table_stride..m * lay.table_stride + lay.table_len];
    let mut b = vec![0.0; l];
    kinetic::collision(l, p.members()[m].r.len(), tab, f, &mut b);
    let diag: Vec<f64> = (0..l).map(|i| a[i * l + i]).collect();
    let apply = |v: &[f64]| -> Vec<f64> {
        (0..l).map(|i| (0..l).map(|j| a[i * l + j] * v[j] / diag[j]).sum::<f64>()).collect::<Vec<f64>>()
    };
    let dot = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(a, b)| a * b).sum::<f64>();
    let bnorm2 = dot(&b, &b);
    let (mut r, r0) = (b.clone(), b.clone());
    let (mut p_, mut v, mut x) = (vec![0.0; l], vec![0.0; l], vec![0.0; l]);
    let (mut rho, mut alpha, mut omega) = (1.0, 1.0, 1.0);
    if bnorm2 == 0.0 {
        return 0;
    }
    for it in 0..500 {
        let rho_new = dot(&r0, &r);
        let beta = (rho_new / rho) * (alpha / omega);
        rho = rho_new;
        for i in 0..l {
            p_[i] = r[i] + beta * (p_[i] - omega * v[i]);
        }
        v = apply(&p_);
        alpha = rho / dot(&r0, &v);
        let s: Vec<f64> = (0..l).map(|i| r[i] - alpha * v[i]).collect();
        let t = apply(&s);
        omega = dot(&t, &s) / dot(&t, &t);
        for i in 0..l {
            x[i] += alpha * p_[i] + omega * s[i];
            r[i] = s[i] - omega * t[i];
        }
        if dot(&r, &r) <= 1e-26 * bnorm2 {
            return it + 1;
        }
    }
    500
}

/// Fused against op by op (step for step), both against the CPU backend; `expect_fused`:
/// whether the fused run must have been fused (≤ 4 dispatches per accepted step) or must
/// have fallen back to op by op (the same dispatches and frames as the op-by-op run).
fn compare(label: &str, p: Arc<KineticProblem>, opts: &SolveOptions, expect_fused: bool) {
    let Some(ctx) = gpu() else { return };
    let lay = p.layout();
    let (n, batch) = (lay.state_len, lay.batch);
    let loops = p.member_loops_per_component();
    let wg = ctx.member_workgroup_size(n, loops);
    let evaluations = if opts.method == Method::Rk4 { 4 } else { 6 };
    let lavapipe = ctx.info().name.contains("llvmpipe");
    let fits = !lavapipe || neqkin::engine::gpu::cpu_member_loops_fit(n, loops, wg as usize, evaluations);
    println!(
        "{label} on {}: {loops} loop iterations per row (solve of ≤ {BUDGETED_SOLVE_ITERATIONS} iterations), member \
         workgroup {wg}, a fused attempt of {evaluations} evaluations fits: {fits}",
        ctx.info().name
    );
    if lavapipe {
        assert_eq!(fits, expect_fused, "{label}: the size is not the intended case on lavapipe");
    }
    let cpu = run(&mut CpuBackend::new(p.clone()), &p, opts);
    let f0 = p.initial_state();
    let scale: Vec<f64> =
        (0..batch).map(|m| max_diff(&cpu.last().unwrap().0[m * n..(m + 1) * n], &f0[m * n..(m + 1) * n])).collect();
    // The solves of the CPU run's output states need at most the budgeted iterations (else
    // this test would not be testing the "fits" case it names).
    let mut most = 0;
    for frame in &cpu {
        for m in 0..batch {
            most = most.max(solve_iterations(&p, m, &frame.0[m * n..(m + 1) * n]));
        }
    }
    most = most.max((0..batch).map(|m| solve_iterations(&p, m, &f0[m * n..(m + 1) * n])).max().unwrap());
    println!("{label}: BiCGSTAB iterations at the initial and output states: at most {most}");
    assert!(most <= BUDGETED_SOLVE_ITERATIONS, "{label}: {most} solve iterations");
    let mut precs = vec![Precision::F32];
    if ctx.supports_f64() {
        precs.insert(0, Precision::F64);
    }
    for prec in precs {
        let (reference, d_ref, t_ref) = gpu_run(&ctx, &p, prec, false, opts);
        let (_, _, t_cold) = gpu_run(&ctx, &p, prec, true, opts);
        let (fused, d_fused, t_fused) = gpu_run(&ctx, &p, prec, true, opts);
        let exact = prec == Precision::F64;
        assert_eq!(reference.len(), fused.len());
        assert_eq!(cpu.len(), fused.len());
        let mut steps = 0.0f64;
        let mut worst = (0.0f64, 0.0f64);
        for (k, ((r, f), c)) in reference.iter().zip(&fused).zip(&cpu).enumerate() {
            assert_eq!(r.1, f.1, "{label} {prec} frame {k}: status");
            assert_eq!(c.1, f.1, "{label} {prec} frame {k}: status against the CPU");
            if exact {
                assert_eq!(r.2, f.2, "{label} {prec} frame {k}: accepted steps");
                assert_eq!(r.3, f.3, "{label} {prec} frame {k}: rejected steps");
            }
            let tol = if exact { 1e-12 } else { 1e-4 };
            let top = r.0.iter().fold(0.0f64, |a, x| a.max(x.abs()));
            let d = max_diff(&r.0, &f.0) / top;
            assert!(d <= tol, "{label} {prec} frame {k}: fused vs op by op {d:.3e} > {tol:.0e}");
            let tol_cpu = if exact { 1e-8 } else { 2e-3 };
            for (m, scale_m) in scale.iter().enumerate() {
                let e = max_diff(&c.0[m * n..(m + 1) * n], &f.0[m * n..(m + 1) * n]) / scale_m;
                assert!(e < tol_cpu, "{label} {prec} frame {k} member {m}: fused vs CPU {e:.3e} > {tol_cpu:.0e}");
                worst.1 = worst.1.max(e);
            }
            worst.0 = worst.0.max(d);
            steps = f.2.iter().fold(steps, |a, x| a.max(*x));
        }
        let per_step = d_fused as f64 / steps.max(1.0);
        println!(
            "{label} {prec}: {steps} accepted steps (most of any member); fused vs op by op {:.2e}, fused vs CPU \
             {:.2e} (of max |f − f0|); dispatches op by op {d_ref} / fused {d_fused} ({per_step:.2} per accepted \
             step); wall op by op {t_ref:.2} s, fused {t_fused:.2} s (first fused run, compiling: {t_cold:.2} s)",
            worst.0, worst.1
        );
        if expect_fused || !lavapipe {
            assert!(per_step <= 4.0, "{label} {prec}: {per_step} dispatches per accepted step");
        } else {
            // Fell back: the op-by-op kernels, so the very same run.
            assert_eq!(d_fused, d_ref, "{label} {prec}: the fallback is not op by op");
            assert_eq!(reference, fused, "{label} {prec}: the fallback differs from op by op");
        }
    }
}

fn dopri5(t_end: f64) -> SolveOptions {
    SolveOptions {
        method: Method::Dopri5,
        rtol: 1e-8,
        atol: 1e-12,
        error_scale: ErrorScale::Deviation,
        output_times: vec![0.5 * t_end, t_end],
        ..Default::default()
    }
}

fn rk4(dt: f64, t_end: f64) -> SolveOptions {
    SolveOptions { method: Method::Rk4, dt: Some(dt), output_times: vec![0.5 * t_end, t_end], ..Default::default() }
}

#[test]
fn small_grid_dopri5_fused_matches_op_by_op_and_cpu() {
    compare("eliashberg L=60 dopri5", problem(60, [0.8, 1.2]), &dopri5(0.05), true);
}

#[test]
fn wrapping_grid_dopri5_and_rk4_fused_match_op_by_op_and_cpu() {
    // L = 260 > 256: two rows per invocation, the reductions wrap (as tests/eliashberg_gpu.rs).
    compare("eliashberg L=260 dopri5", problem(260, [0.8, 1.2]), &dopri5(0.05), true);
    compare("eliashberg L=260 rk4", problem(260, [0.8, 1.2]), &rk4(2e-3, 0.01), true);
}

#[test]
fn over_the_loop_budget_dopri5_falls_back_to_op_by_op_rk4_still_fuses() {
    let p = problem(769, [0.8, 1.2]);
    compare("eliashberg L=769 dopri5", p.clone(), &dopri5(0.01), false);
    compare("eliashberg L=769 rk4", p, &rk4(2e-3, 0.004), true);
}

/// Timing probe for docs/benchmarks.md section 18 (ignored: a minute or more on lavapipe):
/// DOPRI5 (the options of the tests above, f64 where available) op by op and fused, one
/// warm-up run of each (compiles the pipelines), then `NEQKIN_PROBE_REPS` (default 3)
/// interleaved runs of each; prints the median wall time and the dispatches per accepted
/// step. `NEQKIN_MEMBER_WG=256` gives both paths the member workgroup of the kernel before
/// it was an `rhs_member` (256 threads at every L).
#[test]
#[ignore = "timing probe; run with --ignored --nocapture"]
fn timing_probe() {
    let Some(ctx) = gpu() else { return };
    let prec = if ctx.supports_f64() { Precision::F64 } else { Precision::F32 };
    let reps: usize = std::env::var("NEQKIN_PROBE_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    for (l, opts) in [(60, dopri5(0.05)), (260, dopri5(0.05)), (769, rk4(2e-3, 0.004))] {
        let p = problem(l, [0.8, 1.2]);
        let wg = ctx.member_workgroup_size(l, p.member_loops_per_component());
        let mut walls = [vec![], vec![]];
        let mut per_step = [0.0; 2];
        for rep in 0..=reps {
            for (k, fused) in [false, true].into_iter().enumerate() {
                let (frames, dispatches, wall) = gpu_run(&ctx, &p, prec, fused, &opts);
                let steps = frames.last().unwrap().2.iter().fold(0.0f64, |a, x| a.max(*x));
                per_step[k] = dispatches as f64 / steps.max(1.0);
                if rep > 0 {
                    walls[k].push(wall);
                }
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (a, b) = (median(&mut walls[0]), median(&mut walls[1]));
        println!(
            "probe L = {l} {:?} {prec} (member workgroup {wg}, {reps} reps): op by op {a:.3} s ({:.1} dispatches per \
             accepted step), fused {b:.3} s ({:.2}); op by op / fused {:.2}",
            opts.method,
            per_step[0],
            per_step[1],
            a / b
        );
    }
}
