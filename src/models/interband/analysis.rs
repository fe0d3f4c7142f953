//! Observables of the interband model, the steady/oscillating verdict on a window of
//! |Δ|(t), and the effective BdG model of Eq 12.

use crate::engine::model::Observables;

use super::lindblad::{delta_star, P_N};
use super::InterbandParams;

/// Observables of one state: scalars `delta_abs`, `delta_re`, `delta_im` (Δ, not Δ*),
/// `n11_mean`, `n22_mean`, `n_mean` (`Σ_k (n11 + n22)/N`, conserved, starts at 1),
/// `n21_abs_max`, `s21_abs_max`; arrays `k`, `n11`, `n22`, `n21_re`, `n21_im`, `s21_re`,
/// `s21_im`.
pub fn observables(p: &InterbandParams, params: &[f64], y: &[f64]) -> Observables {
    let n = params[P_N] as usize;
    let (dsr, dsi) = delta_star(params, y);
    let nf = n as f64;
    let mean = |r: std::ops::Range<usize>| y[r].iter().sum::<f64>() / nf;
    let absmax = |o: usize| (0..n).map(|k| y[o + k].hypot(y[o + n + k])).fold(0.0, f64::max);
    let n11 = mean(0..n);
    let n22 = mean(n..2 * n);
    Observables {
        scalars: vec![
            ("delta_abs".into(), dsr.hypot(dsi)),
            ("delta_re".into(), dsr),
            ("delta_im".into(), -dsi),
            ("n11_mean".into(), n11),
            ("n22_mean".into(), n22),
            ("n_mean".into(), n11 + n22),
            ("n21_abs_max".into(), absmax(2 * n)),
            ("s21_abs_max".into(), absmax(4 * n)),
        ],
        arrays: vec![
            ("k".into(), p.grid()),
            ("n11".into(), y[..n].to_vec()),
            ("n22".into(), y[n..2 * n].to_vec()),
            ("n21_re".into(), y[2 * n..3 * n].to_vec()),
            ("n21_im".into(), y[3 * n..4 * n].to_vec()),
            ("s21_re".into(), y[4 * n..5 * n].to_vec()),
            ("s21_im".into(), y[5 * n..6 * n].to_vec()),
        ],
    }
}

/// What a window of |Δ|(t) shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Mean |Δ| below the caller's resolution floor: the normal state (Δ = 0 within the
    /// s21 tolerance; a decaying s21 stalls at a numerical floor set by its atol).
    Normal,
    /// Spread within tolerance: a steady state.
    Steady,
    /// Spread beyond tolerance and not explained by a linear drift: a persistent
    /// oscillation (report mean and spread).
    Oscillating,
    /// Spread beyond tolerance, no trend, but the last third's spread is below half the
    /// first third's: a damped oscillation still settling; run longer.
    Damped,
    /// Spread beyond tolerance with a trend (the last third's mean differs from the first
    /// third's by more than 30 % of the spread): not converged, run longer.
    Drifting,
}

/// Mean and spread of |Δ| over a window, with the verdict.
#[derive(Clone, Copy, Debug)]
pub struct WindowSummary {
    /// Start of the window.
    pub t_start: f64,
    /// End of the window.
    pub t_end: f64,
    /// Number of samples.
    pub samples: usize,
    /// Mean of |Δ|.
    pub mean: f64,
    /// max − min of |Δ|.
    pub spread: f64,
    /// Standard deviation of |Δ|.
    pub std: f64,
    /// Mean of the last third of the window minus mean of the first third.
    pub drift: f64,
    /// Verdict.
    pub verdict: Verdict,
}

/// Summarises samples `(t, |Δ|)` with `t ≥ t_start`: `Normal` if the mean is below
/// `zero_below`, steady if `spread ≤ abs_tol + rel_tol·mean`. `None` if fewer than 3
/// samples lie in the window.
pub fn summarize_window(
    samples: &[(f64, f64)],
    t_start: f64,
    zero_below: f64,
    abs_tol: f64,
    rel_tol: f64,
) -> Option<WindowSummary> {
    let w: Vec<(f64, f64)> = samples.iter().copied().filter(|s| s.0 >= t_start).collect();
    if w.len() < 3 {
        return None;
    }
    let nf = w.len() as f64;
    let mean = w.iter().map(|s| s.1).sum::<f64>() / nf;
    let (lo, hi) = w.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), s| (a.min(s.1), b.max(s.1)));
    let var = w.iter().map(|s| (s.1 - mean).powi(2)).sum::<f64>() / nf;
    let third = (w.len() / 3).max(1);
    let head = w[..third].iter().map(|s| s.1).sum::<f64>() / third as f64;
    let tail = w[w.len() - third..].iter().map(|s| s.1).sum::<f64>() / third as f64;
    let drift = tail - head;
    let range = |v: &[(f64, f64)]| {
        let (a, b) = v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), s| (a.min(s.1), b.max(s.1)));
        b - a
    };
    let damped = range(&w[w.len() - third..]) < 0.5 * range(&w[..third]);
    let (t0, t1) = (w[0].0, w[w.len() - 1].0);
    let spread = hi - lo;
    let verdict = if mean < zero_below {
        Verdict::Normal
    } else if spread <= abs_tol + rel_tol * mean.abs() {
        Verdict::Steady
    } else if drift.abs() > 0.3 * spread {
        Verdict::Drifting
    } else if damped {
        Verdict::Damped
    } else {
        Verdict::Oscillating
    };
    Some(WindowSummary { t_start: t0, t_end: t1, samples: w.len(), mean, spread, std: var.sqrt(), drift, verdict })
}

/// Ground-state populations `(n1(−k), n2(k))` of the effective BdG model (Eq 12 with the
/// σʸ pairing structure of Eq 2: `H = Σ ε_α(k) n_{kα} − Δ̃ Σ_k (c†_{k2}c†_{−k1} + h.c.)`,
/// `ε_α = A_α k² − C`) at momentum `k`. Eq 12 as printed (`Σ_{α≠β} c†_{kα}c†_{−kβ}`,
/// symmetric in α, β) vanishes identically for fermions, so the antisymmetric form is used.
pub fn bdg_populations(k: f64, a1: f64, a2: f64, c: f64, delta_tilde: f64) -> (f64, f64) {
    let e1 = a1 * k * k - c;
    let e2 = a2 * k * k - c;
    let xi = 0.5 * (e2 + e1);
    let eta = 0.5 * (e2 - e1);
    let e = xi.hypot(delta_tilde);
    if eta + e < 0.0 {
        // Both Nambu levels of (c_{k2}, c†_{−k1}) occupied: n2 = 1, n1(−k) = 0.
        (0.0, 1.0)
    } else if eta - e > 0.0 {
        // Both empty: n2 = 0, n1(−k) = 1.
        (1.0, 0.0)
    } else if e == 0.0 {
        (0.5, 0.5)
    } else {
        let v2 = 0.5 * (1.0 - xi / e);
        (v2, v2)
    }
}
