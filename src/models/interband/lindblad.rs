//! CPU twin of `shaders/interband/lindblad.wgsl`: the mean-field Lindblad equations of
//! motion of the laser-driven two-band semiconductor with interband pairing, in the
//! rotating frame (derivation in `docs/models/interband.md`). Same argument order as the
//! kernel's bindings (params, tables, t, y, dy) and the same constant names.
//!
//! State of one member (`n` momenta), block by block:
//! `n11[n] · n22[n] · re n21[n] · im n21[n] · re s21[n] · im s21[n]` with
//! `n21_k = ⟨c†_{k2} c_{k1}⟩`, `s21_k = ⟨c†_{k2} c†_{−k,1}⟩`; `−k_j = k_{n−1−j}`.

use super::tables::band_len;

/// Params: number of momenta (as a real).
pub const P_N: usize = 0;
/// Params: incoming-slot width `w` of the jump tables (as a real).
pub const P_W: usize = 1;
/// Params: `V·dk/(2π)`, so that `Δ* = P_CV · Σ_k s21_k` (Eq B3, continuum form).
pub const P_CV: usize = 2;
/// Params: Rabi frequency Ω (the RWA coupling is Ω/2).
pub const P_OMEGA: usize = 3;
/// Params: phonon Lindblad rate `rate_factor · Γ^ph` (times the table weights).
pub const P_GPH: usize = 4;
/// Params: radiative Lindblad rate `rate_factor · Γ^rr`.
pub const P_GRR: usize = 5;
/// Params: detuning `ν − E_g`.
pub const P_DET: usize = 6;
/// Reals per member in the parameter block.
pub const PARAMS_LEN: usize = 7;

/// Order parameter `Δ* = cv Σ_k s21_k` of one state, returned as `(re Δ*, im Δ*)`.
pub fn delta_star(params: &[f64], y: &[f64]) -> (f64, f64) {
    let n = params[P_N] as usize;
    let cv = params[P_CV];
    let (mut sr, mut si) = (0.0, 0.0);
    for p in 0..n {
        sr += y[4 * n + p];
        si += y[5 * n + p];
    }
    (cv * sr, cv * si)
}

/// Scratch reals per momentum: the phonon rates `(in1, out1, in2, out2)`.
pub const SCRATCH_PER_MOMENTUM: usize = 4;

/// Rates `(in, out)` of band `band` at momentum `p`: `in = g Σ_{i→p} w nα_i`,
/// `out = g Σ_{p→j} w (1 − nα_j)`.
#[inline]
fn phonon_rates(tables: &[f64], y: &[f64], n: usize, w: usize, g: f64, band: usize, p: usize) -> (f64, f64) {
    let base = 2 * n + band * band_len(n, w);
    let pop = &y[band * n..(band + 1) * n];
    let mut out = 0.0;
    let outgoing = &tables[base + 4 * p..base + 4 * p + 4];
    for s in 0..2 {
        out += outgoing[2 * s + 1] * (1.0 - pop[outgoing[2 * s] as usize]);
    }
    let mut inc = 0.0;
    let o = base + 4 * n + 2 * w * p;
    for slot in tables[o..o + 2 * w].chunks_exact(2) {
        inc += slot[1] * pop[slot[0] as usize];
    }
    (g * inc, g * out)
}

/// The right-hand side of one member (twin of the kernel entry point `rhs`). `scratch`
/// holds at least `SCRATCH_PER_MOMENTUM · n` reals.
///
/// Pass 1 (the kernel: before its barrier) stores each momentum's phonon rates of both
/// bands in `scratch`, so that pass 2 reads the rates at `p` and at its partner `−p`
/// instead of recomputing them (the jump sums were two thirds of the cost).
pub fn lindblad(params: &[f64], tables: &[f64], _t: f64, y: &[f64], dy: &mut [f64], scratch: &mut [f64]) {
    let n = params[P_N] as usize;
    let w = params[P_W] as usize;
    let gph = params[P_GPH];
    let omega = params[P_OMEGA];
    let grr = params[P_GRR];
    let det = params[P_DET];
    // Reduction (the kernel does it in workgroup memory): Δ* = cv Σ s, Δ = conj(Δ*).
    let (dsr, dsi) = delta_star(params, y);
    let (dr, di) = (dsr, -dsi);
    let rates = &mut scratch[..SCRATCH_PER_MOMENTUM * n];
    for p in 0..n {
        let (in1, out1) = phonon_rates(tables, y, n, w, gph, 0, p);
        let (in2, out2) = phonon_rates(tables, y, n, w, gph, 1, p);
        rates[4 * p..4 * p + 4].copy_from_slice(&[in1, out1, in2, out2]);
    }
    let rates = &scratch[..SCRATCH_PER_MOMENTUM * n];
    for p in 0..n {
        let m = n - 1 - p;
        let n1 = y[p];
        let n2 = y[n + p];
        let (xr, xi) = (y[2 * n + p], y[3 * n + p]);
        let (sr, si) = (y[4 * n + p], y[5 * n + p]);
        let (smr, smi) = (y[4 * n + m], y[5 * n + m]);
        let n1m = y[m];
        let n2m = y[n + m];
        let e1p = tables[p] + 0.5 * det;
        let e2p = tables[n + p] - 0.5 * det;
        let e1m = tables[m] + 0.5 * det;
        let (in1, out1, in2, out2) = (rates[4 * p], rates[4 * p + 1], rates[4 * p + 2], rates[4 * p + 3]);
        let (in1m, out1m) = (rates[4 * m], rates[4 * m + 1]);
        // Radiative recombination c†_{p1} c_{p2}: ⟨n2(1 − n1)⟩ = n2(1 − n1) + |n21|².
        let rr = grr * (n2 * (1.0 - n1) + xr * xr + xi * xi);
        // Im(Δ s) for s_{−p} and s_p.
        let im_dsm = dr * smi + di * smr;
        let im_ds = dr * si + di * sr;
        dy[p] = -omega * xi - 2.0 * im_dsm + in1 * (1.0 - n1) - out1 * n1 + rr;
        dy[n + p] = omega * xi - 2.0 * im_ds + in2 * (1.0 - n2) - out2 * n2 - rr;
        let ex = e2p - e1p;
        let gx = 0.5 * (in1 + out1 + in2 + out2 + grr);
        dy[2 * n + p] = -ex * xi - gx * xr;
        dy[3 * n + p] = ex * xr + 0.5 * omega * (n1 - n2) - gx * xi;
        let es = e2p + e1m;
        let nt = n2 + n1m - 1.0;
        let gs = 0.5 * (in1m + out1m + in2 + out2 + grr * (1.0 - n1 + n2m));
        dy[4 * n + p] = -es * si - dsi * nt - gs * sr;
        dy[5 * n + p] = es * sr + dsr * nt - gs * si;
    }
}
