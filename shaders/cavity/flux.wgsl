// Cavity model, level 3 Fokker–Planck (the consistent ν0 → 0 limit) on any node set,
// uniform or graded (issue 3). CPU twin: `flux` in src/models/cavity/cpu.rs (same layout
// constants; kept in sync).
//
//   dF_i/dτ = P_i [ γ (F0_i − F_i) + c⁻_i (1 − F_i F_{i−1}) − d⁻_i (F_i − F_{i−1})
//                                  − c⁺_i (1 − F_i F_{i+1}) − d⁺_i (F_i − F_{i+1}) ]
// the finite-volume form of γ(F − F0) = −(η/A_e) ∂_ω(A_e² Q), one edge flux per neighbour
// pair; the ends of the window carry no flux (c⁻_0 = c⁺_{n−1} = 0 in the tables).
// The state is n_k blocks of nb points (one block per ε_k of the member's on-shell axis,
// n_k = 1 without one); each block has its own tables (6 nb) and couples to no other.

//! import shared/rhs_bindings
// No workgroup memory and no storage writes besides `rhs_dy` in `rhs_member`: members may
// share a workgroup (src/engine/gpu/layout.rs).
//! layout: packable

const F_P_GAMMA: u32 = 0u;
const F_P_BLOCK: u32 = 1u;

// Member `mem`'s derivative by the WG invocations of its segment of the workgroup
// (`lid` = index in the segment), state and derivative through `rhs_y`/`rhs_dy`
// (shared/rhs_bindings; in a fused step kernel shared/fused_bindings). Autonomous (`t` unused).
fn rhs_member(mem: u32, lid: u32, t: Real) {
    let pb = mem * dims.params_len;
    let nb = u32(params[pb + F_P_BLOCK] + Real(0.5));
    let n_all = dims.state_len;
    let gamma = params[pb + F_P_GAMMA];
    // A member that must not change anything (rhs_active() false: a spare or finished
    // member of a packed workgroup) skips its loops.
    let n_loop = select(0u, n_all, rhs_active());
    for (var ia = lid; ia < n_loop; ia += WG) {
        let blk = ia / nb;
        let i = ia - blk * nb;
        let n = nb;
        let yb = mem * n_all + blk * nb;
        let tb = mem * dims.table_stride + blk * 6u * nb;
        let fi = rhs_y(yb + i);
        var ph = Real(0.0);
        if (i >= 1u) {
            let fm = rhs_y(yb + i - 1u);
            ph += tables[tb + n + i] * (Real(1.0) - fi * fm) - tables[tb + 2u * n + i] * (fi - fm);
        }
        if (i + 1u < n) {
            let fp = rhs_y(yb + i + 1u);
            ph -= tables[tb + 3u * n + i] * (Real(1.0) - fi * fp) + tables[tb + 4u * n + i] * (fi - fp);
        }
        rhs_dy(yb + i, tables[tb + 5u * n + i] * (gamma * (tables[tb + i] - fi) + ph));
    }
}

@compute @workgroup_size(WG)
fn rhs(
    @builtin(workgroup_id) wg_id: vec3<u32>,
    @builtin(num_workgroups) num_wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let mem = member_index(wg_id, num_wg);
    if (mem >= dims.batch) {
        return;
    }
    rhs_member(mem, lid, scalars[dims.t_offset + mem]);
}
