//! CPU twin of `shaders/photoexcited/collision.wgsl` (entry point `rhs`): the right-hand
//! side of Eqs (2)-(7) on the energy grid for one member.
//!
//! Same name, same constant names, same argument order as the kernel's bindings
//! (params, tables, t, y, dy, scratch) and the same two passes:
//! 1. per cell: electron-phonon pair rates (gather form), inelastic and field fluxes
//!    (applied field plus the internal field E*² carried in the state); partial sums of σ
//!    and of the phonon production (a workgroup reduction in the kernel);
//! 2. ζ, pump-rate and E*² equations (thread 0 in the kernel).
//!
//! Kept in sync with `shaders/photoexcited/collision.wgsl`: the `P_*` / `T_*` offsets below
//! are the same constants there. Departure from the shader: the loop structure is built for
//! throughput on a CPU (one rate per pair, vectorised passes, zero-prefactor terms skipped;
//! see [`rhs`]), with the same per-cell arithmetic; the sums σ and Σ R k are accumulated in
//! 8 interleaved partial sums instead of a workgroup tree.

/// Offsets in a member's parameter block. Kept in sync with collision.wgsl.
pub const P_N: usize = 0;
/// Cell width h.
pub const P_H: usize = 1;
/// 1/h.
pub const P_INV_H: usize = 2;
/// Inelastic prefactor `(Γ_in / D_F)(T / h)`.
pub const P_IN_PREF: usize = 3;
/// `tanh(h / 2T)`.
pub const P_TANH: usize = 4;
/// Applied field coefficient `E² / (3 v_F² τ_F)`.
pub const P_FIELD: usize = 5;
/// 1 when the internal field E* (state variable) is on, else 0.
pub const P_SELF_CONSISTENT: usize = 6;
/// Growth rate κ = 4πσ0 of the internal field: d(E²)/dt = -2κ(σ/σ0)(E² + seed).
pub const P_KAPPA: usize = 7;
/// 1 when ζ evolves, 0 when it is held fixed.
pub const P_ZETA_FREE: usize = 8;
/// 1/τ_ph (0 for an infinite lifetime).
pub const P_INV_TAU_PH: usize = 9;
/// 1/τ_pulse.
pub const P_INV_TAU_PULSE: usize = 10;
/// `h² / ω̄`: converts `Σ R k` into dζ/dt (energy-weighted phonon production).
pub const P_ZETA_SCALE: usize = 11;
/// Number of phonon lines.
pub const P_N_LINES: usize = 12;
/// 1/(3 v_F² τ_F): converts E² (field units) into the field coefficient.
pub const P_FIELD_UNIT: usize = 13;
/// Seed E² of the internal field (charge fluctuations), field units.
pub const P_FIELD_SEED: usize = 14;
/// 1/σ0.
pub const P_INV_SIGMA0: usize = 15;
/// First line record; each line is `[k, c_k, b_k]` (shift in cells, `(Γ/D0) w_k`, Bose factor).
pub const P_LINES: usize = 16;
/// Reals per line record.
pub const LINE_LEN: usize = 3;

/// Table offsets in units of N (table block = `T_COUNT × N` reals). Kept in sync with collision.wgsl.
/// `D_i`.
pub const T_DOS: usize = 0;
/// `1 / D_i`.
pub const T_INV_DOS: usize = 1;
/// `D_{i+1/2}² = D_i D_{i+1}` at interface i+1/2 (last entry 0).
pub const T_DOS2_FACE: usize = 2;
/// `σ̃_{i+1/2} = sqrt(σ̃_i σ̃_{i+1})` (last entry 0).
pub const T_SIGMA_FACE: usize = 3;
/// Cell centres ε_i.
pub const T_EPS: usize = 4;
/// Number of tables.
pub const T_COUNT: usize = 5;

