//! The CPU backend: the reference implementation of every engine op and the embedded
//! default where no GPU adapter exists. f64, multi-threaded over batch members with rayon.
//!
//! Each op here is the CPU twin of the kernel of the same name in
//! `shaders/engine/ops.wgsl`; both follow the semantics documented on
//! [`crate::engine::program::Op`], and `tests/gpu_ops.rs` compares them.

use std::sync::Arc;

use rayon::prelude::*;

use crate::engine::backend::{Backend, BackendInfo, Precision, ProgramId};
use crate::engine::model::BatchProblem;
use crate::engine::program::{status, ControlIds, ControlLaw, Op, ScalarId, StepProgram, ToleranceBlock, VecId};
use crate::{NeqkinError, Result};

/// CPU backend for one batch problem.
///
/// Storage is member-major: each member owns its vectors, scalars and RHS scratch
/// ([`MemberStore`]), and [`Backend::run`] replays the whole chunk of steps for one
/// member inside one rayon task. Members are independent (every op acts per member), so
/// this gives the same arithmetic as running op by op across the batch, but keeps a small
/// member's state in cache and synchronises the thread pool once per chunk instead of once
/// per op (with a few hundred reals per member, per-op synchronisation dominated; see
/// docs/benchmarks.md). A member that is not running when a step begins is frozen for the
/// rest of the chunk (see [`Op::BeginStep`]), so finished members cost nothing.
pub struct CpuBackend {
    problem: Arc<dyn BatchProblem>,
    members: Vec<MemberStore>,
    n_vectors: usize,
    n_scalars: usize,
    programs: Vec<Vec<CpuOp>>,
}

/// A step-program op as the CPU backend executes it: the op itself, or a fusion of
/// neighbouring ops made by [`fuse`] when the program is compiled.
#[derive(Clone, Debug)]
enum CpuOp {
    /// One op, executed as documented on [`Op`] (`Lincomb` in one pass over the state).
    Plain(Op),
    /// `Lincomb { out: e, .. }` followed by `ErrorNorm { err: e, .. }`: the error vector
    /// and its weighted norm in one pass.
    LincombNorm {
        /// The `Lincomb`.
        lincomb: Op,
        /// The `ErrorNorm` reading its output.
        norm: Op,
    },
    /// `Select { dst, src, flag }` whose `src` is dead afterwards (rewritten in full before
    /// it is read again, going round the program): the two vectors are swapped instead of
    /// copied.
    SelectSwap {
        /// Destination.
        dst: VecId,
        /// Source (garbage afterwards).
        src: VecId,
        /// Per-member flag.
        flag: ScalarId,
    },
}

/// Fuses neighbouring ops of a step program for the CPU backend (see [`CpuOp`]). The
/// result computes the same values, bit for bit, except the error norm's sum, which is
/// accumulated in [`LANES`] interleaved partial sums instead of one running sum.
fn fuse(ops: &[Op]) -> Vec<CpuOp> {
    let mut out = Vec::with_capacity(ops.len());
    let mut i = 0;
    while i < ops.len() {
        if let (Op::Lincomb { out: e, .. }, Some(Op::ErrorNorm { err, y, y_new, reference, .. })) =
            (&ops[i], ops.get(i + 1))
        {
            let reads_e = *y == *e || *y_new == *e || reference.is_some_and(|r| r == *e);
            if err == e && !reads_e {
                out.push(CpuOp::LincombNorm { lincomb: ops[i].clone(), norm: ops[i + 1].clone() });
                i += 2;
                continue;
            }
        }
        if let Op::Select { dst, src, flag } = &ops[i] {
            if dst != src && dead_after(ops, i, *src) {
                out.push(CpuOp::SelectSwap { dst: *dst, src: *src, flag: *flag });
                i += 1;
                continue;
            }
        }
        out.push(CpuOp::Plain(ops[i].clone()));
        i += 1;
    }
    out
}

