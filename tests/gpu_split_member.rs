//! Members split over several workgroups (src/engine/gpu/layout.rs, ARCHITECTURE.md "Work
//! layouts"): the op-by-op step program with the model's `rhs_split`/`rhs_finish` entry
//! points and the engine's two-level error norm and steady-state test, against whole
//! members (one workgroup per member, op by op, the same threads per member) and against
//! the CPU backend.
//!
//! - Photoexcited (ζ-production and σ sums over the cells, combined across workgroups for
//!   dζ/dt and dE*²/dt), batch of 3 with different parameters, N = 300, in 2, 3 and 7
//!   workgroups per member (300 cells are a multiple of none of 2·WG, 3·WG, 7·WG): adaptive
//!   DOPRI5 takes the same accepted and rejected steps per member as whole members, with the
//!   same status codes and states within 1e-12 (relative to the largest component; f64;
//!   the sums run in another order); fixed-step RK4 matches the CPU backend within 1e-12;
//!   DOPRI5 matches the CPU backend's σ/σ0 and particle number within photoexcited_gpu's
//!   tolerances (f64 1e-8, f32 1e-5 absolute); f32 RK4 within 1e-5 of whole members in f32
//!   (relative to the largest component) and no further from the CPU than they are, plus 1e-5.
//! - Relaxation with a steady-state tolerance (the two-level `steady_check`): members go
//!   steady at different times, the same steps and status codes as whole members; and with
//!   the deviation error scale (the error norm's reference state).
//! - A split member over lavapipe's loop budget fails alone; `NEQKIN_WGS_PER_MEMBER` through
//!   the binary is taken and reported in meta.json.
//! - Kernels without the `//! layout: splittable` line refuse the layout.
//!
//! Layouts are forced with `GpuBackend::with_layout` (`NEQKIN_WGS_PER_MEMBER` is
//! process-wide). GPU policy: `neqkin::engine::gpu::testing` (skipped with a notice without
//! an adapter, failed when `NEQKIN_REQUIRE_GPU=1`).

use std::sync::{Arc, OnceLock};

use neqkin::engine::backend::{Backend, Precision};
use neqkin::engine::cpu::CpuBackend;
use neqkin::engine::gpu::{GpuBackend, GpuContext, MemberLayout};
use neqkin::engine::model::{BatchProblem, Model};
use neqkin::engine::solve::{integrate, Method, SolveOptions};
use neqkin::models::photoexcited::{PhotoexcitedBatch, PhotoexcitedParams};
use serde_json::json;

fn gpu() -> Option<Arc<GpuContext>> {
    static CTX: OnceLock<Option<Arc<GpuContext>>> = OnceLock::new();
    CTX.get_or_init(|| neqkin::engine::gpu::testing::gpu_context("gpu_split_member")).clone()
}

/// (state, status, n_accept, n_reject) at each output time.
type Frames = Vec<(Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>)>;

fn run(backend: &mut dyn Backend, p: &Arc<dyn BatchProblem>, opts: &SolveOptions) -> Frames {
    let mut frames = vec![];
    integrate(backend, &**p, opts, &mut |f| {
        frames.push((f.state.to_vec(), f.status.to_vec(), f.n_accept.to_vec(), f.n_reject.to_vec()));
        Ok(())
    })
    .unwrap();
    frames
}

fn layout(threads: u32, groups: u32) -> MemberLayout {
    MemberLayout { threads_per_member: threads, members_per_workgroup: 1, workgroups_per_member: groups }
}

/// Op by op in `layout` (a split member never runs fused; whole members are forced op by op
/// so that both sides run the same step program).
fn gpu_run(
    ctx: &Arc<GpuContext>,
    p: &Arc<dyn BatchProblem>,
    l: MemberLayout,
    precision: Precision,
    opts: &SolveOptions,
) -> (Frames, u64) {
    let mut b = GpuBackend::with_layout(ctx.clone(), p.clone(), precision, l).unwrap();
    assert_eq!(b.member_layout(), l);
    b.set_fused(false);
    let frames = run(&mut b, p, opts);
    (frames, b.info().dispatches.unwrap())
}

