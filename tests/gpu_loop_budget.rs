//! Mesa's lavapipe (the CI adapter) caps the loop iterations of one shader invocation at
//! 65535 summed over all loops, and silently leaves loops beyond it
//! (LP_MAX_TGSI_LOOP_ITERATIONS). Before the O(n²) kernels were unrolled this cut the
//! Migdal-Eliashberg BiCGSTAB solve from N ≈ 1200 on and the graded level-1 cavity sum at
//! Fig S4 size (n = 4239: 397 of 4239 entries wrong by up to 0.15). These tests run one
//! right-hand side past the old limits against the CPU twin, and one past even the
//! unrolled budget, which must fail the member (NaN) instead of returning a wrong number.
//! The photoexcited kernel's loops grow with cells per invocation × phonon lines: a case
//! with many lines must run (the member workgroup size counts them) and agree with the CPU
//! backend, and one beyond any workgroup size must fail loudly, fused and op by op.
//! Needs a GPU adapter. GPU policy: `neqkin::engine::gpu::testing` (skipped with a notice without an adapter, failed when `NEQKIN_REQUIRE_GPU=1`, as in CI).
use std::sync::Arc;

use neqkin::engine::backend::{Backend, Precision};
use neqkin::engine::cpu::CpuBackend;
use neqkin::engine::gpu::{GpuBackend, GpuContext};
use neqkin::engine::model::BatchProblem;
use neqkin::engine::program::status;
use neqkin::engine::program::{Op, StepProgram};
use neqkin::engine::solve::{integrate, Method, SolveOptions};
use neqkin::models::cavity::{derive, CavityBatch};
use neqkin::models::eliashberg::kinetic::KineticProblem;
use neqkin::models::eliashberg::Params;
use neqkin::models::photoexcited::{PhotoexcitedBatch, PhotoexcitedParams};
use serde_json::json;

fn context() -> Option<Arc<GpuContext>> {
    neqkin::engine::gpu::testing::gpu_context("gpu_loop_budget")
}

/// One right-hand-side evaluation of member 0 on the GPU (f64 when available) and on the
/// CPU twin: (gpu, cpu).
fn one_rhs(ctx: &Arc<GpuContext>, p: Arc<dyn BatchProblem>, y0: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let l = p.layout();
    let mut cpu = vec![0.0; l.state_len];
    let mut scratch = vec![0.0; l.scratch_len];
    p.rhs_member(0, &p.params()[..l.params_len], &p.tables()[..l.table_len], 0.0, y0, &mut cpu, &mut scratch);
    let prec = if ctx.supports_f64() { Precision::F64 } else { Precision::F32 };
    let mut g = GpuBackend::new(ctx.clone(), p.clone(), prec).unwrap();
    let t = g.new_scalars().unwrap();
    let (y, dy) = (g.new_vector().unwrap(), g.new_vector().unwrap());
    let prog = g.compile(&StepProgram { ops: vec![Op::Rhs { t, y, dy }] }).unwrap();
    g.write_vector(y, y0).unwrap();
    g.run(prog, 1).unwrap();
    (g.read_vector(dy).unwrap(), cpu)
}

fn rel_err(gpu: &[f64], cpu: &[f64]) -> f64 {
    let scale = cpu.iter().fold(0.0f64, |a, x| a.max(x.abs()));
    gpu.iter().zip(cpu).map(|(a, b)| (a - b).abs()).fold(0.0f64, f64::max) / scale
}

#[test]
fn large_kernels_agree_with_their_cpu_twins() {
    let Some(ctx) = context() else { return };
    println!("adapter: {:?}", ctx.info());
    let tol = if ctx.supports_f64() { 1e-9 } else { 1e-3 };
    // Eliashberg kinetic stage, Table I modes, N = 2048 (BiCGSTAB with two N×N matvecs per
    // iteration).
    let p = Params::parse(&serde_json::json!({
        "task": "kinetic", "comb": {"start": 40.0, "step": 1.0, "count": 21}, "lambda": 1.0,
        "units": "g", "temperature": 0.18, "initial_temperature": 0.1800001, "grid_step": 1.0, "grid_points": 2048
    }))
    .unwrap();
    let kp: Arc<dyn BatchProblem> = Arc::new(KineticProblem::new(&[p]).unwrap());
    let y0 = kp.initial_state();
    let (g, c) = one_rhs(&ctx, kp, &y0);
    let e = rel_err(&g, &c);
    println!("eliashberg kinetic N = 2048: max |Δ| / max |cpu| = {e:.2e} (tolerance {tol:.0e})");
    assert!(g.iter().all(|x| x.is_finite()) && e < tol, "{e:e}");
    // Cavity level 1 on the Fig S4 graded grid (n = 4239), off the fixed point.
    let p = serde_json::json!({"level": 1, "coupling_g": 0.5, "t_cry": 0.1, "t_mir": 100.0, "nu0": 1.0,
        "gamma": 10.0, "mu0": 1.0, "gamma_ph": 1.0, "omega_min": -999.0, "omega_max": 1001.0,
        "grid": "graded", "h_fine": 0.025, "h_coarse": 0.5});
    let b: Arc<dyn BatchProblem> = Arc::new(CavityBatch::new(vec![derive(&p).unwrap()]).unwrap());
    let y0: Vec<f64> =
        b.initial_state().iter().enumerate().map(|(i, v)| 0.9 * v + 0.05 * (i as f64 * 0.01).sin()).collect();
    let (g, c) = one_rhs(&ctx, b, &y0);
    let e = rel_err(&g, &c);
    println!("cavity collision_graded n = {}: max |Δ| / max |cpu| = {e:.2e} (tolerance {tol:.0e})", y0.len());
    assert!(g.iter().all(|x| x.is_finite()) && e < tol, "{e:e}");
}

