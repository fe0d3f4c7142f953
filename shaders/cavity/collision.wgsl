// Cavity model, level 1 (issue 3): general steady-state equation relaxed in pseudo-time.
// CPU twin: `collision` in src/models/cavity/cpu.rs (same layout constants; kept in sync).
//
//   dF_i/dτ = P_i [ γ (F0_i − F_i) + Σ_j A_j ( b_{i−j} (1 − F_i F_j) − bd_{i−j} (F_i − F_j) ) ]
//
// One workgroup per member, threads grid-strided over i; the ω̃ sum over j is the dense
// quadrature of the photon collision integral. Tables are host-computed (coth, Lorentzians).
// The state is n_k blocks of nb points (one block per ε_k of the member's on-shell axis,
// n_k = 1 without one); each block has its own tables (9 nb − 2: the kernel reads the first
// 7 nb − 2) and couples to no other.

//! import shared/rhs_bindings
// No workgroup memory and no storage writes besides `rhs_dy` in `rhs_member`: members may
// share a workgroup (src/engine/gpu/layout.rs).
//! layout: packable

const C_P_GAMMA: u32 = 0u;
const C_P_BLOCK: u32 = 1u;

// One ω̃ node j of the sum for node i (k = i + n − 1 − j indexes b and bd).
fn collision_term(t_a: u32, t_b: u32, t_bd: u32, yb: u32, kb: u32, j: u32, fi: Real) -> Real {
    let fj = rhs_y(yb + j);
    let k = kb - j;
    return tables[t_a + j] * (tables[t_b + k] * (Real(1.0) - fi * fj) - tables[t_bd + k] * (fi - fj));
}

// Member `m`'s derivative by the WG invocations of its segment of the workgroup
// (`lid` = index in the segment), state and derivative through `rhs_y`/`rhs_dy`
// (shared/rhs_bindings; in a fused step kernel shared/fused_bindings). Autonomous (`t`
// unused). Loop iterations per component and evaluation: 1 + ⌊n/16⌋ + n mod 16
// (`CavityBatch::member_loops_per_component`).
fn rhs_member(m: u32, lid: u32, t: Real) {
    let pb = m * dims.params_len;
    let n = u32(params[pb + C_P_BLOCK] + Real(0.5));
    let n_all = dims.state_len;
    let gamma = params[pb + C_P_GAMMA];
    // A member that must not change anything (rhs_active() false: a spare or finished
    // member of a packed workgroup) skips its loops.
    let n_loop = select(0u, n_all, rhs_active());
    for (var ia = lid; ia < n_loop; ia += WG) {
        let blk = ia / n;
        let i = ia - blk * n;
        let yb = m * n_all + blk * n;
        // Block stride 9n − 2: F0, A, preconditioner, b, bd (7n − 2), then two per-node sums
        // that only the CPU twin reads.
        let tb = m * dims.table_stride + blk * (9u * n - 2u);
        let t_a = tb + n;
        let t_prec = tb + 2u * n;
        let t_b = tb + 3u * n;
        let t_bd = tb + 5u * n - 1u;
        let fi = rhs_y(yb + i);
        var acc = Real(0.0);
        let kb = i + n - 1u;
        // Blocks of 16, written out: keeps the loop count 16× below lavapipe's budget.
        var j0 = 0u;
        for (; j0 + 16u <= n; j0 += 16u) {
            acc += collision_term(t_a, t_b, t_bd, yb, kb, j0 + 0u, fi) + collision_term(t_a, t_b, t_bd, yb, kb, j0 + 1u, fi) + collision_term(t_a, t_b, t_bd, yb, kb, j0 + 2u, fi) + collision_term(t_a, t_b, t_bd, yb, kb, j0 + 3u, fi) + collision_term(t_a, t_b, t_bd, yb, kb, j0 + 4u, fi) + collision_term(t_a, t_b, t_bd, yb, kb, j0 + 5u, fi) + collision_term(t_a, t_b, t_bd, yb, kb, j0 + 6u, fi) + collision_term(t_a, t_b, t_bd, yb, kb, j0 + 7u, fi) + collision_term(t_a, t_b, t_bd, yb, kb, j0 + 8u, fi) + collision_term(t_a, t_b, t_bd, yb, kb, j0 + 9u, fi) + collision_term(t_a, t_b, t_bd, yb, kb, j0 + 10u, fi) + collision_term(t_a, t_b, t_bd, yb, kb, j0 + 11u, fi) + collision_term(t_a, t_b, t_bd, yb, kb, j0 + 12u, fi) + collision_term(t_a, t_b, t_bd, yb, kb, j0 + 13u, fi) + collision_term(t_a, t_b, t_bd, yb, kb, j0 + 14u, fi) + collision_term(t_a, t_b, t_bd, yb, kb, j0 + 15u, fi);
        }
        for (var j = j0; j < n; j += 1u) {
            acc += collision_term(t_a, t_b, t_bd, yb, kb, j, fi);
        }
        rhs_dy(yb + i, tables[t_prec + i] * (gamma * (tables[tb + i] - fi) + acc));
    }
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
    // A driver that cut the loops short (lavapipe's loop budget) fails the member. (The
    // fused step kernel checks the budget itself after every attempt.)
    if (workgroup_loops_cut()) {
        for (var ia = lid; ia < dims.state_len; ia += WG) {
            rhs_dy(m * dims.state_len + ia, runtime_nan());
        }
    }
}
