//! Every engine op on the GPU backend against the CPU reference, on identical inputs,
//! at both precisions, plus a hand-built RK4 step program replayed for many steps.
//!
//! Tolerances (max abs difference over max abs CPU value of the compared array):
//! f64 1e-12; f32 1e-5 per op and 1e-4 after the RK4 replay (inputs are rounded to f32
//! on upload, so f32 results carry ~1e-7 relative noise per op). Status and accept
//! codes must match exactly.
//!
//! These tests need a GPU adapter (lavapipe in CI). GPU policy: `neqkin::engine::gpu::testing`
//! (skipped with a notice without an adapter, failed when `NEQKIN_REQUIRE_GPU=1`, as in CI).

use std::sync::{Arc, OnceLock};

use neqkin::engine::backend::{Backend, Precision};
use neqkin::engine::cpu::CpuBackend;
use neqkin::engine::gpu::{copy_bandwidth, max_batch, GpuBackend, GpuContext};
use neqkin::engine::model::{BatchLayout, BatchProblem, KernelSource, Observables};
use neqkin::engine::program::{status, ControlIds, ControlLaw, Op, ScalarId, StepProgram, ToleranceBlock, VecId};
use neqkin::NeqkinError;

/// Shared device for all tests; `None` when the GPU tests are skipped.
fn gpu() -> Option<Arc<GpuContext>> {
    static CTX: OnceLock<Option<Arc<GpuContext>>> = OnceLock::new();
    CTX.get_or_init(|| {
        let ctx = neqkin::engine::gpu::testing::gpu_context("gpu_ops")?;
        println!("adapter: {:?}", ctx.info());
        Some(ctx)
    })
    .clone()
}

/// Precisions to test on this adapter: f32 always, f64 when the adapter has it.
fn precisions(ctx: &GpuContext) -> Vec<Precision> {
    if ctx.supports_f64() {
        vec![Precision::F32, Precision::F64]
    } else {
        println!("adapter {} has no SHADER_F64: f64 comparisons not run", ctx.info().name);
        vec![Precision::F32]
    }
}

fn tol(p: Precision) -> f64 {
    match p {
        Precision::F32 => 1e-5,
        Precision::F64 => 1e-12,
    }
}

/// Toy model: linear relaxation with diffusion and a time-linear drive,
/// `dy_i = -k (y_i - c_i) + D (y_{i+1} - 2 y_i + y_{i-1}) + a t` (zero-flux ends).
/// Params per member: `[k, D, a]`; tables: `c` (per member, or shared when stride 0).
struct Relax {
    layout: BatchLayout,
    params: Vec<f64>,
    tables: Vec<f64>,
    source: String,
}

const RELAX_WGSL: &str = r#"
//! import shared/rhs_bindings

@compute @workgroup_size(WG)
fn rhs(
    @builtin(workgroup_id) wg_id: vec3<u32>,
    @builtin(num_workgroups) num_wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let m = member_index(wg_id, num_wg);
    if m >= dims.batch {
        return;
    }
    let n = dims.state_len;
    let base = m * n;
    let p = m * dims.params_len;
    let k = params[p];
    let d = params[p + 1u];
    let a = params[p + 2u];
    let t = scalars[dims.t_offset + m];
    let tb = m * dims.table_stride;
    for (var i = lid; i < n; i += WG) {
        let yi = y[base + i];
        var left = yi;
        if i > 0u {
            left = y[base + i - 1u];
        }
        var right = yi;
        if i + 1u < n {
            right = y[base + i + 1u];
        }
        dy[base + i] = -k * (yi - tables[tb + i]) + d * (right - 2.0 * yi + left) + a * t;
    }
}
"#;

