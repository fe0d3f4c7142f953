//! Work layouts of the member kernels (src/engine/gpu/layout.rs): several members per
//! workgroup, each on its own segment of threads, against one member per workgroup with the
//! same threads per member and against the CPU backend.
//!
//! - Adaptive DOPRI5, fused and op by op, batch of 5 with different parameters per member
//!   (members accept different numbers of steps, so in a fused kernel some members of a
//!   workgroup are done while others still step), in layouts of 2, 3 and 4 members per
//!   workgroup (5 is a multiple of none: the last workgroup has spare segments): the same
//!   accepted and rejected steps per member, the same status codes and states within 1e-12
//!   (relative to the largest component; f64) of one member per workgroup.
//! - Fixed-step RK4 in the same layouts against the CPU backend: f64 within 1e-12.
//!
//! Photoexcited exercises the ζ-production and σ reductions (shared/member_reduce),
//! interband the Δ* reduction and the scratch rates read at the partner momentum, with
//! per-member tables. Layouts are forced with `GpuBackend::with_layout` (the environment
//! overrides `NEQKIN_MEMBER_WG`/`NEQKIN_MEMBERS_PER_WG` are process-wide).
//!
//! GPU policy: `neqkin::engine::gpu::testing` (skipped with a notice without an adapter,
//! failed when `NEQKIN_REQUIRE_GPU=1`).

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
    CTX.get_or_init(|| neqkin::engine::gpu::testing::gpu_context("gpu_layout")).clone()
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

fn gpu_run(
    ctx: &Arc<GpuContext>,
    p: &Arc<dyn BatchProblem>,
    layout: MemberLayout,
    fused: bool,
    opts: &SolveOptions,
) -> Frames {
    let mut b = GpuBackend::with_layout(ctx.clone(), p.clone(), Precision::F64, layout).unwrap();
    assert_eq!(b.member_layout(), layout);
    b.set_fused(fused);
    run(&mut b, p, opts)
}

fn rel_diff(a: &[f64], b: &[f64]) -> f64 {
    let scale = a.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-300);
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f64, f64::max) / scale
}

/// The layouts compared: one member per workgroup at the threads per member the context
/// chooses for `p` and at 32, and 2, 3 and 4 members per workgroup at each.
fn layouts(ctx: &Arc<GpuContext>, p: &Arc<dyn BatchProblem>) -> Vec<MemberLayout> {
    let chosen = GpuBackend::new(ctx.clone(), p.clone(), Precision::F64).unwrap().member_layout();
    let mut threads = vec![chosen.threads_per_member];
    if chosen.threads_per_member != 32 {
        threads.push(32);
    }
    let mut out = vec![];
    for t in threads {
        for m in [1, 2, 3, 4] {
            out.push(MemberLayout { threads_per_member: t, members_per_workgroup: m, workgroups_per_member: 1 });
        }
    }
    out
}

/// Adaptive DOPRI5 in every layout, fused and op by op, against one member per workgroup
/// (op by op) at the same threads per member.
fn adaptive_layouts_agree(label: &str, p: Arc<dyn BatchProblem>, opts: &SolveOptions) {
    let Some(ctx) = gpu() else { return };
    if !ctx.supports_f64() {
        eprintln!("{label}: adapter without f64, skipped");
        return;
    }
    let mut reference: Option<(u32, Frames)> = None;
    for layout in layouts(&ctx, &p) {
        if layout.members_per_workgroup == 1 {
            reference = Some((layout.threads_per_member, gpu_run(&ctx, &p, layout, false, opts)));
        }
        let (threads, want) = reference.as_ref().expect("single layout first");
        assert_eq!(*threads, layout.threads_per_member);
        // Members must finish at different times for the masked fused loop to be exercised.
        let last = want.last().unwrap();
        assert!(last.2.iter().any(|n| *n != last.2[0]), "{label}: every member took {} steps", last.2[0]);
        for fused in [false, true] {
            if layout.members_per_workgroup == 1 && !fused {
                continue;
            }
            let got = gpu_run(&ctx, &p, layout, fused, opts);
            assert_eq!(got.len(), want.len());
            let mut worst = 0.0f64;
            for (k, (w, g)) in want.iter().zip(&got).enumerate() {
                let what = format!("{label}, {layout}, fused {fused}, frame {k}");
                assert_eq!(w.1, g.1, "{what}: status");
                assert_eq!(w.2, g.2, "{what}: accepted steps");
                assert_eq!(w.3, g.3, "{what}: rejected steps");
                let d = rel_diff(&w.0, &g.0);
                assert!(d <= 1e-12, "{what}: state differs by {d:.3e} (relative)");
                worst = worst.max(d);
            }
            eprintln!("{label}: {layout}, fused {fused}: steps {:?}, max rel. diff {worst:.1e}", got.last().unwrap().2);
        }
    }
}

