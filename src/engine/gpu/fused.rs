//! Fused step kernels: a whole explicit step program (BeginStep, stages, error norm,
//! Control, Select, SteadyCheck) compiled into one WGSL kernel that runs many attempts
//! per dispatch, one workgroup per member.
//!
//! The model supplies its right-hand side as `fn rhs_member(member: u32, lid: u32, t: Real)`
//! written against `rhs_y`/`rhs_dy` (shared/rhs_bindings); for a fused kernel its source is
//! compiled with shared/fused_bindings in place of shared/rhs_bindings, and the step loop
//! generated here from the [`StepProgram`] is appended. The step program stays the
//! reference: the generated code performs the program's ops in order with the same
//! arithmetic (same coefficients from a constant buffer, the same summation order in each
//! `Lincomb` and in the error norm's strided and tree sums, the same `control_member` from
//! shared/control.wgsl), so a fused run takes the same steps as the op-by-op run. Its CPU
//! twin is therefore the step program on the CPU backend. A model whose kernel carries
//! [`ONE_RHS_CALL_MARKER`] gets its evaluations as a loop over the stages with one
//! `rhs_member` call site instead of one inlined call per evaluation (compile time of
//! barrier-heavy right-hand sides on llvmpipe; see [`plan`]).
//!
//! Differences from the op-by-op execution, none visible to the driver:
//! - each invocation keeps the member's scalars in private memory and writes them back
//!   once per dispatch;
//! - an accepted `Select` swaps the slots of its two vectors instead of copying (allowed
//!   because the source is rewritten before it is read again, checked in [`plan`]); the
//!   slot map is kept per member and undone by the `fused_unpermute` kernel before the
//!   host reads the vectors;
//! - a member that is not running leaves the loop at once (its remaining attempts would
//!   change nothing);
//! - lavapipe's loop budget (65 535 loop iterations per invocation and dispatch, see
//!   shared/rhs_bindings) is checked after every attempt, before the attempt changes any
//!   persistent data (state, carried derivative, t, h, status, counters): a cut attempt
//!   is dropped and the dispatch ends, and the host dispatches again until every member has
//!   done the attempts asked for (`todo` in the fstate buffer). An attempt that is cut as
//!   the first of a dispatch can never finish: the member fails (error norm NaN).

use crate::engine::program::{ControlIds, ControlLaw, Op, ScalarId, StepProgram, VecId};

/// Scalar arrays a fused program may use (`FusedParams.scalar_offsets`).
pub(crate) const MAX_FUSED_SCALARS: usize = 32;
/// Vectors a fused program may use (private slot map per invocation).
pub(crate) const MAX_FUSED_VECTORS: usize = 16;
/// Right-hand-side evaluations per attempt beyond which a program is not fused (RKC with
/// many stages: the kernel would grow with the stage count).
pub(crate) const MAX_FUSED_RHS: usize = 16;

/// A step program compiled to one fused kernel.
pub(crate) struct FusedPlan {
    /// Logical vector `k` of the kernel (slot `k` of the work buffer when unpermuted).
    pub vectors: Vec<VecId>,
    /// Logical scalar `k` of the kernel.
    pub scalars: Vec<ScalarId>,
    /// Vectors the program reads before writing them (carried from one attempt to the
    /// next: the state, an FSAL derivative, the reference state).
    pub live_in: Vec<VecId>,
    /// Contents of the constant buffer (`fconsts`).
    pub consts: Vec<f64>,
    /// Generated WGSL of `fused_step` and `fused_unpermute` (appended to the model's source).
    pub source: String,
}

fn ctrl_eq(a: &ControlIds, b: &ControlIds) -> bool {
    [a.t, a.h, a.t_end, a.status, a.accept, a.n_accept, a.n_reject, a.h_used, a.err, a.h_max]
        == [b.t, b.h, b.t_end, b.status, b.accept, b.n_accept, b.n_reject, b.h_used, b.err, b.h_max]
}

