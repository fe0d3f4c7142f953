//! The cavity model on the fused path (issue 13 item 3): every cavity kernel
//! (shaders/cavity/*.wgsl, written as `rhs_member`) run as a fused step kernel against the
//! op-by-op step program on the same GPU backend, and against the CPU backend, for each
//! right-hand-side variant that integrates in time on the GPU: level 1 on the uniform and
//! the graded grid (both variants of the photon function), level 2 (`shift`), the
//! Fokker–Planck flux (graded, with an on-shell ε_k axis) relaxed in pseudo-time to a
//! steady state, and the printed Riccati equation integrated along ω.
//!
//! Step for step: fused and op-by-op runs must take the same accepted and rejected steps
//! per member, reach the same statuses and agree to 1e-12 of the largest component in f64
//! at every output time; the f64 fused run must also take the CPU backend's steps and agree
//! with it to 1e-12, except in the last frame of an adaptive run (stability-limited
//! steps, where rounding differences grow: within rtol, see `compare`). f32: statuses equal and states within 1e-4 of the largest component
//! (fused against op by op, and against the CPU's f64), the tolerance of the cavity GPU
//! tests (tests/cavity_gpu.rs); steps are not compared in f32 (the compiler may contract
//! a·b + c differently in the two kernels, so an adaptive run may take other steps). The
//! fused runs must use at most 4 dispatches per accepted step and fewer than op by op.
//!
//! Packed layouts (several members per workgroup, src/engine/gpu/layout.rs) of every
//! kernel against one member per workgroup, step for step (f64, 1e-12).
//!
//! A level-1 grid too large for one fused attempt within lavapipe's loop budget must run
//! op by op (GpuBackend falls back) and agree with the CPU, not fail.
//!
//! GPU policy: `neqkin::engine::gpu::testing` (skipped with a notice without an adapter,
//! failed when `NEQKIN_REQUIRE_GPU=1`, as in CI).
mod cavity_util;

use std::sync::{Arc, OnceLock};

use cavity_util::{base, with};
use neqkin::engine::backend::{Backend, Precision};
use neqkin::engine::cpu::CpuBackend;
use neqkin::engine::gpu::{GpuBackend, GpuContext, MemberLayout};
use neqkin::engine::model::BatchProblem;
use neqkin::engine::program::status;
use neqkin::engine::solve::{integrate, Method, SolveOptions};
use neqkin::models::cavity::{derive, CavityBatch};
use serde_json::{json, Value};

fn gpu() -> Option<Arc<GpuContext>> {
    static CTX: OnceLock<Option<Arc<GpuContext>>> = OnceLock::new();
    CTX.get_or_init(|| neqkin::engine::gpu::testing::gpu_context("gpu_fused_cavity")).clone()
}

/// Per output time: (state, status, n_accept, n_reject).
type Frames = Vec<(Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>)>;

fn frames(backend: &mut dyn Backend, p: &dyn BatchProblem, opts: &SolveOptions) -> Frames {
    let mut out = vec![];
    integrate(backend, p, opts, &mut |f| {
        out.push((f.state.to_vec(), f.status.to_vec(), f.n_accept.to_vec(), f.n_reject.to_vec()));
        Ok(())
    })
    .unwrap();
    out
}

/// (frames, dispatches) of a GPU run, fused or op by op.
fn gpu_run(
    ctx: &Arc<GpuContext>,
    p: &Arc<dyn BatchProblem>,
    precision: Precision,
    fused: bool,
    opts: &SolveOptions,
) -> (Frames, u64) {
    let mut b = GpuBackend::new(ctx.clone(), p.clone(), precision).unwrap();
    b.set_fused(fused);
    let f = frames(&mut b, &**p, opts);
    (f, b.info().dispatches.unwrap())
}

/// Largest |a − b| over the largest |b|.
fn rel_diff(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-300);
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f64, f64::max) / scale
}

/// `got` against `want` frame by frame: statuses equal, states within `tol` (`tol_last`
/// in the last frame), and (when `steps`) the same accepted and rejected steps.
fn check(label: &str, got: &Frames, want: &Frames, tol: f64, tol_last: f64, steps: bool) -> f64 {
    assert_eq!(got.len(), want.len(), "{label}: frames");
    let mut worst = 0.0f64;
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = if k + 1 == want.len() { tol_last } else { tol };
        assert_eq!(g.1, w.1, "{label} frame {k}: status");
        if steps {
            assert_eq!(g.2, w.2, "{label} frame {k}: accepted steps");
            assert_eq!(g.3, w.3, "{label} frame {k}: rejected steps");
        }
        let d = rel_diff(&g.0, &w.0);
        assert!(d <= tol, "{label} frame {k}: state differs by {d:.3e} (relative) > {tol:.0e}");
        worst = worst.max(d);
    }
    worst
}