impl Relax {
    fn new(batch: usize, n: usize, shared_table: bool) -> Self {
        let params = (0..batch).flat_map(|m| [0.5 + m as f64 * 0.25, 0.2, 0.1 * m as f64]).collect();
        let members = if shared_table { 1 } else { batch };
        let tables = (0..members * n).map(|j| ((j * 7) % 13) as f64 / 13.0 - 0.3).collect();
        Relax {
            layout: BatchLayout {
                batch,
                state_len: n,
                params_len: 3,
                table_len: n,
                table_stride: if shared_table { 0 } else { n },
                scratch_len: 0,
            },
            params,
            tables,
            source: RELAX_WGSL.into(),
        }
    }
}

impl BatchProblem for Relax {
    fn layout(&self) -> BatchLayout {
        self.layout
    }
    fn params(&self) -> &[f64] {
        &self.params
    }
    fn tables(&self) -> &[f64] {
        &self.tables
    }
    fn initial_state(&self) -> Vec<f64> {
        vec![0.0; self.layout.batch * self.layout.state_len]
    }
    fn rhs_member(
        &self,
        _m: usize,
        params: &[f64],
        c: &[f64],
        t: f64,
        y: &[f64],
        dy: &mut [f64],
        _scratch: &mut [f64],
    ) {
        let (k, d, a) = (params[0], params[1], params[2]);
        let n = y.len();
        for i in 0..n {
            let yi = y[i];
            let left = if i > 0 { y[i - 1] } else { yi };
            let right = if i + 1 < n { y[i + 1] } else { yi };
            dy[i] = -k * (yi - c[i]) + d * (right - 2.0 * yi + left) + a * t;
        }
    }
    fn kernel(&self) -> KernelSource {
        KernelSource { name: "test/relaxation".into(), source: self.source.clone() }
    }
    fn observables(&self, _member: usize, _t: f64, _y: &[f64]) -> Observables {
        Observables::default()
    }
}

