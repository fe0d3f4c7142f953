//! CPU twins of the cavity kernels in `shaders/cavity/`, same names, arguments in binding
//! order (params, tables, t, y, dy, scratch), same layout constants. See
//! `docs/models/cavity.md` for the equations.
//!
//! Kept in sync with `shaders/cavity/{collision,shift,riccati}.wgsl`.
//!
//! Every grid kernel's state is n_k blocks of nb points (one block per ε_k of the member's
//! on-shell axis; n_k = 1 without one), nb a param; each block has its own tables (the
//! per-block length below) and couples to no other block.
//!
//! Departures from the kernels' loop structure, for throughput on a CPU (the same terms;
//! results agree with the kernels to rounding): every loop is branch-free over slices, so
//! the compiler vectorises it, and is compiled for AVX2 and AVX-512F besides the baseline,
//! picked at run time ([`crate::multiversion`], no FMA: every build gives the same bits);
//! sums over ω̃ are accumulated in 8 interleaved partial sums (the kernels: in blocks of
//! 16); per cell, the ranges where a partner exists (`shift`, `flux`) or where a pair takes
//! one branch of coth (`collision_graded`) are cut before the loop instead of tested per
//! pair; `collision` uses per-node sums of its Toeplitz tables built with the batch (see
//! there).

/// `collision` params: γ, nb (points per block).
pub const C_P_GAMMA: usize = 0;
/// See [`C_P_GAMMA`].
pub const C_P_BLOCK: usize = 1;
/// `collision` params length.
pub const C_PARAMS_LEN: usize = 2;
/// `collision` table offsets, in units of n (B and BD have 2n−1 entries each):
/// F0 at 0, A_e at n, preconditioner at 2n, b at 3n, bd at 5n−1, then (read by the CPU twin
/// only) `Σ_j A_j b_{i−j}` at 7n−2 and `Σ_j A_j bd_{i−j}` at 8n−2; length 9n−2.
/// `bd_0` (ν = 0) is stored as 0: it multiplies `F_i − F_i = 0` (the preconditioner is built
/// with its value).
pub fn collision_table_len(n: usize) -> usize {
    9 * n - 2
}

/// The CPU-only tail of a `collision` table block: `(Σ_j A_j b_{i−j}, Σ_j A_j bd_{i−j})`
/// per node i, from `a` (n entries) and `b`, `bd` (2n − 1 entries, index `i + n − 1 − j`).
pub fn collision_node_sums(a: &[f64], b: &[f64], bd: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let n = a.len();
    let sum = |t: &[f64], i: usize| (0..n).map(|j| a[j] * t[i + n - 1 - j]).sum();
    ((0..n).map(|i| sum(b, i)).collect(), (0..n).map(|i| sum(bd, i)).collect())
}

/// `collision` (level 1): `dF_i/dτ = P_i [γ(F0_i − F_i) + Σ_j A_j (b_{i−j}(1 − F_iF_j)
/// − bd_{i−j}(F_i − F_j))]`, with `b_k = g²S h B(kh)`, `bd_k = b_k coth(kh/2T_mir)` and
/// `B(ν) = γ_ph ν / (L((ν²−ν0²)² + γ_ph²ν²))` (odd photon spectral function).
///
/// Evaluated as `P_i [γ(F0_i − F_i) + (C_i + Σ_j bd_{i−j} g_j) − F_i (Σ_j b_{i−j} g_j + D_i)]`
/// with `g_j = A_j F_j` and the batch's node sums `C_i = Σ_j A_j b_{i−j}`,
/// `D_i = Σ_j A_j bd_{i−j}` (the same sum regrouped): two dot products per node over
/// contiguous slices instead of the pair formula.
pub fn collision(params: &[f64], tables: &[f64], _t: f64, y: &[f64], dy: &mut [f64]) {
    let n = params[C_P_BLOCK] as usize;
    let tl = collision_table_len(n);
    WORK.with(|w| {
        let mut w = w.borrow_mut();
        w.resize(n, 0.0);
        for (blk, (yb, dyb)) in y.chunks(n).zip(dy.chunks_mut(n)).enumerate() {
            collision_block(params[C_P_GAMMA], &tables[blk * tl..(blk + 1) * tl], yb, dyb, &mut w[..n]);
        }
    });
}

/// Lanes of the partial sums over ω̃: independent accumulators, so a sum vectorises without
/// reassociating a single sum.
const LANES: usize = 8;

