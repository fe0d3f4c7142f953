// Right-hand side of the photoexcited-metal model (Eqs (2)-(7) of Chiriacò, Millis,
// Aleiner) on the energy grid. One segment of WG threads per member (its own
// workgroup, or a share of one) or WPM workgroups per member, grid-strided loops over cells.
// CPU twin: src/models/photoexcited/collision.rs (same constants, same two passes).
//
// State per member: [f_0 .. f_{N-1}, zeta, pump_rate, E*^2].
// Pass 1: per cell, electron-phonon pair rates (gather form: every pair rate is evaluated
//         with the same expression in both cells' threads, so number is conserved to
//         rounding), inelastic and field fluxes (applied field plus internal E*^2).
//         Partial sums of sigma and of the phonon production are reduced over the member's
//         threads (shared/member_reduce; split over workgroups: per workgroup, then in a
//         finishing dispatch, src/engine/gpu/layout.rs).
// Pass 2: one thread writes the zeta, pump-rate and E*^2 derivatives from the totals.
// No transcendental functions: the host supplies Bose factors, tanh(h/2T), 1/D, ...
// scratch[0] of each member receives the time of the last evaluation (diagnostic only).

//! import shared/rhs_bindings
//! import shared/member_reduce
// Several members may share a workgroup (ARCHITECTURE.md, "Work layouts"): the only
// workgroup memory is shared/member_reduce's, and the one storage write besides `rhs_dy`
// is guarded by `rhs_active()`.
//! layout: packable
// A member may also be split over several workgroups (op by op): pass 1 is `rhs_cells`,
// returning the invocation's share of the two sums, pass 2 is `rhs_totals`.
//! layout: splittable

// Parameter offsets. Kept in sync with src/models/photoexcited/collision.rs.
const P_N: u32 = 0u;
const P_H: u32 = 1u;
const P_INV_H: u32 = 2u;
const P_IN_PREF: u32 = 3u;
const P_TANH: u32 = 4u;
const P_FIELD: u32 = 5u;
const P_SELF_CONSISTENT: u32 = 6u;
const P_KAPPA: u32 = 7u;
const P_ZETA_FREE: u32 = 8u;
const P_INV_TAU_PH: u32 = 9u;
const P_INV_TAU_PULSE: u32 = 10u;
const P_ZETA_SCALE: u32 = 11u;
const P_N_LINES: u32 = 12u;
const P_FIELD_UNIT: u32 = 13u;
const P_FIELD_SEED: u32 = 14u;
const P_INV_SIGMA0: u32 = 15u;
const P_LINES: u32 = 16u;
const LINE_LEN: u32 = 3u;

// Table offsets in units of N. Kept in sync with collision.rs.
const T_DOS: u32 = 0u;
const T_INV_DOS: u32 = 1u;
const T_DOS2_FACE: u32 = 2u;
const T_SIGMA_FACE: u32 = 3u;
const T_EPS: u32 = 4u;


// Net downward rate of one pair (upper, lower) for one phonon line with occupation a = zeta + b_k.
fn pair_rate(c: Real, d_up: Real, d_lo: Real, a: Real, f_up: Real, f_lo: Real) -> Real {
    return c * d_up * d_lo * ((a + 1.0) * f_up * (1.0 - f_lo) - a * f_lo * (1.0 - f_up));
}

// Inelastic flux through face i+1/2 (from cell i+1 down to cell i).
fn inelastic_flux(pref: Real, tanh_h: Real, d2: Real, f_lo: Real, f_up: Real) -> Real {
    return pref * d2 * ((1.0 + tanh_h) * f_up * (1.0 - f_lo) - (1.0 - tanh_h) * f_lo * (1.0 - f_up));
}

