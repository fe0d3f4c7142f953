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
//! are the same constants there. Departure from the shader: the CPU loops are sequential
//! over cells, so sums are accumulated in cell order instead of by a tree reduction.

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

/// The right-hand side for one member. `tables` is that member's block, `y` its state
/// `[f_0..f_{N-1}, ζ, pump_rate, E*²]`; `scratch[0]` receives `t` (diagnostic only).
pub fn rhs(params: &[f64], tables: &[f64], t: f64, y: &[f64], dy: &mut [f64], scratch: &mut [f64]) -> RhsSummary {
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

    // Pass 1: per cell.
    let mut sigma = 0.0;
    let mut production = 0.0;
    for i in 0..n {
        let fi = f[i];
        let mut acc = 0.0;
        for l in 0..n_lines {
            let base = P_LINES + LINE_LEN * l;
            let k = params[base] as usize;
            let c = params[base + 1];
            let a = zeta + params[base + 2];
            if i + k < n {
                let j = i + k;
                acc += pair_rate(c, dos[j], dos[i], a, f[j], fi);
            }
            if i >= k {
                let j = i - k;
                let r = pair_rate(c, dos[i], dos[j], a, fi, f[j]);
                acc -= r;
                production += r * k as f64;
            }
        }
        // Faces i-1/2 and i+1/2; zero flux through the band edges.
        let (mut flux_up, mut grad_up) = (0.0, 0.0);
        if i + 1 < n {
            flux_up = inelastic_flux(pref, tanh_h, d2f[i], fi, f[i + 1]);
            grad_up = sgf[i] * (f[i + 1] - fi) * inv_h;
            sigma += sgf[i] * (fi - f[i + 1]);
        }
        let (mut flux_dn, mut grad_dn) = (0.0, 0.0);
        if i > 0 {
            flux_dn = inelastic_flux(pref, tanh_h, d2f[i - 1], f[i - 1], fi);
            grad_dn = sgf[i - 1] * (fi - f[i - 1]) * inv_h;
        }
        acc += (flux_up - flux_dn) * inv_h + field * (grad_up - grad_dn) * inv_h;
        dy[i] = acc * inv_dos[i];
    }

    // Pass 2 (thread 0 in the kernel): ζ, pump and the internal field.
    let zf = params[P_ZETA_FREE];
    let prod = production * params[P_ZETA_SCALE];
    dy[n] = zf * (prod + pump - zeta * params[P_INV_TAU_PH]);
    dy[n + 1] = -zf * pump * params[P_INV_TAU_PULSE];
    let s = sigma * params[P_INV_SIGMA0];
    let kappa = params[P_KAPPA];
    let mut de2 = 0.0;
    if params[P_SELF_CONSISTENT] != 0.0 {
        if y[n + 2] < 0.0 {
            // An integration step overshot below 0: relax back to 0.
            de2 = -2.0 * kappa * y[n + 2];
        } else if s < 0.0 || e2_star > 0.0 {
            // Maxwell: dE/dt = -4π σ E  ⇒  d(E²)/dt = -2κ (σ/σ0) (E² + seed), κ = 4π σ0.
            de2 = -2.0 * kappa * s * (e2_star + params[P_FIELD_SEED]);
        }
    }
    dy[n + 2] = de2;
    scratch[0] = t;
    RhsSummary { sigma, field_squared: e2_star, phonon_production: prod }
}