/// Fixed-step RK4 in every layout, fused and op by op, against the CPU backend.
fn rk4_layouts_match_cpu(label: &str, p: Arc<dyn BatchProblem>, opts: &SolveOptions) {
    let Some(ctx) = gpu() else { return };
    if !ctx.supports_f64() {
        return;
    }
    let cpu = run(&mut CpuBackend::new(p.clone()), &p, opts);
    for layout in layouts(&ctx, &p) {
        for fused in [false, true] {
            let got = gpu_run(&ctx, &p, layout, fused, opts);
            for (k, (c, g)) in cpu.iter().zip(&got).enumerate() {
                assert_eq!(c.1, g.1, "{label}, {layout}, fused {fused}, frame {k}: status");
                let d = rel_diff(&c.0, &g.0);
                assert!(d <= 1e-12, "{label}, {layout}, fused {fused}, frame {k}: GPU differs from CPU by {d:.3e}");
            }
            eprintln!(
                "{label}: {layout}, fused {fused}: rel. diff to CPU {:.1e}",
                rel_diff(&cpu.last().unwrap().0, &got.last().unwrap().0)
            );
        }
    }
}

fn photoexcited() -> Arc<dyn BatchProblem> {
    let points = [
        json!({"grid_points": 300, "phonon_frequency": 0.52, "zeta": 20.0, "temperature": 0.003}),
        json!({"grid_points": 300, "phonon_frequency": 0.40, "zeta": 5.0, "temperature": 0.003}),
        json!({"grid_points": 300, "phonon_frequency": 0.3711, "zeta_initial": 0.0, "pump_strength": 10.0, "pulse_duration": 0.3, "phonon_lifetime": 5.0, "inelastic_rate": 0.02}),
        json!({"grid_points": 300, "phonon_frequency": 0.45, "zeta": 1.0, "temperature": 0.01}),
        json!({"grid_points": 300, "phonon_frequency": 0.30, "zeta": 10.0, "temperature": 0.005}),
    ];
    let p: Vec<PhotoexcitedParams> = points.iter().map(|v| PhotoexcitedParams::from_json(v).unwrap()).collect();
    Arc::new(PhotoexcitedBatch::new(&p).unwrap())
}

fn interband() -> Arc<dyn BatchProblem> {
    let model = neqkin::models::interband::Interband;
    model
        .build(
            &model
                .parse_all(&[
                    json!({"grid_step": 0.01, "phonon_velocity": 0.1, "coupling_v": 5.0, "seed_re": 1e-6, "seed_im": 0.0}),
                    json!({"grid_step": 0.01, "phonon_velocity": 0.25, "coupling_v": 3.0, "detuning": 0.05, "seed_re": 1e-6}),
                    json!({"grid_step": 0.01, "phonon_velocity": 0.05, "phonon_profile": "eq_b2", "rabi_frequency": 0.5}),
                    json!({"grid_step": 0.01, "phonon_velocity": 0.15, "coupling_v": 5.0, "seed_re": 0.01, "seed_im": 0.01}),
                    json!({"grid_step": 0.01, "phonon_velocity": 0.1, "rabi_frequency": 0.05}),
                ])
                .unwrap(),
        )
        .unwrap()
}

