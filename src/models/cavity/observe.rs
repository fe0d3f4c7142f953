//! Host-side observables of a distribution F(ω) on an ω grid (uniform or graded): the shifted chemical
//! potential (F(μ) = 0), the effective temperature from the slope at μ, the symmetric part
//! F(μ+x) + F(μ−x) (Fig 3), the non-thermal correction ΔO = ∫ O D (F − F0)/2 (Eq 8), and
//! the paper's predictions for them (S95, S97, Eq 9 / S91).

/// Σ c_n xⁿ.
pub fn poly(c: &[f64], x: f64) -> f64 {
    c.iter().rev().fold(0.0, |acc, ci| acc * x + ci)
}

/// Index i of the grid interval [ω_i, ω_{i+1}] holding `w` (clamped to the grid).
fn interval(omega: &[f64], w: f64) -> usize {
    omega.partition_point(|&x| x <= w).saturating_sub(1).min(omega.len() - 2)
}

/// Linear interpolation of samples `f` on the increasing grid `omega` at `w` (clamped).
pub fn interp(omega: &[f64], f: &[f64], w: f64) -> f64 {
    let i = interval(omega, w);
    let u = ((w - omega[i]) / (omega[i + 1] - omega[i])).clamp(0.0, 1.0);
    f[i] * (1.0 - u) + f[i + 1] * u
}

/// Cubic (4-point Lagrange) interpolation of samples `f` on the increasing grid `omega`
/// at `w`.
pub fn interp_cubic(omega: &[f64], f: &[f64], w: f64) -> f64 {
    cubic(omega, f, w).0
}

/// Cubic (4-point Lagrange) interpolation of value and derivative at `w`.
fn cubic(omega: &[f64], f: &[f64], w: f64) -> (f64, f64) {
    let n = omega.len();
    let i0 = (interval(omega, w) as isize - 1).clamp(0, n as isize - 4) as usize;
    let (mut v, mut d) = (0.0, 0.0);
    for a in 0..4 {
        let xa = omega[i0 + a];
        let mut la = 1.0;
        let mut dla = 0.0;
        for b in 0..4 {
            if b == a {
                continue;
            }
            let xb = omega[i0 + b];
            // derivative of the product by the product rule
            let mut term = 1.0 / (xa - xb);
            for c in 0..4 {
                if c != a && c != b {
                    term *= (w - omega[i0 + c]) / (xa - omega[i0 + c]);
                }
            }
            dla += term;
            la *= (w - xb) / (xa - xb);
        }
        v += f[i0 + a] * la;
        d += f[i0 + a] * dla;
    }
    (v, d)
}

/// The zero of F nearest to `near`: the sign change of the samples nearest to it, refined
/// to the zero of the local cubic interpolant inside that interval (Newton steps, with
/// bisection whenever a Newton step would leave the interval: an unguarded Newton step on
/// a flat cubic can jump anywhere, even outside the grid).
pub fn chemical_potential(omega: &[f64], f: &[f64], near: f64) -> Option<f64> {
    let mut best: Option<(f64, f64, usize)> = None;
    for i in 0..f.len() - 1 {
        if (f[i] <= 0.0) != (f[i + 1] <= 0.0) {
            let w = omega[i] + (omega[i + 1] - omega[i]) * f[i] / (f[i] - f[i + 1]);
            let dist = (w - near).abs();
            if best.is_none_or(|(_, d, _)| dist < d) {
                best = Some((w, dist, i));
            }
        }
    }
    let (mut w, _, i) = best?;
    // The cubic through nodes i−1 … i+2 (clamped) takes the samples' values at ω_i and
    // ω_{i+1}, which have opposite signs: it has a zero in between.
    let (mut a, mut b) = (omega[i], omega[i + 1]);
    let left_non_positive = f[i] <= 0.0;
    for _ in 0..100 {
        let (v, d) = cubic(omega, f, w);
        if v == 0.0 {
            break;
        }
        if (v <= 0.0) == left_non_positive {
            a = w;
        } else {
            b = w;
        }
        let newton = if d != 0.0 { w - v / d } else { f64::NAN };
        let next = if newton > a && newton < b { newton } else { 0.5 * (a + b) };
        let done = (next - w).abs() < 1e-15 * (1.0 + w.abs()) || b - a < 1e-15 * (1.0 + w.abs());
        w = next;
        if done {
            break;
        }
    }
    Some(w)
}