/// Folds `LANES` partial sums.
#[inline(always)]
fn fold(l: [f64; LANES]) -> f64 {
    ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]))
}

/// `(Σ_r b_r g_r, Σ_r bd_r g_r)` over `g.len()` entries, in `LANES` partial sums each.
#[inline(always)]
fn dot2(b: &[f64], bd: &[f64], g: &[f64]) -> (f64, f64) {
    let n = g.len();
    let (b, bd) = (&b[..n], &bd[..n]);
    let (mut s1, mut s2) = ([0.0; LANES], [0.0; LANES]);
    let chunks = n / LANES;
    for c in 0..chunks {
        let o = c * LANES;
        let bc: &[f64; LANES] = b[o..o + LANES].try_into().unwrap();
        let dc: &[f64; LANES] = bd[o..o + LANES].try_into().unwrap();
        let gc: &[f64; LANES] = g[o..o + LANES].try_into().unwrap();
        for q in 0..LANES {
            s1[q] += bc[q] * gc[q];
            s2[q] += dc[q] * gc[q];
        }
    }
    for r in chunks * LANES..n {
        s1[0] += b[r] * g[r];
        s2[0] += bd[r] * g[r];
    }
    (fold(s1), fold(s2))
}

thread_local! {
    /// Per-thread work buffer of `collision`: `g_j = A_j F_j` in reverse order.
    static WORK: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}

crate::multiversion! {
    /// One block of [`collision`], dispatched to the widest SIMD build the CPU runs.
    fn collision_block / collision_block_portable (gamma: f64, tables: &[f64], y: &[f64], dy: &mut [f64], work: &mut [f64]) => collision_block_impl
}

#[inline(always)]
fn collision_block_impl(gamma: f64, tables: &[f64], y: &[f64], dy: &mut [f64], work: &mut [f64]) {
    let n = y.len();
    let dy = &mut dy[..n];
    let (f0, a, prec) = (&tables[..n], &tables[n..2 * n], &tables[2 * n..3 * n]);
    let b = &tables[3 * n..5 * n - 1];
    let bd = &tables[5 * n - 1..7 * n - 2];
    let (c, d) = (&tables[7 * n - 2..8 * n - 2], &tables[8 * n - 2..9 * n - 2]);
    // g in reverse (r = n − 1 − j), so that node i reads b and bd forward from index i:
    // b_{i+n−1−j} = b[i + r].
    let g = &mut work[..n];
    for (r, g) in g.iter_mut().enumerate() {
        *g = a[n - 1 - r] * y[n - 1 - r];
    }
    let g = &work[..n];
    for i in 0..n {
        let (s1, s2) = dot2(&b[i..i + n], &bd[i..i + n], g);
        let fi = y[i];
        let acc = (c[i] + s2) - fi * (s1 + d[i]);
        dy[i] = prec[i] * (gamma * (f0[i] - fi) + acc);
    }
}

/// `collision_graded` params: γ, ν0, γ_ph, c = g²S_{d−1}/L, T_mir, even (1: printed Eq 5),
/// nb (points per block).
pub const G_P_GAMMA: usize = 0;
/// See [`G_P_GAMMA`].
pub const G_P_NU0: usize = 1;
/// See [`G_P_GAMMA`].
pub const G_P_GAMMA_PH: usize = 2;
/// See [`G_P_GAMMA`].
pub const G_P_COUPLING: usize = 3;
/// See [`G_P_GAMMA`].
pub const G_P_TMIR: usize = 4;
/// See [`G_P_GAMMA`].
pub const G_P_EVEN: usize = 5;
/// See [`G_P_GAMMA`].
pub const G_P_BLOCK: usize = 6;
/// `collision_graded` params length.
pub const G_PARAMS_LEN: usize = 7;
/// `collision_graded` tables: F0 at 0, A_e·w (trapezoidal weight) at n, preconditioner at
/// 2n, ω at 3n, e^{(ω−μ0)/T_mir} at 4n, e^{−(ω−μ0)/T_mir} at 5n; length 6n.
pub fn collision_graded_table_len(n: usize) -> usize {
    6 * n
}

