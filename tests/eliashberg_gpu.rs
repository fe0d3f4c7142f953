//! Issue 4: the kinetic kernel `shaders/eliashberg/kinetic.wgsl` (BiCGSTAB solve) against
//! its CPU twin (dense LU) through the whole engine: the same batch integrated with DOPRI5
//! on both backends. Needs a GPU adapter (lavapipe in CI).
//! GPU policy: `neqkin::engine::gpu::testing` (skipped with a notice without an adapter, failed when `NEQKIN_REQUIRE_GPU=1`, as in CI). Tolerance on the final state (max abs difference over max |f − f0|-scale):
//! f64 1e-8, f32 2e-3.
use std::sync::Arc;

use neqkin::engine::backend::Precision;
use neqkin::engine::cpu::CpuBackend;
use neqkin::engine::gpu::GpuBackend;
use neqkin::engine::model::BatchProblem;
use neqkin::engine::solve::{integrate, Method, SolveOptions};
use neqkin::models::eliashberg::kinetic::KineticProblem;
use neqkin::models::eliashberg::Params;

fn problem(members: [(f64, &str); 2]) -> Arc<KineticProblem> {
    // L = 260 > 256: the kernel's grid-strided loops and reductions wrap.
    let ps: Vec<Params> = members
        .iter()
        .map(|&(lam, pv)| {
            Params::parse(&serde_json::json!({
                "task": "kinetic", "modes": [[8.0, 0.5 * lam], [9.0, 0.5 * lam]], "units": "input",
                "temperature": 3.0, "initial_temperature": 3.3, "grid_step": 1.0, "grid_points": 260,
                "pv": pv
            }))
            .unwrap()
        })
        .collect();
    Arc::new(KineticProblem::new(&ps).unwrap())
}

fn final_state(backend: &mut dyn neqkin::engine::backend::Backend, p: &KineticProblem) -> (Vec<f64>, Vec<f64>) {
    let opts = SolveOptions {
        method: Method::Dopri5,
        rtol: 1e-8,
        atol: 1e-12,
        output_times: vec![0.05],
        ..Default::default()
    };
    let mut out = (vec![], vec![]);
    integrate(backend, p, &opts, &mut |fr| {
        out = (fr.state.to_vec(), fr.status.to_vec());
        Ok(())
    })
    .unwrap();
    out
}

#[test]
fn kinetic_kernel_matches_cpu_twin() {
    let Some(ctx) = neqkin::engine::gpu::testing::gpu_context("kinetic_kernel_matches_cpu_twin") else { return };
    // The default linear rule (3-point stencil) at two couplings, and a batch of the cubic
    // rule (5-point stencil, issue 10) next to the linear one at the same coupling: the
    // stencil is a per-member parameter, and the two members' CPU results must differ by far
    // more than the f64 tolerance (else a kernel ignoring the stencil would pass).
    for members in [[(0.8, "product"), (1.2, "product")], [(1.2, "product_cubic"), (1.2, "product")]] {
        let p = problem(members);
        let n = p.layout().state_len;
        let mut cpu = CpuBackend::new(p.clone());
        let (c, cs) = final_state(&mut cpu, &p);
        let f0: Vec<f64> = p.initial_state();
        let max_diff = |a: &[f64], b: &[f64]| a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
        let scale: Vec<f64> = (0..2).map(|m| max_diff(&c[m * n..(m + 1) * n], &f0[m * n..(m + 1) * n])).collect();
        if members[0].0 == members[1].0 {
            let rule_gap = max_diff(&c[..n], &c[n..]) / scale[0];
            println!("kinetic {members:?}: CPU cubic vs linear rule, max |Δf| difference / max |Δf| = {rule_gap:.3e}");
            assert!(rule_gap > 1e-5, "the two rules should give different f: {rule_gap}");
        }
        let mut precs = vec![Precision::F32];
        if ctx.supports_f64() {
            precs.push(Precision::F64);
        }
        for prec in precs {
            let mut gpu = GpuBackend::new(ctx.clone(), p.clone(), prec).expect("GPU backend");
            let (g, gs) = final_state(&mut gpu, &p);
            assert_eq!(cs, gs, "status");
            let tol = if prec == Precision::F64 { 1e-8 } else { 2e-3 };
            for (m, &(lam, pv)) in members.iter().enumerate() {
                let err = max_diff(&c[m * n..(m + 1) * n], &g[m * n..(m + 1) * n]) / scale[m];
                println!(
                    "kinetic λ = {lam} pv = {pv} ({prec}): max |f_gpu − f_cpu| / max |Δf| = {err:.3e} (tolerance {tol:.0e})"
                );
                assert!(err < tol, "member {m}: {err}");
            }
        }
    }
}