/// Fused against op by op (same backend) and against the CPU backend, at f64 (when the
/// adapter has it) and f32.
fn compare(label: &str, points: &[Value], opts: &SolveOptions) {
    let Some(ctx) = gpu() else { return };
    let members = points.iter().map(|p| derive(p).unwrap()).collect();
    let p: Arc<dyn BatchProblem> = Arc::new(CavityBatch::new(members).unwrap());
    let mut cpu = CpuBackend::new(p.clone());
    let want = frames(&mut cpu, &*p, opts);
    // The run must do something: the state moved and every member took steps.
    let last = want.last().unwrap();
    let moved = rel_diff(&last.0, &p.initial_state());
    assert!(moved > 1e-3, "{label}: the state did not move ({moved:.1e})");
    assert!(last.2.iter().all(|&n| n >= 5.0), "{label}: too few steps {:?}", last.2);
    assert!(last.1.iter().all(|&s| s != status::FAILED), "{label}: CPU run failed {:?}", last.1);
    let precisions: &[Precision] =
        if ctx.supports_f64() { &[Precision::F64, Precision::F32] } else { &[Precision::F32] };
    for &precision in precisions {
        let (reference, d_ref) = gpu_run(&ctx, &p, precision, false, opts);
        let (fused, d_fused) = gpu_run(&ctx, &p, precision, true, opts);
        let exact = precision == Precision::F64;
        let tol = if exact { 1e-12 } else { 1e-4 };
        let l = format!("{label} {precision}");
        let vs_op = check(&format!("{l} fused vs op by op"), &fused, &reference, tol, tol, exact);
        // Against the CPU in f64: 1e-12 in the transient (t = 1, 5), where the steps are
        // set by accuracy. By the last frame the pseudo-time runs step at DOPRI5's
        // stability limit (the steady approach, stiff graded grids), where the controller
        // amplifies the last-bit differences between the CPU's and the GPU's sums (error
        // norm: sequential against a workgroup tree) while taking the same steps: level 2
        // went from 1.4e-14 at t = 5 to 5.9e-11 at its steady stop, the graded
        // Fokker–Planck flux to 1.5e-7 at t = 40. There: within rtol, two solutions of the
        // same tolerance. Fused against op by op stays bit for bit (same GPU arithmetic).
        let tol_last = if exact && opts.method != Method::Rk4 { opts.rtol.max(1e-12) } else { tol };
        let vs_cpu = check(&format!("{l} fused vs CPU"), &fused, &want, tol, tol_last, exact);
        let steps = fused.last().unwrap().2.iter().fold(0.0f64, |a, x| a.max(*x));
        let ratio = d_fused as f64 / steps.max(1.0);
        eprintln!(
            "{l}: {steps} accepted steps (most of any member), statuses {:?}; fused vs op by op {vs_op:.2e}, vs CPU \
             {vs_cpu:.2e}; dispatches op by op {d_ref} ({:.1} per accepted step) / fused {d_fused} ({ratio:.2})",
            fused.last().unwrap().1,
            d_ref as f64 / steps.max(1.0),
        );
        assert!(ratio <= 4.0, "{l}: {ratio} dispatches per accepted step");
        assert!(d_fused < d_ref, "{l}: fusing saved no dispatch ({d_fused} vs {d_ref})");
    }
}

/// Graded-grid points: `base()` with `kv`, without `n_omega`.
fn graded(kv: Value) -> Value {
    let mut p = with(base(), kv);
    p.as_object_mut().unwrap().remove("n_omega");
    p
}

/// Two members (different ε_k and coupling).
fn two(p: Value) -> Vec<Value> {
    vec![with(p.clone(), json!({"eps_k": 0.4})), with(p, json!({"eps_k": -0.3, "coupling_g": 0.6}))]
}

/// Pseudo-time relaxation towards the steady state (DOPRI5, the steady-state stop on).
fn relax(output_times: Vec<f64>) -> SolveOptions {
    SolveOptions {
        method: Method::Dopri5,
        rtol: 1e-6,
        atol: 1e-9,
        output_times,
        steady_tol: Some(1e-5),
        ..Default::default()
    }
}