/// Photon weight b(ν) and coth(ν/2T_mir) of one node pair (i, j), ν = ω_i − ω_j ≠ 0, as the
/// `collision_graded` kernel evaluates them (see there): `ep`/`em` are the per-node factors
/// e^{±(ω−μ0)/T_mir}.
pub fn graded_pair(params: &[f64], nu: f64, epi: f64, emi: f64, epj: f64, emj: f64) -> (f64, f64) {
    let (nu0, gph, c) = (params[G_P_NU0], params[G_P_GAMMA_PH], params[G_P_COUPLING]);
    let dd = nu * nu - nu0 * nu0;
    let b = if params[G_P_EVEN] > 0.5 {
        -c * gph / (dd * dd + gph * gph)
    } else {
        c * gph * nu / (dd * dd + gph * gph * nu * nu)
    };
    let x = nu / (2.0 * params[G_P_TMIR]);
    let coth = if x.abs() < 0.01 {
        let x2 = x * x;
        1.0 / x + x * (1.0 / 3.0 - x2 * (1.0 / 45.0 - x2 * (2.0 / 945.0)))
    } else {
        // e^{−|ν|/T_mir} from the node factors (no exp per pair).
        let r = if nu > 0.0 { emi * epj } else { epi * emj };
        let c = (1.0 + r) / (1.0 - r);
        if nu < 0.0 {
            -c
        } else {
            c
        }
    };
    (b, coth)
}

/// `collision_graded` (level 1 on a non-uniform grid):
/// `dF_i/dτ = P_i [γ(F0_i − F_i) + Σ_{j≠i} (A w)_j b(ν)((1 − F_iF_j) − coth(ν/2T_mir)(F_i − F_j))]`,
/// ν = ω_i − ω_j, b and coth as [`graded_pair`] (in the kernel's grouping of the products).
///
/// The nodes increase, so ν > 0 for j < i and ν < 0 for j > i, and |ν| grows away from i:
/// per node i the pairs fall into four contiguous ranges — Laurent series of coth
/// (`|ν|/2T_mir < 0.01`, the same test per pair, located by bisection) or the node factors,
/// on either side of i — each summed by a branch-free loop; printed Eq 5 (even b) or the
/// consistent odd b is chosen once per call.
pub fn collision_graded(params: &[f64], tables: &[f64], _t: f64, y: &[f64], dy: &mut [f64]) {
    let n = params[G_P_BLOCK] as usize;
    let tl = collision_graded_table_len(n);
    WORK.with(|w| {
        let mut w = w.borrow_mut();
        w.resize(n, 0.0);
        for (blk, (yb, dyb)) in y.chunks(n).zip(dy.chunks_mut(n)).enumerate() {
            collision_graded_block(params, &tables[blk * tl..(blk + 1) * tl], yb, dyb, &mut w[..n]);
        }
    });
}

crate::multiversion! {
    /// One block of [`collision_graded`], dispatched to the widest SIMD build the CPU runs.
    fn collision_graded_block / collision_graded_block_portable (params: &[f64], tables: &[f64], y: &[f64], dy: &mut [f64], work: &mut [f64]) => collision_graded_block_impl
}

#[inline(always)]
fn collision_graded_block_impl(params: &[f64], tables: &[f64], y: &[f64], dy: &mut [f64], work: &mut [f64]) {
    if params[G_P_EVEN] > 0.5 {
        graded_block::<true>(params, tables, y, dy, work)
    } else {
        graded_block::<false>(params, tables, y, dy, work)
    }
}

/// Per-call constants of `collision_graded` (the kernel's hoisted ones).
#[derive(Clone, Copy)]
struct GradedConsts {
    cg: f64,
    gph2: f64,
    nu0sq: f64,
    two_t: f64,
}

