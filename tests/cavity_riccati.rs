//! The printed Riccati S71 (`riccati_s71`) over wide windows and at small g (issue 10):
//! the cryostat's F0 must not freeze where e^{(ω−μ0)/T_cry} leaves the f64 range, and the
//! stiff g → 0 points run by the implicit method give the explicit method's answers.
mod cavity_util;

use cavity_util::{riccati, riccati_with, with};
use neqkin::engine::program::status;
use neqkin::engine::solve::{Method, SolveOptions};
use neqkin::models::cavity::observe;
use serde_json::{json, Value};

/// Fig S4a's parameters (T_cry = 0.1, T_mir = 100, γ = 10, μ0 = ε_k = 1, g = 0.5) on the
/// window μ0 ± `half` with spacing 0.05.
fn fig_s4(half: f64) -> Value {
    let n = (2.0 * half / 0.05).round() as usize + 1;
    json!({
        "level": 3, "variant": "riccati_s71", "coupling_g": 0.5, "t_cry": 0.1, "t_mir": 100.0,
        "nu0": 1.0, "gamma": 10.0, "mu0": 1.0, "n_omega": n,
        "omega_min": 1.0 - half, "omega_max": 1.0 + half
    })
}

/// (ω, F) curve → (μ, T_eff).
fn mu_t_eff(c: &[(f64, f64)], mu0: f64) -> (f64, f64) {
    let (w, f): (Vec<f64>, Vec<f64>) = c.iter().cloned().unzip();
    let mu = observe::chemical_potential(&w, &f, mu0).unwrap_or(f64::NAN);
    (mu, observe::effective_temperature(&w, &f, mu))
}

/// Max |F_a − F_b| over the ω values both curves hold (same spacing and offset).
fn overlap_diff(a: &[(f64, f64)], b: &[(f64, f64)]) -> (f64, usize) {
    let mut worst = 0.0f64;
    let mut count = 0;
    let mut j = 0;
    for (w, f) in a {
        while j < b.len() && b[j].0 < w - 1e-9 {
            j += 1;
        }
        if j < b.len() && (b[j].0 - w).abs() < 1e-9 {
            worst = worst.max((f - b[j].1).abs());
            count += 1;
        }
    }
    (worst, count)
}

/// Starting the backward integration 600, 740, 1000 and 10 000 T_cry above μ0 gives the
/// same F where the windows overlap (the start's transient decays at the rate
/// ((ω−ε)² + γ²)/(4κT_mir)). Before issue 10 the start's Fermi factor underflowed to 0
/// past ~710 T_cry and F came back ≡ 1 with status `reached`.
#[test]
fn wide_windows_agree_with_the_600_t_cry_window() {
    let halves = [60.0, 74.0, 100.0, 1000.0];
    // One batch per window (a batch shares its grid size).
    let runs: Vec<_> = halves.iter().map(|&h| riccati(&[fig_s4(h)])).collect();
    let out: Vec<_> = runs.iter().map(|r| r.1[0].clone()).collect();
    let st: Vec<_> = runs.iter().map(|r| r.2[0]).collect();
    let (mu_ref, te_ref) = mu_t_eff(&out[0], 1.0);
    println!("window ±{:>6} (x = {:>6} T_cry): μ − μ0 = {:+.10}, T_eff = {:.10}", 60, 600, mu_ref - 1.0, te_ref);
    for k in 0..halves.len() {
        assert_eq!(st[k], status::REACHED, "window ±{}", halves[k]);
    }
    let mut bad = vec![];
    for k in 1..halves.len() {
        let (mu, te) = mu_t_eff(&out[k], 1.0);
        let (d, count) = overlap_diff(&out[0], &out[k]);
        println!(
            "window ±{:>6} (x = {:>6} T_cry): μ − μ0 = {:+.10}, T_eff = {:.10}; max|ΔF| vs ±60 on {count} common points = {d:.2e}",
            halves[k],
            halves[k] / 0.1,
            mu - 1.0,
            te
        );
        assert!(count >= 2400, "overlap {count}");
        if !(d <= 1e-8 && (mu - mu_ref).abs() <= 1e-9 && (te - te_ref).abs() <= 1e-8) {
            bad.push(halves[k]);
        }
    }
    assert!(bad.is_empty(), "windows ±{bad:?} disagree with ±60");
    // The solution is no constant: it reaches −1 below μ0.
    let lo = out[3].first().unwrap().1;
    assert!((lo + 1.0).abs() < 1e-3, "F(ω_min) = {lo}");
}