/// True when vector `v` is written in full before it is read again after op `at`, going
/// round the (replayed) program; a `BeginStep` that stops a member ends the chunk, after
/// which the host may read any vector, so `v` must also not be one the host reads: only
/// vectors that some op fully writes (`Lincomb` out, `Rhs` dy) before any read qualify.
fn dead_after(ops: &[Op], at: usize, v: VecId) -> bool {
    let n = ops.len();
    for step in 1..=n {
        let op = &ops[(at + step) % n];
        let (reads, writes_all) = match op {
            Op::BeginStep { .. } | Op::ScalarAxpy { .. } | Op::Control { .. } => (false, false),
            Op::Rhs { y, dy, .. } => (*y == v, *dy == v),
            Op::Lincomb { out, plain, scaled, .. } => (plain.iter().chain(scaled).any(|(_, x)| *x == v), *out == v),
            Op::ErrorNorm { err, y, y_new, reference, .. } => {
                (*err == v || *y == v || *y_new == v || *reference == Some(v), false)
            }
            Op::Select { dst, src, .. } => (*src == v || *dst == v, false),
            Op::SteadyCheck { dy, .. } => (*dy == v, false),
        };
        if reads {
            return false;
        }
        if writes_all {
            return true;
        }
    }
    false
}

/// Lanes of the vectorised reductions (independent partial sums).
const LANES: usize = 8;

/// One member's storage on the CPU backend.
struct MemberStore {
    /// Vectors by id, `state_len` reals each.
    vectors: Vec<Vec<f64>>,
    /// Scalars by id.
    scalars: Vec<f64>,
    /// The RHS scratch block.
    scratch: Vec<f64>,
    /// Work array of `state_len` reals (the `h`-scaled sum of `Lincomb`).
    work: Vec<f64>,
}

impl CpuBackend {
    /// Creates a backend holding `problem`.
    pub fn new(problem: Arc<dyn BatchProblem>) -> Self {
        let l = problem.layout();
        let members = (0..l.batch)
            .map(|_| MemberStore {
                vectors: Vec::new(),
                scalars: Vec::new(),
                scratch: vec![0.0; l.scratch_len.max(1)],
                work: vec![0.0; l.state_len],
            })
            .collect();
        CpuBackend { problem, members, n_vectors: 0, n_scalars: 0, programs: Vec::new() }
    }
}

/// Executes `op` for member `m`. Returns `false` when the op is a `BeginStep` and the
/// member is not running: the rest of the program is then a no-op for it.
fn exec_fused(problem: &dyn BatchProblem, m: usize, st: &mut MemberStore, op: &CpuOp) -> bool {
    match op {
        CpuOp::Plain(op) => exec_member(problem, m, st, op),
        CpuOp::LincombNorm { lincomb, norm } => {
            let (
                Op::Lincomb { out, plain, h, scaled },
                Op::ErrorNorm { out: norm_out, y, y_new, reference, blocks, .. },
            ) = (lincomb, norm)
            else {
                unreachable!("fuse builds LincombNorm from a Lincomb and an ErrorNorm");
            };
            let mut e = std::mem::take(&mut st.vectors[out.0]);
            let hm = st.scalars[h.0];
            let v = &st.vectors;
            let r = reference.map(|r| v[r.0].as_slice());
            let norm = lincomb_error_norm(&mut e, v, plain, hm, scaled, &v[y.0], &v[y_new.0], r, blocks);
            st.vectors[out.0] = e;
            st.scalars[norm_out.0] = norm;
            true
        }
        CpuOp::SelectSwap { dst, src, flag } => {
            if st.scalars[flag.0] != 0.0 {
                st.vectors.swap(dst.0, src.0);
            }
            true
        }
    }
}

