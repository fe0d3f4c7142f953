// Cavity model, level 1 on a graded (non-uniform) ω grid (issue 3, Fig S4 resolution).
// CPU twin: `collision_graded` in src/models/cavity/cpu.rs (same layout constants; kept in sync).
//
//   dF_i/dτ = P_i [ γ (F0_i − F_i) + Σ_{j≠i} (A w)_j ( b(ν) (1 − F_i F_j) − b(ν) coth(ν/2T_mir) (F_i − F_j) ) ]
//   ν = ω_i − ω_j,  b(ν) = c γ_ph ν / ((ν² − ν0²)² + γ_ph² ν²)   (consistent, odd in ν)
//                   b(ν) = −c γ_ph / ((ν² − ν0²)² + γ_ph²)        (printed Eq 5, even)
//
// (A w)_j is the electron spectral function times the node's trapezoidal weight. The grid
// is not a lattice, so b and coth are evaluated per pair: b is rational; coth needs
// e^{−|ν|/T_mir}, built without exp from the per-node factors e^{±(ω−μ0)/T_mir} (host
// tables), and from its Laurent series where |ν|/2T_mir < 0.01 (there 1 − e^{−|ν|/T} would
// cancel). The j = i term multiplies F_i − F_i = 0 and b(0) = 0 (dropped for Eq 5), so it
// is skipped: F0 stays an exact fixed point at T_cry = T_mir on any grid.
// The state is n_k blocks of nb points (one block per ε_k of the member's on-shell axis,
// n_k = 1 without one); each block has its own tables (6 nb) and couples to no other.

//! import shared/rhs_bindings
// No workgroup memory and no storage writes besides `rhs_dy` in `rhs_member`: members may
// share a workgroup (src/engine/gpu/layout.rs).
//! layout: packable

const G_P_GAMMA: u32 = 0u;
const G_P_NU0: u32 = 1u;
const G_P_GAMMA_PH: u32 = 2u;
const G_P_COUPLING: u32 = 3u;
const G_P_TMIR: u32 = 4u;
const G_P_EVEN: u32 = 5u;
const G_P_BLOCK: u32 = 6u;

// One node pair (i, j) of the ω̃ sum (0 for j = i).
fn graded_term(j: u32, i: u32, yb: u32, t_aw: u32, t_omega: u32, t_ep: u32, t_em: u32, fi: Real, wi: Real,
               epi: Real, emi: Real, c: Real, gph: Real, gph2: Real, nu0sq: Real, two_t: Real, even: bool) -> Real {
    if (j == i) {
        return Real(0.0);
    }
    let fj = rhs_y(yb + j);
    let nu = wi - tables[t_omega + j];
    let nu2 = nu * nu;
    let dd = nu2 - nu0sq;
    var b: Real;
    if (even) {
        b = -c * gph / (dd * dd + gph2);
    } else {
        b = c * gph * nu / (dd * dd + gph2 * nu2);
    }
    let x = nu / two_t;
    var coth: Real;
    if (abs(x) < Real(0.01)) {
        let x2 = x * x;
        coth = Real(1.0) / x + x * (Real(1.0) / Real(3.0) - x2 * (Real(1.0) / Real(45.0) - x2 * (Real(2.0) / Real(945.0))));
    } else {
        var r: Real;
        if (nu > Real(0.0)) {
            r = emi * tables[t_ep + j];
        } else {
            r = epi * tables[t_em + j];
        }
        coth = (Real(1.0) + r) / (Real(1.0) - r);
        if (nu < Real(0.0)) {
            coth = -coth;
        }
    }
    return tables[t_aw + j] * b * ((Real(1.0) - fi * fj) - coth * (fi - fj));
}

