//! CPU twins of the cavity kernels in `shaders/cavity/`, same names, arguments in binding
//! order (params, tables, t, y, dy, scratch), same layout constants. See
//! `docs/models/cavity.md` for the equations.
//!
//! Kept in sync with `shaders/cavity/{collision,shift,riccati}.wgsl`.
//!
//! Every grid kernel's state is n_k blocks of nb points (one block per ε_k of the member's
//! on-shell axis; n_k = 1 without one), nb a param; each block has its own tables (the
//! per-block length below) and couples to no other block.

/// `collision` params: γ, nb (points per block).
pub const C_P_GAMMA: usize = 0;
/// See [`C_P_GAMMA`].
pub const C_P_BLOCK: usize = 1;
/// `collision` params length.
pub const C_PARAMS_LEN: usize = 2;
/// `collision` table offsets, in units of n (B and BD have 2n−1 entries each):
/// F0 at 0, A_e at n, preconditioner at 2n, b at 3n, bd at 5n−1; length 7n−2.
pub fn collision_table_len(n: usize) -> usize {
    7 * n - 2
}

/// `collision` (level 1): `dF_i/dτ = P_i [γ(F0_i − F_i) + Σ_j A_j (b_{i−j}(1 − F_iF_j)
/// − bd_{i−j}(F_i − F_j))]`, with `b_k = g²S h B(kh)`, `bd_k = b_k coth(kh/2T_mir)` and
/// `B(ν) = γ_ph ν / (L((ν²−ν0²)² + γ_ph²ν²))` (odd photon spectral function).
pub fn collision(params: &[f64], tables: &[f64], t: f64, y: &[f64], dy: &mut [f64]) {
    let n = params[C_P_BLOCK] as usize;
    let tl = collision_table_len(n);
    for (blk, (yb, dyb)) in y.chunks(n).zip(dy.chunks_mut(n)).enumerate() {
        collision_block(params, &tables[blk * tl..(blk + 1) * tl], t, yb, dyb);
    }
}

fn collision_block(params: &[f64], tables: &[f64], _t: f64, y: &[f64], dy: &mut [f64]) {
    let n = y.len();
    let gamma = params[C_P_GAMMA];
    let (f0, a, prec) = (&tables[..n], &tables[n..2 * n], &tables[2 * n..3 * n]);
    let b = &tables[3 * n..5 * n - 1];
    let bd = &tables[5 * n - 1..7 * n - 2];
    for i in 0..n {
        let fi = y[i];
        let mut acc = 0.0;
        for j in 0..n {
            let fj = y[j];
            let k = i + n - 1 - j;
            acc += a[j] * (b[k] * (1.0 - fi * fj) - bd[k] * (fi - fj));
        }
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
/// ν = ω_i − ω_j, b from [`graded_pair`].
pub fn collision_graded(params: &[f64], tables: &[f64], t: f64, y: &[f64], dy: &mut [f64]) {
    let n = params[G_P_BLOCK] as usize;
    let tl = collision_graded_table_len(n);
    for (blk, (yb, dyb)) in y.chunks(n).zip(dy.chunks_mut(n)).enumerate() {
        collision_graded_block(params, &tables[blk * tl..(blk + 1) * tl], t, yb, dyb);
    }
}

fn collision_graded_block(params: &[f64], tables: &[f64], _t: f64, y: &[f64], dy: &mut [f64]) {
    let n = y.len();
    let gamma = params[G_P_GAMMA];
    let (f0, aw, prec) = (&tables[..n], &tables[n..2 * n], &tables[2 * n..3 * n]);
    let (omega, ep, em) = (&tables[3 * n..4 * n], &tables[4 * n..5 * n], &tables[5 * n..6 * n]);
    for i in 0..n {
        let fi = y[i];
        let mut acc = 0.0;
        for j in 0..n {
            if j == i {
                continue;
            }
            let fj = y[j];
            let (b, coth) = graded_pair(params, omega[i] - omega[j], ep[i], em[i], ep[j], em[j]);
            acc += aw[j] * b * ((1.0 - fi * fj) - coth * (fi - fj));
        }
        dy[i] = prec[i] * (gamma * (f0[i] - fi) + acc);
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
pub fn shift(params: &[f64], tables: &[f64], t: f64, y: &[f64], dy: &mut [f64]) {
    let n = params[S_P_BLOCK] as usize;
    let tl = shift_table_len(n);
    for (blk, (yb, dyb)) in y.chunks(n).zip(dy.chunks_mut(n)).enumerate() {
        shift_block(params, &tables[blk * tl..(blk + 1) * tl], t, yb, dyb);
    }
}

fn shift_block(params: &[f64], tables: &[f64], _t: f64, y: &[f64], dy: &mut [f64]) {
    let n = y.len();
    let gamma = params[S_P_GAMMA];
    let d = params[S_P_D];
    let m = params[S_P_SHIFT] as usize;
    let s = params[S_P_SIGN];
    let (f0, cm, cp, prec) = (&tables[..n], &tables[n..2 * n], &tables[2 * n..3 * n], &tables[3 * n..4 * n]);
    for i in 0..n {
        let fi = y[i];
        let mut ph = 0.0;
        if i >= m {
            let fm = y[i - m];
            ph += s * cm[i] * (1.0 - fi * fm - d * (fi - fm));
        }
        if i + m < n {
            let fp = y[i + m];
            ph -= cp[i] * (1.0 - fi * fp + d * (fi - fp));
        }
        dy[i] = prec[i] * (gamma * (f0[i] - fi) + ph);
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
pub fn flux(params: &[f64], tables: &[f64], t: f64, y: &[f64], dy: &mut [f64]) {
    let n = params[F_P_BLOCK] as usize;
    let tl = flux_table_len(n);
    for (blk, (yb, dyb)) in y.chunks(n).zip(dy.chunks_mut(n)).enumerate() {
        flux_block(params, &tables[blk * tl..(blk + 1) * tl], t, yb, dyb);
    }
}

fn flux_block(params: &[f64], tables: &[f64], _t: f64, y: &[f64], dy: &mut [f64]) {
    let n = y.len();
    let gamma = params[F_P_GAMMA];
    let (f0, cm, dm) = (&tables[..n], &tables[n..2 * n], &tables[2 * n..3 * n]);
    let (cp, dp, prec) = (&tables[3 * n..4 * n], &tables[4 * n..5 * n], &tables[5 * n..6 * n]);
    for i in 0..n {
        let fi = y[i];
        let mut ph = 0.0;
        if i >= 1 {
            let fm = y[i - 1];
            ph += cm[i] * (1.0 - fi * fm) - dm[i] * (fi - fm);
        }
        if i + 1 < n {
            let fp = y[i + 1];
            ph -= cp[i] * (1.0 - fi * fp) + dp[i] * (fi - fp);
        }
        dy[i] = prec[i] * (gamma * (f0[i] - fi) + ph);
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
