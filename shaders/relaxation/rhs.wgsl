// Right-hand side of the relaxation model (the engine's exact-solution fixture):
//   dy_i = -rate (y_i - target) + c (y_{i+1} - 2 y_i + y_{i-1}),   c = diffusion / dx²,
// zero-flux ends (the missing neighbour is y_i itself).
// CPU twin: `rhs` in src/models/relaxation/mod.rs (same parameter names and order).
// Parameter block per member (kept in sync with `PARAMS_LEN` and the `P_*` constants
// in src/models/relaxation/mod.rs): [rate, target, c].
//! import shared/rhs_bindings

const P_RATE: u32 = 0u;
const P_TARGET: u32 = 1u;
const P_C: u32 = 2u;

@compute @workgroup_size(256)
fn rhs(
    @builtin(workgroup_id) wg_id: vec3<u32>,
    @builtin(num_workgroups) num_wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let m = member_index(wg_id, num_wg);
    if (m >= dims.batch) {
        return;
    }
    let n = dims.state_len;
    let p = m * dims.params_len;
    let rate = params[p + P_RATE];
    let tgt = params[p + P_TARGET];
    let c = params[p + P_C];
    let base = m * n;
    for (var i = lid.x; i < n; i += WG) {
        let yi = y[base + i];
        var left = yi;
        var right = yi;
        if (i > 0u) {
            left = y[base + i - 1u];
        }
        if (i + 1u < n) {
            right = y[base + i + 1u];
        }
        dy[base + i] = -rate * (yi - tgt) + c * (left - Real(2.0) * yi + right);
    }
}
