//! Hostile probes of packed member layouts (several members per workgroup,
//! src/engine/gpu/layout.rs) with a small packable model whose members can be made to fail
//! or to spend lavapipe's loop budget one at a time:
//!
//!   dy_i = −rate y_i + coupling (⟨y⟩ − y_i) + idle + (NaN for t > poison_time),
//!
//! ⟨y⟩ the member's mean through shared/member_reduce, `idle` a sum of `busy` zeros from
//! the tables (a loop that costs `busy` iterations of lavapipe's loop budget per
//! evaluation and changes nothing).
//!
//! - a member that fails (NaN derivative) fails alone: its neighbours in the same
//!   workgroup take the same steps and reach the same states as with one member per
//!   workgroup (f64 and f32, fused and op by op, batch 1, batch not a multiple of the
//!   members per workgroup);
//! - members that spend lavapipe's loop budget end where they end alone (one member per
//!   workgroup: cut and resumed; packed: fewer attempts per dispatch, see
//!   `GpuBackend::fused_attempts_per_dispatch`);
//! - a member whose single attempt does not fit the budget fails alone;
//! - more workgroups than one dispatch dimension takes (65 535).
//!
//! GPU policy: `neqkin::engine::gpu::testing` (skipped without an adapter, failed when
//! `NEQKIN_REQUIRE_GPU=1`).

use std::sync::{Arc, OnceLock};

use neqkin::engine::backend::{Backend, Precision};
use neqkin::engine::cpu::CpuBackend;
use neqkin::engine::gpu::{GpuBackend, GpuContext, MemberLayout};
use neqkin::engine::model::{BatchLayout, BatchProblem, KernelSource, Observables};
use neqkin::engine::program::status;
use neqkin::engine::solve::{integrate, Method, SolveOptions};

fn gpu() -> Option<Arc<GpuContext>> {
    static CTX: OnceLock<Option<Arc<GpuContext>>> = OnceLock::new();
    CTX.get_or_init(|| neqkin::engine::gpu::testing::gpu_context("gpu_layout_hostile")).clone()
}

const KERNEL: &str = r#"
//! import shared/rhs_bindings
//! import shared/member_reduce
// Workgroup memory only through shared/member_reduce, no storage writes besides `rhs_dy`.
//! layout: packable

fn rhs_member(m: u32, lid: u32, t: Real) {
    let n = dims.state_len;
    let p = m * dims.params_len;
    let rate = params[p];
    let coupling = params[p + 1u];
    let poison = params[p + 2u];
    let busy = select(0u, u32(params[p + 3u]), rhs_active());
    let base = m * n;
    var part = Real(0.0);
    for (var i = lid; i < n; i += WG) {
        part += rhs_y(base + i);
    }
    var idle = Real(0.0);
    for (var k = 0u; k < busy; k += 1u) {
        idle += tables[m * dims.table_stride + (k % 4u)];
    }
    let sums = member_sum2(lid, part, idle);
    let mean = sums.x / Real(n);
    var bad = Real(0.0);
    if (t > poison) {
        bad = runtime_nan();
    }
    for (var i = lid; i < n; i += WG) {
        let yi = rhs_y(base + i);
        rhs_dy(base + i, -rate * yi + coupling * (mean - yi) + sums.y + bad);
    }
}

@compute @workgroup_size(WG)
fn rhs(
    @builtin(workgroup_id) wg_id: vec3<u32>,
    @builtin(num_workgroups) num_wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let m = member_index(wg_id, num_wg);
    if (m >= dims.batch) {
        return;
    }
    rhs_member(m, lid, scalars[dims.t_offset + m]);
    if (workgroup_loops_cut()) {
        for (var i = lid; i < dims.state_len; i += WG) {
            rhs_dy(m * dims.state_len + i, runtime_nan());
        }
    }
}
"#;

/// Per member: (rate, coupling, poison_time, busy).
struct Probe {
    n: usize,
    params: Vec<f64>,
    tables: Vec<f64>,
    /// `member_loops_per_component`.
    loops: usize,
}

/// Threads per member of every layout the probes use.
const THREADS: u32 = 8;

impl Probe {
    /// Reports its loops per component as they are (the idle loop shared out over the
    /// components an invocation covers at [`THREADS`] threads).
    fn new(n: usize, members: &[(f64, f64, f64, f64)]) -> Arc<dyn BatchProblem> {
        let busy = members.iter().fold(0.0f64, |a, m| a.max(m.3)) as usize;
        let per_invocation = n.div_ceil(THREADS as usize);
        Self::reporting(n, members, 1 + busy.div_ceil(per_invocation))
    }