#[test]
fn photoexcited_packed_layouts_match_one_member_per_workgroup() {
    let opts = SolveOptions {
        method: Method::Dopri5,
        rtol: 1e-7,
        atol: 1e-10,
        output_times: vec![0.5, 2.0],
        ..Default::default()
    };
    adaptive_layouts_agree("photoexcited N=300", photoexcited(), &opts);
}

#[test]
fn interband_packed_layouts_match_one_member_per_workgroup() {
    let opts = SolveOptions {
        method: Method::Dopri5,
        rtol: 1e-7,
        atol: 1e-10,
        output_times: vec![2.0, 10.0],
        ..Default::default()
    };
    adaptive_layouts_agree("interband n=40", interband(), &opts);
}

#[test]
fn photoexcited_layouts_match_cpu() {
    let opts = SolveOptions { method: Method::Rk4, dt: Some(0.01), output_times: vec![0.3], ..Default::default() };
    rk4_layouts_match_cpu("photoexcited N=300 rk4", photoexcited(), &opts);
}

#[test]
fn interband_layouts_match_cpu() {
    let opts = SolveOptions { method: Method::Rk4, dt: Some(0.1), output_times: vec![5.0], ..Default::default() };
    rk4_layouts_match_cpu("interband n=40 rk4", interband(), &opts);
}

/// The relaxation model with the `//! layout: packable` line taken out of its kernel.
struct Unpackable(Arc<dyn BatchProblem>);

impl BatchProblem for Unpackable {
    fn layout(&self) -> neqkin::engine::model::BatchLayout {
        self.0.layout()
    }
    fn params(&self) -> &[f64] {
        self.0.params()
    }
    fn tables(&self) -> &[f64] {
        self.0.tables()
    }
    fn initial_state(&self) -> Vec<f64> {
        self.0.initial_state()
    }
    fn rhs_member(&self, m: usize, p: &[f64], tb: &[f64], t: f64, y: &[f64], dy: &mut [f64], s: &mut [f64]) {
        self.0.rhs_member(m, p, tb, t, y, dy, s)
    }
    fn observables(&self, m: usize, t: f64, y: &[f64]) -> neqkin::engine::model::Observables {
        self.0.observables(m, t, y)
    }
    fn kernel(&self) -> neqkin::engine::model::KernelSource {
        let mut k = self.0.kernel();
        k.source = k.source.replace(neqkin::engine::gpu::layout::PACKABLE_MARKER, "");
        k
    }
}

/// A kernel that is not packable refuses several members per workgroup instead of running
/// them on one shared workgroup memory, and keeps one member per workgroup by default.
#[test]
fn unpackable_kernels_refuse_packed_layouts() {
    let Some(ctx) = gpu() else { return };
    let model = neqkin::models::relaxation::Relaxation;
    let relaxation =
        model.build(&model.parse_all(&[json!({"grid_points": 16}), json!({"grid_points": 16})]).unwrap()).unwrap();
    assert!(neqkin::engine::gpu::layout::packable(&relaxation.kernel().source));
    let p: Arc<dyn BatchProblem> = Arc::new(Unpackable(relaxation));
    assert!(!neqkin::engine::gpu::layout::packable(&p.kernel().source));
    let packed = MemberLayout { threads_per_member: 8, members_per_workgroup: 2, workgroups_per_member: 1 };
    let err =
        GpuBackend::with_layout(ctx.clone(), p.clone(), Precision::F32, packed).err().expect("packed layout refused");
    assert!(err.to_string().contains("layout"), "{err}");
    let chosen = GpuBackend::new(ctx, p, Precision::F32).unwrap().member_layout();
    assert_eq!(chosen.members_per_workgroup, 1);
}

/// Process CPU seconds, all threads (utime + stime of /proc/self/stat, 10 ms ticks): steadier
/// than wall time on a shared machine, and on lavapipe the GPU's work is this process's.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / 100.0
}