/// Executes `op` for member `m`. Returns `false` when the op is a `BeginStep` and the
/// member is not running: the rest of the program is then a no-op for it.
fn exec_member(problem: &dyn BatchProblem, m: usize, st: &mut MemberStore, op: &Op) -> bool {
    let s = &mut st.scalars;
    match op {
        Op::BeginStep { ctrl } => {
            s[ctrl.h_used.0] = begin_step(s[ctrl.t.0], s[ctrl.h.0], s[ctrl.h_max.0], s[ctrl.t_end.0], s[ctrl.status.0]);
            if s[ctrl.status.0] != status::RUNNING {
                return false;
            }
        }
        Op::Rhs { t, y, dy } => {
            let l = problem.layout();
            let (pl, tl, ts) = (l.params_len, l.table_len, l.table_stride);
            let mut out = std::mem::take(&mut st.vectors[dy.0]);
            problem.rhs_member(
                m,
                &problem.params()[m * pl..(m + 1) * pl],
                &problem.tables()[m * ts..m * ts + tl],
                s[t.0],
                &st.vectors[y.0],
                &mut out,
                &mut st.scratch,
            );
            st.vectors[dy.0] = out;
        }
        Op::Lincomb { out, plain, h, scaled } => {
            let mut o = std::mem::take(&mut st.vectors[out.0]);
            let hm = s[h.0];
            if !lincomb_one_pass(&mut o, &st.vectors, plain, hm, scaled) {
                // Term by term, in the order of `lincomb`: per component the same sums in
                // the same order, so the result is bit-identical to the twin.
                let work = &mut st.work;
                o.fill(0.0);
                for (c, v) in plain {
                    for (oi, vi) in o.iter_mut().zip(&st.vectors[v.0]) {
                        *oi += c * vi;
                    }
                }
                work.fill(0.0);
                for (c, v) in scaled {
                    for (wi, vi) in work.iter_mut().zip(&st.vectors[v.0]) {
                        *wi += c * vi;
                    }
                }
                for (oi, wi) in o.iter_mut().zip(work.iter()) {
                    *oi += hm * wi;
                }
            }
            st.vectors[out.0] = o;
        }
        Op::ScalarAxpy { out, a, c, h } => {
            s[out.0] = s[a.0] + c * s[h.0];
        }
        Op::ErrorNorm { out, err, y, y_new, reference, blocks } => {
            let r = reference.map(|r| st.vectors[r.0].as_slice());
            s[out.0] = error_norm(&st.vectors[err.0], &st.vectors[y.0], &st.vectors[y_new.0], r, blocks);
        }
        Op::Control { ctrl, law } => {
            let mut c = MemberControl::load(s, ctrl);
            control(&mut c, law);
            c.store(s, ctrl);
        }
        Op::Select { dst, src, flag } => {
            if s[flag.0] != 0.0 {
                let mut d = std::mem::take(&mut st.vectors[dst.0]);
                d.copy_from_slice(&st.vectors[src.0]);
                st.vectors[dst.0] = d;
            }
        }
        Op::SteadyCheck { ctrl, dy, range, tol } => {
            let r = rms(&st.vectors[dy.0][range.0..range.1]);
            s[ctrl.status.0] = steady_check(s[ctrl.status.0], s[ctrl.accept.0], r, *tol);
        }
    }
    true
}

/// `out = Σ a_j v_j + h Σ b_j w_j` in one pass over the state, for up to 3 plain and 7
/// scaled terms (every integrator's stage); per component the same sums in the same order
/// as [`lincomb`], so bit-identical to it. Returns `false` (nothing written) for other
/// term counts.
fn lincomb_one_pass(
    out: &mut [f64],
    vecs: &[Vec<f64>],
    plain: &[(f64, VecId)],
    h: f64,
    scaled: &[(f64, VecId)],
) -> bool {
    macro_rules! dispatch {
        ($($p:literal => [$($s:literal),*]);*) => {
            match (plain.len(), scaled.len()) {
                $($(($p, $s) => lincomb_fixed::<$p, $s>(out, vecs, plain, h, scaled),)*)*
                _ => return false,
            }
        };
    }
    dispatch!(0 => [1, 2, 3, 4, 5, 6, 7]; 1 => [0, 1, 2, 3, 4, 5, 6, 7]; 2 => [0, 1, 2, 3]; 3 => [0, 1, 2, 3]);
    true
}

