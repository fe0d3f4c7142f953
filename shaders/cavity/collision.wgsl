// Cavity model, level 1 (issue 3): general steady-state equation relaxed in pseudo-time.
// CPU twin: `collision` in src/models/cavity/cpu.rs (same layout constants; kept in sync).
//
//   dF_i/dτ = P_i [ γ (F0_i − F_i) + Σ_j A_j ( b_{i−j} (1 − F_i F_j) − bd_{i−j} (F_i − F_j) ) ]
//
// One workgroup per member, threads grid-strided over i; the ω̃ sum over j is the dense
// quadrature of the photon collision integral. Tables are host-computed (coth, Lorentzians).

//! import shared/rhs_bindings

const C_P_GAMMA: u32 = 0u;

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
    let n = dims.state_len;
    let yb = m * n;
    let pb = m * dims.params_len;
    let tb = m * dims.table_stride;
    let t_a = tb + n;
    let t_prec = tb + 2u * n;
    let t_b = tb + 3u * n;
    let t_bd = tb + 5u * n - 1u;
    let gamma = params[pb + C_P_GAMMA];
    for (var i = lid; i < n; i += WG) {
        let fi = y[yb + i];
        var acc = Real(0.0);
        for (var j = 0u; j < n; j += 1u) {
            let fj = y[yb + j];
            let k = i + n - 1u - j;
            acc += tables[t_a + j] * (tables[t_b + k] * (Real(1.0) - fi * fj) - tables[t_bd + k] * (fi - fj));
        }
        dy[yb + i] = tables[t_prec + i] * (gamma * (tables[tb + i] - fi) + acc);
    }
}