/// Timing probe (ignored; docs/benchmarks.md section 16 quotes it):
/// `NEQKIN_REQUIRE_GPU=1 cargo test --test gpu_layout -- --ignored --nocapture`.
/// Batches of 64 (interband n = 40, DOPRI5 to t = 10; photoexcited N = 300, RK4 dt = 0.01 to
/// t = 0.2), fused and op by op, in 1, 2, 4 and 8 members per workgroup at the threads per
/// member the context chooses (and interband at 64 threads, the GPU choice), rounds
/// alternated; prints the median wall and process CPU seconds of 5 rounds and checks every
/// layout's final state against one member per workgroup (f64, 1e-12).
#[test]
#[ignore = "a timing probe, run by hand"]
fn layout_probe() {
    let Some(ctx) = gpu() else { return };
    let interband64: Arc<dyn BatchProblem> = {
        let model = neqkin::models::interband::Interband;
        let points: Vec<serde_json::Value> = (0..64)
            .map(|i| json!({"grid_step": 0.01, "phonon_velocity": 0.05 + 0.004 * i as f64, "coupling_v": 2.0 + 0.05 * i as f64, "seed_re": 1e-6}))
            .collect();
        model.build(&model.parse_all(&points).unwrap()).unwrap()
    };
    let photo64: Arc<dyn BatchProblem> = {
        let p: Vec<PhotoexcitedParams> = (0..64)
            .map(|i| {
                PhotoexcitedParams::from_json(
                    &json!({"grid_points": 300, "phonon_frequency": 0.3 + 0.004 * i as f64, "zeta": 20.0}),
                )
                .unwrap()
            })
            .collect();
        Arc::new(PhotoexcitedBatch::new(&p).unwrap())
    };
    let dopri = SolveOptions {
        method: Method::Dopri5,
        rtol: 1e-7,
        atol: 1e-10,
        output_times: vec![10.0],
        ..Default::default()
    };
    let rk4 = SolveOptions { method: Method::Rk4, dt: Some(0.01), output_times: vec![0.2], ..Default::default() };
    for (label, p, opts, extra_threads) in
        [("interband n=40 dopri5", &interband64, &dopri, Some(64u32)), ("photoexcited N=300 rk4", &photo64, &rk4, None)]
    {
        let chosen = GpuBackend::new(ctx.clone(), p.clone(), Precision::F64).unwrap().member_layout();
        let mut layouts = vec![];
        for t in std::iter::once(chosen.threads_per_member).chain(extra_threads) {
            for m in [1, 2, 4, 8] {
                layouts.push(MemberLayout {
                    threads_per_member: t,
                    members_per_workgroup: m,
                    workgroups_per_member: 1,
                });
            }
        }
        for fused in [true, false] {
            let mut times: Vec<(Vec<f64>, Vec<f64>)> = vec![(vec![], vec![]); layouts.len()];
            let mut reference: Vec<Option<Vec<f64>>> = vec![None; 2];
            for _round in 0..5 {
                for (k, l) in layouts.iter().enumerate() {
                    let mut b = GpuBackend::with_layout(ctx.clone(), p.clone(), Precision::F64, *l).unwrap();
                    b.set_fused(fused);
                    // Compile outside the timing (the context caches pipelines).
                    let _ = run(
                        &mut b,
                        p,
                        &SolveOptions { output_times: vec![opts.output_times[0] * 1e-3], ..opts.clone() },
                    );
                    let mut b = GpuBackend::with_layout(ctx.clone(), p.clone(), Precision::F64, *l).unwrap();
                    b.set_fused(fused);
                    let (w0, c0) = (std::time::Instant::now(), cpu_seconds());
                    let frames = run(&mut b, p, opts);
                    times[k].0.push(w0.elapsed().as_secs_f64());
                    times[k].1.push(cpu_seconds() - c0);
                    let state = frames.last().unwrap().0.clone();
                    let slot = usize::from(l.threads_per_member != chosen.threads_per_member);
                    match &reference[slot] {
                        None => reference[slot] = Some(state),
                        Some(r) => assert!(rel_diff(r, &state) <= 1e-12, "{label} {l}: differs"),
                    }
                }
            }
            for (l, (w, c)) in layouts.iter().zip(&mut times) {
                w.sort_by(f64::total_cmp);
                c.sort_by(f64::total_cmp);
                eprintln!("{label}, fused {fused}, {l}: median wall {:.3} s, CPU {:.3} s", w[2], c[2]);
            }
        }
    }
}