/// `Σ_j (A w)_j b(ν)((1 − F_iF_j) − coth(ν/2T)(F_i − F_j))` over one range of partners, all
/// with the same coth branch: `SERIES` (Laurent series) or the node factors with
/// `r = e^{−|ν|/T}` = `r_i · r_j` (`ri`: `e^{−(ω_i−μ0)/T}` and `rj = e^{+(ω_j−μ0)/T}` for
/// ν > 0, the other way round for ν < 0, `NEG`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn graded_range<const EVEN: bool, const SERIES: bool, const NEG: bool>(
    k: GradedConsts,
    wi: f64,
    fi: f64,
    ri: f64,
    omega: &[f64],
    rj: &[f64],
    aw: &[f64],
    f: &[f64],
    work: &mut [f64],
) -> f64 {
    let len = omega.len();
    let (rj, aw, f, terms) = (&rj[..len], &aw[..len], &f[..len], &mut work[..len]);
    let term = |w: f64, rj: f64, aw: f64, fj: f64| {
        let nu = wi - w;
        let nu2 = nu * nu;
        let dd = nu2 - k.nu0sq;
        let b = if EVEN { -k.cg / (dd * dd + k.gph2) } else { k.cg * nu / (dd * dd + k.gph2 * nu2) };
        let coth = if SERIES {
            let x = nu / k.two_t;
            let x2 = x * x;
            1.0 / x + x * (1.0 / 3.0 - x2 * (1.0 / 45.0 - x2 * (2.0 / 945.0)))
        } else {
            let r = ri * rj;
            let c = (1.0 + r) / (1.0 - r);
            if NEG {
                -c
            } else {
                c
            }
        };
        aw * b * ((1.0 - fi * fj) - coth * (fi - fj))
    };
    // One pass of pair terms (a plain map, vectorised at full width), then their sum.
    for (t, (((&w, &r), &a), &fj)) in terms.iter_mut().zip(omega.iter().zip(rj).zip(aw).zip(f)) {
        *t = term(w, r, a, fj);
    }
    let mut lanes = [0.0; LANES];
    let chunks = len / LANES;
    for c in 0..chunks {
        let tc: &[f64; LANES] = terms[c * LANES..(c + 1) * LANES].try_into().unwrap();
        for q in 0..LANES {
            lanes[q] += tc[q];
        }
    }
    for &t in &terms[chunks * LANES..] {
        lanes[0] += t;
    }
    fold(lanes)
}

#[inline(always)]
fn graded_block<const EVEN: bool>(params: &[f64], tables: &[f64], y: &[f64], dy: &mut [f64], work: &mut [f64]) {
    let n = y.len();
    let dy = &mut dy[..n];
    let gamma = params[G_P_GAMMA];
    let (nu0, gph) = (params[G_P_NU0], params[G_P_GAMMA_PH]);
    let k = GradedConsts {
        cg: params[G_P_COUPLING] * gph,
        gph2: gph * gph,
        nu0sq: nu0 * nu0,
        two_t: 2.0 * params[G_P_TMIR],
    };
    let (f0, aw, prec) = (&tables[..n], &tables[n..2 * n], &tables[2 * n..3 * n]);
    let (omega, ep, em) = (&tables[3 * n..4 * n], &tables[4 * n..5 * n], &tables[5 * n..6 * n]);
    for i in 0..n {
        let (fi, wi) = (y[i], omega[i]);
        let series = |w: f64| ((wi - w) / k.two_t).abs() < 0.01;
        // [0, lo): node factors; [lo, i) and (i, hi): series; [hi, n): node factors.
        let lo = omega[..i].partition_point(|&w| !series(w));
        let hi = i + 1 + omega[i + 1..].partition_point(|&w| series(w));
        let below =
            graded_range::<EVEN, false, false>(k, wi, fi, em[i], &omega[..lo], &ep[..lo], &aw[..lo], &y[..lo], work)
                + graded_range::<EVEN, true, false>(
                    k,
                    wi,
                    fi,
                    0.0,
                    &omega[lo..i],
                    &ep[lo..i],
                    &aw[lo..i],
                    &y[lo..i],
                    work,
                );
        let above =
            graded_range::<EVEN, true, true>(
                k,
                wi,
                fi,
                0.0,
                &omega[i + 1..hi],
                &em[i + 1..hi],
                &aw[i + 1..hi],
                &y[i + 1..hi],
                work,
            ) + graded_range::<EVEN, false, true>(k, wi, fi, ep[i], &omega[hi..], &em[hi..], &aw[hi..], &y[hi..], work);
        dy[i] = prec[i] * (gamma * (f0[i] - fi) + (below + above));
    }
}

/// `shift` params: γ, D (coth(ν0/2T_mir) for level 2, coth(h/2T_mir) for Fokker–Planck),
/// shift m in grid points, sign of the ω−ν0 channel (+1 consistent, −1 S71 reading), nb.
pub const S_P_GAMMA: usize = 0;
/// See [`S_P_GAMMA`].
pub const S_P_D: usize = 1;
/// See [`S_P_GAMMA`].
pub const S_P_SHIFT: usize = 2;
/// See [`S_P_GAMMA`].
pub const S_P_SIGN: usize = 3;
/// See [`S_P_GAMMA`].
pub const S_P_BLOCK: usize = 4;
/// `shift` params length.
pub const S_PARAMS_LEN: usize = 5;
/// `shift` tables: F0 at 0, c⁻ at n, c⁺ at 2n, preconditioner at 3n; length 4n.
pub fn shift_table_len(n: usize) -> usize {
    4 * n
}