/// Scalars produced by one RHS evaluation (the kernel does not return them; the host
/// uses them for observables).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RhsSummary {
    /// Discrete conductivity `Σ σ̃_{i+1/2} (f_i - f_{i+1})` (table units).
    pub sigma: f64,
    /// Internal E*² (field units, clamped at 0), 0 when off.
    pub field_squared: f64,
    /// dζ/dt from the electrons (St_ph).
    pub phonon_production: f64,
}

/// Net downward rate of one pair (upper cell, lower cell) for one phonon line with
/// occupation `a = ζ + b_k`. The same expression is evaluated in both cells' threads.
#[inline(always)]
pub fn pair_rate(c: f64, d_up: f64, d_lo: f64, a: f64, f_up: f64, f_lo: f64) -> f64 {
    c * d_up * d_lo * ((a + 1.0) * f_up * (1.0 - f_lo) - a * f_lo * (1.0 - f_up))
}

/// Inelastic flux through face i+1/2 (from cell i+1 down to cell i, Eq 6 discretised).
#[inline(always)]
pub fn inelastic_flux(pref: f64, tanh_h: f64, d2: f64, f_lo: f64, f_up: f64) -> f64 {
    pref * d2 * ((1.0 + tanh_h) * f_up * (1.0 - f_lo) - (1.0 - tanh_h) * f_lo * (1.0 - f_up))
}

crate::multiversion! {
    /// The right-hand side for one member. `tables` is that member's block, `y` its state
    /// `[f_0..f_{N-1}, ζ, pump_rate, E*²]`; `scratch[0]` receives `t` (diagnostic only).
    ///
    /// Departures from the kernel's loop structure (the same operations per term and per cell
    /// in the same order, so the portable and SIMD builds agree bit for bit and with the
    /// kernel up to the device's own rounding): every pair rate is
    /// evaluated once (scatter form: one pass per phonon line computes `R(l+k, l)` for the
    /// `N − k` pairs and adds it to the lower cell, a second pass subtracts it from the upper
    /// cell), every face flux once, and terms whose prefactor is zero (St_in with Γ_in = 0,
    /// St_E with E² + E*² = 0) are not evaluated (adding an exact 0 changes nothing). The
    /// sums σ and Σ R k are accumulated in 8 interleaved partial sums (the kernel: a
    /// workgroup tree), so they can differ from a sequential sum in the last bits. The per-cell
    /// passes are branch-free over slices, so the compiler vectorises them; on x86-64 the whole
    /// function is also compiled for AVX2 and AVX-512F and picked at run time
    /// ([`crate::multiversion`]; no FMA: the products and sums round exactly as in the
    /// portable build).
    pub fn rhs / rhs_portable (
        params: &[f64],
        tables: &[f64],
        t: f64,
        y: &[f64],
        dy: &mut [f64],
        scratch: &mut [f64],
    ) -> RhsSummary => rhs_impl
}

/// Lanes of the partial sums (σ, phonon production): independent accumulators, so the
/// reductions vectorise without reassociating a single sum.
const LANES: usize = 8;

thread_local! {
    /// Per-thread work buffer: the pair rates of one line (`N − k` reals) or the face
    /// fluxes and gradients (`N + 1` reals each).
    static WORK: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `Σ_i x_i` over `LANES` interleaved partial sums.
#[inline(always)]
fn lane_sum(l: [f64; LANES]) -> f64 {
    ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]))
}

