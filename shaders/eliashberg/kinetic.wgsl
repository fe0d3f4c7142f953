// Right-hand side of the Migdal-Eliashberg kinetic equation (supplement Eqs 29, 38):
// solves (diag(1 − Σ′) + diag(f′) K) ḟ = I_ep[f] for one member per workgroup, as
// `rhs_member` (state and derivative through `rhs_y`/`rhs_dy`, so that the fused step
// kernels of src/engine/gpu/fused.rs call it per stage) with the op-by-op `rhs` kernel a
// thin wrapper around it.
// CPU twin: `eliashberg_kinetic` in src/models/eliashberg/kinetic.rs (same table layout,
// same constants; the twin solves by dense LU, this kernel by Jacobi-preconditioned
// BiCGSTAB). Kept in sync with `PARAMS_LEN`, `table_len` and `SCRATCH_VECTORS` there.
//
// params (per member): [time_scale, L, n_modes, 0, stencil] (0 = 3-point, 1 = 5-point
//                      central differences for Σ′ and f′; the 5-point one pairs with the
//                      cubic PV rule, `PvRule::five_point`)
// tables (per member): the self-energy kernel K_ij = T[i − j + L − 1] + H[i + j]
//                      (rows i = 0…L for E = 1…L+1, columns j = 0…L−1): T (2L), H (2L);
//                      b (L+1); r_k, π λ_k r_k, N_k (n_modes each)
// scratch (per member): vectors of stride L+1: 0 Σ then Jacobi diagonal, 1 d = 1 − Σ′,
//                      2 f′, 3 x, 4 r, 5 r̂0, 6 p, 7 v, 8 s, 9 t
// A singular or unconverged solve writes NaN (0/0 with a runtime zero) so the engine marks
// the member FAILED.

//! import shared/rhs_bindings
// One `rhs_member` call site in a fused step kernel (src/engine/gpu/fused.rs, `plan`):
// with the many barriers of the solve, six inlined copies (DOPRI5) took llvmpipe over ten
// minutes to compile.
//! fused: one rhs_member call site

const MAX_ITER: u32 = 500u;
// Relative residual at which BiCGSTAB stops: 1e-13 in f64, ~1e-6 in f32 (detected at
// run time from 1 + 1e-10 == 1).
const TOL_F64: f32 = 1e-13;

var<workgroup> red: array<Real, WG>;
var<workgroup> uni: array<u32, 2>;

// Sum of `v` over the workgroup, returned uniformly to every invocation.
fn reduce_sum(lid: u32, v: Real) -> Real {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid < s) {
            red[lid] = red[lid] + red[lid + s];
        }
        workgroupBarrier();
    }
    let total = workgroupUniformLoad(&red[0]);
    workgroupBarrier();
    return total;
}

// f at grid index j with the boundary conditions (31): f(0) = ½, f(−E) = 1 − f(E),
// f(jε) = 0 for j > L.
fn fext(sb: u32, l: i32, j: i32) -> Real {
    if (j == 0) {
        return Real(0.5);
    }
    if (j > l) {
        return Real(0.0);
    }
    if (j > 0) {
        return rhs_y(sb + u32(j - 1));
    }
    if (-j > l) {
        return Real(1.0);
    }
    return Real(1.0) - rhs_y(sb + u32(-j - 1));
}

// Σ at node n (E = nε, n ≥ −L−1) from scratch vector 0 (nodes 1…L+1): Σ is odd, Σ_0 = 0.
fn sigma_at(cb: u32, n: i32) -> Real {
    if (n == 0) {
        return Real(0.0);
    }
    if (n > 0) {
        return scratch[cb + u32(n - 1)];
    }
    return -scratch[cb + u32(-n - 1)];
}