/// T_eff from F ≈ (ω − μ)/(2 T_eff) near μ: T_eff = 1/(2 F'(μ)).
pub fn effective_temperature(omega: &[f64], f: &[f64], mu: f64) -> f64 {
    0.5 / cubic(omega, f, mu).1
}

/// The offsets x ≥ 0 at which [`symmetric_part`] samples: x_j = j·h on a uniform grid
/// (h its spacing); on a graded grid the offsets ω_i − μ of the nodes above μ. Stops where
/// μ ± x leaves the window.
pub fn symmetric_offsets(omega: &[f64], mu: f64) -> Vec<f64> {
    let (lo, hi) = (omega[0], omega[omega.len() - 1]);
    let h = omega[1] - omega[0];
    let uniform = omega.windows(2).all(|p| ((p[1] - p[0]) - h).abs() <= 1e-9 * h);
    let fits = |x: f64| mu - x >= lo && mu + x <= hi;
    if uniform {
        (0..).map(|j| j as f64 * h).take_while(|&x| fits(x)).collect()
    } else {
        std::iter::once(0.0)
            .chain(omega.iter().filter(|&&w| w > mu).map(|&w| w - mu))
            .take_while(|&x| fits(x))
            .collect()
    }
}

/// F(μ + x) + F(μ − x) at the offsets of [`symmetric_offsets`].
pub fn symmetric_part(omega: &[f64], f: &[f64], mu: f64) -> Vec<f64> {
    symmetric_offsets(omega, mu).iter().map(|&x| interp(omega, f, mu + x) + interp(omega, f, mu - x)).collect()
}

/// ΔO = ∫ dω O(ω) D(ω) (F − F0)/2 (Eq 8), trapezoidal rule on the (possibly non-uniform) grid.
pub fn delta_observable(omega: &[f64], f: &[f64], f0: &[f64], o: &[f64], dos: &[f64]) -> f64 {
    let g: Vec<f64> =
        (0..omega.len()).map(|i| poly(o, omega[i]) * poly(dos, omega[i]) * (f[i] - f0[i]) / 2.0).collect();
    (1..omega.len()).map(|i| 0.5 * (omega[i] - omega[i - 1]) * (g[i] + g[i - 1])).sum()
}

/// The paper's closed-form predictions, with ΔT = T_cry − T_mir and g̃² as given.
#[derive(Clone, Copy, Debug)]
pub struct PaperPredictions {
    /// S95: μ = μ0 + 2 ΔT g̃².
    pub mu_s95: f64,
    /// S97: T_eff = T_cry + ΔT (ΔT + T_cry) g̃⁴ / T_cry².
    pub t_eff_s97: f64,
    /// Eq 9 / S91: ΔO = (T_mir − T_cry) g̃² O(μ) D(μ).
    pub delta_o_eq9: f64,
}

/// Evaluates S95, S97 and Eq 9 (Eq 9 at the given μ).
pub fn paper_predictions(
    mu0: f64,
    t_cry: f64,
    t_mir: f64,
    g_tilde_sq: f64,
    mu: f64,
    o: &[f64],
    dos: &[f64],
) -> PaperPredictions {
    let dt = t_cry - t_mir;
    PaperPredictions {
        mu_s95: mu0 + 2.0 * dt * g_tilde_sq,
        t_eff_s97: t_cry + dt * (dt + t_cry) * g_tilde_sq * g_tilde_sq / (t_cry * t_cry),
        delta_o_eq9: (t_mir - t_cry) * g_tilde_sq * poly(o, mu) * poly(dos, mu),
    }
}
