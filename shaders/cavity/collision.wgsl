// Cavity model, level 1 (issue 3): general steady-state equation relaxed in pseudo-time.
// CPU twin: `collision` in src/models/cavity/cpu.rs (same layout constants; kept in sync).
//
//   dF_i/dτ = P_i [ γ (F0_i − F_i) + Σ_j A_j ( b_{i−j} (1 − F_i F_j) − bd_{i−j} (F_i − F_j) ) ]
//
// One workgroup per member, threads grid-strided over i; the ω̃ sum over j is the dense
// quadrature of the photon collision integral. Tables are host-computed (coth, Lorentzians).
// The state is n_k blocks of nb points (one block per ε_k of the member's on-shell axis,
// n_k = 1 without one); each block has its own tables (7 nb − 2) and couples to no other.

//! import shared/rhs_bindings

const C_P_GAMMA: u32 = 0u;
const C_P_BLOCK: u32 = 1u;

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
    let pb = m * dims.params_len;
    let n = u32(params[pb + C_P_BLOCK] + Real(0.5));
    let n_all = dims.state_len;
    let gamma = params[pb + C_P_GAMMA];
    for (var ia = lid; ia < n_all; ia += WG) {
        let blk = ia / n;
        let i = ia - blk * n;
        let yb = m * n_all + blk * n;
        let tb = m * dims.table_stride + blk * (7u * n - 2u);
        let t_a = tb + n;
        let t_prec = tb + 2u * n;
        let t_b = tb + 3u * n;
        let t_bd = tb + 5u * n - 1u;
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