// Member `m`'s derivative by the WG invocations of its segment of the workgroup
// (`lid` = index in the segment), state and derivative through `rhs_y`/`rhs_dy`
// (shared/rhs_bindings; in a fused step kernel shared/fused_bindings). Autonomous (`t`
// unused). Loop iterations per component and evaluation: 1 + ⌊n/16⌋ + n mod 16
// (`CavityBatch::member_loops_per_component`).
fn rhs_member(m: u32, lid: u32, t: Real) {
    let pb = m * dims.params_len;
    let n = u32(params[pb + G_P_BLOCK] + Real(0.5));
    let n_all = dims.state_len;
    let gamma = params[pb + G_P_GAMMA];
    let nu0 = params[pb + G_P_NU0];
    let gph = params[pb + G_P_GAMMA_PH];
    let c = params[pb + G_P_COUPLING];
    let two_t = Real(2.0) * params[pb + G_P_TMIR];
    let even = params[pb + G_P_EVEN] > Real(0.5);
    let nu0sq = nu0 * nu0;
    let gph2 = gph * gph;
    // A member that must not change anything (rhs_active() false: a spare or finished
    // member of a packed workgroup) skips its loops.
    let n_loop = select(0u, n_all, rhs_active());
    for (var ia = lid; ia < n_loop; ia += WG) {
        let blk = ia / n;
        let i = ia - blk * n;
        let yb = m * n_all + blk * n;
        let tb = m * dims.table_stride + blk * 6u * n;
        let t_aw = tb + n;
        let t_prec = tb + 2u * n;
        let t_omega = tb + 3u * n;
        let t_ep = tb + 4u * n;
        let t_em = tb + 5u * n;
        let fi = rhs_y(yb + i);
        let wi = tables[t_omega + i];
        let epi = tables[t_ep + i];
        let emi = tables[t_em + i];
        var acc = Real(0.0);
        // Blocks of 16, written out: keeps the loop count 16× below lavapipe's budget.
        var j0 = 0u;
        for (; j0 + 16u <= n; j0 += 16u) {
            acc += graded_term(j0 + 0u, i, yb, t_aw, t_omega, t_ep, t_em, fi, wi, epi, emi, c, gph, gph2, nu0sq, two_t, even)
                + graded_term(j0 + 1u, i, yb, t_aw, t_omega, t_ep, t_em, fi, wi, epi, emi, c, gph, gph2, nu0sq, two_t, even)
                + graded_term(j0 + 2u, i, yb, t_aw, t_omega, t_ep, t_em, fi, wi, epi, emi, c, gph, gph2, nu0sq, two_t, even)
                + graded_term(j0 + 3u, i, yb, t_aw, t_omega, t_ep, t_em, fi, wi, epi, emi, c, gph, gph2, nu0sq, two_t, even)
                + graded_term(j0 + 4u, i, yb, t_aw, t_omega, t_ep, t_em, fi, wi, epi, emi, c, gph, gph2, nu0sq, two_t, even)
                + graded_term(j0 + 5u, i, yb, t_aw, t_omega, t_ep, t_em, fi, wi, epi, emi, c, gph, gph2, nu0sq, two_t, even)
                + graded_term(j0 + 6u, i, yb, t_aw, t_omega, t_ep, t_em, fi, wi, epi, emi, c, gph, gph2, nu0sq, two_t, even)
                + graded_term(j0 + 7u, i, yb, t_aw, t_omega, t_ep, t_em, fi, wi, epi, emi, c, gph, gph2, nu0sq, two_t, even)
                + graded_term(j0 + 8u, i, yb, t_aw, t_omega, t_ep, t_em, fi, wi, epi, emi, c, gph, gph2, nu0sq, two_t, even)
                + graded_term(j0 + 9u, i, yb, t_aw, t_omega, t_ep, t_em, fi, wi, epi, emi, c, gph, gph2, nu0sq, two_t, even)
                + graded_term(j0 + 10u, i, yb, t_aw, t_omega, t_ep, t_em, fi, wi, epi, emi, c, gph, gph2, nu0sq, two_t, even)
                + graded_term(j0 + 11u, i, yb, t_aw, t_omega, t_ep, t_em, fi, wi, epi, emi, c, gph, gph2, nu0sq, two_t, even)
                + graded_term(j0 + 12u, i, yb, t_aw, t_omega, t_ep, t_em, fi, wi, epi, emi, c, gph, gph2, nu0sq, two_t, even)
                + graded_term(j0 + 13u, i, yb, t_aw, t_omega, t_ep, t_em, fi, wi, epi, emi, c, gph, gph2, nu0sq, two_t, even)
                + graded_term(j0 + 14u, i, yb, t_aw, t_omega, t_ep, t_em, fi, wi, epi, emi, c, gph, gph2, nu0sq, two_t, even)
                + graded_term(j0 + 15u, i, yb, t_aw, t_omega, t_ep, t_em, fi, wi, epi, emi, c, gph, gph2, nu0sq, two_t, even);
        }
        for (var j = j0; j < n; j += 1u) {
            acc += graded_term(j, i, yb, t_aw, t_omega, t_ep, t_em, fi, wi, epi, emi, c, gph, gph2, nu0sq, two_t, even);
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
