//! Host-side tables of the interband model: the momentum grid, rotating-frame band
//! energies, and the phonon jump lists (outgoing and incoming, per band) in the flat
//! layout read by `shaders/interband/lindblad.wgsl` and its CPU twin
//! [`super::lindblad::lindblad`].
//!
//! Layout of one member's table block (`n` momenta, `w` incoming slots per momentum):
//! ```text
//! [0, n)            eps1_k = A1 k²   (rotating frame, without detuning)
//! [n, 2n)           eps2_k = A2 k²
//! band b = 0 (valence), 1 (conduction), starting at 2n + b·band_len, band_len = 4n + 2wn:
//!   [0, 4n)         outgoing: per k (j0, w0, j1, w1): jumps k → j with relative weight w
//!   [4n, 4n+2wn)    incoming: per k, w pairs (i, w): jumps i → k (padding: i = k, w = 0)
//! ```
//! Indices are stored as reals (exact below 2^24, so f32 kernels read them too).
//! The grid is the cell-centre grid `k_j = (j + ½ − n/2)·dk`, `n` even: `k = 0` is never
//! a grid point, so a momentum is never its own pairing partner (`−k_j = k_{n−1−j}`).

/// One phonon emission channel `k_from → k_to` in one band with relative weight `weight`
/// (the Lindblad rate is `gamma_ph_lindblad · weight`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Jump {
    /// 0 = valence (band 1), 1 = conduction (band 2).
    pub band: usize,
    /// Source grid index.
    pub from: usize,
    /// Target grid index (≠ `from`).
    pub to: usize,
    /// Relative weight (≥ 0).
    pub weight: f64,
}

/// How the phonon emission rate depends on momentum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PhononProfile {
    /// Constant rate Γ^ph for every allowed emission (the paper's main assumption).
    Constant,
    /// The Jacobian of Eq B2, `1/|2A|k| − v|`, normalised to 1 at the box edge and capped.
    EqB2,
}

/// Cell-centre grid of `n` points with step `dk`.
pub fn grid(n: usize, dk: f64) -> Vec<f64> {
    (0..n).map(|j| (j as f64 + 0.5 - n as f64 / 2.0) * dk).collect()
}

/// Phonon emission jumps at T = 0 for band `band` with curvature `a` and phonon
/// velocity `v`: energy conservation `A(k² − k'²) = v|k − k'|` gives
/// `k' = −k + sgn(k)·v/A` for `|k| > v/(2A)` (no emission otherwise). The target is
/// split linearly between its two neighbouring grid points (two Lindblad jumps whose
/// weights sum to the rate factor); a neighbour equal to the source gets no weight and
/// the other neighbour takes it all.
pub fn phonon_jumps(band: usize, k: &[f64], dk: f64, a: f64, v: f64, profile: PhononProfile, cap: f64) -> Vec<Jump> {
    let n = k.len();
    let edge = n as f64 * dk / 2.0;
    let mut out = Vec::new();
    // Jumps are computed for k > 0 and mirrored to −k (index n − 1 − j), so the tables
    // are exactly parity-symmetric (the closure of the equations relies on it).
    for j in n / 2..n {
        let kj = k[j];
        if kj <= v / (2.0 * a) {
            continue;
        }
        let factor = match profile {
            PhononProfile::Constant => 1.0,
            PhononProfile::EqB2 => ((2.0 * a * edge - v).abs() / (2.0 * a * kj - v).abs()).min(cap),
        };
        let target = -kj + v / a;
        let f = (target / dk + n as f64 / 2.0 - 0.5).clamp(0.0, (n - 1) as f64);
        let i0 = (f.floor() as usize).min(n - 2);
        let mut t = f - i0 as f64;
        if t < 1e-9 {
            t = 0.0;
        } else if t > 1.0 - 1e-9 {
            t = 1.0;
        }
        let mut pts = [(i0, 1.0 - t), (i0 + 1, t)];
        if pts[0].0 == j {
            pts = [(i0, 0.0), (i0 + 1, 1.0)];
        } else if pts[1].0 == j {
            pts = [(i0, 1.0), (i0 + 1, 0.0)];
        }
        for (to, w) in pts {
            if w > 0.0 && to != j {
                for (from, to) in [(j, to), (n - 1 - j, n - 1 - to)] {
                    out.push(Jump { band, from, to, weight: w * factor });
                }
            }
        }
    }
    out
}

/// Largest number of incoming jumps at any (band, momentum): the `w` of the layout.
pub fn incoming_width(n: usize, jumps: &[Jump]) -> usize {
    let mut count = vec![0usize; 2 * n];
    for j in jumps {
        count[j.band * n + j.to] += 1;
    }
    count.into_iter().max().unwrap_or(0).max(1)
}

/// Length of one member's table block.
pub fn table_len(n: usize, w: usize) -> usize {
    2 * n + 2 * band_len(n, w)
}

/// Length of one band's jump block.
pub fn band_len(n: usize, w: usize) -> usize {
    4 * n + 2 * w * n
}

/// Builds one member's table block. At most two outgoing jumps per (band, momentum).
///
/// # Panics
/// If a (band, momentum) has more than two outgoing or more than `w` incoming jumps.
pub fn build_tables(eps1: &[f64], eps2: &[f64], jumps: &[Jump], w: usize) -> Vec<f64> {
    let n = eps1.len();
    let mut t = vec![0.0; table_len(n, w)];
    t[..n].copy_from_slice(eps1);
    t[n..2 * n].copy_from_slice(eps2);
    let mut n_out = vec![0usize; 2 * n];
    let mut n_in = vec![0usize; 2 * n];
    // Padding: index = self with weight 0 (harmless reads).
    for b in 0..2 {
        let base = 2 * n + b * band_len(n, w);
        for k in 0..n {
            for s in 0..2 {
                t[base + 4 * k + 2 * s] = k as f64;
            }
            for s in 0..w {
                t[base + 4 * n + 2 * (w * k + s)] = k as f64;
            }
        }
    }
    for jp in jumps {
        let base = 2 * n + jp.band * band_len(n, w);
        let so = &mut n_out[jp.band * n + jp.from];
        assert!(*so < 2, "more than two outgoing jumps from one momentum");
        t[base + 4 * jp.from + 2 * *so] = jp.to as f64;
        t[base + 4 * jp.from + 2 * *so + 1] = jp.weight;
        *so += 1;
        let si = &mut n_in[jp.band * n + jp.to];
        assert!(*si < w, "more incoming jumps than the table width");
        let o = base + 4 * n + 2 * (w * jp.to + *si);
        t[o] = jp.from as f64;
        t[o + 1] = jp.weight;
        *si += 1;
    }
    t
}