#[test]
fn a_kernel_cut_short_by_the_driver_fails_instead_of_returning_wrong_numbers() {
    let Some(ctx) = context() else { return };
    // Uniform level 1 with n = 17001: (n/256 rows) × (n/16 blocks) ≈ 70 000 loop iterations
    // per invocation, over lavapipe's 65535 even unrolled.
    let p = serde_json::json!({"level": 1, "coupling_g": 0.3, "t_cry": 1.0, "t_mir": 2.0, "nu0": 1.0,
        "gamma": 1.0, "mu0": 0.0, "gamma_ph": 0.5, "n_omega": 17001, "omega_min": -850.0, "omega_max": 850.0});
    let b: Arc<dyn BatchProblem> = Arc::new(CavityBatch::new(vec![derive(&p).unwrap()]).unwrap());
    let y0: Vec<f64> =
        b.initial_state().iter().enumerate().map(|(i, v)| 0.9 * v + 0.05 * (i as f64 * 0.01).sin()).collect();
    let (g, c) = one_rhs(&ctx, b, &y0);
    let nan = g.iter().filter(|x| x.is_nan()).count();
    let finite_err = g.iter().zip(&c).filter(|(a, _)| a.is_finite()).map(|(a, b)| (a - b).abs()).fold(0.0f64, f64::max)
        / c.iter().fold(0.0f64, |a, x| a.max(x.abs()));
    let lavapipe = ctx.info().name.contains("llvmpipe");
    println!("n = 17001 on {}: {nan} NaN entries; finite entries off by {finite_err:.2e}", ctx.info().name);
    if lavapipe {
        assert!(nan > 0, "lavapipe cuts this kernel's loops: the member must come back as NaN");
    } else {
        // Any other driver must either run it in full or fail it, never be wrong.
        assert!(nan > 0 || finite_err < 1e-9, "{finite_err:e}");
    }
}

fn photoexcited(points: &[serde_json::Value]) -> Arc<PhotoexcitedBatch> {
    let p: Vec<PhotoexcitedParams> = points.iter().map(|v| PhotoexcitedParams::from_json(v).unwrap()).collect();
    Arc::new(PhotoexcitedBatch::new(&p).unwrap())
}

/// Adaptive DOPRI5 of `b` to `t_end`: (state at t_end, status, failure messages) per member.
fn dopri5(backend: &mut dyn Backend, b: &PhotoexcitedBatch, t_end: f64) -> (Vec<f64>, Vec<f64>, Vec<String>) {
    let opts = SolveOptions {
        method: Method::Dopri5,
        rtol: 1e-7,
        atol: 1e-10,
        output_times: vec![t_end],
        ..Default::default()
    };
    let mut out = (vec![], vec![], vec![]);
    integrate(backend, b, &opts, &mut |frame| {
        out = (frame.state.to_vec(), frame.status.to_vec(), frame.messages.to_vec());
        Ok(())
    })
    .unwrap();
    out
}

