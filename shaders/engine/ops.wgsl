// Engine ops: the batched kernels every integrator's step program is written in.
//
// Each entry point is the twin of the free function of the same name in
// src/engine/cpu.rs (begin_step, lincomb, error_norm, control, steady_check; select and
// scalar_axpy are inline there); the per-member logic sits in a helper `<name>_member`
// whose arguments follow the CPU function's. Semantics: `Op` in src/engine/program.rs.
//
// Storage convention (src/engine/gpu/backend.rs):
// - every per-member scalar array lives in one arena `scalars`; array k of member m is
//   scalars[offset_k + m], with the offsets in each op's uniform block;
// - real coefficients live in the program's `consts` array; consts[NAN_INDEX] holds a
//   NaN written by the host (WGSL has no NaN literal);
// - vectors are member-major: member m, component i at m * state_len + i.
//
// Uniform blocks are kept in sync with src/engine/gpu/uniforms.rs (sizes checked by
// tests/shaders_validate.rs). `Real` and `REAL_MAX` come from the host preprocessor.
//
// Dispatch: element-wise and per-member kernels use WG threads per workgroup over a
// 2-D grid of workgroups (x first); reductions use one workgroup per member, or, for
// members split over several workgroups, a `*_partial` dispatch of `groups` workgroups
// per member and a `*_finish` dispatch of one invocation per member.

const WG: u32 = 256u;

// Index of the NaN in `consts`.
const NAN_INDEX: u32 = 0u;

// Inputs bound per lincomb dispatch; twin of `LINCOMB_MAX_TERMS` in
// src/engine/gpu/backend.rs. With the arena, consts and output this is 8 storage
// buffers, the portable per-stage limit.
const LINCOMB_MAX_TERMS: u32 = 5u;

//! import shared/control

@group(0) @binding(1) var<storage, read_write> scalars: array<Real>;
@group(0) @binding(2) var<storage, read> consts: array<Real>;

var<workgroup> partial: array<Real, WG>;

fn flat_index(wg: vec3<u32>, num_wg: vec3<u32>, lid: u32) -> u32 {
    return (wg.x + wg.y * num_wg.x) * WG + lid;
}

fn member_of(wg: vec3<u32>, num_wg: vec3<u32>) -> u32 {
    return wg.x + wg.y * num_wg.x;
}