#[test]
fn collision_uniform_fused_matches_op_by_op_and_cpu() {
    let pts =
        two(with(base(), json!({"level": 1, "gamma_ph": 0.5, "n_omega": 301, "omega_min": -12.0, "omega_max": 12.0})));
    compare("collision n=301 dopri5", &pts, &relax(vec![1.0, 5.0, 40.0]));
    let rk4 = SolveOptions { method: Method::Rk4, dt: Some(0.5), output_times: vec![2.0, 5.0], ..Default::default() };
    compare("collision n=301 rk4", &pts, &rk4);
}

#[test]
fn collision_graded_fused_matches_op_by_op_and_cpu() {
    // Large T_mir: pairs on both sides of the coth series/exp switch; the on-shell member
    // has three ε_k blocks.
    let p = graded(json!({"level": 1, "gamma_ph": 0.5, "t_cry": 0.2, "t_mir": 4.0, "grid": "graded",
                          "h_fine": 0.05, "h_coarse": 0.25, "omega_min": -15.0, "omega_max": 15.0}));
    compare("collision_graded dopri5", &two(p), &relax(vec![1.0, 5.0, 40.0]));
    let p = graded(json!({"level": 1, "variant": "eq5_printed", "gamma_ph": 0.5, "grid": "graded",
                          "h_fine": 0.1, "h_coarse": 0.25, "omega_min": -10.0, "omega_max": 10.0,
                          "on_shell_eps_k": [-1.0, 0.0, 2.0]}));
    compare("collision_graded eq5_printed on_shell dopri5", &[p], &relax(vec![1.0, 5.0, 40.0]));
}

#[test]
fn shift_and_flux_fused_match_op_by_op_and_cpu() {
    compare("shift dopri5", &two(with(base(), json!({"level": 2}))), &relax(vec![1.0, 5.0, 40.0]));
    let p = graded(json!({"level": 3, "t_cry": 0.2, "t_mir": 4.0, "grid": "graded", "h_fine": 0.05,
                          "h_coarse": 0.5, "omega_min": -30.0, "omega_max": 30.0,
                          "on_shell_eps_k": [-1.0, 0.0, 2.0]}));
    compare("fokker_planck graded on_shell dopri5", &[p], &relax(vec![1.0, 5.0, 40.0]));
}

/// The printed Eq 6 / S71 integrated along ω (t is ω's offset: the kernel's only
/// explicitly time-dependent right-hand side).
#[test]
fn riccati_fused_matches_op_by_op_and_cpu() {
    let p = with(base(), json!({"level": 3, "variant": "riccati_s71", "omega_min": -3.0, "omega_max": 3.0}));
    let opts = SolveOptions {
        method: Method::Dopri5,
        rtol: 1e-7,
        atol: 1e-10,
        output_times: vec![1.0, 2.5, 4.0],
        ..Default::default()
    };
    compare("riccati dopri5", &two(p), &opts);
}

/// Uniform level 1 with n = 7001: one DOPRI5 attempt (6 evaluations of 1 + 437 + 9 loop
/// iterations per component, 28 components per invocation at 256 threads) exceeds
/// lavapipe's loop budget, one evaluation does not. On lavapipe the backend must run the
/// program op by op (as many dispatches as with fusing off) and agree with the CPU; a fused
/// kernel would fail the member (its first attempt is always cut). Elsewhere it fuses.
#[test]
fn collision_too_large_for_one_fused_attempt_runs_op_by_op() {
    let Some(ctx) = gpu() else { return };
    let p = json!({"level": 1, "coupling_g": 0.3, "t_cry": 1.0, "t_mir": 2.0, "nu0": 1.0, "gamma": 1.0,
                   "mu0": 0.0, "gamma_ph": 0.5, "n_omega": 7001, "omega_min": -350.0, "omega_max": 350.0});
    let problem: Arc<dyn BatchProblem> = Arc::new(CavityBatch::new(vec![derive(&p).unwrap()]).unwrap());
    let opts =
        SolveOptions { method: Method::Dopri5, rtol: 1e-6, atol: 1e-9, output_times: vec![0.5], ..Default::default() };
    let want = frames(&mut CpuBackend::new(problem.clone()), &*problem, &opts);
    assert!(rel_diff(&want[0].0, &problem.initial_state()) > 1e-4, "the state must move");
    let precision = if ctx.supports_f64() { Precision::F64 } else { Precision::F32 };
    let tol = if precision == Precision::F64 { 1e-12 } else { 1e-4 };
    let (fused, d_fused) = gpu_run(&ctx, &problem, precision, true, &opts);
    assert_eq!(fused[0].1, vec![status::REACHED], "fused requested: {:?}", fused[0].1);
    let d = check("n=7001 vs CPU", &fused, &want, tol, tol, precision == Precision::F64);
    let lavapipe = ctx.info().name.contains("llvmpipe");
    if lavapipe {
        let (_, d_ref) = gpu_run(&ctx, &problem, precision, false, &opts);
        eprintln!("n = 7001 {precision}: vs CPU {d:.2e}; dispatches {d_fused} (op by op {d_ref})");
        assert_eq!(d_fused, d_ref, "on lavapipe the program must run op by op");
    }
}