fn rel_diff(a: &[f64], b: &[f64]) -> f64 {
    let scale = a.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-300);
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f64, f64::max) / scale
}

fn photoexcited() -> Arc<dyn BatchProblem> {
    let points = [
        json!({"grid_points": 300, "phonon_frequency": 0.52, "zeta": 20.0, "temperature": 0.003}),
        json!({"grid_points": 300, "phonon_frequency": 0.3711, "zeta_initial": 0.0, "pump_strength": 10.0, "pulse_duration": 0.3, "phonon_lifetime": 5.0, "inelastic_rate": 0.02}),
        json!({"grid_points": 300, "phonon_frequency": 0.45, "zeta": 5.0, "temperature": 0.01, "self_consistent_field": true, "electric_field": 0.05}),
    ];
    let p: Vec<PhotoexcitedParams> = points.iter().map(|v| PhotoexcitedParams::from_json(v).unwrap()).collect();
    Arc::new(PhotoexcitedBatch::new(&p).unwrap())
}

/// Threads per member the context chooses for `p` (lavapipe: its loop-budget rule).
fn chosen_threads(ctx: &Arc<GpuContext>, p: &Arc<dyn BatchProblem>) -> u32 {
    GpuBackend::new(ctx.clone(), p.clone(), Precision::F32).unwrap().member_layout().threads_per_member
}

/// `got` takes the same steps as `want` with states within `tol`.
fn same_steps(what: &str, want: &Frames, got: &Frames, tol: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: frames");
    let mut worst = 0.0f64;
    for (k, (w, g)) in want.iter().zip(got).enumerate() {
        assert_eq!(w.1, g.1, "{what}, frame {k}: status");
        assert_eq!(w.2, g.2, "{what}, frame {k}: accepted steps");
        assert_eq!(w.3, g.3, "{what}, frame {k}: rejected steps");
        let d = rel_diff(&w.0, &g.0);
        assert!(d <= tol, "{what}, frame {k}: state differs by {d:.3e} (relative)");
        worst = worst.max(d);
    }
    worst
}