// Sums `partial` over the workgroup; every invocation gets the total.
fn workgroup_sum(lid: u32, value: Real) -> Real {
    partial[lid] = value;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if lid < s {
            partial[lid] = partial[lid] + partial[lid + s];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

// ---------------------------------------------------------------- begin_step

struct BeginStepParams {
    batch: u32,
    t: u32,
    h: u32,
    h_max: u32,
    t_end: u32,
    status: u32,
    h_used: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> begin_step_params: BeginStepParams;

@compute @workgroup_size(WG)
fn begin_step(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) num_wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let p = begin_step_params;
    let m = flat_index(wg, num_wg, lid);
    if m >= p.batch {
        return;
    }
    scalars[p.h_used + m] = begin_step_member(
        scalars[p.t + m],
        scalars[p.h + m],
        scalars[p.h_max + m],
        scalars[p.t_end + m],
        scalars[p.status + m],
    );
}

// ---------------------------------------------------------------- lincomb

struct LincombParams {
    n: u32,
    state_len: u32,
    h: u32,
    coef: u32,
    n_plain: u32,
    n_terms: u32,
    accumulate: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> lincomb_params: LincombParams;
@group(0) @binding(3) var<storage, read_write> lincomb_out: array<Real>;
@group(0) @binding(4) var<storage, read> lincomb_in0: array<Real>;
@group(0) @binding(5) var<storage, read> lincomb_in1: array<Real>;
@group(0) @binding(6) var<storage, read> lincomb_in2: array<Real>;
@group(0) @binding(7) var<storage, read> lincomb_in3: array<Real>;
@group(0) @binding(8) var<storage, read> lincomb_in4: array<Real>;

fn lincomb_term(j: u32, i: u32) -> Real {
    switch j {
        case 0u: { return lincomb_in0[i]; }
        case 1u: { return lincomb_in1[i]; }
        case 2u: { return lincomb_in2[i]; }
        case 3u: { return lincomb_in3[i]; }
        default: { return lincomb_in4[i]; }
    }
}

// out = Σ a_j v_j + h_m Σ b_j w_j, summed in the CPU twin's order. When the terms do not
// fit in one dispatch, later dispatches add to `out` (`accumulate`), so the sum is
// grouped by dispatch there: the only departure from the CPU twin (rounding only).
@compute @workgroup_size(WG)
fn lincomb(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) num_wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let p = lincomb_params;
    let i = flat_index(wg, num_wg, lid);
    if i >= p.n {
        return;
    }
    let m = i / p.state_len;
    var acc: Real = 0.0;
    for (var j = 0u; j < p.n_plain; j++) {
        acc += consts[p.coef + j] * lincomb_term(j, i);
    }
    var acc_h: Real = 0.0;
    for (var j = p.n_plain; j < p.n_terms; j++) {
        acc_h += consts[p.coef + j] * lincomb_term(j, i);
    }
    var r = acc + scalars[p.h + m] * acc_h;
    if p.accumulate != 0u {
        r = lincomb_out[i] + r;
    }
    lincomb_out[i] = r;
}

// ---------------------------------------------------------------- scalar_axpy

struct ScalarAxpyParams {
    batch: u32,
    out: u32,
    a: u32,
    h: u32,
    coef: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> scalar_axpy_params: ScalarAxpyParams;

// out_m = a_m + c h_m.
@compute @workgroup_size(WG)
fn scalar_axpy(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) num_wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let p = scalar_axpy_params;
    let m = flat_index(wg, num_wg, lid);
    if m >= p.batch {
        return;
    }
    scalars[p.out + m] = scalars[p.a + m] + consts[p.coef] * scalars[p.h + m];
}

// ---------------------------------------------------------------- error_norm

struct ErrorNormParams {
    batch: u32,
    state_len: u32,
    out: u32,
    n_blocks: u32,
    blocks: u32,
    // 1: weights from the deviation from the reference state `error_norm_ref`; 0: from the
    // state (the reference binding is then not read).
    deviation: u32,
    // Workgroups per member of `error_norm_partial` (1 for `error_norm`).
    groups: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> error_norm_params: ErrorNormParams;
@group(0) @binding(3) var<storage, read> error_norm_e: array<Real>;
@group(0) @binding(4) var<storage, read> error_norm_y0: array<Real>;
@group(0) @binding(5) var<storage, read> error_norm_y1: array<Real>;
@group(0) @binding(6) var<storage, read> error_norm_ref: array<Real>;

// Per-workgroup partial sums of the two-level reductions (members split over `groups`
// workgroups, ARCHITECTURE.md "Work layouts"): written by `*_partial`, summed by
// `*_finish` in the next dispatch. Entry (m · groups + g) · n_sums + k: sum k of workgroup
// g of member m.
@group(0) @binding(9) var<storage, read_write> reduce_partials: array<Real>;

// The squared weighted error of the component at `k` (member base + index), weight
// atol + rtol·max(|y0 − r|, |y1 − r|) (r = the reference state when `deviation`, else 0).
fn error_norm_term(k: u32, atol: Real, rtol: Real, deviation: bool) -> Real {
    var ref_i: Real = 0.0;
    if deviation {
        ref_i = error_norm_ref[k];
    }
    let w = atol + rtol * max(abs(error_norm_y0[k] - ref_i), abs(error_norm_y1[k] - ref_i));
    let r = error_norm_e[k] / w;
    return r * r;
}

// Max over tolerance blocks of each block's weighted RMS, one workgroup per member, with
// weights atol + rtol·max(|y0 − r|, |y1 − r|) (r = the reference state, or 0);
// a non-finite block makes the norm NaN. The sums run strided over the workgroup and
// then as a tree, so they round differently from the CPU twin's sequential sums.
@compute @workgroup_size(WG)
fn error_norm(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) num_wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let p = error_norm_params;
    let m = member_of(wg, num_wg);
    if m >= p.batch {
        return;
    }
    let base = m * p.state_len;
    var norm: Real = 0.0;
    var finite = true;
    for (var b = 0u; b < p.n_blocks; b++) {
        let k = p.blocks + 4u * b;
        let start = u32(consts[k]);
        let end = u32(consts[k + 1u]);
        let atol = consts[k + 2u];
        let rtol = consts[k + 3u];
        var sum: Real = 0.0;
        for (var i = start + lid; i < end; i += WG) {
            sum += error_norm_term(base + i, atol, rtol, p.deviation != 0u);
        }
        sum = workgroup_sum(lid, sum);
        let block = sqrt(sum / Real(max(end - start, 1u)));
        if !is_finite(block) {
            finite = false;
        }
        norm = max(norm, block);
    }
    if lid == 0u {
        // (The builtin `select` is shadowed by the `select` kernel below.)
        if finite {
            scalars[p.out + m] = norm;
        } else {
            scalars[p.out + m] = consts[NAN_INDEX];
        }
    }
}

// `error_norm` for members split over `groups` workgroups, first level: workgroup g of
// member m sums the squared weighted errors of its share of each block (components
// start + g·WG + lid, strided by WG·groups) and writes the block sums to
// `reduce_partials` (n_blocks per workgroup).
@compute @workgroup_size(WG)
fn error_norm_partial(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) num_wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let p = error_norm_params;
    let flat = member_of(wg, num_wg);
    let m = flat / p.groups;
    if m >= p.batch {
        return;
    }
    let g = flat % p.groups;
    let base = m * p.state_len;
    for (var b = 0u; b < p.n_blocks; b++) {
        let k = p.blocks + 4u * b;
        let start = u32(consts[k]);
        let end = u32(consts[k + 1u]);
        let atol = consts[k + 2u];
        let rtol = consts[k + 3u];
        var sum: Real = 0.0;
        for (var i = start + g * WG + lid; i < end; i += WG * p.groups) {
            sum += error_norm_term(base + i, atol, rtol, p.deviation != 0u);
        }
        sum = workgroup_sum(lid, sum);
        if lid == 0u {
            reduce_partials[flat * p.n_blocks + b] = sum;
        }
    }
}

// Second level, one invocation per member: each block's sum over the member's workgroups
// (in workgroup order), then the norm as `error_norm`.
@compute @workgroup_size(WG)
fn error_norm_finish(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) num_wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let p = error_norm_params;
    let m = flat_index(wg, num_wg, lid);
    if m >= p.batch {
        return;
    }
    var norm: Real = 0.0;
    var finite = true;
    for (var b = 0u; b < p.n_blocks; b++) {
        let k = p.blocks + 4u * b;
        let start = u32(consts[k]);
        let end = u32(consts[k + 1u]);
        var sum: Real = 0.0;
        for (var g = 0u; g < p.groups; g++) {
            sum += reduce_partials[(m * p.groups + g) * p.n_blocks + b];
        }
        let block = sqrt(sum / Real(max(end - start, 1u)));
        if !is_finite(block) {
            finite = false;
        }
        norm = max(norm, block);
    }
    if finite {
        scalars[p.out + m] = norm;
    } else {
        scalars[p.out + m] = consts[NAN_INDEX];
    }
}