/// The terms of a `Lincomb` with `P` plain and `S` scaled vectors, as fixed-size arrays cut
/// to `n` reals (so the per-component loop has no bounds checks and vectorises).
struct Terms<'a, const P: usize, const S: usize> {
    pv: [&'a [f64]; P],
    pc: [f64; P],
    sv: [&'a [f64]; S],
    sc: [f64; S],
}

impl<'a, const P: usize, const S: usize> Terms<'a, P, S> {
    fn new(vecs: &'a [Vec<f64>], plain: &[(f64, VecId)], scaled: &[(f64, VecId)], n: usize) -> Self {
        Terms {
            pv: std::array::from_fn(|j| &vecs[plain[j].1 .0][..n]),
            pc: std::array::from_fn(|j| plain[j].0),
            sv: std::array::from_fn(|j| &vecs[scaled[j].1 .0][..n]),
            sc: std::array::from_fn(|j| scaled[j].0),
        }
    }

    /// The same terms cut to components `[a, b)`.
    #[inline(always)]
    fn cut(&self, a: usize, b: usize) -> Self {
        Terms {
            pv: std::array::from_fn(|j| &self.pv[j][a..b]),
            pc: self.pc,
            sv: std::array::from_fn(|j| &self.sv[j][a..b]),
            sc: self.sc,
        }
    }

    /// Component `i` of the combination (the twin's order of operations).
    #[inline(always)]
    fn at(&self, i: usize, h: f64) -> f64 {
        let mut acc = 0.0;
        for j in 0..P {
            acc += self.pc[j] * self.pv[j][i];
        }
        let mut acc_h = 0.0;
        for j in 0..S {
            acc_h += self.sc[j] * self.sv[j][i];
        }
        acc + h * acc_h
    }
}

fn lincomb_fixed<const P: usize, const S: usize>(
    out: &mut [f64],
    vecs: &[Vec<f64>],
    plain: &[(f64, VecId)],
    h: f64,
    scaled: &[(f64, VecId)],
) {
    let n = out.len();
    let t = Terms::<P, S>::new(vecs, plain, scaled, n);
    for (i, o) in out.iter_mut().enumerate() {
        *o = t.at(i, h);
    }
}

/// A `Lincomb` into `e` and the `ErrorNorm` of `e` in one pass: as [`lincomb`] followed by
/// [`error_norm`], except that each block's sum of squares is accumulated in [`LANES`]
/// interleaved partial sums (so it vectorises; the norm can differ from the twin's in the
/// last bits, as the GPU's tree reduction does).
#[allow(clippy::too_many_arguments)]
fn lincomb_error_norm(
    e: &mut [f64],
    vecs: &[Vec<f64>],
    plain: &[(f64, VecId)],
    h: f64,
    scaled: &[(f64, VecId)],
    y0: &[f64],
    y1: &[f64],
    reference: Option<&[f64]>,
    blocks: &[ToleranceBlock],
) -> f64 {
    macro_rules! dispatch {
        ($($p:literal => [$($s:literal),*]);*) => {
            match (plain.len(), scaled.len()) {
                $($(($p, $s) => return lincomb_error_norm_fixed::<$p, $s>(e, vecs, plain, h, scaled, y0, y1, reference, blocks),)*)*
                _ => {}
            }
        };
    }
    dispatch!(0 => [1, 2, 3, 4, 5, 6, 7]; 1 => [1, 2, 3, 4, 5, 6, 7]; 2 => [1, 2, 3]);
    lincomb(
        e,
        0,
        &plain.iter().map(|(c, v)| (*c, vecs[v.0].as_slice())).collect::<Vec<_>>(),
        h,
        &scaled.iter().map(|(c, v)| (*c, vecs[v.0].as_slice())).collect::<Vec<_>>(),
    );
    error_norm(e, y0, y1, reference, blocks)
}

#[allow(clippy::too_many_arguments)]
fn lincomb_error_norm_fixed<const P: usize, const S: usize>(
    e: &mut [f64],
    vecs: &[Vec<f64>],
    plain: &[(f64, VecId)],
    h: f64,
    scaled: &[(f64, VecId)],
    y0: &[f64],
    y1: &[f64],
    reference: Option<&[f64]>,
    blocks: &[ToleranceBlock],
) -> f64 {
    let n = e.len();
    let t = Terms::<P, S>::new(vecs, plain, scaled, n);
    // Components outside every block still get their error component.
    let mut covered = 0;
    let mut sorted: Vec<(usize, usize)> = blocks.iter().map(|b| (b.start, b.end.min(n))).collect();
    sorted.sort_unstable();
    for &(a, b) in &sorted {
        for i in covered.min(n)..a.min(n) {
            e[i] = t.at(i, h);
        }
        covered = covered.max(b);
    }
    for i in covered.min(n)..n {
        e[i] = t.at(i, h);
    }
    let mut norm: f64 = 0.0;
    for b in blocks {
        let (start, end) = (b.start.min(n), b.end.min(n));
        let mut lanes = [0.0; LANES];
        let (atol, rtol) = (b.atol, b.rtol);
        let len = end - start;
        let chunks = len / LANES;
        let (e, y0, y1) = (&mut e[start..end], &y0[start..end], &y1[start..end]);
        let term = |ev: f64, a: f64, b: f64, r: f64| {
            let w = atol + rtol * (a - r).abs().max((b - r).abs());
            let q = ev / w;
            q * q
        };
        let tb = t.cut(start, end);
        let zero = [0.0; LANES];
        for c in 0..chunks {
            // Fixed-size pieces: no bounds checks inside, so the lanes vectorise.
            let b0 = c * LANES;
            let tc = tb.cut(b0, b0 + LANES);
            let ec: &mut [f64; LANES] = (&mut e[b0..b0 + LANES]).try_into().unwrap();
            let y0c: &[f64; LANES] = y0[b0..b0 + LANES].try_into().unwrap();
            let y1c: &[f64; LANES] = y1[b0..b0 + LANES].try_into().unwrap();
            let rc: &[f64; LANES] = match reference {
                Some(r) => r[start + b0..start + b0 + LANES].try_into().unwrap(),
                None => &zero,
            };
            for q in 0..LANES {
                let ev = tc.at(q, h);
                ec[q] = ev;
                lanes[q] += term(ev, y0c[q], y1c[q], rc[q]);
            }
        }
        for i in chunks * LANES..len {
            let ev = tb.at(i, h);
            e[i] = ev;
            lanes[0] += term(ev, y0[i], y1[i], reference.map_or(0.0, |r| r[start + i]));
        }
        let sum = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
        let block = (sum / (len.max(1) as f64)).sqrt();
        if !block.is_finite() {
            return f64::NAN;
        }
        norm = norm.max(block);
    }
    norm
}

/// Twin of `begin_step` in `shaders/engine/ops.wgsl`.
pub fn begin_step(t: f64, h: f64, h_max: f64, t_end: f64, st: f64) -> f64 {
    if st != status::RUNNING {
        return 0.0;
    }
    let remaining = t_end - t;
    if remaining <= 0.0 {
        return 0.0;
    }
    h.min(h_max).min(remaining)
}

/// Twin of `lincomb` in `shaders/engine/ops.wgsl`: one member's slice.
pub fn lincomb(out: &mut [f64], offset: usize, plain: &[(f64, &[f64])], h: f64, scaled: &[(f64, &[f64])]) {
    for (i, o) in out.iter_mut().enumerate() {
        let mut acc = 0.0;
        for (c, v) in plain {
            acc += c * v[offset + i];
        }
        let mut acc_h = 0.0;
        for (c, v) in scaled {
            acc_h += c * v[offset + i];
        }
        *o = acc + h * acc_h;
    }
}

/// Twin of `error_norm` in `shaders/engine/ops.wgsl`: max over blocks of each block's
/// weighted RMS, with weights `atol + rtol·max(|y0 − r|, |y1 − r|)` (`r` = `reference`, or
/// 0 without one). NaN/inf propagate (the controller treats them as a failed attempt).
pub fn error_norm(e: &[f64], y0: &[f64], y1: &[f64], reference: Option<&[f64]>, blocks: &[ToleranceBlock]) -> f64 {
    let mut norm: f64 = 0.0;
    for b in blocks {
        let mut sum = 0.0;
        for i in b.start..b.end {
            let ref_i = reference.map_or(0.0, |r| r[i]);
            let w = b.atol + b.rtol * (y0[i] - ref_i).abs().max((y1[i] - ref_i).abs());
            let r = e[i] / w;
            sum += r * r;
        }
        let block = (sum / ((b.end - b.start).max(1) as f64)).sqrt();
        if !block.is_finite() {
            return f64::NAN;
        }
        norm = norm.max(block);
    }
    norm
}

/// Root mean square of a slice.
pub fn rms(v: &[f64]) -> f64 {
    (v.iter().map(|x| x * x).sum::<f64>() / (v.len().max(1) as f64)).sqrt()
}

/// Twin of `steady_check` in `shaders/engine/ops.wgsl`.
pub fn steady_check(st: f64, accept: f64, rms: f64, tol: f64) -> f64 {
    if st == status::RUNNING && accept != 0.0 && rms < tol {
        status::STEADY
    } else {
        st
    }
}

/// One member's controller scalars, as the `control` kernel sees them.
#[derive(Clone, Copy, Debug)]
pub struct MemberControl {
    /// Time.
    pub t: f64,
    /// Proposed step.
    pub h: f64,
    /// Stop time.
    pub t_end: f64,
    /// Status code.
    pub status: f64,
    /// Accepted flag (output).
    pub accept: f64,
    /// Accepted steps.
    pub n_accept: f64,
    /// Rejected steps.
    pub n_reject: f64,
    /// Step used in this attempt.
    pub h_used: f64,
    /// Error norm of this attempt.
    pub err: f64,
}

impl MemberControl {
    fn load(s: &[f64], c: &ControlIds) -> Self {
        MemberControl {
            t: s[c.t.0],
            h: s[c.h.0],
            t_end: s[c.t_end.0],
            status: s[c.status.0],
            accept: s[c.accept.0],
            n_accept: s[c.n_accept.0],
            n_reject: s[c.n_reject.0],
            h_used: s[c.h_used.0],
            err: s[c.err.0],
        }
    }
    fn store(&self, s: &mut [f64], c: &ControlIds) {
        s[c.t.0] = self.t;
        s[c.h.0] = self.h;
        s[c.status.0] = self.status;
        s[c.accept.0] = self.accept;
        s[c.n_accept.0] = self.n_accept;
        s[c.n_reject.0] = self.n_reject;
    }
}

/// Twin of `control` in `shaders/engine/ops.wgsl`: accept/reject, new step, status.
///
/// A step clipped to land on `t_end` sets `t = t_end` exactly, so output times are hit
/// without rounding drift. A non-finite error rejects the attempt with the smallest
/// factor; the member fails once its step falls below `h_min` (adaptive) or at once
/// (fixed step).
pub fn control(c: &mut MemberControl, law: &ControlLaw) {
    c.accept = 0.0;
    if c.status != status::RUNNING || c.h_used <= 0.0 {
        if c.status == status::RUNNING && c.t >= c.t_end {
            c.status = status::REACHED;
        }
        return;
    }
    let clipped = c.h_used >= c.t_end - c.t;
    match *law {
        ControlLaw::Fixed => {
            if !c.err.is_finite() {
                c.status = status::FAILED;
                return;
            }
            c.accept = 1.0;
            c.n_accept += 1.0;
            if clipped {
                c.t = c.t_end;
                c.status = status::REACHED;
            } else {
                c.t += c.h_used;
            }
        }
        ControlLaw::Adaptive { order, safety, min_factor, max_factor, h_min } => {
            // Departs from the GPU twin: `step_factor` in shaders/engine/ops.wgsl computes
            // err^exponent in f32 (f64 pow is not portable across drivers, and f32 is
            // plenty for a step-size factor), so `h` agrees to f32 rounding only.
            let exponent = -1.0 / (order as f64 + 1.0);
            if c.err.is_finite() && c.err <= 1.0 {
                let factor = if c.err > 0.0 {
                    (safety * c.err.powf(exponent)).clamp(min_factor, max_factor)
                } else {
                    max_factor
                };
                c.accept = 1.0;
                c.n_accept += 1.0;
                let proposed = c.h_used * factor;
                if clipped {
                    c.t = c.t_end;
                    c.status = status::REACHED;
                    c.h = c.h.max(proposed);
                } else {
                    c.t += c.h_used;
                    c.h = proposed;
                }
            } else {
                let factor =
                    if c.err.is_finite() { (safety * c.err.powf(exponent)).clamp(min_factor, 1.0) } else { min_factor };
                c.n_reject += 1.0;
                c.h = c.h_used * factor;
                if c.h < h_min {
                    c.status = status::FAILED;
                }
            }
        }
    }
}

impl Backend for CpuBackend {
    fn new_vector(&mut self) -> Result<VecId> {
        let n = self.problem.layout().state_len;
        for st in &mut self.members {
            st.vectors.push(vec![0.0; n]);
        }
        self.n_vectors += 1;
        Ok(VecId(self.n_vectors - 1))
    }
    fn new_scalars(&mut self) -> Result<ScalarId> {
        for st in &mut self.members {
            st.scalars.push(0.0);
        }
        self.n_scalars += 1;
        Ok(ScalarId(self.n_scalars - 1))
    }
    fn write_vector(&mut self, v: VecId, data: &[f64]) -> Result<()> {
        let l = self.problem.layout();
        if data.len() != l.batch * l.state_len {
            return Err(NeqkinError::invalid("state", format!("length {} != {}", data.len(), l.batch * l.state_len)));
        }
        for (st, d) in self.members.iter_mut().zip(data.chunks(l.state_len.max(1))) {
            st.vectors[v.0].copy_from_slice(d);
        }
        Ok(())
    }
    fn read_vector(&mut self, v: VecId) -> Result<Vec<f64>> {
        let l = self.problem.layout();
        let mut out = Vec::with_capacity(l.batch * l.state_len);
        for st in &self.members {
            out.extend_from_slice(&st.vectors[v.0]);
        }
        Ok(out)
    }
    fn write_scalars(&mut self, s: ScalarId, data: &[f64]) -> Result<()> {
        if data.len() != self.members.len() {
            return Err(NeqkinError::invalid("scalars", format!("length {} != {}", data.len(), self.members.len())));
        }
        for (st, d) in self.members.iter_mut().zip(data) {
            st.scalars[s.0] = *d;
        }
        Ok(())
    }
    fn read_scalars(&mut self, s: ScalarId) -> Result<Vec<f64>> {
        Ok(self.members.iter().map(|st| st.scalars[s.0]).collect())
    }
    fn compile(&mut self, program: &StepProgram) -> Result<ProgramId> {
        self.programs.push(fuse(&program.ops));
        Ok(ProgramId(self.programs.len() - 1))
    }
    fn run(&mut self, program: ProgramId, repeats: usize) -> Result<()> {
        let ops = &self.programs[program.0];
        let problem = &*self.problem;
        // One task per member for the whole chunk: no pool synchronisation between ops.
        self.members.par_iter_mut().with_max_len(1).enumerate().for_each(|(m, st)| {
            'steps: for _ in 0..repeats {
                for op in ops {
                    if !exec_fused(problem, m, st, op) {
                        break 'steps;
                    }
                }
            }
        });
        Ok(())
    }
    fn info(&self) -> BackendInfo {
        BackendInfo {
            backend: "cpu".into(),
            adapter: cpu_name(),
            api: "rayon".into(),
            precision: Precision::F64,
            threads: rayon::current_num_threads(),
            dispatches: None,
            layout: None,
        }
    }
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}
