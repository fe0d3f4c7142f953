//! CPU twin of `shaders/interband/lindblad.wgsl`: the mean-field Lindblad equations of
//! motion of the laser-driven two-band semiconductor with interband pairing, in the
//! rotating frame (derivation in `docs/models/interband.md`). Same argument order as the
//! kernel's bindings (params, tables, t, y, dy) and the same constant names.
//!
//! State of one member (`n` momenta), block by block:
//! `n11[n] · n22[n] · re n21[n] · im n21[n] · re s21[n] · im s21[n]` with
//! `n21_k = ⟨c†_{k2} c_{k1}⟩`, `s21_k = ⟨c†_{k2} c†_{−k,1}⟩`; `−k_j = k_{n−1−j}`.
//!
//! Departures from the kernel's loop structure, for throughput on a CPU (the same
//! operations per momentum; results agree with the kernel to the last bits of a sum):
//! - The phonon jumps are read once, when the batch is built ([`LindbladPlan`]), and
//!   regrouped into *runs*: jumps of one band on one anti-diagonal `from + to = s` with
//!   consecutive targets. The jumps of the model are reflections `k → −k + v/A` split between
//!   two grid points, so a band has a handful of runs of ~n/2 jumps, and each run is two
//!   contiguous (one reversed) slices: no float-to-index conversion, no gather, no padding
//!   slot (zero weights are dropped) and no per-momentum branch at evaluation time. Each
//!   rate sum is accumulated run by run instead of slot by slot (last-bit differences).
//! - The per-momentum energies of the rotating frame with the member's detuning
//!   (`ε2_p − ε1_p − det` and `ε2_p + ε1_{−p}`) are built once per member.
//! - `Σ_k s21_k` is summed in 8 interleaved partial sums (the kernel: a workgroup tree).
//! - With `Γ^ph = 0` the jump sums are skipped (their rates are exactly 0).
//! - The passes are branch-free loops over slices that the compiler vectorises; on x86-64
//!   they are also compiled for AVX2 and AVX-512F and picked at run time
//!   ([`crate::multiversion`], no FMA: every build gives the same bits).

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

/// Lanes of the partial sums of `Σ_k s21_k`: independent accumulators, so the reduction
/// vectorises without reassociating a single sum.
const LANES: usize = 8;

/// `(Σ a_i, Σ b_i)` over `LANES` interleaved partial sums each.
#[inline(always)]
fn lane_sums(a: &[f64], b: &[f64]) -> (f64, f64) {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let (mut la, mut lb) = ([0.0; LANES], [0.0; LANES]);
    let chunks = n / LANES;
    for j in 0..chunks {
        let c = j * LANES;
        let ca: &[f64; LANES] = a[c..c + LANES].try_into().unwrap();
        let cb: &[f64; LANES] = b[c..c + LANES].try_into().unwrap();
        for q in 0..LANES {
            la[q] += ca[q];
            lb[q] += cb[q];
        }
    }
    for p in chunks * LANES..n {
        la[0] += a[p];
        lb[0] += b[p];
    }
    let fold = |l: [f64; LANES]| ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]));
    (fold(la), fold(lb))
}

/// Order parameter `Δ* = cv Σ_k s21_k` of one state, returned as `(re Δ*, im Δ*)` (the
/// sum in 8 interleaved partial sums, as [`lindblad`] forms it).
pub fn delta_star(params: &[f64], y: &[f64]) -> (f64, f64) {
    let n = params[P_N] as usize;
    let cv = params[P_CV];
    let (sr, si) = lane_sums(&y[4 * n..5 * n], &y[5 * n..6 * n]);
    (cv * sr, cv * si)
}

/// Scratch reals per momentum: the phonon jump sums of both bands, in four blocks of `n`
/// (`Σ_{i→p} w n1_i`, `Σ_{p→j} w (1 − n1_j)`, the same for band 2), before the factor Γ^ph.
pub const SCRATCH_PER_MOMENTUM: usize = 4;

/// A run of phonon jumps of one band on one anti-diagonal: jumps `s − to → to` for
/// `to = to_lo .. to_lo + len`, with weights `weights[w_off ..][..len]`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Run {
    sum: usize,
    to_lo: usize,
    len: usize,
    w_off: usize,
}

/// What [`lindblad`] needs of one member that does not change during a run, built once:
/// its phonon jumps as runs (from the table block, zero weights dropped) and its
/// rotating-frame energies with the detuning applied.
#[derive(Clone, Debug, PartialEq)]
pub struct LindbladPlan {
    n: usize,
    /// The detuning the energies were built with (bits compared on every evaluation).
    det: f64,
    runs: [Vec<Run>; 2],
    weights: Vec<f64>,
    /// `ε2_p − ε1_p` with the detuning: `(ε2_p − det/2) − (ε1_p + det/2)`.
    e_x: Vec<f64>,
    /// `ε2_p + ε1_{−p}` with the detuning: `(ε2_p − det/2) + (ε1_{n−1−p} + det/2)`.
    e_s: Vec<f64>,
}

