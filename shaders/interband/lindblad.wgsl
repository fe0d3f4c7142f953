// Right-hand side of the interband-pairing model (laser-driven two-band semiconductor,
// rotating frame, mean-field pairing, phonon and radiative Lindblad baths).
// CPU twin: src/models/interband/lindblad.rs (same constants, same order of operations).
// Derivation: docs/models/interband.md.
//
// One segment of WG threads per member (its own workgroup, or a share of one). Pass 1:
// reduction of Σ_k s21_k over the segment (shared/member_reduce), giving
// Δ* = cv Σ s (the only coupling between momenta besides the phonon jumps), and each
// momentum's phonon rates of both bands (in1, out1, in2, out2) into the member's scratch
// block (4n reals), so pass 2 reads the rates at p and at its partner −p instead of
// recomputing them. Pass 2 (after the barriers, same dispatch): every thread writes the
// derivatives of its momenta.
// Arithmetic only: the rotating frame removes the laser's time dependence.
// The body is `rhs_member`, shared by the op-by-op `rhs` kernel below and the fused step
// kernel (src/engine/gpu/fused.rs), which compiles it against shared/fused_bindings.
//
// State of a member (n momenta): n11[n] n22[n] re n21[n] im n21[n] re s21[n] im s21[n],
// n21_k = <c†_{k2} c_{k1}>, s21_k = <c†_{k2} c†_{-k,1}>, -k_j = k_{n-1-j}.
// Tables (see src/models/interband/tables.rs): eps1[n], eps2[n], then per band
// (0 = valence, 1 = conduction) 4n outgoing reals (j0, w0, j1, w1) and 2wn incoming
// reals (i, w) per momentum.

//! import shared/rhs_bindings
//! import shared/member_reduce
// Several members may share a workgroup (ARCHITECTURE.md, "Work layouts"): the only
// workgroup memory is shared/member_reduce's, and the scratch writes are guarded by
// `rhs_active()` (a member that must not change anything reads stale rates and its
// derivative is discarded).
//! layout: packable

// Parameter block; kept in sync with src/models/interband/lindblad.rs.
const P_N: u32 = 0u;
const P_W: u32 = 1u;
const P_CV: u32 = 2u;
const P_OMEGA: u32 = 3u;
const P_GPH: u32 = 4u;
const P_GRR: u32 = 5u;
const P_DET: u32 = 6u;

// (in, out) phonon rates of band `band` at momentum p, times g:
// in = g Σ_{i→p} w n_i, out = g Σ_{p→j} w (1 − n_j).
fn phonon_rates(tb: u32, yb: u32, n: u32, w: u32, g: Real, band: u32, p: u32) -> vec2<Real> {
    let base = tb + 2u * n + band * (4u * n + 2u * w * n);
    let pop = yb + band * n;
    var out_r = Real(0.0);
    for (var s = 0u; s < 2u; s += 1u) {
        let j = u32(tables[base + 4u * p + 2u * s]);
        out_r += tables[base + 4u * p + 2u * s + 1u] * (Real(1.0) - rhs_y(pop + j));
    }
    var in_r = Real(0.0);
    for (var s = 0u; s < w; s += 1u) {
        let o = base + 4u * n + 2u * (w * p + s);
        in_r += tables[o + 1u] * rhs_y(pop + u32(tables[o]));
    }
    return vec2<Real>(g * in_r, g * out_r);
}