/// `shift` (level 2 and the Fokker–Planck level 3):
/// `dF_i/dτ = P_i [γ(F0_i − F_i) + s c⁻_i K(F_i, F_{i−m}, D) − c⁺_i K(F_i, F_{i+m}, −D)]`
/// with `K(F, F̃, D) = 1 − F F̃ − D (F − F̃)`; partners off the grid contribute nothing
/// (zero flux through the window's ends).
pub fn shift(params: &[f64], tables: &[f64], _t: f64, y: &[f64], dy: &mut [f64]) {
    let n = params[S_P_BLOCK] as usize;
    let tl = shift_table_len(n);
    for (blk, (yb, dyb)) in y.chunks(n).zip(dy.chunks_mut(n)).enumerate() {
        shift_block(params, &tables[blk * tl..(blk + 1) * tl], yb, dyb);
    }
}

crate::multiversion! {
    /// One block of [`shift`], dispatched to the widest SIMD build the CPU runs.
    fn shift_block / shift_block_portable (params: &[f64], tables: &[f64], y: &[f64], dy: &mut [f64]) => shift_block_impl
}

/// The partner terms over the cells that have each partner (`i ≥ m`, `i + m < n`), then the
/// relaxation term: four branch-free passes, the same operations per cell as the kernel.
#[inline(always)]
fn shift_block_impl(params: &[f64], tables: &[f64], y: &[f64], dy: &mut [f64]) {
    let n = y.len();
    let dy = &mut dy[..n];
    let gamma = params[S_P_GAMMA];
    let d = params[S_P_D];
    let m = (params[S_P_SHIFT] as usize).min(n);
    let s = params[S_P_SIGN];
    let (f0, cm, cp, prec) = (&tables[..n], &tables[n..2 * n], &tables[2 * n..3 * n], &tables[3 * n..4 * n]);
    dy.fill(0.0);
    // Partner below (i ≥ m): F_{i−m}.
    for ((ph, (&fi, &c)), &fm) in dy[m..].iter_mut().zip(y[m..].iter().zip(&cm[m..])).zip(&y[..n - m]) {
        *ph += s * c * (1.0 - fi * fm - d * (fi - fm));
    }
    // Partner above (i + m < n): F_{i+m}.
    for ((ph, (&fi, &c)), &fp) in dy[..n - m].iter_mut().zip(y[..n - m].iter().zip(&cp[..n - m])).zip(&y[m..]) {
        *ph -= c * (1.0 - fi * fp + d * (fi - fp));
    }
    for (((ph, &fi), &f0), &p) in dy.iter_mut().zip(y).zip(f0).zip(prec) {
        *ph = p * (gamma * (f0 - fi) + *ph);
    }
}

/// `flux` params: γ, nb (points per block).
pub const F_P_GAMMA: usize = 0;
/// See [`F_P_GAMMA`].
pub const F_P_BLOCK: usize = 1;
/// `flux` params length.
pub const F_PARAMS_LEN: usize = 2;
/// `flux` tables: F0 at 0, c⁻ at n, d⁻ at 2n, c⁺ at 3n, d⁺ at 4n, preconditioner at 5n;
/// length 6n. `c±_i = η A_e²(ω_{i±½}) / (A_e(ω_i) w_i)` with the cell width `w_i`, and
/// `d±_i = c±_i coth(|ω_{i±1} − ω_i| / 2T_mir)` (one coth per edge, so the discrete mirror
/// tanh is exact on any node set); zero at the window's ends (no flux through them).
pub fn flux_table_len(n: usize) -> usize {
    6 * n
}

/// `flux` (the Fokker–Planck level 3 on any node set, uniform or graded):
/// `dF_i/dτ = P_i [γ(F0_i − F_i) + c⁻_i(1 − F_iF_{i−1}) − d⁻_i(F_i − F_{i−1})
///                 − c⁺_i(1 − F_iF_{i+1}) − d⁺_i(F_i − F_{i+1})]`,
/// i.e. `γ(F0 − F) − (η/(A_e w_i)) (Φ_{i+½} − Φ_{i−½})` with the edge flux
/// `Φ_{i+½} = A_e²(ω_{i+½}) [1 − F_iF_{i+1} − coth(h_{i+½}/2T_mir)(F_{i+1} − F_i)]`.
pub fn flux(params: &[f64], tables: &[f64], _t: f64, y: &[f64], dy: &mut [f64]) {
    let n = params[F_P_BLOCK] as usize;
    let tl = flux_table_len(n);
    for (blk, (yb, dyb)) in y.chunks(n).zip(dy.chunks_mut(n)).enumerate() {
        flux_block(params[F_P_GAMMA], &tables[blk * tl..(blk + 1) * tl], yb, dyb);
    }
}