/// Vectors an op reads and writes.
fn reads_writes(op: &Op) -> (Vec<VecId>, Vec<VecId>) {
    match op {
        Op::Rhs { y, dy, .. } => (vec![*y], vec![*dy]),
        Op::Lincomb { out, plain, scaled, .. } => (plain.iter().chain(scaled).map(|t| t.1).collect(), vec![*out]),
        Op::ErrorNorm { err, y, y_new, reference, .. } => {
            let mut r = vec![*err, *y, *y_new];
            r.extend(reference);
            (r, vec![])
        }
        Op::Select { dst, src, .. } => (vec![*src, *dst], vec![*dst]),
        Op::SteadyCheck { dy, .. } => (vec![*dy], vec![]),
        Op::BeginStep { .. } | Op::ScalarAxpy { .. } | Op::Control { .. } => (vec![], vec![]),
    }
}

struct Gen {
    vectors: Vec<VecId>,
    scalars: Vec<ScalarId>,
    consts: Vec<f64>,
    code: String,
}

impl Gen {
    fn v(&mut self, id: VecId) -> usize {
        if let Some(k) = self.vectors.iter().position(|v| *v == id) {
            return k;
        }
        self.vectors.push(id);
        self.vectors.len() - 1
    }
    fn s(&mut self, id: ScalarId) -> usize {
        if let Some(k) = self.scalars.iter().position(|s| *s == id) {
            return k;
        }
        self.scalars.push(id);
        self.scalars.len() - 1
    }
    fn push(&mut self, values: &[f64]) -> usize {
        self.consts.extend_from_slice(values);
        self.consts.len() - values.len()
    }
    fn line(&mut self, indent: usize, text: &str) {
        for _ in 0..indent {
            self.code.push_str("    ");
        }
        self.code.push_str(text);
        self.code.push('\n');
    }
}

/// Marks a model kernel whose fused step kernels call `rhs_member` from one call site
/// (see [`plan`]).
pub(crate) const ONE_RHS_CALL_MARKER: &str = "//! fused: one rhs_member call site";