// Pass 1 of member `member`'s right-hand side at time `t` over the calling invocation's
// share of the cells (`member_thread(lid)`, strided by MEMBER_THREADS: the member's threads
// in one workgroup segment, or over its WPM workgroups when it is split): reads the state
// through `rhs_y`, writes the cells' derivatives through `rhs_dy` (shared/rhs_bindings; in
// a fused step kernel shared/fused_bindings) and returns the invocation's contributions to
// (σ sum, phonon production). No barriers.
fn rhs_cells(member: u32, lid: u32, t: Real) -> vec2<Real> {
    let pb = member * dims.params_len;
    let tb = member * dims.table_stride;
    let yb = member * dims.state_len;
    // A member that must not change anything (rhs_active() false) only keeps the barriers.
    let n = select(0u, u32(params[pb + P_N]), rhs_active());
    let inv_h = params[pb + P_INV_H];
    let pref = params[pb + P_IN_PREF];
    let tanh_h = params[pb + P_TANH];
    let n_lines = u32(params[pb + P_N_LINES]);
    let zeta = rhs_y(yb + n);
    let e2_star = max(rhs_y(yb + n + 2u), 0.0);
    let field = params[pb + P_FIELD] + params[pb + P_SELF_CONSISTENT] * e2_star * params[pb + P_FIELD_UNIT];
    let t_dos = tb + T_DOS * n;
    let t_inv = tb + T_INV_DOS * n;
    let t_d2f = tb + T_DOS2_FACE * n;
    let t_sgf = tb + T_SIGMA_FACE * n;

    var sigma: Real = 0.0;
    var production: Real = 0.0;
    for (var i: u32 = member_thread(lid); i < n; i = i + MEMBER_THREADS) {
        let fi = rhs_y(yb + i);
        var acc: Real = 0.0;
        for (var l: u32 = 0u; l < n_lines; l = l + 1u) {
            let base = pb + P_LINES + LINE_LEN * l;
            let k = u32(params[base]);
            let c = params[base + 1u];
            let a = zeta + params[base + 2u];
            if (i + k < n) {
                let j = i + k;
                acc = acc + pair_rate(c, tables[t_dos + j], tables[t_dos + i], a, rhs_y(yb + j), fi);
            }
            if (i >= k) {
                let j = i - k;
                let r = pair_rate(c, tables[t_dos + i], tables[t_dos + j], a, fi, rhs_y(yb + j));
                acc = acc - r;
                production = production + r * Real(k);
            }
        }
        // Faces i-1/2 and i+1/2; zero flux through the band edges.
        var flux_up: Real = 0.0;
        var grad_up: Real = 0.0;
        if (i + 1u < n) {
            let fu = rhs_y(yb + i + 1u);
            flux_up = inelastic_flux(pref, tanh_h, tables[t_d2f + i], fi, fu);
            grad_up = tables[t_sgf + i] * (fu - fi) * inv_h;
            sigma = sigma + tables[t_sgf + i] * (fi - fu);
        }
        var flux_dn: Real = 0.0;
        var grad_dn: Real = 0.0;
        if (i > 0u) {
            let fd = rhs_y(yb + i - 1u);
            flux_dn = inelastic_flux(pref, tanh_h, tables[t_d2f + i - 1u], fd, fi);
            grad_dn = tables[t_sgf + i - 1u] * (fi - fd) * inv_h;
        }
        acc = acc + (flux_up - flux_dn) * inv_h + field * (grad_up - grad_dn) * inv_h;
        rhs_dy(yb + i, acc * tables[t_inv + i]);
    }
    return vec2<Real>(sigma, production);
}

// Pass 2 of member `member`'s right-hand side, by one invocation: the zeta, pump-rate and
// E*^2 derivatives from the member's totals `sums` = (σ sum, phonon production) over all
// its cells. No barriers.
fn rhs_totals(member: u32, t: Real, sums: vec2<Real>) {
    let pb = member * dims.params_len;
    let yb = member * dims.state_len;
    let n = select(0u, u32(params[pb + P_N]), rhs_active());
    let zeta = rhs_y(yb + n);
    let pump = rhs_y(yb + n + 1u);
    let e2_raw = rhs_y(yb + n + 2u);
    let e2_star = max(e2_raw, 0.0);
    let zf = params[pb + P_ZETA_FREE];
    let prod = sums.y * params[pb + P_ZETA_SCALE];
    rhs_dy(yb + n, zf * (prod + pump - zeta * params[pb + P_INV_TAU_PH]));
    rhs_dy(yb + n + 1u, -zf * pump * params[pb + P_INV_TAU_PULSE]);
    let s = sums.x * params[pb + P_INV_SIGMA0];
    let kappa = params[pb + P_KAPPA];
    var de2: Real = 0.0;
    if (params[pb + P_SELF_CONSISTENT] != 0.0) {
        // Maxwell: dE/dt = -4 pi sigma E, kappa = 4 pi sigma0; the seed feeds only growth
        // (sigma < 0), an overshoot below 0 relaxes back at rate 2 kappa: continuous at
        // E*^2 = 0 (CPU twin: collision.rs).
        var growth: Real = -s * e2_star;
        if (e2_raw < 0.0) {
            growth = -e2_raw;
        }
        de2 = 2.0 * kappa * (growth - min(s, 0.0) * params[pb + P_FIELD_SEED]);
    }
    rhs_dy(yb + n + 2u, de2);
    // Time of the last evaluation (keeps every binding in use for auto layouts).
    if (rhs_active()) {
        scratch[member * dims.scratch_len] = t;
    }
}

// The right-hand side of member `member` at time `t`, evaluated by the WG invocations of
// its segment of a workgroup (`lid` = index within the segment): pass 1, the sums over the
// member's threads (shared/member_reduce), pass 2 by thread 0. Contains workgroup
// barriers: call from uniform control flow. (A member split over several workgroups runs
// `rhs_cells` and `rhs_totals` from the split entry points instead.)
fn rhs_member(member: u32, lid: u32, t: Real) {
    let partial = rhs_cells(member, lid, t);
    let sums = member_sum2(lid, partial.x, partial.y);
    if (lid == 0u) {
        rhs_totals(member, t, sums);
    }
}

@compute @workgroup_size(WG)
fn rhs(
    @builtin(workgroup_id) wg_id: vec3<u32>,
    @builtin(num_workgroups) num_wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let member = member_index(wg_id, num_wg);
    if (member >= dims.batch) {
        return;
    }
    rhs_member(member, lid, scalars[dims.t_offset + member]);
    // A driver that cut the loops short (lavapipe's loop budget: many phonon lines × cells
    // per invocation) fails the member with NaN instead of returning a truncated
    // derivative. Once the budget is spent this loop itself runs at most once per
    // invocation, which still leaves a NaN in every invocation's first component. (The
    // fused step kernel checks the budget itself after every attempt.)
    if (workgroup_loops_cut()) {
        let yb = member * dims.state_len;
        for (var i: u32 = lid; i < dims.state_len; i = i + WG) {
            rhs_dy(yb + i, runtime_nan());
        }
    }
}