// K_ij from its Toeplitz and Hankel parts: neighbouring rows (threads) read neighbouring
// table entries, and the kernel costs O(L) storage instead of O(L²).
fn kernel_entry(tb: u32, l: u32, i: u32, j: u32) -> Real {
    return tables[tb + i + l - 1u - j] + tables[tb + 2u * l + i + j];
}

// Σ_{j0 ≤ j < j0+16} K_ij y_j, written out: the row sums are the kernel's O(L²) work, and
// unrolling keeps its loop count 16× below lavapipe's per-invocation loop budget (see
// `loop_budget_intact`).
fn kernel_dot16_state(tb: u32, l: u32, i: u32, j0: u32, sb: u32) -> Real {
    let t_lo = tb + i + l - 1u - j0;
    let t_hi = tb + 2u * l + i + j0;
    let yb = sb + j0;
    return Real(0.0)
        + (tables[t_lo - 0u] + tables[t_hi + 0u]) * rhs_y(yb + 0u)
        + (tables[t_lo - 1u] + tables[t_hi + 1u]) * rhs_y(yb + 1u)
        + (tables[t_lo - 2u] + tables[t_hi + 2u]) * rhs_y(yb + 2u)
        + (tables[t_lo - 3u] + tables[t_hi + 3u]) * rhs_y(yb + 3u)
        + (tables[t_lo - 4u] + tables[t_hi + 4u]) * rhs_y(yb + 4u)
        + (tables[t_lo - 5u] + tables[t_hi + 5u]) * rhs_y(yb + 5u)
        + (tables[t_lo - 6u] + tables[t_hi + 6u]) * rhs_y(yb + 6u)
        + (tables[t_lo - 7u] + tables[t_hi + 7u]) * rhs_y(yb + 7u)
        + (tables[t_lo - 8u] + tables[t_hi + 8u]) * rhs_y(yb + 8u)
        + (tables[t_lo - 9u] + tables[t_hi + 9u]) * rhs_y(yb + 9u)
        + (tables[t_lo - 10u] + tables[t_hi + 10u]) * rhs_y(yb + 10u)
        + (tables[t_lo - 11u] + tables[t_hi + 11u]) * rhs_y(yb + 11u)
        + (tables[t_lo - 12u] + tables[t_hi + 12u]) * rhs_y(yb + 12u)
        + (tables[t_lo - 13u] + tables[t_hi + 13u]) * rhs_y(yb + 13u)
        + (tables[t_lo - 14u] + tables[t_hi + 14u]) * rhs_y(yb + 14u)
        + (tables[t_lo - 15u] + tables[t_hi + 15u]) * rhs_y(yb + 15u);
}

// Σ_{j0 ≤ j < j0+16} K_ij z_j with z = scratch vector at `vb0` divided by the diagonal.
fn kernel_dot16_scaled(tb: u32, l: u32, i: u32, j0: u32, vb0: u32, db0: u32) -> Real {
    let t_lo = tb + i + l - 1u - j0;
    let t_hi = tb + 2u * l + i + j0;
    let vb = vb0 + j0;
    let db = db0 + j0;
    return Real(0.0)
        + (tables[t_lo - 0u] + tables[t_hi + 0u]) * (scratch[vb + 0u] / scratch[db + 0u])
        + (tables[t_lo - 1u] + tables[t_hi + 1u]) * (scratch[vb + 1u] / scratch[db + 1u])
        + (tables[t_lo - 2u] + tables[t_hi + 2u]) * (scratch[vb + 2u] / scratch[db + 2u])
        + (tables[t_lo - 3u] + tables[t_hi + 3u]) * (scratch[vb + 3u] / scratch[db + 3u])
        + (tables[t_lo - 4u] + tables[t_hi + 4u]) * (scratch[vb + 4u] / scratch[db + 4u])
        + (tables[t_lo - 5u] + tables[t_hi + 5u]) * (scratch[vb + 5u] / scratch[db + 5u])
        + (tables[t_lo - 6u] + tables[t_hi + 6u]) * (scratch[vb + 6u] / scratch[db + 6u])
        + (tables[t_lo - 7u] + tables[t_hi + 7u]) * (scratch[vb + 7u] / scratch[db + 7u])
        + (tables[t_lo - 8u] + tables[t_hi + 8u]) * (scratch[vb + 8u] / scratch[db + 8u])
        + (tables[t_lo - 9u] + tables[t_hi + 9u]) * (scratch[vb + 9u] / scratch[db + 9u])
        + (tables[t_lo - 10u] + tables[t_hi + 10u]) * (scratch[vb + 10u] / scratch[db + 10u])
        + (tables[t_lo - 11u] + tables[t_hi + 11u]) * (scratch[vb + 11u] / scratch[db + 11u])
        + (tables[t_lo - 12u] + tables[t_hi + 12u]) * (scratch[vb + 12u] / scratch[db + 12u])
        + (tables[t_lo - 13u] + tables[t_hi + 13u]) * (scratch[vb + 13u] / scratch[db + 13u])
        + (tables[t_lo - 14u] + tables[t_hi + 14u]) * (scratch[vb + 14u] / scratch[db + 14u])
        + (tables[t_lo - 15u] + tables[t_hi + 15u]) * (scratch[vb + 15u] / scratch[db + 15u]);
}