/// Deterministic pseudo-random values in [-1, 1).
fn noise(len: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

/// The same problem on both backends, with storage allocated in lockstep.
struct Pair {
    cpu: CpuBackend,
    gpu: GpuBackend,
    precision: Precision,
}

impl Pair {
    fn new(ctx: &Arc<GpuContext>, problem: Relax, precision: Precision) -> Self {
        let problem: Arc<dyn BatchProblem> = Arc::new(problem);
        Pair {
            cpu: CpuBackend::new(problem.clone()),
            gpu: GpuBackend::new(ctx.clone(), problem, precision).expect("GPU backend"),
            precision,
        }
    }
    /// A vector holding `data` on both backends. Values are rounded to the kernel
    /// precision first so both start from identical inputs.
    fn vector(&mut self, data: &[f64]) -> VecId {
        let data = self.round(data);
        let v = self.cpu.new_vector().unwrap();
        assert_eq!(self.gpu.new_vector().unwrap(), v);
        self.cpu.write_vector(v, &data).unwrap();
        self.gpu.write_vector(v, &data).unwrap();
        v
    }
    fn scalars(&mut self, data: &[f64]) -> ScalarId {
        let data = self.round(data);
        let s = self.cpu.new_scalars().unwrap();
        assert_eq!(self.gpu.new_scalars().unwrap(), s);
        self.cpu.write_scalars(s, &data).unwrap();
        self.gpu.write_scalars(s, &data).unwrap();
        s
    }
    fn round(&self, data: &[f64]) -> Vec<f64> {
        match self.precision {
            Precision::F64 => data.to_vec(),
            Precision::F32 => data.iter().map(|&x| x as f32 as f64).collect(),
        }
    }
    fn run(&mut self, ops: Vec<Op>, repeats: usize) {
        let program = StepProgram { ops };
        let c = self.cpu.compile(&program).unwrap();
        let g = self.gpu.compile(&program).expect("GPU compile");
        self.cpu.run(c, repeats).unwrap();
        self.gpu.run(g, repeats).expect("GPU run");
    }
    fn check_vector(&mut self, what: &str, v: VecId, tol: f64) -> f64 {
        let (c, g) = (self.cpu.read_vector(v).unwrap(), self.gpu.read_vector(v).unwrap());
        compare(what, self.precision, &c, &g, tol)
    }
    fn check_scalars(&mut self, what: &str, s: ScalarId, tol: f64) -> f64 {
        let (c, g) = (self.cpu.read_scalars(s).unwrap(), self.gpu.read_scalars(s).unwrap());
        compare(what, self.precision, &c, &g, tol)
    }
    fn check_exact(&mut self, what: &str, s: ScalarId) {
        let (c, g) = (self.cpu.read_scalars(s).unwrap(), self.gpu.read_scalars(s).unwrap());
        assert_eq!(c, g, "{what} ({}) differs: cpu {c:?} gpu {g:?}", self.precision);
    }
}

/// Max abs difference over max abs CPU value; NaN must match NaN (and inf, inf).
fn compare(what: &str, p: Precision, cpu: &[f64], gpu: &[f64], tol: f64) -> f64 {
    assert_eq!(cpu.len(), gpu.len());
    let scale = cpu.iter().filter(|x| x.is_finite()).fold(0.0f64, |a, x| a.max(x.abs())).max(f64::MIN_POSITIVE);
    let mut err: f64 = 0.0;
    for (i, (c, g)) in cpu.iter().zip(gpu).enumerate() {
        if !c.is_finite() || !g.is_finite() {
            assert!(c.is_nan() && g.is_nan() || c == g, "{what} ({p}) [{i}]: cpu {c} gpu {g}");
            continue;
        }
        err = err.max((c - g).abs() / scale);
    }
    println!("{what} ({p}): max relative error {err:.3e} (tolerance {tol:.0e})");
    assert!(err <= tol, "{what} ({p}): max relative error {err:e} > {tol:e}");
    err
}

const BATCH: usize = 5;
/// More than one workgroup (256) per member, so the reductions' strided loops run.
const N: usize = 300;

#[test]
fn rhs_matches_cpu() {
    let Some(ctx) = gpu() else { return };
    for p in precisions(&ctx) {
        for shared in [false, true] {
            let mut pair = Pair::new(&ctx, Relax::new(BATCH, N, shared), p);
            let y = pair.vector(&noise(BATCH * N, 1));
            let dy = pair.vector(&vec![0.0; BATCH * N]);
            let t = pair.scalars(&[0.0, 0.5, 1.0, 2.0, 3.5]);
            pair.run(vec![Op::Rhs { t, y, dy }], 1);
            pair.check_vector(if shared { "rhs (shared tables)" } else { "rhs" }, dy, tol(p));
        }
    }
}

#[test]
fn lincomb_and_scalar_axpy_match_cpu() {
    let Some(ctx) = gpu() else { return };
    for p in precisions(&ctx) {
        let mut pair = Pair::new(&ctx, Relax::new(BATCH, N, false), p);
        let inputs: Vec<VecId> = (0..7).map(|j| pair.vector(&noise(BATCH * N, 10 + j))).collect();
        let h = pair.scalars(&[0.1, 0.01, 1e-3, 0.5, 2.0]);
        let (small, split, empty) =
            (pair.vector(&[0.0; BATCH * N]), pair.vector(&[0.0; BATCH * N]), pair.vector(&[7.0; BATCH * N]));
        let a = pair.scalars(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        let ts = pair.scalars(&[0.0; BATCH]);
        let c = [1.0, -0.5, 1.0 / 3.0, 2.0 / 9.0, -7.0 / 11.0, 0.25, 1e-3];
        pair.run(
            vec![
                Op::Lincomb { out: small, plain: vec![(1.0, inputs[0])], h, scaled: vec![(0.5, inputs[1])] },
                // 3 plain + 4 scaled terms: more than LINCOMB_MAX_TERMS, so chained dispatches.
                Op::Lincomb {
                    out: split,
                    plain: (0..3).map(|j| (c[j], inputs[j])).collect(),
                    h,
                    scaled: (3..7).map(|j| (c[j], inputs[j])).collect(),
                },
                Op::Lincomb { out: empty, plain: vec![], h, scaled: vec![] },
                Op::ScalarAxpy { out: ts, a, c: 0.5, h },
            ],
            1,
        );
        pair.check_vector("lincomb (2 terms)", small, tol(p));
        pair.check_vector("lincomb (7 terms, chained)", split, tol(p));
        pair.check_vector("lincomb (no terms)", empty, 0.0);
        pair.check_scalars("scalar_axpy", ts, tol(p));
    }
}

#[test]
fn error_norm_select_and_steady_check_match_cpu() {
    let Some(ctx) = gpu() else { return };
    for p in precisions(&ctx) {
        let mut pair = Pair::new(&ctx, Relax::new(BATCH, N, false), p);
        let mut e = noise(BATCH * N, 3).iter().map(|x| x * 1e-4).collect::<Vec<_>>();
        e[4 * N + 150] = f64::NAN; // member 4 fails
        let e = pair.vector(&e);
        let y0 = pair.vector(&noise(BATCH * N, 4));
        let y1 = pair.vector(&noise(BATCH * N, 5));
        // dy with member m scaled by 10^-m, so rms falls on clear sides of tol.
        let dy: Vec<f64> =
            noise(BATCH * N, 6).iter().enumerate().map(|(j, x)| x * 10f64.powi(-((j / N) as i32))).collect();
        let dy = pair.vector(&dy);
        let dst = pair.vector(&noise(BATCH * N, 7));
        let flag = pair.scalars(&[1.0, 0.0, 1.0, 0.0, 1.0]);
        let norm = pair.scalars(&[0.0; BATCH]);
        let norm_dev = pair.scalars(&[0.0; BATCH]);
        // A reference close to y0 (deviations ~1e-3 of it): weights from |y − r|.
        let y_ref: Vec<f64> = noise(BATCH * N, 4).iter().zip(noise(BATCH * N, 8)).map(|(a, b)| a + 1e-3 * b).collect();
        let y_ref = pair.vector(&y_ref);
        let st = pair.scalars(&[status::RUNNING, status::RUNNING, status::RUNNING, status::REACHED, status::RUNNING]);
        let accept = pair.scalars(&[1.0, 1.0, 1.0, 1.0, 0.0]);
        let ctrl = controls(&mut pair, st, accept);
        let blocks = vec![
            ToleranceBlock { start: 0, end: 100, atol: 1e-6, rtol: 1e-3 },
            ToleranceBlock { start: 120, end: N, atol: 1e-4, rtol: 1e-2 },
        ];
        pair.run(
            vec![
                Op::ErrorNorm { out: norm, err: e, y: y0, y_new: y1, reference: None, blocks: blocks.clone() },
                Op::ErrorNorm { out: norm_dev, err: e, y: y0, y_new: y1, reference: Some(y_ref), blocks },
                Op::Select { dst, src: y0, flag },
                Op::SteadyCheck { ctrl, dy, range: (10, N - 10), tol: 5e-3 },
            ],
            1,
        );
        pair.check_scalars("error_norm", norm, tol(p));
        pair.check_scalars("error_norm (deviation from a reference)", norm_dev, tol(p));
        pair.check_vector("select", dst, 0.0);
        pair.check_exact("steady_check status", st);
    }
}

/// Controller arrays with the given status and accept arrays, the rest zero.
fn controls(pair: &mut Pair, status: ScalarId, accept: ScalarId) -> ControlIds {
    let mut z = || pair.scalars(&[0.0; BATCH]);
    ControlIds {
        t: z(),
        h: z(),
        t_end: z(),
        status,
        accept,
        n_accept: z(),
        n_reject: z(),
        h_used: z(),
        err: z(),
        h_max: z(),
    }
}

#[test]
fn begin_step_and_control_match_cpu() {
    let Some(ctx) = gpu() else { return };
    const B: usize = 8;
    let adaptive = ControlLaw::Adaptive { order: 4, safety: 0.9, min_factor: 0.2, max_factor: 5.0, h_min: 1e-3 };
    for p in precisions(&ctx) {
        for law in [ControlLaw::Fixed, adaptive] {
            let mut pair = Pair::new(&ctx, Relax::new(B, 4, false), p);
            let r = status::RUNNING;
            let mut s = |v: [f64; B]| pair.scalars(&v);
            let ctrl = ControlIds {
                t: s([0.0, 0.5, 0.95, 1.0, 0.2, 0.3, 0.4, 0.0]),
                h: s([0.1, 0.1, 0.1, 0.1, 0.1, 0.002, 0.1, 0.1]),
                t_end: s([1.0; B]),
                status: s([r, r, r, r, status::REACHED, r, r, r]),
                accept: s([0.0; B]),
                n_accept: s([3.0; B]),
                n_reject: s([1.0; B]),
                h_used: s([0.0; B]),
                // accepted, accepted (err 0), clipped, done, not running, rejected below
                // h_min, rejected, NaN (infinite err after f32 rounding for the last).
                err: s([0.5, 0.0, 0.3, 0.2, 0.1, 8.0, 2.5, f64::NAN]),
                h_max: s([f64::INFINITY, 0.05, f64::INFINITY, 1.0, 1.0, 1.0, 1.0, 1.0]),
            };
            pair.run(vec![Op::BeginStep { ctrl }, Op::Control { ctrl, law }], 1);
            let what = format!("{law:?}");
            pair.check_scalars(&format!("begin_step h_used, {what}"), ctrl.h_used, tol(p));
            pair.check_exact(&format!("control status, {what}"), ctrl.status);
            pair.check_exact(&format!("control accept, {what}"), ctrl.accept);
            pair.check_exact(&format!("control n_accept, {what}"), ctrl.n_accept);
            pair.check_exact(&format!("control n_reject, {what}"), ctrl.n_reject);
            pair.check_scalars(&format!("control t, {what}"), ctrl.t, tol(p));
            // The step factor err^(-1/(order+1)) is computed in f32 on the GPU at both
            // precisions (see control_member in shaders/engine/ops.wgsl).
            pair.check_scalars(&format!("control h, {what}"), ctrl.h, 1e-6);
        }
    }
}

/// Classic RK4 with fixed steps as a step program: begin_step, 4 stages, the finiteness
/// norm, control, select. Members use different steps and all land on t_end.
#[test]
fn rk4_program_replay_matches_cpu() {
    let Some(ctx) = gpu() else { return };
    const B: usize = 3;
    for p in precisions(&ctx) {
        let mut pair = Pair::new(&ctx, Relax::new(B, N, false), p);
        let y = pair.vector(&noise(B * N, 8));
        let zero = vec![0.0; B * N];
        let [k1, k2, k3, k4, tmp, y_new] = [(); 6].map(|_| pair.vector(&zero));
        let mut s = |v: [f64; B]| pair.scalars(&v);
        let ctrl = ControlIds {
            t: s([0.0; B]),
            h: s([0.013, 1.0 / 32.0, 0.031]),
            t_end: s([1.0; B]),
            status: s([status::RUNNING; B]),
            accept: s([0.0; B]),
            n_accept: s([0.0; B]),
            n_reject: s([0.0; B]),
            h_used: s([0.0; B]),
            err: s([0.0; B]),
            h_max: s([f64::INFINITY; B]),
        };
        let ts = s([0.0; B]);
        let h = ctrl.h_used;
        let stage = |out, k| Op::Lincomb { out, plain: vec![(1.0, y)], h, scaled: vec![(0.5, k)] };
        let ops = vec![
            Op::BeginStep { ctrl },
            Op::Rhs { t: ctrl.t, y, dy: k1 },
            Op::ScalarAxpy { out: ts, a: ctrl.t, c: 0.5, h },
            stage(tmp, k1),
            Op::Rhs { t: ts, y: tmp, dy: k2 },
            stage(tmp, k2),
            Op::Rhs { t: ts, y: tmp, dy: k3 },
            Op::ScalarAxpy { out: ts, a: ctrl.t, c: 1.0, h },
            Op::Lincomb { out: tmp, plain: vec![(1.0, y)], h, scaled: vec![(1.0, k3)] },
            Op::Rhs { t: ts, y: tmp, dy: k4 },
            Op::Lincomb {
                out: y_new,
                plain: vec![(1.0, y)],
                h,
                scaled: vec![(1.0 / 6.0, k1), (1.0 / 3.0, k2), (1.0 / 3.0, k3), (1.0 / 6.0, k4)],
            },
            Op::ErrorNorm {
                out: ctrl.err,
                err: y_new,
                y: y_new,
                y_new,
                reference: None,
                blocks: vec![ToleranceBlock { start: 0, end: N, atol: 1.0, rtol: 0.0 }],
            },
            Op::Control { ctrl, law: ControlLaw::Fixed },
            Op::Select { dst: y, src: y_new, flag: ctrl.accept },
        ];
        // 1 / 0.013 → 77 steps for the slowest member; the others idle once REACHED.
        pair.run(ops, 80);
        let tol = match p {
            Precision::F32 => 1e-4,
            Precision::F64 => 1e-12,
        };
        pair.check_vector("rk4 replay y(t=1)", y, tol);
        pair.check_scalars("rk4 replay t", ctrl.t, 0.0);
        pair.check_exact("rk4 replay status", ctrl.status);
        pair.check_exact("rk4 replay n_accept", ctrl.n_accept);
        let st = pair.gpu.read_scalars(ctrl.status).unwrap();
        assert!(st.iter().all(|&x| x == status::REACHED), "all members reach t_end: {st:?}");
        assert_eq!(pair.gpu.read_scalars(ctrl.n_accept).unwrap(), vec![77.0, 32.0, 33.0]);
    }
}

#[test]
fn scalars_allocated_after_compile_rebuild_programs() {
    let Some(ctx) = gpu() else { return };
    let mut pair = Pair::new(&ctx, Relax::new(BATCH, 8, false), Precision::F32);
    let a = pair.scalars(&[1.0, 2.0, 3.0, 4.0, 5.0]);
    let h = pair.scalars(&[1.0; BATCH]);
    let out = pair.scalars(&[0.0; BATCH]);
    let program = StepProgram { ops: vec![Op::ScalarAxpy { out, a, c: 2.0, h }] };
    let id = pair.gpu.compile(&program).unwrap();
    // Enough new arrays to grow the arena (and replace its buffer) at least once.
    for _ in 0..40 {
        pair.gpu.new_scalars().unwrap();
    }
    pair.gpu.run(id, 1).unwrap();
    assert_eq!(pair.gpu.read_scalars(out).unwrap(), vec![3.0, 4.0, 5.0, 6.0, 7.0]);
    assert_eq!(pair.gpu.read_scalars(a).unwrap(), vec![1.0, 2.0, 3.0, 4.0, 5.0]);
}

#[test]
fn broken_kernel_is_a_gpu_error() {
    let Some(ctx) = gpu() else { return };
    let mut problem = Relax::new(2, 4, false);
    problem.source =
        "//! import shared/rhs_bindings\n@compute @workgroup_size(WG) fn rhs() { let x: u32 = 1.5; }\n".into();
    match GpuBackend::new(ctx, Arc::new(problem), Precision::F32) {
        Err(NeqkinError::Gpu { context, message }) => {
            assert!(context.contains("test/relaxation"), "{context}");
            assert!(message.contains("rhs"), "the message carries the shader diagnostic: {message}");
            println!("broken kernel reported: {context}: {message}");
        }
        Err(e) => panic!("expected a Gpu error, got {e}"),
        Ok(_) => panic!("a broken kernel compiled"),
    }
}

#[test]
fn backend_and_context_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send::<GpuBackend>();
    assert_send_sync::<GpuContext>();
}

#[test]
fn unknown_adapter_name_is_no_adapter() {
    let Some(_ctx) = gpu() else { return };
    let err = GpuContext::with_adapter(Some("no-such-adapter-xyz")).unwrap_err();
    assert!(matches!(err, NeqkinError::NoAdapter(_)), "{err}");
    assert!(!neqkin::engine::gpu::list_adapters().is_empty());
}

#[test]
fn precision_sizing_and_bandwidth() {
    let Some(ctx) = gpu() else { return };
    assert_eq!(ctx.resolve_precision(Some(Precision::F32)).unwrap(), Precision::F32);
    let auto = ctx.resolve_precision(None).unwrap();
    assert_eq!(auto == Precision::F64, ctx.supports_f64());
    if !ctx.supports_f64() {
        assert!(
            matches!(ctx.resolve_precision(Some(Precision::F64)), Err(NeqkinError::InvalidParameter { ref field, .. }) if field == "precision")
        );
    }
    let layout =
        BatchLayout { batch: 0, state_len: 1000, params_len: 10, table_len: 5000, table_stride: 0, scratch_len: 0 };
    let m32 = max_batch(&ctx, &layout, Precision::F32, 8, 20);
    let m64 = max_batch(&ctx, &layout, Precision::F64, 8, 20);
    let expect = (ctx.limits().max_storage_buffer_binding_size.min(ctx.limits().max_buffer_size) / 4000) as usize;
    assert_eq!(m32, expect);
    assert_eq!(m64, m32 / 2);
    let gbs = copy_bandwidth(&ctx, 16 << 20, Precision::F32).unwrap();
    println!("copy bandwidth (16 MiB, f32): {gbs:.2} GB/s; max_batch f32 {m32}, f64 {m64}");
    assert!(gbs > 0.0 && gbs.is_finite());
}

/// More members than workgroups per grid dimension (65535 on lavapipe): the kernels with
/// one workgroup per member (rhs, error_norm) run on a 2-D grid; the others alongside.
#[test]
fn batch_beyond_one_grid_dimension() {
    let Some(ctx) = gpu() else { return };
    let b = ctx.limits().max_compute_workgroups_per_dimension as usize + 1000;
    let n = 3;
    let mut pair = Pair::new(&ctx, Relax::new(b, n, false), Precision::F32);
    let y = pair.vector(&noise(b * n, 21));
    let dy = pair.vector(&vec![0.0; b * n]);
    let out = pair.vector(&vec![0.0; b * n]);
    let t: Vec<f64> = (0..b).map(|m| (m % 17) as f64 * 0.1).collect();
    let t = pair.scalars(&t);
    let h = pair.scalars(&vec![0.01; b]);
    let norm = pair.scalars(&vec![0.0; b]);
    let t2 = pair.scalars(&vec![0.0; b]);
    pair.run(
        vec![
            Op::Rhs { t, y, dy },
            Op::Lincomb { out, plain: vec![(1.0, y)], h, scaled: vec![(1.0, dy)] },
            Op::ErrorNorm {
                out: norm,
                err: dy,
                y,
                y_new: out,
                reference: None,
                blocks: vec![ToleranceBlock { start: 0, end: n, atol: 1e-3, rtol: 1e-3 }],
            },
            Op::ScalarAxpy { out: t2, a: t, c: 1.0, h },
        ],
        1,
    );
    pair.check_vector("2-D grid rhs", dy, 1e-5);
    pair.check_vector("2-D grid lincomb", out, 1e-5);
    pair.check_scalars("2-D grid error_norm", norm, 1e-5);
    pair.check_scalars("2-D grid scalar_axpy", t2, 1e-5);
}