// The right-hand side of member `member`, evaluated by the WG invocations of its segment of
// a workgroup (`lid` = index within the segment): reads the state through `rhs_y`, writes the derivative through
// `rhs_dy` (shared/rhs_bindings; in a fused step kernel shared/fused_bindings). `t` is
// unused (the rotating frame makes the equations autonomous). Contains barriers: call from
// uniform control flow.
fn rhs_member(member: u32, lid: u32, t: Real) {
    let pb = member * dims.params_len;
    let tb = member * dims.table_stride;
    let yb = member * dims.state_len;
    // A member that must not change anything (rhs_active() false) only keeps the barriers.
    let n = select(0u, u32(params[pb + P_N]), rhs_active());
    let w = u32(params[pb + P_W]);

    let gph = params[pb + P_GPH];
    let sb = member * dims.scratch_len;

    // Pass 1: phonon rates per momentum, and Σ_k s21_k.
    for (var p = lid; p < n; p += WG) {
        let r1 = phonon_rates(tb, yb, n, w, gph, 0u, p);
        let r2 = phonon_rates(tb, yb, n, w, gph, 1u, p);
        if (rhs_active()) {
            scratch[sb + 4u * p] = r1.x;
            scratch[sb + 4u * p + 1u] = r1.y;
            scratch[sb + 4u * p + 2u] = r2.x;
            scratch[sb + 4u * p + 3u] = r2.y;
        }
    }
    var acc_re = Real(0.0);
    var acc_im = Real(0.0);
    for (var p = lid; p < n; p += WG) {
        acc_re += rhs_y(yb + 4u * n + p);
        acc_im += rhs_y(yb + 5u * n + p);
    }
    // The scratch rates written above are read by other threads in pass 2.
    storageBarrier();
    let sum_s = member_sum2(lid, acc_re, acc_im);
    let cv = params[pb + P_CV];
    let dsr = cv * sum_s.x;
    let dsi = cv * sum_s.y;
    // Δ = conj(Δ*).
    let dr = dsr;
    let di = -dsi;

    // Pass 2: derivatives.
    let omega = params[pb + P_OMEGA];
    let grr = params[pb + P_GRR];
    let det = params[pb + P_DET];
    for (var p = lid; p < n; p += WG) {
        let m = n - 1u - p;
        let n1 = rhs_y(yb + p);
        let n2 = rhs_y(yb + n + p);
        let xr = rhs_y(yb + 2u * n + p);
        let xi = rhs_y(yb + 3u * n + p);
        let sr = rhs_y(yb + 4u * n + p);
        let si = rhs_y(yb + 5u * n + p);
        let smr = rhs_y(yb + 4u * n + m);
        let smi = rhs_y(yb + 5u * n + m);
        let n1m = rhs_y(yb + m);
        let n2m = rhs_y(yb + n + m);
        let e1p = tables[tb + p] + Real(0.5) * det;
        let e2p = tables[tb + n + p] - Real(0.5) * det;
        let e1m = tables[tb + m] + Real(0.5) * det;
        let r1 = vec2<Real>(scratch[sb + 4u * p], scratch[sb + 4u * p + 1u]);
        let r2 = vec2<Real>(scratch[sb + 4u * p + 2u], scratch[sb + 4u * p + 3u]);
        let r1m = vec2<Real>(scratch[sb + 4u * m], scratch[sb + 4u * m + 1u]);
        // Radiative recombination: <n2(1 − n1)> = n2(1 − n1) + |n21|².
        let rr = grr * (n2 * (Real(1.0) - n1) + xr * xr + xi * xi);
        let im_dsm = dr * smi + di * smr;
        let im_ds = dr * si + di * sr;
        rhs_dy(yb + p, -omega * xi - Real(2.0) * im_dsm + r1.x * (Real(1.0) - n1) - r1.y * n1 + rr);
        rhs_dy(yb + n + p, omega * xi - Real(2.0) * im_ds + r2.x * (Real(1.0) - n2) - r2.y * n2 - rr);
        let ex = e2p - e1p;
        let gx = Real(0.5) * (r1.x + r1.y + r2.x + r2.y + grr);
        rhs_dy(yb + 2u * n + p, -ex * xi - gx * xr);
        rhs_dy(yb + 3u * n + p, ex * xr + Real(0.5) * omega * (n1 - n2) - gx * xi);
        let es = e2p + e1m;
        let nt = n2 + n1m - Real(1.0);
        let gs = Real(0.5) * (r1m.x + r1m.y + r2.x + r2.y + grr * (Real(1.0) - n1 + n2m));
        rhs_dy(yb + 4u * n + p, -es * si - dsi * nt - gs * sr);
        rhs_dy(yb + 5u * n + p, es * sr + dsr * nt - gs * si);
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
}