/// The forward direction mirrors the problem: its start sits 10 000 T_cry below μ0, where
/// 1 − n0 underflowed before. Below μ0 the forward S71 from F = −1 stays at −1 (where F0 is
/// −1), and at the Fermi level F0's step still acts: F leaves −1 (and, being the forward
/// S71, runs away afterwards — its known defect, §2).
#[test]
fn forward_start_far_below_the_fermi_level_sees_the_step() {
    let p = with(fig_s4(1000.0), json!({"riccati_direction": "forward"}));
    let (_, out, _) = riccati(&[p]);
    let c = &out[0];
    let below = c.iter().filter(|(w, _)| *w < 1.0 - 2.0).fold(0.0f64, |a, (_, f)| a.max((f + 1.0).abs()));
    let moved = c.iter().filter(|(w, _)| *w > 1.0 - 2.0).fold(0.0f64, |a, (_, f)| a.max((f + 1.0).abs()));
    println!("forward from μ0 − 1000: {} outputs, max|F + 1| below μ0 − 2: {below:.2e}, above: {moved:.2e}", c.len());
    assert!(below < 1e-6, "{below:e}");
    assert!(moved > 1e-2 || c.last().is_some_and(|(w, _)| *w < 1.0), "F did not leave −1 at μ0: {moved:e}");
}

/// Solve options of the implicit (BDF) runs: the shipped `fig3.toml`'s tolerances.
fn bdf() -> SolveOptions {
    SolveOptions { method: Method::Bdf, rtol: 1e-11, atol: 1e-13, ..Default::default() }
}

fn fig3(g: f64) -> Value {
    json!({
        "level": 3, "variant": "riccati_s71", "coupling_g": g, "t_cry": 1.0, "t_mir": 50.0,
        "nu0": 1.0, "gamma": 1.0, "mu0": 1.0, "n_omega": 4001, "omega_min": -199.0, "omega_max": 201.0
    })
}

/// (μ, T_eff, the curve, status) of one Fig 3 point; DOPRI5 without options.
fn fig3_run(g: f64, opts: Option<SolveOptions>) -> (f64, f64, Vec<(f64, f64)>, f64) {
    let (_, out, st) = match opts {
        Some(o) => riccati_with(&[fig3(g)], o),
        None => riccati(&[fig3(g)]),
    };
    let (mu, te) = mu_t_eff(&out[0], 1.0);
    (mu, te, out[0].clone(), st[0])
}

/// The implicit method (BDF, orders 1–2) gives the explicit DOPRI5 answers at the
/// non-stiff Fig 3 points: μ, T_eff and F along the window.
#[test]
fn bdf_matches_dopri5_at_the_fig3_points() {
    for g in [0.1, 0.5, 100.0] {
        let (mu_e, te_e, fe, se) = fig3_run(g, None);
        let (mu_i, te_i, fi, si) = fig3_run(g, Some(bdf()));
        assert_eq!(se, status::REACHED, "dopri5 g = {g}");
        assert_eq!(si, status::REACHED, "bdf g = {g}");
        let (df, count) = overlap_diff(&fe, &fi);
        println!(
            "g = {g:>5}: DOPRI5 μ − μ0 = {:+.9}, T_eff = {:.9}; BDF μ − μ0 = {:+.9}, T_eff = {:.9}; |Δμ| = {:.1e}, |ΔT_eff| = {:.1e}, max|ΔF| = {df:.1e} ({count} points)",
            mu_e - 1.0,
            te_e,
            mu_i - 1.0,
            te_i,
            (mu_e - mu_i).abs(),
            (te_e - te_i).abs()
        );
        assert_eq!(count, 4000);
        // F′(μ) = 1/(2T_eff): an error δF moves μ by 2T_eff δF.
        assert!((mu_e - mu_i).abs() <= 1e-6 * te_e, "g = {g}: μ {mu_e} vs {mu_i}");
        assert!((te_e - te_i).abs() <= 1e-6 * te_e, "g = {g}: T_eff {te_e} vs {te_i}");
        assert!(df <= 1e-6, "g = {g}: max|ΔF| = {df:e}");
    }
}