/// One right-hand side (one `Rhs` op: `rhs_split` then `rhs_finish`) against the CPU twin
/// on a non-equilibrium state with E*² > 0, every member's ζ free: dζ/dt and dE*²/dt need
/// the production and σ sums over all the member's workgroups. f64 1e-12, f32 2e-4
/// relative to the member's largest |dy| (photoexcited_gpu's kernel tolerances).
#[test]
fn photoexcited_split_rhs_matches_cpu_twin() {
    use neqkin::engine::program::{Op, StepProgram};
    let Some(ctx) = gpu() else { return };
    let points = [
        json!({"grid_points": 300, "phonon_frequency": 0.3711, "zeta_initial": 3.0, "pump_strength": 5.0, "phonon_lifetime": 4.0}),
        json!({"grid_points": 300, "phonon_frequency": 0.45, "zeta_initial": 1.0, "filling": 0.3, "self_consistent_field": true, "inelastic_rate": 0.02}),
    ];
    let params: Vec<PhotoexcitedParams> = points.iter().map(|v| PhotoexcitedParams::from_json(v).unwrap()).collect();
    let b = Arc::new(PhotoexcitedBatch::new(&params).unwrap());
    let p: Arc<dyn BatchProblem> = b.clone();
    let l = p.layout();
    let mut y = p.initial_state();
    for m in 0..l.batch {
        let s = &mut y[m * l.state_len..(m + 1) * l.state_len];
        let n = l.state_len - 3;
        for (i, f) in s[..n].iter_mut().enumerate() {
            *f = (*f + 0.2 * (0.37 * i as f64).sin()).clamp(0.01, 0.99);
        }
        s[n + 2] = 0.01;
    }
    let t: Vec<f64> = (0..l.batch).map(|m| 0.5 + m as f64).collect();
    let mut cpu = vec![0.0; y.len()];
    for (m, &tm) in t.iter().enumerate() {
        let mut scratch = vec![0.0; l.scratch_len];
        let r = m * l.state_len..(m + 1) * l.state_len;
        b.rhs_member(m, b.member_params(m), b.member_tables(m), tm, &y[r.clone()], &mut cpu[r], &mut scratch);
    }
    let threads = chosen_threads(&ctx, &p);
    let reals: &[Precision] = if ctx.supports_f64() { &[Precision::F32, Precision::F64] } else { &[Precision::F32] };
    for &real in reals {
        for groups in [2, 3, 7] {
            let lay = layout(threads, groups);
            let mut backend = GpuBackend::with_layout(ctx.clone(), p.clone(), real, lay).unwrap();
            let (yv, dyv, tv) =
                (backend.new_vector().unwrap(), backend.new_vector().unwrap(), backend.new_scalars().unwrap());
            backend.write_vector(yv, &y).unwrap();
            backend.write_scalars(tv, &t).unwrap();
            let prog = backend.compile(&StepProgram { ops: vec![Op::Rhs { t: tv, y: yv, dy: dyv }] }).unwrap();
            backend.run(prog, 1).unwrap();
            assert_eq!(backend.info().dispatches, Some(2), "{lay}: rhs_split and rhs_finish");
            let gpu = backend.read_vector(dyv).unwrap();
            let tol = if real == Precision::F64 { 1e-12 } else { 2e-4 };
            for m in 0..l.batch {
                let r = m * l.state_len..(m + 1) * l.state_len;
                let scale = cpu[r.clone()].iter().fold(0.0f64, |a, x| a.max(x.abs()));
                let err = cpu[r.clone()].iter().zip(&gpu[r.clone()]).fold(0.0f64, |a, (c, g)| a.max((c - g).abs()));
                // The member-global derivatives (ζ, pump, E*²) on their own scale.
                let n = l.state_len - 3;
                for k in [n, n + 2] {
                    let (c, g) = (cpu[r.start + k], gpu[r.start + k]);
                    assert!(
                        (c - g).abs() <= tol * c.abs().max(1e-300),
                        "{real} {lay} member {m} component {k}: cpu {c:e} gpu {g:e}"
                    );
                }
                assert!(err <= tol * scale, "{real} {lay} member {m}: {err:e} vs scale {scale:e}");
                eprintln!("{real} {lay} member {m}: max |gpu - cpu| / max |dy| = {:.1e}", err / scale);
            }
        }
    }
}

#[test]
fn photoexcited_split_dopri5_takes_the_steps_of_whole_members() {
    let Some(ctx) = gpu() else { return };
    if !ctx.supports_f64() {
        eprintln!("adapter without f64, skipped");
        return;
    }
    let p = photoexcited();
    let opts = SolveOptions {
        method: Method::Dopri5,
        rtol: 1e-7,
        atol: 1e-10,
        output_times: vec![0.5, 2.0],
        ..Default::default()
    };
    let threads = chosen_threads(&ctx, &p);
    let (want, whole_dispatches) = gpu_run(&ctx, &p, layout(threads, 1), Precision::F64, &opts);
    let last = want.last().unwrap();
    assert!(last.2.iter().any(|n| *n != last.2[0]), "every member took {} steps", last.2[0]);
    for groups in [2, 3, 7] {
        let l = layout(threads, groups);
        let (got, dispatches) = gpu_run(&ctx, &p, l, Precision::F64, &opts);
        let worst = same_steps(&format!("photoexcited {l}"), &want, &got, 1e-12);
        // Per attempt: one more dispatch per RHS evaluation and per error norm.
        assert!(dispatches > whole_dispatches, "{l}: {dispatches} dispatches, whole members {whole_dispatches}");
        eprintln!(
            "photoexcited {l}: steps {:?}, max rel. diff {worst:.1e}, dispatches {dispatches} (whole members {whole_dispatches})",
            got.last().unwrap().2
        );
    }
}