/// Pair rates of one line `(k, c, a)`: `r[l] = R(l + k, l)` for `l < N − k`, added to the
/// lower cell at once (`acc[l] += r[l]`). Returns `Σ_l R(l + k, l)`.
#[inline(always)]
fn line_rates(f: &[f64], dos: &[f64], k: usize, c: f64, a: f64, r: &mut [f64], acc: &mut [f64]) -> f64 {
    let n = f.len();
    let m = n - k;
    let (fu, fl, du, dl) = (&f[k..n], &f[..m], &dos[k..n], &dos[..m]);
    let (out, acc) = (&mut r[..m], &mut acc[..m]);
    let mut lanes = [0.0; LANES];
    let chunks = m / LANES;
    for j in 0..chunks {
        let b = j * LANES;
        let fu: &[f64; LANES] = fu[b..b + LANES].try_into().unwrap();
        let fl: &[f64; LANES] = fl[b..b + LANES].try_into().unwrap();
        let du: &[f64; LANES] = du[b..b + LANES].try_into().unwrap();
        let dl: &[f64; LANES] = dl[b..b + LANES].try_into().unwrap();
        let o: &mut [f64; LANES] = (&mut out[b..b + LANES]).try_into().unwrap();
        let ac: &mut [f64; LANES] = (&mut acc[b..b + LANES]).try_into().unwrap();
        for q in 0..LANES {
            let v = pair_rate(c, du[q], dl[q], a, fu[q], fl[q]);
            o[q] = v;
            ac[q] += v;
            lanes[q] += v;
        }
    }
    for l in chunks * LANES..m {
        let v = pair_rate(c, du[l], dl[l], a, fu[l], fl[l]);
        out[l] = v;
        acc[l] += v;
        lanes[0] += v;
    }
    lane_sum(lanes)
}

/// `Σ_i σ̃_{i+1/2} (f_i − f_{i+1})` (discrete Eq 9).
#[inline(always)]
fn sigma_sum(sgf: &[f64], f: &[f64]) -> f64 {
    let m = f.len() - 1;
    let (lo, hi, s) = (&f[..m], &f[1..m + 1], &sgf[..m]);
    let mut lanes = [0.0; LANES];
    let chunks = m / LANES;
    for j in 0..chunks {
        let b = j * LANES;
        let (lo, hi, s) = (&lo[b..b + LANES], &hi[b..b + LANES], &s[b..b + LANES]);
        for q in 0..LANES {
            lanes[q] += s[q] * (lo[q] - hi[q]);
        }
    }
    for i in chunks * LANES..m {
        lanes[0] += s[i] * (lo[i] - hi[i]);
    }
    lane_sum(lanes)
}