    /// Reports `loops` loops per component, whatever it runs.
    fn reporting(n: usize, members: &[(f64, f64, f64, f64)], loops: usize) -> Arc<dyn BatchProblem> {
        let params = members.iter().flat_map(|&(a, b, c, d)| [a, b, c, d]).collect();
        Arc::new(Probe { n, params, tables: vec![0.0; 4], loops })
    }
}

impl BatchProblem for Probe {
    fn layout(&self) -> BatchLayout {
        BatchLayout {
            batch: self.params.len() / 4,
            state_len: self.n,
            params_len: 4,
            table_len: 4,
            table_stride: 0,
            scratch_len: 0,
        }
    }
    fn params(&self) -> &[f64] {
        &self.params
    }
    fn tables(&self) -> &[f64] {
        &self.tables
    }
    fn initial_state(&self) -> Vec<f64> {
        let b = self.params.len() / 4;
        (0..b * self.n).map(|k| 1.0 + (k % self.n) as f64 / self.n as f64).collect()
    }
    fn rhs_member(&self, _m: usize, p: &[f64], _tb: &[f64], t: f64, y: &[f64], dy: &mut [f64], _s: &mut [f64]) {
        let mean = y.iter().sum::<f64>() / y.len() as f64;
        let bad = if t > p[2] { f64::NAN } else { 0.0 };
        for (d, yi) in dy.iter_mut().zip(y) {
            *d = -p[0] * yi + p[1] * (mean - yi) + bad;
        }
    }
    fn kernel(&self) -> KernelSource {
        KernelSource { name: "test/probe".into(), source: KERNEL.into() }
    }
    fn member_loops_per_component(&self) -> usize {
        self.loops
    }
    fn observables(&self, _m: usize, _t: f64, y: &[f64]) -> Observables {
        Observables { scalars: vec![("mean".into(), y.iter().sum::<f64>() / y.len() as f64)], arrays: vec![] }
    }
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

fn layout(threads: u32, members: u32) -> MemberLayout {
    MemberLayout { threads_per_member: threads, members_per_workgroup: members, workgroups_per_member: 1 }
}

fn gpu_run(
    ctx: &Arc<GpuContext>,
    p: &Arc<dyn BatchProblem>,
    l: MemberLayout,
    fused: bool,
    precision: Precision,
    opts: &SolveOptions,
) -> Frames {
    eprintln!("run: {l}, fused {fused}, {precision:?}");
    let mut b = GpuBackend::with_layout(ctx.clone(), p.clone(), precision, l).unwrap();
    b.set_fused(fused);
    let f = run(&mut b, p, opts);
    if f.last().unwrap().1.len() <= 8 {
        eprintln!("  status {:?}, accepted {:?}", f.last().unwrap().1, f.last().unwrap().2);
    }
    f
}

fn dopri5(output_times: Vec<f64>) -> SolveOptions {
    SolveOptions { method: Method::Dopri5, rtol: 1e-7, atol: 1e-9, output_times, ..Default::default() }
}

/// Member `m`'s values in frame `f`.
fn member(f: &(Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>), n: usize, m: usize) -> (&[f64], f64, f64, f64) {
    (&f.0[m * n..(m + 1) * n], f.1[m], f.2[m], f.3[m])
}

/// Every member of `got` against `want`: same status, accepted and rejected steps; states
/// within `tol` (absolute; the states are O(1)) for members that did not fail.
fn same_members(what: &str, n: usize, got: &Frames, want: &Frames, tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: frames");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        for m in 0..w.1.len() {
            let (gy, gs, ga, gr) = member(g, n, m);
            let (wy, ws, wa, wr) = member(w, n, m);
            assert_eq!((gs, ga, gr), (ws, wa, wr), "{what}, frame {k}, member {m}: (status, accepted, rejected)");
            if ws != status::FAILED {
                let d = gy.iter().zip(wy).map(|(a, b)| (a - b).abs()).fold(0.0f64, f64::max);
                assert!(d <= tol, "{what}, frame {k}, member {m}: state differs by {d:.3e}");
            }
        }
    }
}

/// Batch of 5, member 1 poisoned at t = 0.3 (a NaN derivative from then on), the others
/// with rates that make them take different numbers of steps.
fn poisoned() -> Arc<dyn BatchProblem> {
    Probe::new(
        20,
        &[
            (1.0, 0.5, 1e30, 0.0),
            (2.0, 0.5, 0.3, 0.0),
            (8.0, 2.0, 1e30, 0.0),
            (0.5, 0.1, 1e30, 0.0),
            (30.0, 1.0, 1e30, 0.0),
        ],
    )
}

