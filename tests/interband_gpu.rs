//! Issue 5: the interband kernel on the GPU backend against its CPU twin — one RHS
//! evaluation on random states for a batch with per-member tables (3 members) and one with
//! shared tables, then a short RK4 integration with pairing active.
//!
//! Tolerances (max abs difference over max abs CPU value): f64 1e-12, f32 1e-4 (RHS), 1e-3
//! (integration). Needs a GPU adapter (lavapipe in CI).
//! GPU policy: `neqkin::engine::gpu::testing` (skipped with a notice without an adapter, failed when `NEQKIN_REQUIRE_GPU=1`, as in CI).

use std::sync::Arc;

use neqkin::engine::backend::{Backend, Precision};
use neqkin::engine::cpu::CpuBackend;
use neqkin::engine::gpu::{GpuBackend, GpuContext};
use neqkin::engine::model::{BatchProblem, Model};
use neqkin::engine::program::{Op, StepProgram};
use neqkin::engine::solve::{integrate, Method, SolveOptions};
use neqkin::models::interband::Interband;

fn gpu() -> Option<Arc<GpuContext>> {
    let ctx = neqkin::engine::gpu::testing::gpu_context("interband_gpu")?;
    println!("adapter: {:?}", ctx.info());
    Some(ctx)
}

fn precisions(ctx: &GpuContext) -> Vec<Precision> {
    if ctx.supports_f64() {
        vec![Precision::F32, Precision::F64]
    } else {
        println!("no SHADER_F64: f64 comparison not run");
        vec![Precision::F32]
    }
}

fn rel_diff(c: &[f64], g: &[f64]) -> f64 {
    let scale = c.iter().fold(0.0f64, |a, v| a.max(v.abs())).max(1e-300);
    c.iter().zip(g).fold(0.0f64, |a, (x, y)| a.max((x - y).abs())) / scale
}

fn problems() -> Vec<Arc<dyn BatchProblem>> {
    let j = |s: &str| -> serde_json::Value { serde_json::from_str(s).unwrap() };
    vec![
        // Per-member tables (v varies), 600 momenta: several k per thread.
        Interband
            .build(&Interband.parse_all(&[
                j(r#"{"grid_step":0.001,"cutoff":0.3,"phonon_velocity":0.1,"coupling_v":5.0}"#),
                j(r#"{"grid_step":0.001,"cutoff":0.3,"phonon_velocity":0.25,"coupling_v":3.0,"detuning":0.05}"#),
                j(r#"{"grid_step":0.001,"cutoff":0.3,"phonon_velocity":0.05,"phonon_profile":"eq_b2"}"#),
            ]).unwrap())
            .unwrap(),
        // Shared tables, small grid.
        Interband
            .build(&Interband.parse_all(&[
                j(r#"{"grid_step":0.01,"coupling_v":5.0}"#),
                j(r#"{"grid_step":0.01,"coupling_v":2.0,"rabi_frequency":0.5}"#),
            ]).unwrap())
            .unwrap(),
    ]
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[test]
fn rhs_gpu_matches_cpu() {
    let Some(ctx) = gpu() else { return };
    for precision in precisions(&ctx) {
        for problem in problems() {
            let l = problem.layout();
            let mut rng = Lcg(9);
            let y: Vec<f64> = (0..l.batch * l.state_len)
                .map(|i| if i % l.state_len < 2 * (l.state_len / 6) { rng.next() } else { 0.2 * (rng.next() - 0.5) })
                .map(|x| if precision == Precision::F32 { x as f32 as f64 } else { x })
                .collect();
            let mut out = vec![];
            for backend in [
                Box::new(CpuBackend::new(problem.clone())) as Box<dyn Backend>,
                Box::new(GpuBackend::new(ctx.clone(), problem.clone(), precision).expect("GPU backend")),
            ] {
                let mut b = backend;
                let (yv, dyv, t) = (b.new_vector().unwrap(), b.new_vector().unwrap(), b.new_scalars().unwrap());
                b.write_vector(yv, &y).unwrap();
                b.write_scalars(t, &vec![0.0; l.batch]).unwrap();
                let p = b.compile(&StepProgram { ops: vec![Op::Rhs { t, y: yv, dy: dyv }] }).expect("compile");
                b.run(p, 1).expect("run");
                out.push(b.read_vector(dyv).unwrap());
            }
            let d = rel_diff(&out[0], &out[1]);
            let tol = if precision == Precision::F64 { 1e-12 } else { 1e-4 };
            println!("{precision}: batch {} × {} reals: rel. diff {d:.2e}", l.batch, l.state_len);
            assert!(d < tol, "{precision}: GPU RHS differs from CPU by {d:e}");
        }
    }
}

#[test]
fn integration_gpu_matches_cpu() {
    let Some(ctx) = gpu() else { return };
    let problem = Interband
        .build(
            &Interband
                .parse_all(&[
                    serde_json::json!({"grid_step": 0.01, "coupling_v": 5.0, "seed_re": 0.01, "seed_im": 0.01}),
                ])
                .unwrap(),
        )
        .unwrap();
    for precision in precisions(&ctx) {
        let opts = SolveOptions { method: Method::Rk4, dt: Some(0.1), output_times: vec![20.0], ..Default::default() };
        let mut states = vec![];
        for backend in [
            Box::new(CpuBackend::new(problem.clone())) as Box<dyn Backend>,
            Box::new(GpuBackend::new(ctx.clone(), problem.clone(), precision).expect("GPU backend")),
        ] {
            let mut b = backend;
            let mut last = vec![];
            integrate(&mut *b, &*problem, &opts, &mut |fr| {
                last = fr.state.to_vec();
                Ok(())
            })
            .unwrap();
            states.push(last);
        }
        let d = rel_diff(&states[0], &states[1]);
        let tol = if precision == Precision::F64 { 1e-12 } else { 1e-3 };
        println!("{precision}: RK4 to t = 20: rel. diff {d:.2e}");
        assert!(d < tol, "{precision}: GPU trajectory differs from CPU by {d:e}");
    }
}