/// At the stiff g = 0.001 itself, on a window narrow enough for DOPRI5 (|ω − ε| ≤ 10, so
/// its stability limit h ≲ 3.3·4κT_mir/((ω−ε)² + γ²) costs ~10⁵ steps instead of ~10⁹
/// on the shipped ±200): BDF and DOPRI5 agree.
#[test]
fn bdf_matches_dopri5_at_small_g_on_a_narrow_window() {
    let p = with(fig3(0.001), json!({"n_omega": 201, "omega_min": -9.0, "omega_max": 11.0}));
    let (_, e, se) = riccati(std::slice::from_ref(&p));
    let (_, i, si) = riccati_with(&[p], bdf());
    assert_eq!((se[0], si[0]), (status::REACHED, status::REACHED));
    let (mu_e, te_e) = mu_t_eff(&e[0], 1.0);
    let (mu_i, te_i) = mu_t_eff(&i[0], 1.0);
    let (df, count) = overlap_diff(&e[0], &i[0]);
    println!(
        "g = 0.001, ω ∈ [−9, 11]: DOPRI5 μ − μ0 = {:+.9e}, T_eff = {te_e:.10}; BDF μ − μ0 = {:+.9e}, T_eff = {te_i:.10}; max|ΔF| = {df:.1e} ({count} points)",
        mu_e - 1.0,
        mu_i - 1.0
    );
    assert_eq!(count, 200);
    assert!(df <= 1e-8 && (mu_e - mu_i).abs() <= 1e-8 && (te_e - te_i).abs() <= 1e-8);
}

/// g → 0 (the stiff point of Fig 3): with u = F − F0 the printed S71 reads
/// 2T_mir u′ = S + (a − 2F0) u − u², S = (1 − F0²)(1 − T_mir/T_cry), a = 1/(2Ã0) ∝ 1/g²,
/// so u follows the slow manifold u_qs = −S/(a − 2F0) up to relative corrections
/// O(T_mir/(T_cry a)) (docs/models/cavity.md §3). BDF reproduces u_qs, and u ∝ g².
#[test]
fn small_g_follows_the_quasi_static_slow_manifold() {
    let (t_cry, t_mir, gamma, mu0, eps) = (1.0f64, 50.0f64, 1.0f64, 1.0f64, 1.0f64);
    let mut peak = vec![];
    for g in [0.001, 0.002] {
        let (mu, te, f, st) = fig3_run(g, Some(bdf()));
        assert_eq!(st, status::REACHED, "g = {g}");
        // κ = π g² S_1 / (2 L ν0) with d = 2, L = π/ν0: κ = π g².
        let kappa = std::f64::consts::PI * g * g;
        let (mut worst, mut umax) = (0.0f64, 0.0f64);
        for &(w, fw) in &f {
            let f0 = ((w - mu0) / (2.0 * t_cry)).tanh();
            let a = ((w - eps) * (w - eps) + gamma * gamma) / (2.0 * kappa);
            let s = (1.0 - f0 * f0) * (1.0 - t_mir / t_cry);
            let u_qs = -s / (a - 2.0 * f0);
            worst = worst.max((fw - f0 - u_qs).abs());
            umax = umax.max((fw - f0).abs());
        }
        // μ from F(μ) = 0 at first order: μ − μ0 ≈ −u_qs(μ0)/F0′(μ0) = −2T_cry u_qs(μ0).
        let a0 = gamma * gamma / (2.0 * kappa);
        let mu_qs = mu0 - 2.0 * t_cry * (t_mir / t_cry - 1.0) / a0;
        println!(
            "g = {g}: max|F − F0| = {umax:.4e}, max|F − F0 − u_qs| = {worst:.2e}; μ − μ0 = {:+.6e} (slow manifold {:+.6e}), T_eff = {te:.9}",
            mu - mu0,
            mu_qs - mu0
        );
        assert!(worst <= 2e-3 * umax, "g = {g}: off the slow manifold by {worst:e} (|u| ≤ {umax:e})");
        assert!((mu - mu_qs).abs() <= 2e-3 * (mu_qs - mu0).abs(), "g = {g}: μ {mu} vs {mu_qs}");
        assert!((te - t_cry).abs() < 1e-3, "g = {g}: T_eff {te} (→ T_cry as g → 0)");
        peak.push(umax);
    }
    let ratio = peak[1] / peak[0];
    println!("max|F − F0| ratio g = 0.002 / 0.001: {ratio:.4} (g² law: 4)");
    assert!((ratio - 4.0).abs() < 0.01, "ratio {ratio}");
}

