//! GPU kernel `shaders/photoexcited/collision.wgsl` against its CPU twin, through the engine's
//! GPU backend (one `Rhs` op), and a whole adaptive integration on both backends. Runs on any Vulkan adapter, lavapipe included, in
//! f32 and (where the adapter has SHADER_F64) f64.
//!
//! GPU policy: `neqkin::engine::gpu::testing` (skipped with a notice without an adapter, failed when `NEQKIN_REQUIRE_GPU=1`, as in CI).

use neqkin::engine::model::BatchProblem;
use neqkin::models::photoexcited::{PhotoexcitedBatch, PhotoexcitedParams};
use serde_json::json;

use std::sync::{Arc, OnceLock};

use neqkin::engine::backend::{Backend, Precision};
use neqkin::engine::cpu::CpuBackend;
use neqkin::engine::gpu::{GpuBackend, GpuContext};
use neqkin::engine::program::{Op, StepProgram};
use neqkin::engine::solve::{integrate, Method, SolveOptions};

/// Shared device, created once; `None` when the GPU tests are skipped.
fn gpu() -> Option<Arc<GpuContext>> {
    static CTX: OnceLock<Option<Arc<GpuContext>>> = OnceLock::new();
    CTX.get_or_init(|| neqkin::engine::gpu::testing::gpu_context("photoexcited_gpu")).clone()
}

/// One evaluation of the kernel through the engine's GPU backend; returns dy as f64.
fn run(ctx: &Arc<GpuContext>, precision: Precision, b: &Arc<PhotoexcitedBatch>, t: &[f64], y: &[f64]) -> Vec<f64> {
    let problem: Arc<dyn BatchProblem> = b.clone();
    let mut backend = GpuBackend::new(ctx.clone(), problem, precision).unwrap();
    let (yv, dyv, tv) = (backend.new_vector().unwrap(), backend.new_vector().unwrap(), backend.new_scalars().unwrap());
    backend.write_vector(yv, y).unwrap();
    backend.write_scalars(tv, t).unwrap();
    let prog = backend.compile(&StepProgram { ops: vec![Op::Rhs { t: tv, y: yv, dy: dyv }] }).unwrap();
    backend.run(prog, 1).unwrap();
    backend.read_vector(dyv).unwrap()
}

fn batch(points: &[serde_json::Value]) -> Arc<PhotoexcitedBatch> {
    let p: Vec<PhotoexcitedParams> = points.iter().map(|v| PhotoexcitedParams::from_json(v).unwrap()).collect();
    Arc::new(PhotoexcitedBatch::new(&p).unwrap())
}

#[test]
fn kernel_matches_cpu_twin() {
    let Some(g) = gpu() else { return };
    // N = 300 > WG exercises the grid-strided loops; members differ in every per-member
    // parameter; the second batch has per-member tables (table_stride = table_len).
    let shared = batch(&[
        json!({"grid_points": 300, "phonon_frequency": 0.3711, "zeta_initial": 3.0, "pump_strength": 5.0, "phonon_lifetime": 4.0}),
        json!({"grid_points": 300, "phonon_frequency": 0.52, "zeta": 20.0, "inelastic_rate": 0.1, "electric_field": 0.05, "temperature": 0.02}),
        json!({"grid_points": 300, "phonon_frequency": 0.36, "phonon_width": 0.01, "zeta": 5.0, "self_consistent_field": true}),
    ]);
    let separate = batch(&[
        json!({"grid_points": 300, "dos": "one_dimensional", "transport": "impurity", "phonon_frequency": 0.25, "zeta": 20.0, "inelastic_rate": 0.05}),
        json!({"grid_points": 300, "phonon_frequency": 0.45, "zeta": 2.0, "filling": 0.3, "self_consistent_field": true, "inelastic_rate": 0.02}),
    ]);
    assert_eq!(shared.layout().table_stride, 0);
    assert_eq!(separate.layout().table_stride, separate.layout().table_len);
    let reals: &[Precision] = if g.supports_f64() { &[Precision::F32, Precision::F64] } else { &[Precision::F32] };
    eprintln!("adapter: {} (SHADER_F64: {})", g.info().name, g.supports_f64());
    for b in [&shared, &separate] {
        let l = b.layout();
        // A non-equilibrium state: initial f with a deterministic wiggle, E*² > 0.
        let mut y = b.initial_state();
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
        for real in reals {
            let gpu = run(&g, *real, b, &t, &y);
            for m in 0..l.batch {
                let r = m * l.state_len..(m + 1) * l.state_len;
                let scale = cpu[r.clone()].iter().fold(0.0f64, |a, x| a.max(x.abs()));
                let err = cpu[r.clone()].iter().zip(&gpu[r]).fold(0.0f64, |a, (c, g)| a.max((c - g).abs()));
                let tol = if *real == Precision::F64 { 1e-12 } else { 2e-4 };
                eprintln!(
                    "{real} member {m}: max |dy| = {scale:.3e}, max |gpu - cpu| / max |dy| = {:.2e}",
                    err / scale
                );
                assert!(err <= tol * scale, "{real} member {m}: {err:e} vs scale {scale:e}");
            }
        }
    }
}