// ---------------------------------------------------------------- control

struct ControlParams {
    batch: u32,
    t: u32,
    h: u32,
    t_end: u32,
    status: u32,
    accept: u32,
    n_accept: u32,
    n_reject: u32,
    h_used: u32,
    err: u32,
    law: u32,
    order: u32,
    coef: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> control_params: ControlParams;

@compute @workgroup_size(WG)
fn control(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) num_wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let p = control_params;
    let m = flat_index(wg, num_wg, lid);
    if m >= p.batch {
        return;
    }
    let law = ControlLaw(
        p.law,
        p.order,
        consts[p.coef],
        consts[p.coef + 1u],
        consts[p.coef + 2u],
        consts[p.coef + 3u],
    );
    let c = control_member(
        MemberControl(
            scalars[p.t + m],
            scalars[p.h + m],
            scalars[p.t_end + m],
            scalars[p.status + m],
            scalars[p.accept + m],
            scalars[p.n_accept + m],
            scalars[p.n_reject + m],
            scalars[p.h_used + m],
            scalars[p.err + m],
        ),
        law,
    );
    // Same fields stored as MemberControl::store: t_end, h_used and err are inputs only.
    scalars[p.t + m] = c.t;
    scalars[p.h + m] = c.h;
    scalars[p.status + m] = c.status;
    scalars[p.accept + m] = c.accept;
    scalars[p.n_accept + m] = c.n_accept;
    scalars[p.n_reject + m] = c.n_reject;
}

