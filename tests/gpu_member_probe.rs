//! Timing probe of the photoexcited member kernels on the GPU backend (ignored: a
//! measurement, run by hand; docs/benchmarks.md section 11 quotes it):
//!
//! `NEQKIN_REQUIRE_GPU=1 cargo test --test gpu_member_probe -- --ignored --nocapture`
//!
//! For the bench's photoexcited sweep (N = 2048, ζ = 20, Γ_in = 0.01, ω_p swept, batch 64,
//! fixed-step RK4, 40 steps) it prints the solve on the CPU backend and on the GPU (fused
//! and op by op), and for one RHS evaluation (N = 2048 and 8192) the process CPU time per
//! evaluation (all threads; under a shared machine's load steadier than wall time) of the
//! model's kernel and of variants that show where llvmpipe spends it:
//! - `copy`: `rhs_member` replaced by `dy = -y` (one read and one write per component);
//! - `twice`: the `rhs` entry point calls `rhs_member` twice (two barrier-separated
//!   evaluations in one kernel, as in a fused step);
//! - `twice_no_barriers`: the same with every `workgroupBarrier()` removed (wrong sums, same
//!   memory traffic and arithmetic).
//!
//! Every GPU result of the model's own kernel is checked against the CPU twin (f64: 1e-12
//! relative to the largest component). `NEQKIN_MEMBER_WG` sets the member workgroup size.
use std::sync::Arc;
use std::time::Instant;

use neqkin::engine::backend::{Backend, Precision};
use neqkin::engine::cpu::CpuBackend;
use neqkin::engine::gpu::GpuBackend;
use neqkin::engine::model::{BatchLayout, BatchProblem, KernelSource, Observables};
use neqkin::engine::program::{Op, StepProgram};
use neqkin::engine::solve::{integrate, Method, SolveOptions};
use serde_json::json;

/// The photoexcited batch with its kernel source replaced.
struct Variant {
    inner: Arc<dyn BatchProblem>,
    source: String,
}

impl BatchProblem for Variant {
    fn layout(&self) -> BatchLayout {
        self.inner.layout()
    }
    fn params(&self) -> &[f64] {
        self.inner.params()
    }
    fn tables(&self) -> &[f64] {
        self.inner.tables()
    }
    fn initial_state(&self) -> Vec<f64> {
        self.inner.initial_state()
    }
    fn rhs_member(&self, m: usize, p: &[f64], tb: &[f64], t: f64, y: &[f64], dy: &mut [f64], s: &mut [f64]) {
        self.inner.rhs_member(m, p, tb, t, y, dy, s)
    }
    fn kernel(&self) -> KernelSource {
        KernelSource { name: "photoexcited/collision (variant)".into(), source: self.source.clone() }
    }
    fn observables(&self, m: usize, t: f64, y: &[f64]) -> Observables {
        self.inner.observables(m, t, y)
    }
}

/// Process CPU seconds, all threads (utime + stime of /proc/self/stat, 10 ms ticks).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / 100.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The bench's photoexcited points (src/run/bench.rs).
fn sweep(n: usize, members: usize) -> Arc<dyn BatchProblem> {
    let points: Vec<_> = (0..members)
        .map(|m| {
            let w = 0.2 + 0.6 * (m as f64 + 0.5) / members as f64;
            json!({"grid_points": n, "temperature": 0.003, "phonon_frequency": w,
                   "zeta": 20.0, "inelastic_rate": 0.01, "filling": 0.5})
        })
        .collect();
    let model = neqkin::models::find("photoexcited").unwrap();
    model.build(&model.parse_all(&points).unwrap()).unwrap()
}

fn variant(p: &Arc<dyn BatchProblem>, name: &str) -> Arc<dyn BatchProblem> {
    let src = p.kernel().source;
    const CALL: &str = "    rhs_member(member, lid, scalars[dims.t_offset + member]);\n";
    assert!(src.contains(CALL) && src.contains("fn rhs_member(") && src.contains("@compute"));
    let source = match name {
        "copy" => {
            let (a, b) = (src.find("fn rhs_member(").unwrap(), src.find("@compute").unwrap());
            let body = "fn rhs_member(member: u32, lid: u32, t: Real) {\n    let yb = member * dims.state_len;\n    \
                        for (var i: u32 = lid; i < dims.state_len; i = i + WG) {\n        rhs_dy(yb + i, -rhs_y(yb + i));\n    }\n}\n\n";
            format!("{}{body}{}", &src[..a], &src[b..])
        }
        "twice" => src.replace(CALL, &CALL.repeat(2)),
        "twice_no_barriers" => src.replace(CALL, &CALL.repeat(2)).replace("workgroupBarrier();", ""),
        _ => src,
    };
    Arc::new(Variant { inner: p.clone(), source })
}

