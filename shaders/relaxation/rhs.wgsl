// Right-hand side of the relaxation model (the engine's exact-solution fixture):
//   dy_i = -rate (y_i - target) + c (y_{i+1} - 2 y_i + y_{i-1}),   c = diffusion / dx²,
// zero-flux ends (the missing neighbour is y_i itself).
// CPU twin: `rhs` in src/models/relaxation/mod.rs (same parameter names and order).
// Parameter block per member (kept in sync with `PARAMS_LEN` and the `P_*` constants
// in src/models/relaxation/mod.rs): [rate, target, c].
//! import shared/rhs_bindings
// No workgroup memory and no storage writes besides `rhs_dy`: members may share a workgroup.
//! layout: packable
// A member may be split over several workgroups (`rhs_cells`, `rhs_totals`).
//! layout: splittable

const P_RATE: u32 = 0u;
const P_TARGET: u32 = 1u;
const P_C: u32 = 2u;

// Member `m`'s right-hand side over the calling invocation's share of the components
// (`member_thread(lid)`, strided by MEMBER_THREADS: the WG invocations of one workgroup
// segment, or WPM workgroups when the member is split); state and derivative through
// `rhs_y`/`rhs_dy` (shared/rhs_bindings, or shared/fused_bindings in a fused step kernel).
// `t` is unused (autonomous). Nothing is summed over the member: the sums are zero.
fn rhs_cells(m: u32, lid: u32, t: Real) -> vec2<Real> {
    let n = dims.state_len;
    let p = m * dims.params_len;
    let rate = params[p + P_RATE];
    let tgt = params[p + P_TARGET];
    let c = params[p + P_C];
    let base = m * n;
    for (var i = member_thread(lid); i < n; i += MEMBER_THREADS) {
        let yi = rhs_y(base + i);
        var left = yi;
        var right = yi;
        if (i > 0u) {
            left = rhs_y(base + i - 1u);
        }
        if (i + 1u < n) {
            right = rhs_y(base + i + 1u);
        }
        rhs_dy(base + i, -rate * (yi - tgt) + c * (left - Real(2.0) * yi + right));
    }
    return vec2<Real>(0.0, 0.0);
}

// No component depends on a sum over the member.
fn rhs_totals(m: u32, t: Real, sums: vec2<Real>) {}

fn rhs_member(m: u32, lid: u32, t: Real) {
    _ = rhs_cells(m, lid, t);
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
}