crate::multiversion! {
    /// One block of [`flux`], dispatched to the widest SIMD build the CPU runs.
    fn flux_block / flux_block_portable (gamma: f64, tables: &[f64], y: &[f64], dy: &mut [f64]) => flux_block_impl
}

/// The two edge terms over the cells that have each neighbour, then the relaxation term:
/// branch-free passes, the same operations per cell as the kernel.
#[inline(always)]
fn flux_block_impl(gamma: f64, tables: &[f64], y: &[f64], dy: &mut [f64]) {
    let n = y.len();
    let dy = &mut dy[..n];
    let (f0, cm, dm) = (&tables[..n], &tables[n..2 * n], &tables[2 * n..3 * n]);
    let (cp, dp, prec) = (&tables[3 * n..4 * n], &tables[4 * n..5 * n], &tables[5 * n..6 * n]);
    dy.fill(0.0);
    if n == 0 {
        return;
    }
    // Lower edge (i ≥ 1): F_{i−1}.
    for (((ph, &fi), (&c, &dd)), &fm) in
        dy[1..].iter_mut().zip(&y[1..]).zip(cm[1..].iter().zip(&dm[1..])).zip(&y[..n - 1])
    {
        *ph += c * (1.0 - fi * fm) - dd * (fi - fm);
    }
    // Upper edge (i + 1 < n): F_{i+1}.
    for (((ph, &fi), (&c, &dd)), &fp) in
        dy[..n - 1].iter_mut().zip(&y[..n - 1]).zip(cp[..n - 1].iter().zip(&dp[..n - 1])).zip(&y[1..])
    {
        *ph -= c * (1.0 - fi * fp) + dd * (fi - fp);
    }
    for (((ph, &fi), &f0), &p) in dy.iter_mut().zip(y).zip(f0).zip(prec) {
        *ph = p * (gamma * (f0 - fi) + *ph);
    }
}

/// `riccati` params: ω at t = 0, direction (+1: ω = ω_start + t; −1: ω = ω_start − t),
/// T_mir, T_cry, ε_k, γ, κ, μ0.
pub const R_P_OMEGA: usize = 0;
/// See [`R_P_OMEGA`].
pub const R_P_DIR: usize = 1;
/// See [`R_P_OMEGA`].
pub const R_P_TMIR: usize = 2;
/// See [`R_P_OMEGA`].
pub const R_P_TCRY: usize = 3;
/// See [`R_P_OMEGA`].
pub const R_P_EPS: usize = 4;
/// See [`R_P_OMEGA`].
pub const R_P_GAMMA: usize = 5;
/// See [`R_P_OMEGA`].
pub const R_P_KAPPA: usize = 6;
/// See [`R_P_OMEGA`].
pub const R_P_MU0: usize = 7;
/// `riccati` params length.
pub const R_PARAMS_LEN: usize = 8;

/// Points per unit of |x| = |ω − μ0|/T_cry in the `riccati` table of e^{−|x|}.
pub const FERMI_TABLE_DENSITY: f64 = 4.0;
/// Beyond |x| = 40, e^{−|x|} < 4.3e-18 and tanh(x/2) = ±(1 − 2e^{−|x|} + …) rounds to ±1
/// in f64 (and f32): F0 is the constant ±1 there, exactly.
pub const FERMI_TABLE_REACH: f64 = 40.0;
/// Degree of the Taylor polynomial of e^{−δ}, 0 ≤ δ < 1/FERMI_TABLE_DENSITY: remainder
/// ≤ (1/4)¹³/13! = 2.4e-18.
pub const FERMI_TAYLOR_DEGREE: u32 = 12;

/// `riccati` tables: e^{−k/FERMI_TABLE_DENSITY} for k = 0 … 160 (shared by every member,
/// `table_stride` 0); length 161.
pub fn riccati_table_len() -> usize {
    (FERMI_TABLE_REACH * FERMI_TABLE_DENSITY) as usize + 1
}

/// The table of [`riccati_table_len`] (host side: the only `exp`).
pub fn riccati_table() -> Vec<f64> {
    (0..riccati_table_len()).map(|k| (-(k as f64) / FERMI_TABLE_DENSITY).exp()).collect()
}