#[test]
fn photoexcited_split_rk4_matches_cpu() {
    let Some(ctx) = gpu() else { return };
    let p = photoexcited();
    let opts = SolveOptions { method: Method::Rk4, dt: Some(0.01), output_times: vec![0.3], ..Default::default() };
    let cpu = run(&mut CpuBackend::new(p.clone()), &p, &opts);
    let threads = chosen_threads(&ctx, &p);
    if ctx.supports_f64() {
        for groups in [2, 3, 7] {
            let l = layout(threads, groups);
            let (got, _) = gpu_run(&ctx, &p, l, Precision::F64, &opts);
            for (k, (c, g)) in cpu.iter().zip(&got).enumerate() {
                assert_eq!(c.1, g.1, "f64 {l}, frame {k}: status");
                let d = rel_diff(&c.0, &g.0);
                assert!(d <= 1e-12, "f64 {l}, frame {k}: GPU differs from CPU by {d:.3e}");
                eprintln!("photoexcited rk4 f64 {l}: rel. diff to CPU {d:.1e}");
            }
        }
    }
    // f32: the split run against whole members in f32 (only the order of the sums
    // differs) within F32_SPLIT_TOL, and no further from the f64 CPU run than whole members
    // are plus that tolerance.
    const F32_SPLIT_TOL: f64 = 1e-5;
    let (whole, _) = gpu_run(&ctx, &p, layout(threads, 1), Precision::F32, &opts);
    let (split, _) = gpu_run(&ctx, &p, layout(threads, 2), Precision::F32, &opts);
    for (k, ((c, w), s)) in cpu.iter().zip(&whole).zip(&split).enumerate() {
        assert_eq!(w.1, s.1, "f32 frame {k}: status");
        let d = rel_diff(&w.0, &s.0);
        let (dw, ds) = (rel_diff(&c.0, &w.0), rel_diff(&c.0, &s.0));
        eprintln!("photoexcited rk4 f32, 2 wg/member: rel. diff to whole members {d:.1e}; to the CPU {ds:.1e} (whole members {dw:.1e})");
        assert!(d <= F32_SPLIT_TOL, "f32 frame {k}: split differs from whole members by {d:.3e}");
        assert!(ds <= dw + F32_SPLIT_TOL, "f32 frame {k}: split {ds:.3e} from the CPU, whole members {dw:.3e}");
    }
}

