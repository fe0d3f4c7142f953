//! Timings for the closing note (ignored; `cargo test --test eliashberg_bench -- --ignored
//! --nocapture`): one kinetic RHS evaluation (one stage) on the CPU twin with the share of
//! the N×N Σ kernel, RK4 stages on the GPU backend (lavapipe here), and one linear
//! stability solve (Cholesky + symmetric eigensolver), as N grows.
use std::sync::Arc;
use std::time::Instant;

use neqkin::engine::backend::Precision;
use neqkin::engine::model::BatchProblem;
use neqkin::engine::solve::{integrate, Method, SolveOptions};
use neqkin::models::eliashberg::alpha2f::Spectrum;
use neqkin::models::eliashberg::kinetic::KineticProblem;
use neqkin::models::eliashberg::stability::{solve, Reading, StabilityOptions};
use neqkin::models::eliashberg::Params;

fn problem(n: usize) -> Arc<KineticProblem> {
    let p = Params::parse(&serde_json::json!({
        "task": "kinetic", "comb": {"start": 40.0, "step": 1.0, "count": 21}, "lambda": 1.0,
        "units": "g", "temperature": 0.18, "initial_temperature": 0.1800001,
        "grid_step": 1.0, "grid_points": n
    }))
    .unwrap();
    Arc::new(KineticProblem::new(&[p]).unwrap())
}

#[test]
#[ignore = "benchmark"]
fn timings() {
    for n in [256usize, 512, 1024, 2048] {
        let p = problem(n);
        let y = p.initial_state();
        let mut dy = vec![0.0; n];
        let mut scr = vec![0.0; p.layout().scratch_len];
        let reps = if n <= 512 { 5 } else { 1 };
        let t = Instant::now();
        for _ in 0..reps {
            p.rhs_member(0, &p.params()[..4], p.tables(), 0.0, &y, &mut dy, &mut scr);
        }
        let stage = t.elapsed().as_secs_f64() / reps as f64;
        let t = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(p.sigma(0, &y));
        }
        let kern = t.elapsed().as_secs_f64() / reps as f64;
        println!(
            "CPU kinetic stage N = {n}: {:.3e} s (N×N Σ kernel {:.3e} s, {:.1} %; rest dense LU)",
            stage,
            kern,
            100.0 * kern / stage
        );
    }
    if std::env::var("NEQKIN_SKIP_GPU").as_deref() != Ok("1") {
        let ctx = Arc::new(neqkin::engine::gpu::GpuContext::new().expect("adapter"));
        let prec = if ctx.supports_f64() { Precision::F64 } else { Precision::F32 };
        for n in [256usize, 512, 1024] {
            let p = problem(n);
            let mut gpu = neqkin::engine::gpu::GpuBackend::new(ctx.clone(), p.clone(), prec).unwrap();
            let opts =
                SolveOptions { method: Method::Rk4, dt: Some(1e-4), output_times: vec![2e-4], ..Default::default() };
            let mut warm = SolveOptions { output_times: vec![1e-4], ..opts.clone() };
            warm.dt = Some(1e-4);
            integrate(&mut gpu, &*p, &warm, &mut |_| Ok(())).unwrap();
            let mut gpu = neqkin::engine::gpu::GpuBackend::new(ctx.clone(), p.clone(), prec).unwrap();
            let t = Instant::now();
            let st = integrate(&mut gpu, &*p, &opts, &mut |_| Ok(())).unwrap();
            let el = t.elapsed().as_secs_f64();
            println!(
                "GPU ({}, {prec}) kinetic N = {n}: {:.3e} s per stage ({} stages incl. setup)",
                ctx.info().name,
                el / st.rhs_evaluations.max(1) as f64,
                st.rhs_evaluations
            );
        }
    }
    for n in [256usize, 512, 1024] {
        let s = Spectrum::comb(40.0, 1.0, 21, 1.2);
        let opts = StabilityOptions { points: n, reading: Reading::Derived, offdiag_sign: 1.0, eps_out: 0.02 };
        let t = Instant::now();
        let _ = solve(&s, 9.6, &opts).unwrap();
        println!("linear stability solve N = {n}: {:.3e} s", t.elapsed().as_secs_f64());
    }
}