/// Largest |a - b| over the largest |a|.
fn rel_diff(a: &[f64], b: &[f64]) -> f64 {
    let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
#[ignore = "a timing probe, run by hand (see the file's doc)"]
fn probe() {
    let Some(ctx) = neqkin::engine::gpu::testing::gpu_context("gpu_member_probe") else { return };
    let prec = if ctx.supports_f64() { Precision::F64 } else { Precision::F32 };
    let tol = if prec == Precision::F64 { 1e-12 } else { 1e-4 };
    println!("adapter {} ({}), {prec}", ctx.info().name, ctx.info().device_type);

    // The sweep: CPU backend, GPU fused, GPU op by op (median of 3, wall and CPU seconds).
    let p = sweep(2048, 64);
    println!(
        "member workgroup size at N = 2048: {}",
        ctx.member_workgroup_size(p.layout().state_len, p.member_loops_per_component())
    );
    let rho = p.spectral_radius().unwrap().into_iter().fold(1.0, f64::max);
    let dt = (2.0 / rho).min(1e-3);
    let opts = SolveOptions {
        method: Method::Rk4,
        dt: Some(dt),
        output_times: vec![40.0 * dt * 0.999_999],
        ..Default::default()
    };
    let mut reference = Vec::new();
    for (label, gpu, fused) in [("cpu backend", false, false), ("gpu fused", true, true), ("gpu op by op", true, false)]
    {
        let (mut walls, mut cpus, mut dispatches) = (vec![], vec![], 0);
        for _ in 0..3 {
            let mut b: Box<dyn Backend> = if gpu {
                let mut g = GpuBackend::new(ctx.clone(), p.clone(), prec).unwrap();
                g.set_fused(fused);
                Box::new(g)
            } else {
                Box::new(CpuBackend::new(p.clone()))
            };
            let mut last = Vec::new();
            let (s, c) = (Instant::now(), cpu_seconds());
            integrate(&mut *b, &*p, &opts, &mut |f| {
                last = f.state.to_vec();
                Ok(())
            })
            .unwrap();
            walls.push(s.elapsed().as_secs_f64());
            cpus.push(cpu_seconds() - c);
            dispatches = b.info().dispatches.unwrap_or(0);
            if gpu {
                let d = rel_diff(&reference, &last);
                assert!(d <= tol, "{label}: {d:e} from the CPU backend");
            } else {
                reference = last;
            }
        }
        println!(
            "sweep {label}: wall {:.3} s, CPU {:.2} s (median of 3), dispatches {dispatches}",
            median(walls),
            median(cpus)
        );
    }

    // One RHS evaluation: the kernel and its variants.
    for n in [2048, 8192] {
        let p = sweep(n, 64);
        let l = p.layout();
        let mut cpu = CpuBackend::new(p.clone());
        let (cy, cdy, ct) = (cpu.new_vector().unwrap(), cpu.new_vector().unwrap(), cpu.new_scalars().unwrap());
        cpu.write_vector(cy, &p.initial_state()).unwrap();
        let cprog = cpu.compile(&StepProgram { ops: vec![Op::Rhs { t: ct, y: cy, dy: cdy }] }).unwrap();
        cpu.run(cprog, 1).unwrap();
        let cpu_dy = cpu.read_vector(cdy).unwrap();
        let c = cpu_seconds();
        cpu.run(cprog, 200).unwrap();
        cpu.read_scalars(ct).unwrap();
        println!("rhs N = {n} cpu backend: CPU {:.3} ms per evaluation", (cpu_seconds() - c) / 200.0 * 1e3);
        for name in ["kernel", "copy", "twice", "twice_no_barriers"] {
            let v = variant(&p, name);
            let mut b = GpuBackend::new(ctx.clone(), v.clone(), prec).unwrap();
            let (y, dy, t) = (b.new_vector().unwrap(), b.new_vector().unwrap(), b.new_scalars().unwrap());
            b.write_vector(y, &p.initial_state()).unwrap();
            let prog = b.compile(&StepProgram { ops: vec![Op::Rhs { t, y, dy }] }).unwrap();
            b.run(prog, 1).unwrap();
            if name == "kernel" {
                let d = rel_diff(&cpu_dy, &b.read_vector(dy).unwrap());
                assert!(d <= tol, "rhs N = {n}: {d:e} from the CPU twin");
            }
            let reps = if n > 4096 { 10 } else { 40 };
            let (s, c) = (Instant::now(), cpu_seconds());
            b.run(prog, reps).unwrap();
            b.read_scalars(t).unwrap();
            let (wall, cpu_s) = (s.elapsed().as_secs_f64() / reps as f64, (cpu_seconds() - c) / reps as f64);
            let bytes = (2 * l.batch * l.state_len * if prec == Precision::F64 { 8 } else { 4 }) as f64;
            println!(
                "rhs N = {n} gpu {name}: CPU {:.3} ms, wall {:.3} ms per evaluation ({:.3} GB/s of y + dy)",
                cpu_s * 1e3,
                wall * 1e3,
                bytes / wall / 1e9
            );
        }
    }
}