/// g → ∞: the cryostat decouples (Ã0 → ∞) and S71 becomes 2T_mir F′ = 1 − F², whose
/// bounded solution is the mirror tanh: T_eff → T_mir (the shipped g = 100 point).
#[test]
fn large_g_approaches_the_mirror_temperature() {
    let mut dev = vec![];
    for g in [30.0, 100.0] {
        let (mu, te, _, st) = fig3_run(g, Some(bdf()));
        assert_eq!(st, status::REACHED);
        println!("g = {g}: μ − μ0 = {:+.5}, T_eff = {te:.5} (T_mir = 50)", mu - 1.0);
        dev.push((te - 50.0).abs());
    }
    assert!(dev[1] < dev[0], "T_eff does not approach T_mir: {dev:?}");
}

/// In f32 the kernel's ω = ω_start ± t is known only to ~6e-8·|ω|: a window of μ0 ± 1000
/// at T_cry = 0.1 moves the cryostat step by 2e-3 T_cry. Such a batch is refused (its
/// points come back `failed` with this reason) instead of returning f32 numbers that the
/// precision cannot carry; f64, and f32 on the shipped ±50 window, are accepted.
#[test]
fn f32_refuses_windows_it_cannot_resolve() {
    use neqkin::engine::backend::Precision;
    use neqkin::engine::model::BatchProblem;
    use neqkin::models::cavity::{derive, CavityBatch};
    let batch = |half: f64| CavityBatch::new(vec![derive(&fig_s4(half)).unwrap()]).unwrap();
    let wide = batch(1000.0);
    let e = wide.check_precision(Precision::F32.unit_roundoff()).unwrap_err().to_string();
    println!("f32, μ0 ± 1000: {e}");
    assert!(e.contains("`params.omega_max`"), "{e}");
    wide.check_precision(Precision::F64.unit_roundoff()).unwrap();
    batch(50.0).check_precision(Precision::F32.unit_roundoff()).unwrap();
}

/// The kernel's arithmetic-only F0 (table of e^{−k/4} and a degree-12 Taylor polynomial)
/// equals tanh(x/2) to 4e-16 for every x, including far past where e^{|x|} overflows.
#[test]
fn table_tanh_matches_tanh() {
    use neqkin::models::cavity::cpu::{riccati_table, thermal_tanh};
    let table = riccati_table();
    let mut worst = 0.0f64;
    for k in -200_000..=200_000 {
        let x = k as f64 * 1e-3 + 1.234e-7;
        worst = worst.max((thermal_tanh(&table, x) - (x / 2.0).tanh()).abs());
    }
    for x in [1e3, 1e5, 1e300, -1e300, f64::MAX] {
        assert_eq!(thermal_tanh(&table, x), x.signum());
    }
    println!("max|thermal_tanh − tanh| over |x| ≤ 200: {worst:.2e}");
    assert!(worst <= 4e-16, "{worst:e}");
}
