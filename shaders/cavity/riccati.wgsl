// Cavity model, level 3 printed (Eq 6 / S71), ω as the integrator's time (issue 3).
// CPU twin: `riccati` in src/models/cavity/cpu.rs (same layout constants; kept in sync).
//
//   ω = ω_start + dir·t;  2 T_mir dF/dω = 1 − F² + (F − F0)/(2Ã0),  Ã0 = κ / ((ω−ε)² + γ²)
//   F0 = p0 − n0 with the Fermi function n0 and p0 = 1 − n0 carried as state (no exp):
//   T_cry dn0/dω = −n0 p0,  T_cry dp0/dω = n0 p0

//! import shared/rhs_bindings

const R_P_OMEGA: u32 = 0u;
const R_P_DIR: u32 = 1u;
const R_P_TMIR: u32 = 2u;
const R_P_TCRY: u32 = 3u;
const R_P_EPS: u32 = 4u;
const R_P_GAMMA: u32 = 5u;
const R_P_KAPPA: u32 = 6u;

@compute @workgroup_size(WG)
fn rhs(
    @builtin(workgroup_id) wg_id: vec3<u32>,
    @builtin(num_workgroups) num_wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let m = member_index(wg_id, num_wg);
    if (m >= dims.batch || lid != 0u) {
        return;
    }
    let yb = m * dims.state_len;
    let pb = m * dims.params_len;
    let t = scalars[dims.t_offset + m];
    let dir = params[pb + R_P_DIR];
    let omega = params[pb + R_P_OMEGA] + dir * t;
    let f = y[yb];
    let n0 = y[yb + 1u];
    let p0 = y[yb + 2u];
    let f0 = p0 - n0;
    let x = omega - params[pb + R_P_EPS];
    let g = params[pb + R_P_GAMMA];
    let inv_2a = (x * x + g * g) / (Real(2.0) * params[pb + R_P_KAPPA]);
    let dfdw = (Real(1.0) - f * f + (f - f0) * inv_2a) / (Real(2.0) * params[pb + R_P_TMIR]);
    let flow = n0 * p0 / params[pb + R_P_TCRY];
    dy[yb] = dir * dfdw;
    dy[yb + 1u] = -dir * flow;
    dy[yb + 2u] = dir * flow;
}