/// The fused kernel of `program`, or `None` when the program does not have the shape of an
/// explicit step (BeginStep; Rhs/Lincomb/ScalarAxpy/ErrorNorm; Control; Select…;
/// SteadyCheck?) or breaks a condition the fused loop relies on. With `one_rhs_call` the attempt's evaluations run as a loop over the stages
/// with a single `rhs_member` call (each stage's preceding ops in a `switch` on the stage),
/// instead of one inlined call per evaluation. Same ops in the same order, so the same
/// arithmetic. Mesa inlines every WGSL function and llvmpipe compiles a kernel with
/// barriers into coroutines: a right-hand side with many barriers (the Eliashberg
/// BiCGSTAB, five workgroup reductions per iteration) copied six times into a DOPRI5
/// kernel took llvmpipe's coroutine split over ten minutes to compile (docs/benchmarks.md
/// section 18).
pub(crate) fn plan(program: &StepProgram, one_rhs_call: bool) -> Option<FusedPlan> {
    let ops = &program.ops;
    let Some(Op::BeginStep { ctrl }) = ops.first() else { return None };
    let ctrl = *ctrl;
    let control_at = ops.iter().position(|o| matches!(o, Op::Control { .. }))?;
    let (compute, rest) = (&ops[1..control_at], &ops[control_at..]);
    let Op::Control { ctrl: c2, law } = &rest[0] else { return None };
    if !ctrl_eq(&ctrl, c2) {
        return None;
    }
    let mut selects = Vec::new();
    let mut steady = None;
    for op in &rest[1..] {
        match op {
            Op::Select { dst, src, flag } if steady.is_none() && dst != src => selects.push((*dst, *src, *flag)),
            Op::Select { dst, src, .. } if steady.is_none() && dst == src => {}
            Op::SteadyCheck { ctrl: c3, dy, range, tol } if steady.is_none() && ctrl_eq(&ctrl, c3) => {
                steady = Some((*dy, *range, *tol))
            }
            _ => return None,
        }
    }
    let mut n_rhs = 0;
    for op in compute {
        match op {
            Op::Rhs { y, dy, .. } if y != dy => n_rhs += 1,
            Op::Lincomb { out, plain, scaled, .. } if !plain.iter().chain(scaled).any(|t| t.1 == *out) => {}
            Op::ScalarAxpy { .. } | Op::ErrorNorm { .. } => {}
            _ => return None,
        }
    }
    if n_rhs == 0 || n_rhs > MAX_FUSED_RHS {
        return None;
    }
    // Carried vectors: read before written within one replay of the program.
    let mut written: Vec<VecId> = Vec::new();
    let mut live_in: Vec<VecId> = Vec::new();
    for op in ops {
        let (r, w) = reads_writes(op);
        for v in r {
            if !written.contains(&v) && !live_in.contains(&v) {
                live_in.push(v);
            }
        }
        written.extend(w);
    }
    // A dropped (cut) attempt must leave the carried vectors as they were, and a swapped
    // Select source must be rewritten before it is read again.
    for op in compute {
        if reads_writes(op).1.iter().any(|v| live_in.contains(v)) {
            return None;
        }
    }
    if selects.iter().any(|(_, src, _)| live_in.contains(src)) {
        return None;
    }

    let mut g = Gen { vectors: Vec::new(), scalars: Vec::new(), consts: vec![f64::NAN], code: String::new() };
    // Logical order: carried vectors first (so the first slots are the ones the host
    // writes), then the rest in order of appearance.
    for v in &live_in {
        g.v(*v);
    }
    for op in ops {
        let (r, w) = reads_writes(op);
        for v in r.into_iter().chain(w) {
            g.v(v);
        }
    }
    if g.vectors.len() > MAX_FUSED_VECTORS {
        return None;
    }
    let c = [
        g.s(ctrl.t),
        g.s(ctrl.h),
        g.s(ctrl.t_end),
        g.s(ctrl.status),
        g.s(ctrl.accept),
        g.s(ctrl.n_accept),
        g.s(ctrl.n_reject),
        g.s(ctrl.h_used),
        g.s(ctrl.err),
        g.s(ctrl.h_max),
    ];
    let [t, h, t_end, st, acc, n_acc, n_rej, h_used, err, h_max] = c;
    // Control law constants.
    let (law_kind, order, law_k) = match *law {
        ControlLaw::Fixed => ("LAW_FIXED", 0, g.push(&[0.0; 4])),
        ControlLaw::Adaptive { order, safety, min_factor, max_factor, h_min } => {
            ("LAW_ADAPTIVE", order, g.push(&[safety, min_factor, max_factor, h_min]))
        }
    };
    let control_expr = format!(
        "control_member(MemberControl(sc[{t}], sc[{h}], sc[{t_end}], sc[{st}], sc[{acc}], sc[{n_acc}], sc[{n_rej}], \
         sc[{h_used}], sc[{err}]), ControlLaw({law_kind}, {order}u, fconsts[{law_k}u], fconsts[{}u], fconsts[{}u], \
         fconsts[{}u]))",
        law_k + 1,
        law_k + 2,
        law_k + 3
    );
    let commit_control = format!(
        "sc[{t}] = c.t; sc[{h}] = c.h; sc[{st}] = c.status; sc[{acc}] = c.accept; sc[{n_acc}] = c.n_accept; \
         sc[{n_rej}] = c.n_reject;"
    );

    // ---- the attempt's compute ops
    let mut body = Gen {
        vectors: std::mem::take(&mut g.vectors),
        scalars: std::mem::take(&mut g.scalars),
        consts: std::mem::take(&mut g.consts),
        code: String::new(),
    };
    let b = &mut body;
    // With `one_rhs_call`: per evaluation, the code of the ops before it and its arguments.
    let mut stages: Vec<String> = Vec::new();
    for op in compute {
        match op {
            Op::Rhs { t: ts, y, dy } if one_rhs_call => {
                let (ts, y, dy) = (b.s(*ts), b.v(*y), b.v(*dy));
                b.line(2, &format!("rhs_in = vb[{y}];"));
                b.line(2, &format!("rhs_out = vb[{dy}];"));
                b.line(2, &format!("t_rhs = sc[{ts}];"));
                stages.push(std::mem::take(&mut b.code));
            }
            Op::Rhs { t: ts, y, dy } => {
                let (ts, y, dy) = (b.s(*ts), b.v(*y), b.v(*dy));
                b.line(2, &format!("rhs_in = vb[{y}];"));
                b.line(2, &format!("rhs_out = vb[{dy}];"));
                b.line(2, &format!("rhs_member(member, lid, sc[{ts}]);"));
                b.line(2, "storageBarrier();");
            }
            Op::ScalarAxpy { out, a, c, h } => {
                let (out, a, h) = (b.s(*out), b.s(*a), b.s(*h));
                let k = b.push(&[*c]);
                b.line(2, &format!("sc[{out}] = sc[{a}] + fconsts[{k}u] * sc[{h}];"));
            }
            Op::Lincomb { out, plain, h, scaled } => {
                // Same grouping as the op kernel: chunks of LINCOMB_MAX_TERMS terms (plain
                // first), each `acc + h·acc_h`, later chunks added to the earlier sum.
                let terms: Vec<(f64, VecId, bool)> = plain
                    .iter()
                    .map(|&(c, v)| (c, v, false))
                    .chain(scaled.iter().map(|&(c, v)| (c, v, true)))
                    .collect();
                let (out, hk) = (b.v(*out), b.s(*h));
                // The coefficients are read into registers once, before the loop over the
                // components: on a CPU driver (llvmpipe) every storage-buffer read inside
                // the loop is a per-lane scalar load, as costly as reading a component.
                let coeffs: Vec<(usize, usize, bool)> =
                    terms.iter().map(|&(c, v, sc)| (b.push(&[c]), b.v(v), sc)).collect();
                b.line(2, "{");
                for (q, (k, _, _)) in coeffs.iter().enumerate() {
                    b.line(2, &format!("let coef{q} = fconsts[{k}u];"));
                }
                b.line(2, "for (var i = lid; i < n_act; i += WG) {");
                b.line(3, "let e = e0 + i;");
                b.line(3, "var r: Real = 0.0;");
                let chunks: Vec<&[(usize, usize, bool)]> =
                    if coeffs.is_empty() { vec![&[]] } else { coeffs.chunks(super::LINCOMB_MAX_TERMS).collect() };
                let mut q = 0;
                for (ci, chunk) in chunks.into_iter().enumerate() {
                    b.line(3, "{");
                    b.line(4, "var acc: Real = 0.0;");
                    b.line(4, "var acc_h: Real = 0.0;");
                    for &(_, v, scaled) in chunk {
                        let target = if scaled { "acc_h" } else { "acc" };
                        b.line(4, &format!("{target} += coef{q} * work[vb[{v}] + e];"));
                        q += 1;
                    }
                    if ci == 0 {
                        b.line(4, &format!("r = acc + sc[{hk}] * acc_h;"));
                    } else {
                        b.line(4, &format!("r = r + (acc + sc[{hk}] * acc_h);"));
                    }
                    b.line(3, "}");
                }
                b.line(3, &format!("work[vb[{out}] + e] = r;"));
                b.line(2, "}");
                b.line(2, "}");
                b.line(2, "storageBarrier();");
            }
            Op::ErrorNorm { out, err: e, y, y_new, reference, blocks } => {
                let (out, e, y, y_new) = (b.s(*out), b.v(*e), b.v(*y), b.v(*y_new));
                let r = reference.map(|r| b.v(r));
                b.line(2, "{");
                b.line(3, "var norm: Real = 0.0;");
                b.line(3, "var finite = true;");
                for blk in blocks {
                    let k = b.push(&[blk.start as f64, blk.end as f64, blk.atol, blk.rtol]);
                    b.line(3, "{");
                    b.line(4, &format!("let start = u32(fconsts[{k}u]);"));
                    b.line(4, &format!("let end = u32(fconsts[{}u]);", k + 1));
                    b.line(4, &format!("let atol = fconsts[{}u];", k + 2));
                    b.line(4, &format!("let rtol = fconsts[{}u];", k + 3));
                    b.line(4, "var sum: Real = 0.0;");
                    b.line(4, "for (var i = start + lid; i < select(start, end, live); i += WG) {");
                    b.line(5, "var ref_i: Real = 0.0;");
                    if let Some(r) = r {
                        b.line(5, &format!("ref_i = work[vb[{r}] + e0 + i];"));
                    }
                    b.line(
                        5,
                        &format!(
                            "let w = atol + rtol * max(abs(work[vb[{y}] + e0 + i] - ref_i), abs(work[vb[{y_new}] + e0 + i] - ref_i));"
                        ),
                    );
                    b.line(5, &format!("let q = work[vb[{e}] + e0 + i] / w;"));
                    b.line(5, "sum += q * q;");
                    b.line(4, "}");
                    b.line(4, "sum = fused_sum(lid, sum);");
                    b.line(4, "let block = sqrt(sum / Real(max(end - start, 1u)));");
                    b.line(4, "if (!is_finite(block)) { finite = false; }");
                    b.line(4, "norm = max(norm, block);");
                    b.line(3, "}");
                }
                b.line(3, &format!("sc[{out}] = norm;"));
                b.line(3, &format!("if (!finite) {{ sc[{out}] = runtime_nan(); }}"));
                b.line(2, "}");
            }
            _ => unreachable!("checked above"),
        }
    }
    if one_rhs_call {
        let tail = std::mem::take(&mut b.code);
        b.line(2, &format!("for (var stage = 0u; stage < {}u; stage = stage + 1u) {{", stages.len()));
        b.line(3, "var t_rhs: Real = 0.0;");
        b.line(3, "switch stage {");
        for (k, code) in stages.iter().enumerate() {
            b.line(4, &format!("case {k}u: {{"));
            b.code.push_str(code);
            b.line(4, "}");
        }
        b.line(4, "default: {}");
        b.line(3, "}");
        b.line(3, "rhs_member(member, lid, t_rhs);");
        b.line(3, "storageBarrier();");
        b.line(2, "}");
        b.code.push_str(&tail);
    }
    // Control into a temporary, the swaps of the accepted Selects into a copy of the slot
    // map, and the steady-state test on the derivative the program would test.
    b.line(2, &format!("let c = {control_expr};"));
    b.line(2, "var vb_next = vb;");
    for (dst, src, flag) in &selects {
        let (dst, src, flag) = (b.v(*dst), b.v(*src), b.s(*flag));
        let flag_value = if flag == acc { "c.accept".to_string() } else { format!("sc[{flag}]") };
        b.line(2, &format!("if ({flag_value} != 0.0) {{"));
        b.line(3, &format!("let tmp = vb_next[{dst}];"));
        b.line(3, &format!("vb_next[{dst}] = vb_next[{src}];"));
        b.line(3, &format!("vb_next[{src}] = tmp;"));
        b.line(2, "}");
    }
    b.line(2, "var status_next = c.status;");
    if let Some((dy, range, tol)) = steady {
        let dy = b.v(dy);
        let k = b.push(&[range.0 as f64, range.1 as f64, tol]);
        b.line(2, "{");
        b.line(3, &format!("let start = u32(fconsts[{k}u]);"));
        b.line(3, &format!("let end = u32(fconsts[{}u]);", k + 1));
        b.line(3, "var sum: Real = 0.0;");
        b.line(3, "for (var i = start + lid; i < select(start, end, live); i += WG) {");
        b.line(4, &format!("let d = work[vb_next[{dy}] + e0 + i];"));
        b.line(4, "sum += d * d;");
        b.line(3, "}");
        b.line(3, "sum = fused_sum(lid, sum);");
        b.line(3, "let rms = sqrt(sum / Real(max(end - start, 1u)));");
        b.line(3, &format!("status_next = steady_check_member(c.status, c.accept, rms, fconsts[{}u]);", k + 2));
        b.line(2, "}");
    }
    let compute_code = std::mem::take(&mut b.code);
    let mut g = body;
    let ns = g.scalars.len();
    let nv = g.vectors.len();
    if ns > MAX_FUSED_SCALARS {
        return None;
    }

    // ---- the kernel
    let mut k = String::new();
    let mut w = |indent: usize, text: &str| {
        for _ in 0..indent {
            k.push_str("    ");
        }
        k.push_str(text);
        k.push('\n');
    };
    w(0, "// ---- fused step loop, generated by src/engine/gpu/fused.rs from the step program ----");
    w(0, "//! import shared/control");
    w(0, "var<workgroup> fused_partial: array<Real, WG * MPW>;");
    w(0, "var<workgroup> fused_go: array<u32, MPW>;");
    w(0, "var<workgroup> fused_flag: u32;");
    w(0, "var<workgroup> fused_cut: atomic<u32>;");
    w(0, "");
    w(0, "// Sum over the member's segment of WG threads, the same tree as `workgroup_sum` in");
    w(0, "// engine/ops.wgsl.");
    w(0, "fn fused_sum(lid: u32, value: Real) -> Real {");
    w(1, "let base = rhs_segment * WG;");
    w(1, "fused_partial[base + lid] = value;");
    w(1, "workgroupBarrier();");
    w(1, "for (var s = WG / 2u; s > 0u; s = s >> 1u) {");
    w(2, "if lid < s {");
    w(3, "fused_partial[base + lid] = fused_partial[base + lid] + fused_partial[base + lid + s];");
    w(2, "}");
    w(2, "workgroupBarrier();");
    w(1, "}");
    w(1, "let total = fused_partial[base];");
    w(1, "workgroupBarrier();");
    w(1, "return total;");
    w(0, "}");
    w(0, "");
    w(0, "// MPW members per workgroup, each on its own segment of WG threads (segment s of");
    w(0, "// workgroup g: member g × MPW + s). The loop runs while any segment's member has an");
    w(0, "// attempt to make (the exit is uniform: every barrier is reached by every invocation);");
    w(0, "// a segment whose member is done, has nothing to compute, or does not exist (the spare");
    w(0, "// segments of the last workgroup, which mirror the batch's last member) runs the");
    w(0, "// attempt masked: no loop over its components, no writes (`rhs_writes` false).");
    w(0, "@compute @workgroup_size(WG * MPW)");
    w(0, "fn fused_step(");
    w(1, "@builtin(workgroup_id) wg_id: vec3<u32>,");
    w(1, "@builtin(num_workgroups) num_wg: vec3<u32>,");
    w(1, "@builtin(local_invocation_index) lid_all: u32,");
    w(0, ") {");
    w(1, "let group = member_index(wg_id, num_wg);");
    w(1, "if (group * MPW >= dims.batch) {");
    w(2, "return;");
    w(1, "}");
    w(1, "rhs_segment = lid_all / WG;");
    w(1, "let seg = rhs_segment;");
    w(1, "let lid = lid_all % WG;");
    w(1, "let present = group * MPW + seg < dims.batch;");
    w(1, "let member = min(group * MPW + seg, dims.batch - 1u);");
    w(1, "let n = dims.state_len;");
    w(1, "let e0 = member * n;");
    w(1, "let perm = dims.batch + member * fused.n_vectors;");
    w(1, &format!("var sc: array<Real, {ns}>;"));
    for i in 0..ns {
        w(1, &format!("sc[{i}] = scalars[fused.scalar_offsets[{}][{}] + member];", i / 4, i % 4));
    }
    w(1, &format!("var vb: array<u32, {nv}>;"));
    for i in 0..nv {
        w(1, &format!("vb[{i}] = u32(fstate[perm + {i}u]) * fused.slot_len;"));
    }
    w(1, "var done = 0u;");
    w(1, "loop {");
    w(2, &format!("let h_begin = begin_step_member(sc[{t}], sc[{h}], sc[{h_max}], sc[{t_end}], sc[{st}]);"));
    w(2, "if (lid == 0u) {");
    w(3, "var go = 1u;");
    w(3, &format!("if (!present || fstate[member] < 0.5 || done >= fused.max_attempts || sc[{st}] != RUNNING) {{"));
    w(4, "go = 0u;");
    w(3, "} else if (h_begin <= 0.0) {");
    w(4, "go = 2u;");
    w(3, "}");
    w(3, "fused_go[seg] = go;");
    w(2, "}");
    w(2, "workgroupBarrier();");
    w(2, "if (lid_all == 0u) {");
    w(3, "var any = 0u;");
    w(3, "for (var s = 0u; s < MPW; s += 1u) {");
    w(4, "any = any | u32(fused_go[s] != 0u);");
    w(3, "}");
    w(3, "fused_flag = any;");
    w(3, "atomicStore(&fused_cut, 0u);");
    w(2, "}");
    w(2, "let any = workgroupUniformLoad(&fused_flag);");
    w(2, "let go = fused_go[seg];");
    w(2, &format!("if (go == 0u && present && sc[{st}] != RUNNING) {{"));
    w(3, &format!("sc[{h_used}] = 0.0;"));
    w(3, &format!("sc[{acc}] = 0.0;"));
    w(3, "// Its remaining attempts would change nothing: they count as done.");
    w(3, "if (lid == 0u) {");
    w(4, "fstate[member] = 0.0;");
    w(3, "}");
    w(2, "}");
    w(2, "if (any == 0u) {");
    w(3, "break;");
    w(2, "}");
    w(2, "if (go != 0u) {");
    w(3, &format!("sc[{h_used}] = h_begin;"));
    w(2, "}");
    w(2, "if (go == 2u) {");
    w(3, "// Nothing left to integrate: the controller marks the member REACHED.");
    w(3, &format!("let c = {control_expr};"));
    w(3, &commit_control);
    w(3, "if (lid == 0u) {");
    w(4, "fstate[member] = fstate[member] - 1.0;");
    w(3, "}");
    w(3, "done += 1u;");
    w(2, "}");
    w(2, "let live = go == 1u;");
    w(2, "let n_act = select(0u, n, live);");
    w(2, "rhs_writes = live;");
    w(2, "// A masked segment's scalars come back unchanged after the attempt.");
    w(2, "let sc_before = sc;");
    w(2, "storageBarrier();");
    k.push_str(&compute_code);
    let mut w = |indent: usize, text: &str| {
        for _ in 0..indent {
            k.push_str("    ");
        }
        k.push_str(text);
        k.push('\n');
    };
    w(2, "if (!live) {");
    w(3, "sc = sc_before;");
    w(2, "}");
    w(2, "// Loop budget: drop the attempt if any invocation lost iterations.");
    w(2, "if (!loop_budget_intact()) {");
    w(3, "atomicStore(&fused_cut, 1u);");
    w(2, "}");
    w(2, "workgroupBarrier();");
    w(2, "if (lid == 0u) {");
    w(3, "fused_flag = atomicLoad(&fused_cut);");
    w(2, "}");
    w(2, "let cut = workgroupUniformLoad(&fused_flag);");
    w(2, "if (cut != 0u) {");
    w(3, "if (live && done == 0u) {");
    w(4, "// Not even one attempt fits in the budget: the member cannot advance.");
    w(4, &format!("sc[{st}] = FAILED;"));
    w(4, &format!("sc[{err}] = runtime_nan();"));
    w(4, "if (lid == 0u) {");
    w(5, "fstate[member] = 0.0;");
    w(4, "}");
    w(3, "}");
    w(3, "break;");
    w(2, "}");
    w(2, "if (live) {");
    w(3, &commit_control);
    w(3, &format!("sc[{st}] = status_next;"));
    w(3, "vb = vb_next;");
    w(3, "if (lid == 0u) {");
    w(4, "fstate[member] = fstate[member] - 1.0;");
    w(3, "}");
    w(3, "done += 1u;");
    w(2, "}");
    w(1, "}");
    w(1, "if (present && lid == 0u) {");
    for i in 0..ns {
        w(2, &format!("scalars[fused.scalar_offsets[{}][{}] + member] = sc[{i}];", i / 4, i % 4));
    }
    for i in 0..nv {
        w(2, &format!("fstate[perm + {i}u] = Real(vb[{i}] / fused.slot_len);"));
    }
    w(1, "}");
    w(0, "}");
    w(0, "");
    w(0, "// Moves every vector of each member back to its own slot (identity slot map).");
    w(0, "@compute @workgroup_size(WG)");
    w(0, "fn fused_unpermute(");
    w(1, "@builtin(workgroup_id) wg_id: vec3<u32>,");
    w(1, "@builtin(num_workgroups) num_wg: vec3<u32>,");
    w(1, "@builtin(local_invocation_index) lid: u32,");
    w(0, ") {");
    w(1, "let member = member_index(wg_id, num_wg);");
    w(1, "if (member >= dims.batch) {");
    w(2, "return;");
    w(1, "}");
    w(1, "let n = dims.state_len;");
    w(1, "let e0 = member * n;");
    w(1, "let perm = dims.batch + member * fused.n_vectors;");
    w(1, &format!("var vb: array<u32, {nv}>;"));
    for i in 0..nv {
        w(1, &format!("vb[{i}] = u32(fstate[perm + {i}u]) * fused.slot_len;"));
    }
    w(1, "for (var i = lid; i < n; i += WG) {");
    w(2, &format!("var v: array<Real, {nv}>;"));
    for i in 0..nv {
        w(2, &format!("v[{i}] = work[vb[{i}] + e0 + i];"));
    }
    for i in 0..nv {
        w(2, &format!("work[{i}u * fused.slot_len + e0 + i] = v[{i}];"));
    }
    w(1, "}");
    w(1, "workgroupBarrier();");
    w(1, "if (lid == 0u) {");
    for i in 0..nv {
        w(2, &format!("fstate[perm + {i}u] = {i}.0;"));
    }
    w(1, "}");
    w(0, "}");
    Some(FusedPlan {
        vectors: std::mem::take(&mut g.vectors),
        scalars: std::mem::take(&mut g.scalars),
        live_in,
        consts: std::mem::take(&mut g.consts),
        source: k,
    })
}

/// The source of a fused kernel: the model's right-hand side (`model_source`, which must
/// define `rhs_member` and import shared/rhs_bindings) against shared/fused_bindings, then
/// the generated step loop. `None` when the model offers no `rhs_member`.
pub(crate) fn kernel_source(model_source: &str, plan: &FusedPlan) -> Option<String> {
    const RHS_IMPORT: &str = "//! import shared/rhs_bindings";
    if !model_source.contains("fn rhs_member(") || !model_source.contains(RHS_IMPORT) {
        return None;
    }
    let mut s = model_source.replace(RHS_IMPORT, "//! import shared/fused_bindings");
    s.push('\n');
    s.push_str(&plan.source);
    Some(s)
}