// Σ_i = Σ_j K_ij y_j over the whole row (blocks of 64, then the rest).
fn kernel_row_state(tb: u32, l: u32, i: u32, sb: u32) -> Real {
    var acc = Real(0.0);
    var j0 = 0u;
    for (; j0 + 64u <= l; j0 = j0 + 64u) {
        acc = acc + kernel_dot16_state(tb, l, i, j0, sb) + kernel_dot16_state(tb, l, i, j0 + 16u, sb)
            + kernel_dot16_state(tb, l, i, j0 + 32u, sb) + kernel_dot16_state(tb, l, i, j0 + 48u, sb);
    }
    for (; j0 + 16u <= l; j0 = j0 + 16u) {
        acc = acc + kernel_dot16_state(tb, l, i, j0, sb);
    }
    for (var j = j0; j < l; j = j + 1u) {
        acc = acc + kernel_entry(tb, l, i, j) * rhs_y(sb + j);
    }
    return acc;
}

// (M z)_i = d_i z_i + f′_i Σ_j K_ij z_j with z = p / diag (Jacobi), for i = row.
fn matvec_row(tb: u32, cb: u32, st: u32, l: u32, row: u32, src: u32) -> Real {
    var acc = Real(0.0);
    let vb = cb + src * st;
    var j0 = 0u;
    for (; j0 + 64u <= l; j0 = j0 + 64u) {
        acc = acc + kernel_dot16_scaled(tb, l, row, j0, vb, cb) + kernel_dot16_scaled(tb, l, row, j0 + 16u, vb, cb)
            + kernel_dot16_scaled(tb, l, row, j0 + 32u, vb, cb) + kernel_dot16_scaled(tb, l, row, j0 + 48u, vb, cb);
    }
    for (; j0 + 16u <= l; j0 = j0 + 16u) {
        acc = acc + kernel_dot16_scaled(tb, l, row, j0, vb, cb);
    }
    for (var j = j0; j < l; j = j + 1u) {
        acc = acc + kernel_entry(tb, l, row, j) * (scratch[vb + j] / scratch[cb + j]);
    }
    let zi = scratch[cb + src * st + row] / scratch[cb + row];
    return scratch[cb + st + row] * zi + scratch[cb + 2u * st + row] * acc;
}