/// DOPRI5 on the CPU backend and split on the GPU: σ/σ0 and the particle number at the
/// output times, with photoexcited_gpu's tolerances (the runs round differently, so the
/// controllers may pick slightly different steps).
#[test]
fn photoexcited_split_dopri5_matches_cpu() {
    let Some(ctx) = gpu() else { return };
    let p = photoexcited();
    let opts = SolveOptions {
        method: Method::Dopri5,
        rtol: 1e-7,
        atol: 1e-10,
        output_times: vec![0.5, 2.0],
        ..Default::default()
    };
    let observe = |backend: &mut dyn Backend| -> Vec<Vec<(String, f64)>> {
        let mut rows = vec![];
        integrate(backend, &*p, &opts, &mut |frame| {
            let n = p.layout().state_len;
            for m in 0..p.layout().batch {
                rows.push(p.observables(m, frame.t, &frame.state[m * n..(m + 1) * n]).scalars);
            }
            Ok(())
        })
        .unwrap();
        rows
    };
    let cpu = observe(&mut CpuBackend::new(p.clone()));
    let threads = chosen_threads(&ctx, &p);
    let precisions: &[Precision] =
        if ctx.supports_f64() { &[Precision::F64, Precision::F32] } else { &[Precision::F32] };
    for &precision in precisions {
        let l = layout(threads, 3);
        let mut b = GpuBackend::with_layout(ctx.clone(), p.clone(), precision, l).unwrap();
        let gpu = observe(&mut b);
        let tol = if precision == Precision::F64 { 1e-8 } else { 1e-5 };
        let mut checked = 0;
        for (row_c, row_g) in cpu.iter().zip(&gpu) {
            for ((name, c), (_, v)) in row_c.iter().zip(row_g) {
                if name == "sigma_over_sigma0" || name == "particle_number" {
                    assert!((c - v).abs() <= tol, "{precision} {l} {name}: cpu {c} gpu {v}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 2 * 2 * 3, "σ/σ0 and N for 3 members at 2 times");
        eprintln!("photoexcited dopri5 {precision} {l}: σ/σ0 and N within {tol:e} of the CPU");
    }
}

/// Relaxation with diffusion and a steady-state tolerance: the steady-state test sums dy²
/// over the member in two levels; members with different rates go steady at different times.
#[test]
fn relaxation_split_steady_check_matches_whole_members() {
    let Some(ctx) = gpu() else { return };
    let precision = if ctx.supports_f64() { Precision::F64 } else { Precision::F32 };
    let model = neqkin::models::relaxation::Relaxation;
    // A wavy start, so that the diffusion couples neighbours across workgroup boundaries.
    let wavy: Vec<f64> = (0..100).map(|i| 1.0 + (0.1 * i as f64).sin()).collect();
    let p = model
        .build(
            &model
                .parse_all(&[
                    json!({"grid_points": 100, "rate": 1.0, "diffusion": 0.01, "initial": wavy}),
                    json!({"grid_points": 100, "rate": 3.0, "diffusion": 0.02, "initial": 2.0, "target": 0.5}),
                ])
                .unwrap(),
        )
        .unwrap();
    assert!(neqkin::engine::gpu::layout::splittable(&p.kernel().source));
    let opts = SolveOptions {
        method: Method::Dopri5,
        rtol: 1e-8,
        atol: 1e-10,
        output_times: vec![30.0],
        steady_tol: Some(1e-6),
        ..Default::default()
    };
    let cpu = run(&mut CpuBackend::new(p.clone()), &p, &opts);
    let threads = chosen_threads(&ctx, &p);
    let (want, _) = gpu_run(&ctx, &p, layout(threads, 1), precision, &opts);
    let last = want.last().unwrap();
    assert_eq!(last.1, cpu.last().unwrap().1, "whole members: status as on the CPU");
    assert!(last.2[0] != last.2[1], "both members went steady after {} steps", last.2[0]);
    let tol = if precision == Precision::F64 { 1e-12 } else { 1e-5 };
    for groups in [3, 5] {
        let l = layout(threads, groups);
        let (got, _) = gpu_run(&ctx, &p, l, precision, &opts);
        let worst = same_steps(&format!("relaxation {l}"), &want, &got, tol);
        eprintln!("relaxation {l}: steps {:?}, status {:?}, max rel. diff {worst:.1e}", got[0].2, got[0].1);
    }
    // Error weights from the deviation from the reference state (the error norm's fourth
    // input vector), no steady-state test.
    let opts = SolveOptions {
        error_scale: neqkin::engine::solve::ErrorScale::Deviation,
        steady_tol: None,
        output_times: vec![2.0],
        ..opts
    };
    let (want, _) = gpu_run(&ctx, &p, layout(threads, 1), precision, &opts);
    let l = layout(threads, 3);
    let (got, _) = gpu_run(&ctx, &p, l, precision, &opts);
    let worst = same_steps(&format!("relaxation {l}, deviation"), &want, &got, tol);
    eprintln!("relaxation {l}, deviation error scale: steps {:?}, max rel. diff {worst:.1e}", got[0].2);
}

/// A model without the `//! layout: splittable` line (interband) refuses several workgroups
/// per member, as does a split layout that also packs members.
#[test]
fn unsplittable_kernels_refuse_split_layouts() {
    let Some(ctx) = gpu() else { return };
    let model = neqkin::models::interband::Interband;
    let interband =
        model.build(&model.parse_all(&[json!({"grid_step": 0.01, "phonon_velocity": 0.1})]).unwrap()).unwrap();
    assert!(!neqkin::engine::gpu::layout::splittable(&interband.kernel().source));
    let err = GpuBackend::with_layout(ctx.clone(), interband, Precision::F32, layout(32, 2)).err().expect("refused");
    assert!(err.to_string().contains("layout"), "{err}");
    let packed_split = MemberLayout { threads_per_member: 16, members_per_workgroup: 2, workgroups_per_member: 2 };
    assert!(GpuBackend::with_layout(ctx, photoexcited(), Precision::F32, packed_split).is_err());
}

/// `NEQKIN_WGS_PER_MEMBER` through the real binary: a GPU run of the relaxation fixture
/// (RK4, 8 steps, two batches of 2) reports 3 workgroups per member in meta.json's
/// `backend.layout` and per batch, runs op by op (more dispatches per accepted step than
/// the fused kernel's at most 4), and writes the results of the default layout.
#[test]
fn wgs_per_member_override_is_taken_and_reported() {
    use std::process::Command;
    if !neqkin::engine::gpu::testing::gpu_available("wgs_per_member_override_is_taken_and_reported") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("rk4.toml");
    std::fs::write(
        &cfg,
        "model = \"relaxation\"\ntitle = \"split\"\n[solver]\nmethod = \"rk4\"\ndt = 0.125\nt_end = 1.0\n\
         n_outputs = 1\n[params]\ngrid_points = 40\ninitial = 2.0\ndiffusion = 0.001\n[[sweep]]\nname = \"rate\"\n\
         linspace = [0.1, 2.0, 4]\n[output]\nbatch_size = 2\n",
    )
    .unwrap();
    let run = |name: &str, groups: Option<&str>| -> (serde_json::Value, String) {
        let out_dir = dir.path().join(name);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_neqkin"));
        cmd.args(["run", "--backend", "gpu", "--out"]).arg(&out_dir).arg(&cfg);
        cmd.env_remove("NEQKIN_TEST_ABORT_AFTER_BATCHES").env_remove("NEQKIN_WGS_PER_MEMBER");
        if let Some(g) = groups {
            cmd.env("NEQKIN_WGS_PER_MEMBER", g);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "run failed: {}", String::from_utf8_lossy(&out.stderr));
        let meta = serde_json::from_str(&std::fs::read_to_string(out_dir.join("meta.json")).unwrap()).unwrap();
        (meta, std::fs::read_to_string(out_dir.join("results.csv")).unwrap())
    };
    let (whole, whole_csv) = run("whole", None);
    let (split, split_csv) = run("split", Some("3"));
    let layout = |m: &serde_json::Value| m["backend"]["layout"].as_str().unwrap_or_default().to_string();
    assert!(layout(&whole).contains("1 wg/member"), "{whole}");
    assert!(layout(&split).contains("3 wg/member"), "{split}");
    for b in split["batches"].as_array().unwrap() {
        assert!(b["layout"].as_str().is_some_and(|l| l.contains("3 wg/member")), "{b}");
    }
    let per_step = |m: &serde_json::Value| m["dispatches_per_accepted_step"].as_f64().unwrap();
    assert!(per_step(&whole) <= 4.0 && per_step(&split) > 4.0, "{} vs {}", per_step(&whole), per_step(&split));
    eprintln!("dispatches per accepted step: whole {}, split {}", per_step(&whole), per_step(&split));
    // Same rows and columns; numbers within 1e-12 relative (fused against op by op).
    let numbers = |csv: &str| -> Vec<f64> { csv.split([',', '\n']).filter_map(|f| f.trim().parse().ok()).collect() };
    let (a, b) = (numbers(&whole_csv), numbers(&split_csv));
    assert_eq!(a.len(), b.len());
    assert!(!a.is_empty());
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() <= 1e-12 * x.abs().max(1.0), "results differ: {x} vs {y}");
    }
}

/// Lavapipe's loop budget (65 535 iterations per invocation and dispatch) with a split
/// member: a member with ~1000 phonon lines at N = 32768 over 64 threads × 2 workgroups
/// (256 cells per invocation, ~270 000 iterations) comes back NaN, cells and member-global
/// derivatives alike, while its neighbour with one line (its own workgroups) matches the CPU
/// twin. Other drivers run both in full.
#[test]
fn split_member_over_the_loop_budget_fails_alone() {
    use neqkin::engine::program::{Op, StepProgram};
    let Some(ctx) = gpu() else { return };
    let points = [
        json!({"grid_points": 32768, "phonon_frequency": 0.36, "phonon_width": 0.004, "zeta": 5.0}),
        json!({"grid_points": 32768, "phonon_frequency": 0.36, "zeta_initial": 5.0}),
    ];
    let params: Vec<PhotoexcitedParams> = points.iter().map(|v| PhotoexcitedParams::from_json(v).unwrap()).collect();
    let b = Arc::new(PhotoexcitedBatch::new(&params).unwrap());
    let p: Arc<dyn BatchProblem> = b.clone();
    let l = p.layout();
    // Off equilibrium, so that every pair rate contributes.
    let y0: Vec<f64> = b
        .initial_state()
        .iter()
        .enumerate()
        .map(
            |(i, v)| {
                if i % l.state_len < l.state_len - 3 {
                    0.9 * v + 0.05 * (i as f64 * 0.01).sin().abs()
                } else {
                    *v
                }
            },
        )
        .collect();
    let mut cpu = vec![0.0; y0.len()];
    for m in 0..l.batch {
        let r = m * l.state_len..(m + 1) * l.state_len;
        let mut scratch = vec![0.0; l.scratch_len];
        b.rhs_member(m, b.member_params(m), b.member_tables(m), 0.0, &y0[r.clone()], &mut cpu[r], &mut scratch);
    }
    let prec = if ctx.supports_f64() { Precision::F64 } else { Precision::F32 };
    let mut g = GpuBackend::with_layout(ctx.clone(), p.clone(), prec, layout(64, 2)).unwrap();
    let (t, y, dy) = (g.new_scalars().unwrap(), g.new_vector().unwrap(), g.new_vector().unwrap());
    let prog = g.compile(&StepProgram { ops: vec![Op::Rhs { t, y, dy }] }).unwrap();
    g.write_vector(y, &y0).unwrap();
    g.run(prog, 1).unwrap();
    let out = g.read_vector(dy).unwrap();
    let (busy, calm) = out.split_at(l.state_len);
    let n = l.state_len - 3;
    let tol = if prec == Precision::F64 { 1e-12 } else { 2e-4 };
    let calm_cpu = &cpu[l.state_len..];
    let scale = calm_cpu.iter().fold(0.0f64, |a, x| a.max(x.abs()));
    let err = calm.iter().zip(calm_cpu).fold(0.0f64, |a, (g, c)| a.max((g - c).abs()));
    let nan = busy.iter().filter(|x| x.is_nan()).count();
    println!(
        "split member over the budget on {}: {nan} NaN entries; neighbour off by {:.1e}",
        ctx.info().name,
        err / scale
    );
    assert!(err <= tol * scale, "the neighbour: {err:e} vs scale {scale:e}");
    if ctx.info().name.contains("llvmpipe") {
        assert!(nan > 0 && busy[n].is_nan(), "lavapipe cuts the busy member's loops: NaN cells and dζ/dt");
    } else {
        let busy_cpu = &cpu[..l.state_len];
        let scale = busy_cpu.iter().fold(0.0f64, |a, x| a.max(x.abs()));
        let err = busy.iter().zip(busy_cpu).fold(0.0f64, |a, (g, c)| a.max((g - c).abs()));
        assert!(err <= tol.max(1e-9) * scale, "{err:e} vs {scale:e}");
    }
}

/// Process CPU seconds, all threads (utime + stime of /proc/self/stat, 10 ms ticks): on
/// lavapipe the device's work is this process's.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / 100.0
}

/// Timing probe (ignored; docs/benchmarks.md section 19 quotes it):
/// `NEQKIN_REQUIRE_GPU=1 cargo test --test gpu_split_member -- --ignored --nocapture`.
/// Photoexcited N = 2048, ζ = 5, f64, RK4 dt = 0.005 to t = 0.5 (100 steps), batches of 1
/// and 4: the fused kernel with whole members (the default layout), op by op with whole
/// members, and op by op with 2 and 4 workgroups per member, at the threads per member the
/// context chooses; rounds alternated, median wall and process CPU seconds of 5 rounds;
/// every layout's final state checked against whole members op by op (1e-12).
#[test]
#[ignore = "a timing probe, run by hand"]
fn split_probe() {
    let Some(ctx) = gpu() else { return };
    let precision = if ctx.supports_f64() { Precision::F64 } else { Precision::F32 };
    let opts = SolveOptions { method: Method::Rk4, dt: Some(0.005), output_times: vec![0.5], ..Default::default() };
    for batch in [1usize, 4] {
        let params: Vec<PhotoexcitedParams> = (0..batch)
            .map(|i| {
                PhotoexcitedParams::from_json(
                    &json!({"grid_points": 2048, "phonon_frequency": 0.3 + 0.01 * i as f64, "zeta": 5.0}),
                )
                .unwrap()
            })
            .collect();
        let p: Arc<dyn BatchProblem> = Arc::new(PhotoexcitedBatch::new(&params).unwrap());
        let threads = chosen_threads(&ctx, &p);
        let cases: Vec<(MemberLayout, bool)> = vec![
            (layout(threads, 1), true),
            (layout(threads, 1), false),
            (layout(threads, 2), false),
            (layout(threads, 4), false),
        ];
        let mut times: Vec<(Vec<f64>, Vec<f64>, u64)> = vec![(vec![], vec![], 0); cases.len()];
        let mut reference: Option<Vec<f64>> = None;
        for _round in 0..5 {
            for (k, (l, fused)) in cases.iter().enumerate() {
                // Compile outside the timing (the context caches pipelines).
                let mut warm = GpuBackend::with_layout(ctx.clone(), p.clone(), precision, *l).unwrap();
                warm.set_fused(*fused);
                let _ = run(&mut warm, &p, &SolveOptions { output_times: vec![0.005], ..opts.clone() });
                let mut b = GpuBackend::with_layout(ctx.clone(), p.clone(), precision, *l).unwrap();
                b.set_fused(*fused);
                let (w0, c0) = (std::time::Instant::now(), cpu_seconds());
                let frames = run(&mut b, &p, &opts);
                times[k].0.push(w0.elapsed().as_secs_f64());
                times[k].1.push(cpu_seconds() - c0);
                times[k].2 = b.info().dispatches.unwrap();
                let state = frames.last().unwrap().0.clone();
                if k == 1 && reference.is_none() {
                    reference = Some(state.clone());
                }
                if let Some(r) = &reference {
                    let d = rel_diff(r, &state);
                    assert!(d <= 1e-12 || precision == Precision::F32, "{l} fused {fused}: {d:e}");
                }
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        for (k, (l, fused)) in cases.iter().enumerate() {
            let (w, c, d) = &mut times[k];
            println!(
                "split_probe N=2048 batch {batch} {precision} {l} fused {fused}: wall {:.3} s, cpu {:.3} s, {d} dispatches",
                median(w),
                median(c)
            );
        }
    }
}