// ---------------------------------------------------------------- select

struct SelectParams {
    n: u32,
    state_len: u32,
    flag: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> select_params: SelectParams;
@group(0) @binding(3) var<storage, read_write> select_dst: array<Real>;
@group(0) @binding(4) var<storage, read> select_src: array<Real>;

// dst = src for members whose flag is nonzero.
@compute @workgroup_size(WG)
fn select(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) num_wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let p = select_params;
    let i = flat_index(wg, num_wg, lid);
    if i >= p.n {
        return;
    }
    if scalars[p.flag + i / p.state_len] != 0.0 {
        select_dst[i] = select_src[i];
    }
}

// ---------------------------------------------------------------- steady_check

struct SteadyCheckParams {
    batch: u32,
    state_len: u32,
    range_start: u32,
    range_end: u32,
    status: u32,
    accept: u32,
    tol: u32,
    // Workgroups per member of `steady_check_partial` (1 for `steady_check`).
    groups: u32,
}

@group(0) @binding(0) var<uniform> steady_check_params: SteadyCheckParams;
@group(0) @binding(3) var<storage, read> steady_check_dy: array<Real>;

// Marks members STEADY when rms(dy over the range) < tol; one workgroup per member
// (the CPU twin's `rms` sums sequentially, here strided then as a tree).
@compute @workgroup_size(WG)
fn steady_check(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) num_wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let p = steady_check_params;
    let m = member_of(wg, num_wg);
    if m >= p.batch {
        return;
    }
    let base = m * p.state_len;
    var sum: Real = 0.0;
    for (var i = p.range_start + lid; i < p.range_end; i += WG) {
        let d = steady_check_dy[base + i];
        sum += d * d;
    }
    sum = workgroup_sum(lid, sum);
    let rms = sqrt(sum / Real(max(p.range_end - p.range_start, 1u)));
    if lid == 0u {
        scalars[p.status + m] = steady_check_member(
            scalars[p.status + m],
            scalars[p.accept + m],
            rms,
            consts[p.tol],
        );
    }
}

// `steady_check` for members split over `groups` workgroups, first level: workgroup g of
// member m writes the sum of dy² over its share of the range (components
// range_start + g·WG + lid, strided by WG·groups) to `reduce_partials`.
@compute @workgroup_size(WG)
fn steady_check_partial(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) num_wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let p = steady_check_params;
    let flat = member_of(wg, num_wg);
    let m = flat / p.groups;
    if m >= p.batch {
        return;
    }
    let g = flat % p.groups;
    let base = m * p.state_len;
    var sum: Real = 0.0;
    for (var i = p.range_start + g * WG + lid; i < p.range_end; i += WG * p.groups) {
        let d = steady_check_dy[base + i];
        sum += d * d;
    }
    sum = workgroup_sum(lid, sum);
    if lid == 0u {
        reduce_partials[flat] = sum;
    }
}

// Second level, one invocation per member: the sum over the member's workgroups (in
// workgroup order), then the test as `steady_check`.
@compute @workgroup_size(WG)
fn steady_check_finish(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) num_wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let p = steady_check_params;
    let m = flat_index(wg, num_wg, lid);
    if m >= p.batch {
        return;
    }
    var sum: Real = 0.0;
    for (var g = 0u; g < p.groups; g++) {
        sum += reduce_partials[m * p.groups + g];
    }
    let rms = sqrt(sum / Real(max(p.range_end - p.range_start, 1u)));
    scalars[p.status + m] = steady_check_member(scalars[p.status + m], scalars[p.accept + m], rms, consts[p.tol]);
}