/// F0 = tanh(x/2) with arithmetic only: e^{−|x|} = e^{−k/4} (table) × e^{−δ} (Taylor),
/// F0 = sign(x)(1 − e^{−|x|})/(1 + e^{−|x|}); ±1 for |x| ≥ 40. Every intermediate value is
/// O(1) or the table's e^{−|x|} ≥ 4.2e-18, so nothing underflows or overflows however far
/// the window reaches (absolute error ≤ 3e-16 in f64).
pub fn thermal_tanh(table: &[f64], x: f64) -> f64 {
    let ax = x.abs();
    if ax >= FERMI_TABLE_REACH {
        return x.signum();
    }
    let k = (ax * FERMI_TABLE_DENSITY).floor();
    let d = ax - k / FERMI_TABLE_DENSITY;
    let mut p = 1.0;
    for j in (1..=FERMI_TAYLOR_DEGREE).rev() {
        p = 1.0 - d * p / j as f64;
    }
    let e = table[k as usize] * p;
    let f = (1.0 - e) / (1.0 + e);
    if x < 0.0 {
        -f
    } else {
        f
    }
}

/// `riccati` (printed S71 / Eq 6, ω as time): state F alone,
/// `2T_mir dF/dω = 1 − F² + (F − F0)/(2Ã0)`, `Ã0 = κ/((ω−ε)² + γ²)`, with the cryostat's
/// F0 = tanh((ω − μ0)/2T_cry) from [`thermal_tanh`] (no exp in the kernel, and no state that
/// spans e^{±(ω−μ0)/T_cry}: issue 10).
pub fn riccati(params: &[f64], tables: &[f64], t: f64, y: &[f64], dy: &mut [f64]) {
    let dir = params[R_P_DIR];
    let omega = params[R_P_OMEGA] + dir * t;
    let f = y[0];
    let f0 = thermal_tanh(tables, (omega - params[R_P_MU0]) / params[R_P_TCRY]);
    let x = omega - params[R_P_EPS];
    let g = params[R_P_GAMMA];
    let inv_2a = (x * x + g * g) / (2.0 * params[R_P_KAPPA]);
    let dfdw = (1.0 - f * f + (f - f0) * inv_2a) / (2.0 * params[R_P_TMIR]);
    dy[0] = dir * dfdw;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::BatchProblem;
    use crate::models::cavity::{derive, CavityBatch};

    /// The kernels' per-pair (per-cell) reading, written out plainly: what the WGSL kernels
    /// compute (up to their sums' order), and what these twins computed before they were
    /// built for throughput.
    fn reference(kind: &str, params: &[f64], tables: &[f64], f: &[f64]) -> Vec<f64> {
        let n = f.len();
        let mut dy = vec![0.0; n];
        for i in 0..n {
            let fi = f[i];
            let (relax, prec, acc) = match kind {
                "collision" => {
                    let (a, b, bd) = (&tables[n..2 * n], &tables[3 * n..5 * n - 1], &tables[5 * n - 1..7 * n - 2]);
                    let acc: f64 = (0..n)
                        .map(|j| {
                            let k = i + n - 1 - j;
                            a[j] * (b[k] * (1.0 - fi * f[j]) - bd[k] * (fi - f[j]))
                        })
                        .sum();
                    (params[C_P_GAMMA] * (tables[i] - fi), tables[2 * n + i], acc)
                }
                "graded" => {
                    let (aw, omega, ep, em) = (&tables[n..], &tables[3 * n..], &tables[4 * n..], &tables[5 * n..]);
                    let acc: f64 = (0..n)
                        .filter(|&j| j != i)
                        .map(|j| {
                            let (b, coth) = graded_pair(params, omega[i] - omega[j], ep[i], em[i], ep[j], em[j]);
                            aw[j] * b * ((1.0 - fi * f[j]) - coth * (fi - f[j]))
                        })
                        .sum();
                    (params[G_P_GAMMA] * (tables[i] - fi), tables[2 * n + i], acc)
                }
                "shift" => {
                    let (d, m, s) = (params[S_P_D], params[S_P_SHIFT] as usize, params[S_P_SIGN]);
                    let mut ph = 0.0;
                    if i >= m {
                        ph += s * tables[n + i] * (1.0 - fi * f[i - m] - d * (fi - f[i - m]));
                    }
                    if i + m < n {
                        ph -= tables[2 * n + i] * (1.0 - fi * f[i + m] + d * (fi - f[i + m]));
                    }
                    (params[S_P_GAMMA] * (tables[i] - fi), tables[3 * n + i], ph)
                }
                _ => {
                    let mut ph = 0.0;
                    if i >= 1 {
                        ph += tables[n + i] * (1.0 - fi * f[i - 1]) - tables[2 * n + i] * (fi - f[i - 1]);
                    }
                    if i + 1 < n {
                        ph -= tables[3 * n + i] * (1.0 - fi * f[i + 1]) + tables[4 * n + i] * (fi - f[i + 1]);
                    }
                    (params[F_P_GAMMA] * (tables[i] - fi), tables[5 * n + i], ph)
                }
            };
            dy[i] = prec * (relax + acc);
        }
        dy
    }

    /// Every grid kernel's CPU twin (branch-free SIMD loops, `collision` by per-node sums)
    /// equals the per-pair reading to rounding (≤ 1e-14 of max |dF/dτ|; the shift and flux
    /// twins bit for bit), and its dispatched SIMD build equals its portable build bit for bit.
    #[test]
    fn grid_twins_match_the_pair_formulas_and_their_portable_builds() {
        let cases = [
            ("collision", serde_json::json!({"level": 1, "gamma_ph": 0.2, "n_omega": 301})),
            ("collision", serde_json::json!({"level": 1, "variant": "eq5_printed", "gamma_ph": 0.2, "n_omega": 120})),
            (
                "graded",
                serde_json::json!({"level": 1, "gamma_ph": 1.0, "grid": "graded", "h_fine": 0.025, "h_coarse": 0.5}),
            ),
            (
                "graded",
                serde_json::json!({"level": 1, "variant": "eq5_printed", "gamma_ph": 1.0, "grid": "graded",
                                   "h_fine": 0.05, "h_coarse": 0.5}),
            ),
            ("shift", serde_json::json!({"level": 2, "n_omega": 801})),
            ("shift", serde_json::json!({"level": 2, "variant": "s71_reading", "n_omega": 333})),
            ("flux", serde_json::json!({"level": 3, "n_omega": 401})),
            ("flux", serde_json::json!({"level": 3, "grid": "graded", "h_fine": 0.025, "h_coarse": 0.5})),
        ];
        for (kind, extra) in cases {
            let mut p = serde_json::json!({"coupling_g": 0.5, "t_cry": 0.1, "t_mir": 100.0, "nu0": 1.0, "gamma": 10.0,
                                           "mu0": 1.0, "omega_min": -9.0, "omega_max": 11.0});
            for (k, v) in extra.as_object().unwrap() {
                p[k] = v.clone();
            }
            let batch = CavityBatch::new(vec![derive(&p).unwrap()]).unwrap();
            let l = batch.layout();
            let (params, tables) = (&batch.params()[..l.params_len], &batch.tables()[..l.table_len]);
            let n = l.state_len;
            // Away from F0: the initial state with a deterministic ripple.
            let f: Vec<f64> = batch
                .initial_state()
                .iter()
                .enumerate()
                .map(|(i, v)| (0.9 * v + 0.05 * (((i * 7919) % 101) as f64 / 101.0 - 0.5)).clamp(-1.0, 1.0))
                .collect();
            let expect = reference(kind, params, tables, &f);
            let mut got = vec![0.0; n];
            batch.rhs_member(0, params, tables, 0.0, &f, &mut got, &mut []);
            let scale = expect.iter().fold(0.0f64, |a, x| a.max(x.abs()));
            let err = got.iter().zip(&expect).fold(0.0f64, |a, (x, e)| a.max((x - e).abs()));
            let bound = if matches!(kind, "shift" | "flux") { 0.0 } else { 1e-14 * scale };
            assert!(err <= bound, "{kind} {extra}: {err:e} of max {scale:e}");
            let mut portable = vec![0.0; n];
            match kind {
                "collision" => {
                    collision_block_portable(params[C_P_GAMMA], tables, &f, &mut portable, &mut vec![0.0; n])
                }
                "graded" => collision_graded_block_portable(params, tables, &f, &mut portable, &mut vec![0.0; n]),
                "shift" => shift_block_portable(params, tables, &f, &mut portable),
                _ => flux_block_portable(params[F_P_GAMMA], tables, &f, &mut portable),
            }
            assert!(
                got.iter().zip(&portable).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{kind} {extra}: SIMD ≠ portable"
            );
            eprintln!("{kind} {extra}: n = {n}, max |twin − pair formula| = {err:.2e} of {scale:.2e}");
        }
    }
}