#[inline(always)]
fn rhs_impl(params: &[f64], tables: &[f64], t: f64, y: &[f64], dy: &mut [f64], scratch: &mut [f64]) -> RhsSummary {
    let n = params[P_N] as usize;
    let inv_h = params[P_INV_H];
    let pref = params[P_IN_PREF];
    let tanh_h = params[P_TANH];
    let n_lines = params[P_N_LINES] as usize;
    let dos = &tables[T_DOS * n..(T_DOS + 1) * n];
    let inv_dos = &tables[T_INV_DOS * n..(T_INV_DOS + 1) * n];
    let d2f = &tables[T_DOS2_FACE * n..(T_DOS2_FACE + 1) * n];
    let sgf = &tables[T_SIGMA_FACE * n..(T_SIGMA_FACE + 1) * n];
    let f = &y[..n];
    let zeta = y[n];
    let pump = y[n + 1];
    let e2_star = y[n + 2].max(0.0);
    let field = params[P_FIELD] + params[P_SELF_CONSISTENT] * e2_star * params[P_FIELD_UNIT];
    let faces = pref != 0.0 || field != 0.0;
    let (acc, tail) = dy.split_at_mut(n);

    let mut production = 0.0;
    // Taken out of the thread-local for the call (no closure: the passes below must be
    // compiled inside this function, with its target features).
    let mut w = WORK.with(|w| std::mem::take(&mut *w.borrow_mut()));
    let need = n.max(2 * (n + 1));
    if w.len() < need {
        w.resize(need, 0.0);
    }
    // Electron-phonon pairs, line by line. Per cell the kernel computes
    // `((acc + R(i+k, i)) − R(i, i−k))` with the out-of-band rate read as 0; adding the upper
    // pair in one pass and subtracting the lower pair in the next rounds identically, and
    // the passes only cover the N − k cells that have the pair.
    acc.fill(0.0);
    for l in 0..n_lines {
        let base = P_LINES + LINE_LEN * l;
        let k = params[base] as usize;
        let c = params[base + 1];
        let a = zeta + params[base + 2];
        let m = n - k;
        production += line_rates(f, dos, k, c, a, &mut w[..m], acc) * k as f64;
        for (o, v) in acc[k..].iter_mut().zip(&w[..m]) {
            *o -= v;
        }
    }
    if faces {
        // Face fluxes, once per face, zero at the band edges: flux[i] is face i − 1/2.
        let (flux, grad) = w[..2 * (n + 1)].split_at_mut(n + 1);
        flux[0] = 0.0;
        flux[n] = 0.0;
        grad[0] = 0.0;
        grad[n] = 0.0;
        let (lo, hi) = (&f[..n - 1], &f[1..n]);
        let (fx, gx) = (&mut flux[1..n], &mut grad[1..n]);
        let (d2, sg) = (&d2f[..n - 1], &sgf[..n - 1]);
        if pref != 0.0 {
            for i in 0..n - 1 {
                fx[i] = inelastic_flux(pref, tanh_h, d2[i], lo[i], hi[i]);
            }
        }
        if field != 0.0 {
            for i in 0..n - 1 {
                gx[i] = sg[i] * (hi[i] - lo[i]) * inv_h;
            }
        }
        let (fu, fd, gu, gd) = (&flux[1..n + 1], &flux[..n], &grad[1..n + 1], &grad[..n]);
        let inv_dos = &inv_dos[..n];
        match (pref != 0.0, field != 0.0) {
            (true, true) => {
                for i in 0..n {
                    acc[i] = (acc[i] + (fu[i] - fd[i]) * inv_h + field * (gu[i] - gd[i]) * inv_h) * inv_dos[i];
                }
            }
            (true, false) => {
                for i in 0..n {
                    acc[i] = (acc[i] + (fu[i] - fd[i]) * inv_h) * inv_dos[i];
                }
            }
            _ => {
                for i in 0..n {
                    acc[i] = (acc[i] + field * (gu[i] - gd[i]) * inv_h) * inv_dos[i];
                }
            }
        }
    } else {
        for (o, d) in acc.iter_mut().zip(inv_dos) {
            *o *= d;
        }
    }
    WORK.with(|cell| *cell.borrow_mut() = w);
    let sigma = sigma_sum(sgf, f);

    // ζ, pump and the internal field (thread 0 in the kernel).
    let zf = params[P_ZETA_FREE];
    let prod = production * params[P_ZETA_SCALE];
    tail[0] = zf * (prod + pump - zeta * params[P_INV_TAU_PH]);
    tail[1] = -zf * pump * params[P_INV_TAU_PULSE];
    let s = sigma * params[P_INV_SIGMA0];
    let kappa = params[P_KAPPA];
    let mut de2 = 0.0;
    if params[P_SELF_CONSISTENT] != 0.0 {
        // Maxwell: dE/dt = -4π σ E  ⇒  d(E²)/dt = -2κ (σ/σ0) E², κ = 4π σ0; the seed (charge
        // fluctuations) feeds only growth (σ < 0); a step that overshot below 0 relaxes back at
        // rate 2κ. Continuous at E² = 0 for either sign of σ: a switch there left bdf a stale
        // Jacobian column and a silently low E*² (docs/models/photoexcited.md, "Internal field").
        let growth = if y[n + 2] < 0.0 { -y[n + 2] } else { -s * e2_star };
        de2 = 2.0 * kappa * (growth - s.min(0.0) * params[P_FIELD_SEED]);
    }
    tail[2] = de2;
    scratch[0] = t;
    RhsSummary { sigma, field_squared: e2_star, phonon_production: prod }
}