fn failing_member_fails_alone(precision: Precision) {
    let Some(ctx) = gpu() else { return };
    if precision == Precision::F64 && !ctx.supports_f64() {
        return;
    }
    let p = poisoned();
    let opts = dopri5(vec![0.2, 1.0, 2.0]);
    let cpu = run(&mut CpuBackend::new(p.clone()), &p, &opts);
    let last = cpu.last().unwrap();
    assert_eq!(last.1[1], status::FAILED, "the poisoned member fails on the CPU");
    assert!(last.1.iter().enumerate().all(|(m, s)| m == 1 || *s == status::REACHED), "{:?}", last.1);
    // f32: tolerances f32 can meet.
    let opts = if precision == Precision::F32 { SolveOptions { rtol: 1e-4, atol: 1e-6, ..opts } } else { opts };
    let want = gpu_run(&ctx, &p, layout(THREADS, 1), false, precision, &opts);
    let want_status = &want.last().unwrap().1;
    assert_eq!(want_status[1], status::FAILED, "{precision:?}: the poisoned member fails on the GPU");
    assert!(want_status.iter().enumerate().all(|(m, s)| m == 1 || *s == status::REACHED), "{want_status:?}");
    if precision == Precision::F64 {
        // The GPU's one-member layout agrees with the CPU member by member.
        for (w, c) in want.iter().zip(&cpu) {
            assert_eq!(w.1, c.1, "GPU single layout vs CPU: status");
        }
    }
    let packings: &[u32] = if precision == Precision::F64 { &[1, 2, 3, 4] } else { &[3] };
    for &members in packings {
        for fused in [false, true] {
            let got = gpu_run(&ctx, &p, layout(THREADS, members), fused, precision, &opts);
            let what = format!("{precision:?}, {members} members/wg, fused {fused}");
            if precision == Precision::F64 {
                same_members(&what, 20, &got, &want, 1e-12);
            } else {
                // f32: fused and op by op round differently (the failing member's steps into
                // the NaN differ by one), so packed is compared with unpacked on the same path.
                let alone = gpu_run(&ctx, &p, layout(THREADS, 1), fused, precision, &opts);
                same_members(&what, 20, &got, &alone, 1e-5);
            }
        }
    }
}

#[test]
fn failing_member_fails_alone_in_packed_workgroups() {
    failing_member_fails_alone(Precision::F64);
}

#[test]
// In f32 this once never ended: with `h_min` = 1e-14 t_final, far below f32's spacing of t,
// the poisoned member shrank its step until `t + h == t`, had steps accepted below the NaN
// onset without advancing, grew `h` into it again, and repeated. `h_min` now scales with the
// precision's unit roundoff (`integrators::min_step`).
fn failing_member_fails_alone_in_packed_workgroups_f32() {
    failing_member_fails_alone(Precision::F32);
}

/// One member, three segments per workgroup (two spare segments mirror it).
#[test]
fn batch_of_one_in_a_packed_workgroup() {
    let Some(ctx) = gpu() else { return };
    let p = Probe::new(20, &[(3.0, 0.5, 1e30, 0.0)]);
    let opts = dopri5(vec![0.5, 1.0]);
    let precision = if ctx.supports_f64() { Precision::F64 } else { Precision::F32 };
    let want = gpu_run(&ctx, &p, layout(THREADS, 1), false, precision, &opts);
    assert_eq!(want.last().unwrap().1[0], status::REACHED);
    for fused in [false, true] {
        let got = gpu_run(&ctx, &p, layout(THREADS, 3), fused, precision, &opts);
        same_members(&format!("batch 1, 3 members/wg, fused {fused}"), 20, &got, &want, 1e-12);
    }
}

/// Member 2 spends `busy` loop iterations per evaluation: a fused DOPRI5 dispatch runs out
/// of lavapipe's budget after a few attempts and its workgroup resumes in the next
/// dispatch. Its neighbours in a packed workgroup must end where they end alone (no effect
/// on adapters without a loop budget).
fn busy_members_end_as_alone(label: &str, busy: [f64; 5], honest: bool) {
    let Some(ctx) = gpu() else { return };
    let rates = [(1.0, 0.5), (2.0, 0.5), (8.0, 2.0), (0.5, 0.1), (30.0, 1.0)];
    let members: Vec<_> = rates.iter().zip(busy).map(|(&(a, b), w)| (a, b, 1e30, w)).collect();
    let p = if honest { Probe::new(20, &members) } else { Probe::reporting(20, &members, 1) };
    let quiet: Vec<_> = rates.iter().map(|&(a, b)| (a, b, 1e30, 0.0)).collect();
    let q = Probe::new(20, &quiet);
    let opts = dopri5(vec![0.5, 2.0]);
    let precision = if ctx.supports_f64() { Precision::F64 } else { Precision::F32 };
    // The same problem without the idle loop, one member per workgroup, op by op.
    let want = gpu_run(&ctx, &q, layout(THREADS, 1), false, precision, &opts);
    assert!(want.last().unwrap().1.iter().all(|s| *s == status::REACHED));
    for members in [1, 2, 3, 4] {
        let got = gpu_run(&ctx, &p, layout(THREADS, members), true, precision, &opts);
        same_members(&format!("{label}, {members} members/wg, fused"), 20, &got, &want, 1e-12);
    }
}

