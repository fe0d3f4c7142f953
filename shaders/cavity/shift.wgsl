// Cavity model, level 2 (delta photon at ±ν0) and level 3 Fokker–Planck (issue 3).
// CPU twin: `shift` in src/models/cavity/cpu.rs (same layout constants; kept in sync).
//
//   dF_i/dτ = P_i [ γ (F0_i − F_i) + s c⁻_i K(F_i, F_{i−m}, D) − c⁺_i K(F_i, F_{i+m}, −D) ]
//   K(F, F̃, D) = 1 − F F̃ − D (F − F̃);   partners off the grid contribute nothing.
// The state is n_k blocks of nb points (one block per ε_k of the member's on-shell axis,
// n_k = 1 without one); each block has its own tables (4 nb) and couples to no other.

//! import shared/rhs_bindings
// No workgroup memory and no storage writes besides `rhs_dy` in `rhs_member`: members may
// share a workgroup (src/engine/gpu/layout.rs).
//! layout: packable

const S_P_GAMMA: u32 = 0u;
const S_P_D: u32 = 1u;
const S_P_SHIFT: u32 = 2u;
const S_P_SIGN: u32 = 3u;
const S_P_BLOCK: u32 = 4u;

// Member `mem`'s derivative by the WG invocations of its segment of the workgroup
// (`lid` = index in the segment), state and derivative through `rhs_y`/`rhs_dy`
// (shared/rhs_bindings; in a fused step kernel shared/fused_bindings). Autonomous (`t` unused).
fn rhs_member(mem: u32, lid: u32, t: Real) {
    let pb = mem * dims.params_len;
    let nb = u32(params[pb + S_P_BLOCK] + Real(0.5));
    let n_all = dims.state_len;
    let gamma = params[pb + S_P_GAMMA];
    let d = params[pb + S_P_D];
    let sh = u32(params[pb + S_P_SHIFT] + Real(0.5));
    let s = params[pb + S_P_SIGN];
    // A member that must not change anything (rhs_active() false: a spare or finished
    // member of a packed workgroup) skips its loops.
    let n_loop = select(0u, n_all, rhs_active());
    for (var ia = lid; ia < n_loop; ia += WG) {
        let blk = ia / nb;
        let i = ia - blk * nb;
        let n = nb;
        let yb = mem * n_all + blk * nb;
        let tb = mem * dims.table_stride + blk * 4u * nb;
        let fi = rhs_y(yb + i);
        var ph = Real(0.0);
        if (i >= sh) {
            let fm = rhs_y(yb + i - sh);
            ph += s * tables[tb + n + i] * (Real(1.0) - fi * fm - d * (fi - fm));
        }
        if (i + sh < n) {
            let fp = rhs_y(yb + i + sh);
            ph -= tables[tb + 2u * n + i] * (Real(1.0) - fi * fp + d * (fi - fp));
        }
        rhs_dy(yb + i, tables[tb + 3u * n + i] * (gamma * (tables[tb + i] - fi) + ph));
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