// ḟ of member `m` (< dims.batch), read through `rhs_y` and written through `rhs_dy`:
// the body of the op-by-op `rhs` kernel below and the right-hand side of the fused step
// kernels (src/engine/gpu/fused.rs). Every invocation of the workgroup calls it from
// uniform control flow (it contains barriers). The equation is autonomous: `t` is unused.
// Loop iterations per invocation: `member_loops_per_component` in
// src/models/eliashberg/kinetic.rs counts them for lavapipe's budget.
fn rhs_member(m: u32, lid: u32, t: Real) {
    if (lid == 0u) {
        uni[0] = u32(params[m * dims.params_len + 1u]);
        uni[1] = u32(params[m * dims.params_len + 2u]);
    }
    let l = workgroupUniformLoad(&uni[0]);
    let nm = workgroupUniformLoad(&uni[1]);
    if (l == 0u) {
        return;
    }
    let pb = m * dims.params_len;
    let tb = m * dims.table_stride;
    let sb = m * dims.state_len;
    let cb = m * dims.scratch_len;
    let st = l + 1u;
    let kb = tb;                       // K: T then H
    let bb = tb + 4u * l;              // b
    let mb = bb + l + 1u;              // modes: r, c, N
    let zero = params[pb + 3u];        // runtime 0 (for NaN)
    let li = i32(l);

    // 1. Σ on nodes 1…L+1: the N×N kernel.
    for (var i = lid; i <= l; i = i + WG) {
        scratch[cb + i] = tables[bb + i] + kernel_row_state(kb, l, i, sb);
    }
    storageBarrier();
    // 2. d = 1 − Σ′, f′ (central differences: 3-point, or 5-point except Σ′ at the last
    // node, which would need Σ beyond L+1), collision integral into r (vector 4).
    let five = params[pb + 4u] > Real(0.5);
    for (var i = lid; i < l; i = i + WG) {
        let e = i32(i) + 1;
        var dsig = Real(0.5) * (sigma_at(cb, e + 1) - sigma_at(cb, e - 1));
        var dfe = Real(0.5) * (fext(sb, li, e + 1) - fext(sb, li, e - 1));
        if (five) {
            dfe = (Real(8.0) * (fext(sb, li, e + 1) - fext(sb, li, e - 1))
                - (fext(sb, li, e + 2) - fext(sb, li, e - 2))) / Real(12.0);
            if (e < li) {
                dsig = (Real(8.0) * (sigma_at(cb, e + 1) - sigma_at(cb, e - 1))
                    - (sigma_at(cb, e + 2) - sigma_at(cb, e - 2))) / Real(12.0);
            }
        }
        scratch[cb + st + i] = Real(1.0) - dsig;
        scratch[cb + 2u * st + i] = dfe;
        let fi = fext(sb, li, e);
        var acc = Real(0.0);
        for (var k = 0u; k < nm; k = k + 1u) {
            let rk = i32(tables[mb + k]);
            let ck = tables[mb + nm + k];
            let nk = tables[mb + 2u * nm + k];
            let fp = fext(sb, li, e + rk);
            let fm = fext(sb, li, e - rk);
            acc = acc + ck * (nk * (fp + fm - Real(2.0) * fi) - fi * (fp - fm) + fp - fi);
        }
        scratch[cb + 4u * st + i] = acc;
    }
    storageBarrier();
    // 3. Jacobi diagonal into vector 0; x = 0, r̂0 = r, p = v = 0; ‖b‖².
    var part = Real(0.0);
    for (var i = lid; i < l; i = i + WG) {
        scratch[cb + i] = scratch[cb + st + i] + scratch[cb + 2u * st + i] * kernel_entry(kb, l, i, i);
        let bi = scratch[cb + 4u * st + i];
        scratch[cb + 3u * st + i] = Real(0.0);
        scratch[cb + 5u * st + i] = bi;
        scratch[cb + 6u * st + i] = Real(0.0);
        scratch[cb + 7u * st + i] = Real(0.0);
        part = part + bi * bi;
    }
    let bnorm2 = reduce_sum(lid, part);
    storageBarrier();
    var rho = Real(1.0);
    var alpha = Real(1.0);
    var omega = Real(1.0);
    var ok = bnorm2 == Real(0.0);
    let one_plus = Real(1.0) + Real(1e-10) * bnorm2 / max(bnorm2, Real(1e-30));
    let tol = Real(TOL_F64) + Real(1e-6) * select(Real(0.0), Real(1.0), one_plus == Real(1.0));
    // 4. BiCGSTAB (right Jacobi preconditioning; the solution is diag⁻¹ times the iterate).
    for (var it = 0u; it < MAX_ITER; it = it + 1u) {
        if (ok) {
            break;
        }
        part = Real(0.0);
        for (var i = lid; i < l; i = i + WG) {
            part = part + scratch[cb + 5u * st + i] * scratch[cb + 4u * st + i];
        }
        let rho_new = reduce_sum(lid, part);
        if (rho_new == Real(0.0) || omega == Real(0.0)) {
            break;
        }
        let beta = (rho_new / rho) * (alpha / omega);
        rho = rho_new;
        for (var i = lid; i < l; i = i + WG) {
            let o = cb + 6u * st + i;
            scratch[o] = scratch[cb + 4u * st + i] + beta * (scratch[o] - omega * scratch[cb + 7u * st + i]);
        }
        storageBarrier();
        part = Real(0.0);
        for (var i = lid; i < l; i = i + WG) {
            let vi = matvec_row(kb, cb, st, l, i, 6u);
            scratch[cb + 7u * st + i] = vi;
            part = part + scratch[cb + 5u * st + i] * vi;
        }
        let r0v = reduce_sum(lid, part);
        if (r0v == Real(0.0)) {
            break;
        }
        alpha = rho / r0v;
        for (var i = lid; i < l; i = i + WG) {
            scratch[cb + 8u * st + i] = scratch[cb + 4u * st + i] - alpha * scratch[cb + 7u * st + i];
        }
        storageBarrier();
        var tt = Real(0.0);
        var ts = Real(0.0);
        for (var i = lid; i < l; i = i + WG) {
            let ti = matvec_row(kb, cb, st, l, i, 8u);
            scratch[cb + 9u * st + i] = ti;
            tt = tt + ti * ti;
            ts = ts + ti * scratch[cb + 8u * st + i];
        }
        let tt_sum = reduce_sum(lid, tt);
        let ts_sum = reduce_sum(lid, ts);
        if (tt_sum == Real(0.0)) {
            break;
        }
        omega = ts_sum / tt_sum;
        part = Real(0.0);
        for (var i = lid; i < l; i = i + WG) {
            let xi = cb + 3u * st + i;
            scratch[xi] = scratch[xi] + alpha * scratch[cb + 6u * st + i] + omega * scratch[cb + 8u * st + i];
            let ri = scratch[cb + 8u * st + i] - omega * scratch[cb + 9u * st + i];
            scratch[cb + 4u * st + i] = ri;
            part = part + ri * ri;
        }
        let rn2 = reduce_sum(lid, part);
        storageBarrier();
        ok = rn2 <= tol * tol * bnorm2;
    }
    // 5. ḟ = time_scale · diag⁻¹ x, or NaN when the solve failed (singular left-hand side)
    // or the driver cut a loop short.
    let cut = workgroup_loops_cut();
    ok = ok && !cut;
    let scale = params[pb];
    for (var i = lid; i < l; i = i + WG) {
        if (ok) {
            rhs_dy(sb + i, scale * scratch[cb + 3u * st + i] / scratch[cb + i]);
        } else {
            rhs_dy(sb + i, zero / zero);
        }
    }
}

@compute @workgroup_size(WG)
fn rhs(@builtin(workgroup_id) wg_id: vec3<u32>,
       @builtin(num_workgroups) num_wg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let m = member_index(wg_id, num_wg);
    if (m >= dims.batch) {
        return;
    }
    rhs_member(m, lid, scalars[dims.t_offset + m]);
}