#[test]
fn busy_member_leaves_its_packed_neighbours_alone() {
    busy_members_end_as_alone("busy member 2", [0.0, 0.0, 3000.0, 0.0, 0.0], true);
}

/// Every member spends the same loops per evaluation (as a model's members do); members
/// that are done skip theirs, so the segments of a workgroup would run out unevenly.
#[test]
fn busy_members_in_packed_workgroups_end_as_alone() {
    busy_members_end_as_alone("every member busy", [3000.0; 5], true);
}

/// A model that under-reports its loops gets its packed fused dispatches cut by lavapipe:
/// the neighbours of the cut member came back with states off by 0.44 (same steps, same
/// status) in workgroups of 2 members; one member per workgroup resumes correctly.
#[test]
#[ignore = "known: a loop-budget cut inside a packed workgroup (lavapipe, members_per_workgroup > 1) corrupts \
            the neighbours' states; avoided by capping attempts per dispatch from member_loops_per_component, \
            so only a model that under-reports its loops reaches it"]
fn packed_workgroup_cut_by_the_loop_budget_resumes_correctly() {
    busy_members_end_as_alone("every member busy, loops under-reported", [3000.0; 5], false);
}

/// Member 2 spends more than the whole budget in one fused attempt (lavapipe; the model
/// under-reports its loops, else the backend would run op by op): it fails,
/// and it alone — its neighbours in a packed workgroup end as they do in workgroups of
/// their own.
#[test]
fn member_over_the_loop_budget_fails_alone() {
    let Some(ctx) = gpu() else { return };
    let members = [
        (1.0, 0.5, 1e30, 0.0),
        (2.0, 0.5, 1e30, 0.0),
        (8.0, 2.0, 1e30, 20000.0),
        (0.5, 0.1, 1e30, 0.0),
        (30.0, 1.0, 1e30, 0.0),
    ];
    // Reports one loop per component, so that the backend tries the fused kernel.
    let p = Probe::reporting(20, &members, 1);
    let opts = dopri5(vec![0.5, 2.0]);
    let precision = if ctx.supports_f64() { Precision::F64 } else { Precision::F32 };
    let want = gpu_run(&ctx, &p, layout(THREADS, 1), true, precision, &opts);
    let last = want.last().unwrap();
    eprintln!("one member per workgroup, fused: status {:?}", last.1);
    for members in [2, 3, 4] {
        let got = gpu_run(&ctx, &p, layout(THREADS, members), true, precision, &opts);
        same_members(&format!("member 2 over the budget, {members} members/wg, fused"), 20, &got, &want, 1e-12);
    }
}

/// More workgroups than one grid dimension holds (65 535): the 2-D grid covers every member.
#[test]
fn packed_batch_beyond_one_grid_dimension() {
    let Some(ctx) = gpu() else { return };
    let batch = 2 * 65_535 + 5;
    let members: Vec<_> = (0..batch).map(|m| (0.5 + (m % 97) as f64 * 0.01, 0.3, 1e30, 0.0)).collect();
    let p = Probe::new(2, &members);
    let opts = SolveOptions { method: Method::Rk4, dt: Some(0.25), output_times: vec![1.0], ..Default::default() };
    let precision = if ctx.supports_f64() { Precision::F64 } else { Precision::F32 };
    let cpu = run(&mut CpuBackend::new(p.clone()), &p, &opts);
    let tol = if precision == Precision::F64 { 1e-12 } else { 1e-5 };
    for fused in [false, true] {
        let got = gpu_run(&ctx, &p, layout(THREADS, 2), fused, precision, &opts);
        let (g, c) = (got.last().unwrap(), cpu.last().unwrap());
        assert_eq!(g.1, c.1, "fused {fused}: status");
        let d = g.0.iter().zip(&c.0).map(|(a, b)| (a - b).abs()).fold(0.0f64, f64::max);
        assert!(d <= tol, "fused {fused}: GPU differs from CPU by {d:.3e}");
    }
}