/// A dispersive phonon of width 0.03 W at N = 2048 projects onto about 490 lines: as many
/// loop iterations per cell and evaluation. With the 64 threads per member that the cap of
/// 64 components per invocation alone gives (33 cells each), one DOPRI5 attempt (6 new
/// evaluations) is about 6 × 33 × 490 ≈ 97 000 iterations, over lavapipe's budget, and the
/// fused kernel failed the member (reproduce with `NEQKIN_MEMBER_WG=64`; measured: width
/// 0.02, 330 lines, still ran at 64 threads and failed at 32). The member workgroup size now
/// counts the lines; the run must reach t_end and agree with the CPU backend, fused and op
/// by op.
#[test]
fn photoexcited_with_many_phonon_lines_runs_and_agrees_with_the_cpu() {
    let Some(ctx) = context() else { return };
    let b = photoexcited(&[json!({"grid_points": 2048, "phonon_frequency": 0.36, "phonon_width": 0.03,
        "zeta_initial": 0.0, "pump_strength": 10.0, "pulse_duration": 0.3, "phonon_lifetime": 5.0, "inelastic_rate": 0.02})]);
    let lines = b.member_loops_per_component() - 1;
    let wg = ctx.member_workgroup_size(b.layout().state_len, b.member_loops_per_component());
    println!("{}: {lines} phonon lines, member workgroup {wg}", ctx.info().name);
    assert!(lines > 400, "the case must have the many lines that overran the budget: {lines}");
    let t_end = 0.05;
    let problem: Arc<dyn BatchProblem> = b.clone();
    let (y_cpu, st_cpu, _) = dopri5(&mut CpuBackend::new(problem.clone()), &b, t_end);
    assert_eq!(st_cpu[0], status::REACHED);
    let prec = if ctx.supports_f64() { Precision::F64 } else { Precision::F32 };
    // Observables and tolerances as tests/photoexcited_gpu.rs (adaptive DOPRI5, rtol 1e-7,
    // atol 1e-10); the state itself differs by up to about rtol where a step size differs.
    let tol = if prec == Precision::F64 { 1e-8 } else { 1e-5 };
    for fused in [true, false] {
        let mut g = GpuBackend::new(ctx.clone(), problem.clone(), prec).unwrap();
        g.set_fused(fused);
        let (y, st, why) = dopri5(&mut g, &b, t_end);
        let df = y.iter().zip(&y_cpu).map(|(a, c)| (a - c).abs()).fold(0.0f64, f64::max);
        println!("fused {fused}: status {} ({}), max |Δf| vs CPU {df:.2e}", st[0], why[0]);
        assert_eq!(st[0], status::REACHED, "fused {fused}: {}", why[0]);
        let (obs_g, obs_c) = (b.observables(0, t_end, &y).scalars, b.observables(0, t_end, &y_cpu).scalars);
        for ((name, c), (_, v)) in obs_c.iter().zip(&obs_g) {
            if name == "sigma_over_sigma0" || name == "particle_number" {
                println!("  {name}: cpu {c:.10} gpu {v:.10} diff {:.2e} (tolerance {tol:.0e})", (c - v).abs());
                assert!((c - v).abs() <= tol, "fused {fused} {name}: cpu {c} gpu {v}");
            }
        }
    }
}

/// N = 32768 with 1049 phonon lines: even at 256 threads one evaluation is 129 cells × 1050
/// ≈ 135 000 loop iterations per invocation, twice lavapipe's budget. The op-by-op RHS must
/// come back NaN (it used to return a silently truncated derivative), and an integration
/// must fail the member with a message naming the loop budget, on either path, never
/// report it reached. Other drivers must run it in full.
#[test]
fn photoexcited_over_the_loop_budget_fails_loudly() {
    let Some(ctx) = context() else { return };
    let b =
        photoexcited(&[json!({"grid_points": 32768, "phonon_frequency": 0.36, "phonon_width": 0.004, "zeta": 5.0})]);
    let l = b.layout();
    let lines = b.member_loops_per_component() - 1;
    // Off equilibrium, so that every pair rate contributes.
    let y0: Vec<f64> = b
        .initial_state()
        .iter()
        .enumerate()
        .map(|(i, v)| if i < l.state_len - 3 { 0.9 * v + 0.05 * (i as f64 * 0.01).sin().abs() } else { *v })
        .collect();
    let problem: Arc<dyn BatchProblem> = b.clone();
    let (g, c) = one_rhs(&ctx, problem.clone(), &y0);
    let nan = g.iter().filter(|x| x.is_nan()).count();
    let finite_err = g.iter().zip(&c).filter(|(a, _)| a.is_finite()).map(|(a, b)| (a - b).abs()).fold(0.0f64, f64::max)
        / c.iter().fold(0.0f64, |a, x| a.max(x.abs()));
    let lavapipe = ctx.info().name.contains("llvmpipe");
    println!(
        "N = 32768, {lines} lines on {}: {nan} NaN entries; finite entries off by {finite_err:.2e}",
        ctx.info().name
    );
    if !lavapipe {
        assert!(nan > 0 || finite_err < 1e-9, "{finite_err:e}");
        return;
    }
    assert!(nan > 0, "lavapipe cuts this kernel's loops: the member must come back as NaN");
    let prec = if ctx.supports_f64() { Precision::F64 } else { Precision::F32 };
    for fused in [true, false] {
        let mut g = GpuBackend::new(ctx.clone(), problem.clone(), prec).unwrap();
        g.set_fused(fused);
        let (_, st, why) = dopri5(&mut g, &b, 1e-3);
        println!("fused {fused}: status {}: {}", st[0], why[0]);
        assert_eq!(st[0], status::FAILED, "fused {fused}");
        assert!(why[0].contains("loop budget"), "fused {fused}: {}", why[0]);
    }
}