/// Integrates the same batch with DOPRI5 on both backends and compares the observables at
/// the output times. Tolerances: f64 1e-8 absolute on σ/σ0 (the two runs take different
/// rounding paths, so the adaptive controllers may pick slightly different steps); f32
/// 1e-5 absolute (observed ~4e-8 on lavapipe).
#[test]
fn adaptive_integration_agrees_with_cpu() {
    let Some(g) = gpu() else { return };
    let b = batch(&[
        json!({"grid_points": 300, "phonon_frequency": 0.52, "zeta": 20.0, "temperature": 0.003}),
        json!({"grid_points": 300, "phonon_frequency": 0.40, "zeta": 20.0, "temperature": 0.003}),
        json!({"grid_points": 300, "phonon_frequency": 0.3711, "zeta_initial": 0.0, "pump_strength": 10.0, "pulse_duration": 0.3, "phonon_lifetime": 5.0, "inelastic_rate": 0.02}),
    ]);
    let opts = SolveOptions {
        method: Method::Dopri5,
        rtol: 1e-7,
        atol: 1e-10,
        output_times: vec![1.0, 4.0],
        ..Default::default()
    };
    let observe = |backend: &mut dyn Backend| -> Vec<Vec<(String, f64)>> {
        let mut rows = vec![];
        integrate(backend, &*b, &opts, &mut |frame| {
            let n = b.layout().state_len;
            for m in 0..b.layout().batch {
                rows.push(b.observables(m, frame.t, &frame.state[m * n..(m + 1) * n]).scalars);
            }
            Ok(())
        })
        .unwrap();
        rows
    };
    let problem: Arc<dyn BatchProblem> = b.clone();
    let cpu = observe(&mut CpuBackend::new(problem.clone()));
    let precisions: &[Precision] = if g.supports_f64() { &[Precision::F64, Precision::F32] } else { &[Precision::F32] };
    for &precision in precisions {
        let gpu = observe(&mut GpuBackend::new(g.clone(), problem.clone(), precision).unwrap());
        let tol = if precision == Precision::F64 { 1e-8 } else { 1e-5 };
        for (row_c, row_g) in cpu.iter().zip(&gpu) {
            for ((name, c), (_, v)) in row_c.iter().zip(row_g) {
                if name == "sigma_over_sigma0" || name == "particle_number" {
                    eprintln!("{precision} {name}: cpu {c:.10} gpu {v:.10} diff {:.2e}", (c - v).abs());
                    assert!((c - v).abs() <= tol, "{precision} {name}: cpu {c} gpu {v}");
                }
            }
        }
    }
}

/// Brillouin-zone sampling of the p band (supplement Sec. I) as a map job on the GPU
/// against its CPU twin, and the band built from either. Tolerances: f64 1e-12 relative
/// to the largest value; f32 1e-5 (energies and |v|²).
#[test]
fn p_band_sampling_matches_cpu_twin() {
    use neqkin::engine::gpu::GpuMap;
    use neqkin::engine::model::CpuMap;
    use neqkin::models::photoexcited::p_band;
    let Some(g) = gpu() else { return };
    let nk = 24;
    let hopping = [-0.1, 0.03, 0.2];
    // Band order out of the Jacobi sweeps is arbitrary (rounding can permute it), and
    // only the multiset per k-point matters for the DoS: compare each k-point's bands
    // sorted by energy.
    let sorted = |v: Vec<(f64, f64)>| -> Vec<(f64, f64)> {
        v.chunks(3)
            .flat_map(|c| {
                let mut c = c.to_vec();
                c.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
                c
            })
            .collect()
    };
    let cpu = sorted(p_band::sample(&CpuMap, nk, hopping).unwrap());
    assert_eq!(cpu.len(), 3 * nk * nk * nk);
    let scale_e = cpu.iter().fold(0.0f64, |a, s| a.max(s.0.abs()));
    let scale_v = cpu.iter().fold(0.0f64, |a, s| a.max(s.1.abs()));
    let precisions: &[Precision] = if g.supports_f64() { &[Precision::F64, Precision::F32] } else { &[Precision::F32] };
    for &precision in precisions {
        let gpu = sorted(p_band::sample(&GpuMap::new(g.clone(), precision), nk, hopping).unwrap());
        let de = cpu.iter().zip(&gpu).fold(0.0f64, |a, (c, g)| a.max((c.0 - g.0).abs())) / scale_e;
        let dv = cpu.iter().zip(&gpu).fold(0.0f64, |a, (c, g)| a.max((c.1 - g.1).abs())) / scale_v;
        eprintln!("{precision}: p-band energies rel. diff {de:.2e}, |v|² rel. diff {dv:.2e}");
        let tol = if precision == Precision::F64 { 1e-12 } else { 1e-5 };
        assert!(de <= tol && dv <= tol, "{precision}: {de:e} {dv:e}");
    }
    if g.supports_f64() {
        let p = PhotoexcitedParams::from_json(&json!({"dos": "p_band", "k_points": 24, "grid_points": 200})).unwrap();
        let on_cpu = PhotoexcitedBatch::new(&[p.clone()]).unwrap();
        let on_gpu = PhotoexcitedBatch::new_with(&[p], &GpuMap::new(g.clone(), Precision::F64)).unwrap();
        let diff = on_cpu
            .tables()
            .iter()
            .zip(on_gpu.tables())
            .fold(0.0f64, |a, (x, y)| a.max((x - y).abs() / x.abs().max(1.0)));
        assert!(diff < 1e-10, "band tables differ by {diff:e}");
    }
}