impl LindbladPlan {
    /// The plan of the member with parameter block `params` and table block `tables`
    /// (layout of [`super::tables`]).
    ///
    /// # Panics
    /// If a jump index in the tables is not a grid index.
    pub fn new(params: &[f64], tables: &[f64]) -> Self {
        let n = params[P_N] as usize;
        let w = params[P_W] as usize;
        let det = params[P_DET];
        let mut weights = vec![];
        let runs = [0, 1].map(|band| {
            let base = 2 * n + band * band_len(n, w);
            // Every jump once, from the outgoing slots: (from + to, to, weight).
            let mut jumps = vec![];
            for from in 0..n {
                for s in 0..2 {
                    let (to, wt) = (tables[base + 4 * from + 2 * s], tables[base + 4 * from + 2 * s + 1]);
                    if wt != 0.0 {
                        let to = to as usize;
                        assert!(
                            to < n && to as f64 == tables[base + 4 * from + 2 * s],
                            "jump target {to} off the grid"
                        );
                        jumps.push((from + to, to, wt));
                    }
                }
            }
            jumps.sort_by_key(|&(sum, to, _)| (sum, to));
            let mut runs: Vec<Run> = vec![];
            for (sum, to, wt) in jumps {
                match runs.last_mut() {
                    Some(r) if r.sum == sum && r.to_lo + r.len == to => r.len += 1,
                    _ => runs.push(Run { sum, to_lo: to, len: 1, w_off: weights.len() }),
                }
                weights.push(wt);
            }
            runs
        });
        let e1 = |p: usize| tables[p] + 0.5 * det;
        let e2 = |p: usize| tables[n + p] - 0.5 * det;
        LindbladPlan {
            n,
            det,
            runs,
            weights,
            e_x: (0..n).map(|p| e2(p) - e1(p)).collect(),
            e_s: (0..n).map(|p| e2(p) + e1(n - 1 - p)).collect(),
        }
    }

    /// Whether this plan was built for a member with these parameters.
    fn fits(&self, params: &[f64]) -> bool {
        params[P_N] as usize == self.n && params[P_DET].to_bits() == self.det.to_bits()
    }
}

/// Jump sums of one band over its runs: `inc[p] = Σ_{i→p} w pop_i`,
/// `out[p] = Σ_{p→j} w (1 − pop_j)`. Each run is one pass over two contiguous slices
/// (`from = s − to` runs backwards as `to` runs forwards).
#[inline(always)]
fn band_sums(runs: &[Run], weights: &[f64], pop: &[f64], inc: &mut [f64], out: &mut [f64]) {
    inc.fill(0.0);
    out.fill(0.0);
    for r in runs {
        let len = r.len;
        let from_lo = r.sum - r.to_lo - (len - 1);
        let w = &weights[r.w_off..r.w_off + len];
        let (pop_to, pop_from) = (&pop[r.to_lo..r.to_lo + len], &pop[from_lo..from_lo + len]);
        let (inc, out) = (&mut inc[r.to_lo..r.to_lo + len], &mut out[from_lo..from_lo + len]);
        for q in 0..len {
            let back = len - 1 - q;
            inc[q] += w[q] * pop_from[back];
            out[back] += w[q] * (1.0 - pop_to[q]);
        }
    }
}

/// The phonon rates `(in1, out1, in2, out2)` per momentum of one state (Γ^ph included), for
/// the host's stability analysis.
pub fn phonon_rates(params: &[f64], tables: &[f64], y: &[f64]) -> [Vec<f64>; 4] {
    let n = params[P_N] as usize;
    let plan = LindbladPlan::new(params, tables);
    let g = params[P_GPH];
    let mut r = [vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]];
    let [in1, out1, in2, out2] = &mut r;
    band_sums(&plan.runs[0], &plan.weights, &y[..n], in1, out1);
    band_sums(&plan.runs[1], &plan.weights, &y[n..2 * n], in2, out2);
    for v in r.iter_mut().flatten() {
        *v *= g;
    }
    r
}

/// The right-hand side of one member (twin of the kernel entry point `rhs`). `scratch`
/// holds at least `SCRATCH_PER_MOMENTUM · n` reals. Builds the member's [`LindbladPlan`]
/// first; a batch builds it once and calls [`lindblad_planned`].
pub fn lindblad(params: &[f64], tables: &[f64], _t: f64, y: &[f64], dy: &mut [f64], scratch: &mut [f64]) {
    lindblad_planned(&LindbladPlan::new(params, tables), params, tables, y, dy, scratch);
}

/// [`lindblad`] with the member's plan built beforehand (it is rebuilt when `params` are not
/// the ones it was built for).
pub fn lindblad_planned(
    plan: &LindbladPlan,
    params: &[f64],
    tables: &[f64],
    y: &[f64],
    dy: &mut [f64],
    scratch: &mut [f64],
) {
    if !plan.fits(params) {
        return lindblad(params, tables, 0.0, y, dy, scratch);
    }
    lindblad_simd(plan, params, y, dy, scratch);
}

