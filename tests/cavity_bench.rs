//! Throughput of each cavity level (sweep points per second) on the CPU backend and on
//! the GPU backend (lavapipe here), at Fig S4's resolution: T_cry = 0.1, T_mir = 100,
//! γ = 10, window [−49, 51], h = 0.05 (n = 2001). Ignored in CI (minutes on 2 cores):
//! `cargo test --test cavity_bench -- --ignored --nocapture`.
mod cavity_util;

use std::sync::Arc;
use std::time::Instant;

use neqkin::engine::backend::{Backend, Precision};
use neqkin::engine::cpu::CpuBackend;
use neqkin::engine::gpu::{GpuBackend, GpuContext};
use neqkin::engine::program::status;
use neqkin::engine::solve::{integrate, Method, SolveOptions};
use neqkin::models::cavity::{derive, CavityBatch};
use serde_json::json;

fn points(level: u32, variant: &str, batch: usize) -> Vec<serde_json::Value> {
    (0..batch)
        .map(|k| {
            json!({"level": level, "variant": variant, "coupling_g": 0.1 + 0.2 * k as f64,
                   "t_cry": 0.1, "t_mir": 100.0, "nu0": 1.0, "gamma": 10.0, "gamma_ph": 0.1,
                   "mu0": 1.0, "n_omega": 2001, "omega_min": -49.0, "omega_max": 51.0})
        })
        .collect()
}

fn time_it(backend: &mut dyn Backend, problem: &CavityBatch, riccati: bool) -> (f64, usize) {
    let opts = if riccati {
        SolveOptions {
            method: Method::Dopri5,
            rtol: 1e-8,
            atol: 1e-10,
            output_times: problem.riccati_output_times(),
            ..Default::default()
        }
    } else {
        SolveOptions {
            method: Method::Rk4,
            dt: Some(1.0),
            output_times: vec![1e7],
            steady_tol: Some(1e-9),
            ..Default::default()
        }
    };
    let t0 = Instant::now();
    let mut ok = 0;
    integrate(backend, problem, &opts, &mut |fr| {
        ok = fr.status.iter().filter(|s| **s == status::STEADY || **s == status::REACHED).count();
        Ok(())
    })
    .unwrap();
    (t0.elapsed().as_secs_f64(), ok)
}

#[test]
#[ignore]
fn cavity_throughput() {
    let ctx = Arc::new(GpuContext::new().unwrap());
    println!("GPU adapter: {}", ctx.info().name);
    let batch = 4;
    for (level, variant) in [(2, "consistent"), (3, "fokker_planck"), (3, "riccati_s71"), (1, "consistent")] {
        let members = points(level, variant, batch).iter().map(|p| derive(p).unwrap()).collect();
        let problem = Arc::new(CavityBatch::new(members).unwrap());
        let riccati = variant == "riccati_s71";
        let mut cpu = CpuBackend::new(problem.clone());
        let (t_cpu, ok_cpu) = time_it(&mut cpu, &problem, riccati);
        println!(
            "level {level} {variant}: CPU {batch} points in {t_cpu:.2} s = {:.3} points/s ({ok_cpu} converged)",
            batch as f64 / t_cpu
        );
        let mut gpu = GpuBackend::new(ctx.clone(), problem.clone(), Precision::F64).unwrap();
        let (t_gpu, ok_gpu) = time_it(&mut gpu, &problem, riccati);
        println!("level {level} {variant}: lavapipe f64 {batch} points in {t_gpu:.2} s = {:.3} points/s ({ok_gpu} converged)", batch as f64 / t_gpu);
    }
}