/// Several members per workgroup (src/engine/gpu/layout.rs; every cavity kernel carries the
/// packable marker): three members with different couplings, so that they accept different
/// numbers of steps and a fused workgroup holds finished and running members, in layouts of
/// 2 and 3 members per workgroup (2: the last workgroup has a spare segment) at 32 threads
/// per member, fused and op by op, against one member per workgroup at 32 threads (op by
/// op): the same steps and states within 1e-12 (f64). Lavapipe picks one member per
/// workgroup itself; a GPU packs small grids and the Riccati's single component.
#[test]
fn packed_layouts_match_one_member_per_workgroup() {
    let Some(ctx) = gpu() else { return };
    if !ctx.supports_f64() {
        eprintln!("packed layouts: adapter without f64, skipped");
        return;
    }
    let three = |p: Value| {
        vec![
            with(p.clone(), json!({"coupling_g": 0.2})),
            with(p.clone(), json!({"coupling_g": 0.5, "eps_k": 0.3})),
            with(p, json!({"coupling_g": 0.9, "eps_k": -0.4})),
        ]
    };
    let riccati = SolveOptions {
        method: Method::Dopri5,
        rtol: 1e-7,
        atol: 1e-10,
        output_times: vec![1.0, 4.0],
        ..Default::default()
    };
    let cases = [
        (
            "collision",
            three(with(
                base(),
                json!({"level": 1, "gamma_ph": 0.5, "n_omega": 101, "omega_min": -8.0, "omega_max": 8.0}),
            )),
            relax(vec![2.0, 40.0]),
        ),
        (
            "collision_graded",
            three(graded(json!({"level": 1, "gamma_ph": 0.5, "t_cry": 0.2, "t_mir": 4.0, "grid": "graded",
                                "h_fine": 0.1, "h_coarse": 0.5, "omega_min": -8.0, "omega_max": 8.0}))),
            relax(vec![2.0, 40.0]),
        ),
        ("shift", three(with(base(), json!({"level": 2}))), relax(vec![2.0, 40.0])),
        ("flux", three(with(base(), json!({"level": 3}))), relax(vec![2.0, 40.0])),
        (
            "riccati",
            three(with(base(), json!({"level": 3, "variant": "riccati_s71", "omega_min": -3.0, "omega_max": 3.0}))),
            riccati,
        ),
    ];
    let layout =
        |members| MemberLayout { threads_per_member: 32, members_per_workgroup: members, workgroups_per_member: 1 };
    let run = |p: &Arc<dyn BatchProblem>, members: u32, fused: bool, opts: &SolveOptions| {
        let mut b = GpuBackend::with_layout(ctx.clone(), p.clone(), Precision::F64, layout(members)).unwrap();
        b.set_fused(fused);
        frames(&mut b, &**p, opts)
    };
    for (label, pts, opts) in cases {
        let members = pts.iter().map(|p| derive(p).unwrap()).collect();
        let p: Arc<dyn BatchProblem> = Arc::new(CavityBatch::new(members).unwrap());
        let want = run(&p, 1, false, &opts);
        let steps = &want.last().unwrap().2;
        assert!(steps.iter().any(|n| *n != steps[0]), "{label}: every member took {} steps", steps[0]);
        for members in [2, 3] {
            for fused in [false, true] {
                let got = run(&p, members, fused, &opts);
                let d = check(&format!("{label} {} fused {fused}", layout(members)), &got, &want, 1e-12, 1e-12, true);
                eprintln!(
                    "{label}: {} fused {fused}: steps {:?}, max rel. diff {d:.1e}",
                    layout(members),
                    got.last().unwrap().2
                );
            }
        }
    }
}