crate::multiversion! {
    /// [`lindblad_planned`]'s arithmetic, dispatched to the widest SIMD build the CPU runs.
    pub fn lindblad_simd / lindblad_portable (plan: &LindbladPlan, params: &[f64], y: &[f64], dy: &mut [f64], scratch: &mut [f64]) => lindblad_impl
}

/// Pass 1: jump sums of both bands into `scratch` (the kernel: before its barrier); pass 2:
/// the derivatives, reading the rates at `p` and at its partner `−p` (index `n − 1 − p`).
#[inline(always)]
fn lindblad_impl(plan: &LindbladPlan, params: &[f64], y: &[f64], dy: &mut [f64], scratch: &mut [f64]) {
    let n = plan.n;
    let gph = params[P_GPH];
    let omega = params[P_OMEGA];
    let grr = params[P_GRR];
    let cv = params[P_CV];
    let y = &y[..6 * n];
    let (n1, rest) = y.split_at(n);
    let (n2, rest) = rest.split_at(n);
    let (xr, rest) = rest.split_at(n);
    let (xi, rest) = rest.split_at(n);
    let (sr, si) = rest.split_at(n);
    // Reduction (the kernel does it in workgroup memory): Δ* = cv Σ s, Δ = conj(Δ*).
    let (sum_r, sum_i) = lane_sums(sr, si);
    let (dsr, dsi) = (cv * sum_r, cv * sum_i);
    let (dr, di) = (dsr, -dsi);
    let (j_in1, rest) = scratch[..SCRATCH_PER_MOMENTUM * n].split_at_mut(n);
    let (j_out1, rest) = rest.split_at_mut(n);
    let (j_in2, j_out2) = rest.split_at_mut(n);
    if gph != 0.0 {
        band_sums(&plan.runs[0], &plan.weights, n1, j_in1, j_out1);
        band_sums(&plan.runs[1], &plan.weights, n2, j_in2, j_out2);
    } else {
        // Γ^ph = 0: every rate is 0 · (a finite sum) = 0.
        for v in [&mut *j_in1, &mut *j_out1, &mut *j_in2, &mut *j_out2] {
            v.fill(0.0);
        }
    }
    let (j_in1, j_out1, j_in2, j_out2) = (&*j_in1, &*j_out1, &*j_in2, &*j_out2);
    let (e_x, e_s) = (&plan.e_x[..n], &plan.e_s[..n]);
    let dy = &mut dy[..6 * n];
    let (d_n1, rest) = dy.split_at_mut(n);
    let (d_n2, rest) = rest.split_at_mut(n);
    let (d_xr, rest) = rest.split_at_mut(n);
    let (d_xi, rest) = rest.split_at_mut(n);
    let (d_sr, d_si) = rest.split_at_mut(n);
    let (n2, xr, xi, si) = (&n2[..n], &xr[..n], &xi[..n], &si[..n]);
    let (d_sr, d_si) = (&mut d_sr[..n], &mut d_si[..n]);
    for p in 0..n {
        let m = n - 1 - p;
        let (n1p, n2p) = (n1[p], n2[p]);
        let (xrp, xip) = (xr[p], xi[p]);
        let (srp, sip) = (sr[p], si[p]);
        let (smr, smi) = (sr[m], si[m]);
        let (n1m, n2m) = (n1[m], n2[m]);
        let (in1, out1, in2, out2) = (gph * j_in1[p], gph * j_out1[p], gph * j_in2[p], gph * j_out2[p]);
        let (in1m, out1m) = (gph * j_in1[m], gph * j_out1[m]);
        // Radiative recombination c†_{p1} c_{p2}: ⟨n2(1 − n1)⟩ = n2(1 − n1) + |n21|².
        let rr = grr * (n2p * (1.0 - n1p) + xrp * xrp + xip * xip);
        // Im(Δ s) for s_{−p} and s_p.
        let im_dsm = dr * smi + di * smr;
        let im_ds = dr * sip + di * srp;
        d_n1[p] = -omega * xip - 2.0 * im_dsm + in1 * (1.0 - n1p) - out1 * n1p + rr;
        d_n2[p] = omega * xip - 2.0 * im_ds + in2 * (1.0 - n2p) - out2 * n2p - rr;
        let ex = e_x[p];
        let gx = 0.5 * (in1 + out1 + in2 + out2 + grr);
        d_xr[p] = -ex * xip - gx * xrp;
        d_xi[p] = ex * xrp + 0.5 * omega * (n1p - n2p) - gx * xip;
        let es = e_s[p];
        let nt = n2p + n1m - 1.0;
        let gs = 0.5 * (in1m + out1m + in2 + out2 + grr * (1.0 - n1p + n2m));
        d_sr[p] = -es * sip - dsi * nt - gs * srp;
        d_si[p] = es * srp + dsr * nt - gs * sip;
    }
}
