//! Sweeps over the α²F shape (issue 4, "Sweeps over λ, T0 and the α²F shape"): parametric
//! shapes (Gaussian, Lorentzian, Debye-like) with sweepable parameters, and a list of CSV
//! tables swept through `table_index`; checked against exact moments and limits, and the
//! shipped configs run through the sweep planner.
use neqkin::engine::model::Model;
use neqkin::models::eliashberg::alpha2f::{ShapeKind, Spectrum};
use neqkin::models::eliashberg::threshold::{lambda_c, Units};
use neqkin::models::eliashberg::{evaluate_point, Eliashberg, Params};

fn scalar(o: &neqkin::engine::model::Observables, k: &str) -> f64 {
    o.scalars.iter().find(|x| x.0 == k).unwrap_or_else(|| panic!("no {k}")).1
}

#[test]
fn parametric_shapes_have_the_exact_moments() {
    // Debye α²F = cω² (ω ≤ ω_D): λ = cω_D², g² = cω_D⁴/2, so g²/λ = ω_D²/2; the rectangle
    // rule on ω_j = jΔ is first order in Δ.
    let wd = 2.0;
    let mut prev = f64::INFINITY;
    for n in [100.0, 400.0] {
        let s = Spectrum::parametric(ShapeKind::Debye, wd, 0.0, wd, wd / n, 1.3).unwrap();
        let rel = (s.g().powi(2) / s.total_lambda() / (wd * wd / 2.0) - 1.0).abs();
        eprintln!("Debye, Δ = ω_D/{n}: λ = {}, g²/λ vs ω_D²/2: rel {rel:.2e}", s.total_lambda());
        assert!((s.total_lambda() - 1.3).abs() < 1e-12);
        assert!(rel < 3.0 / n && rel < prev);
        prev = rel;
    }
    // Gaussian: g²/λ = 2∫α²F ω / 2∫α²F/ω → c² (1 + O(σ²/c²)) for σ ≪ c; the exact ratio for
    // the truncated Gaussian is checked against a fine quadrature.
    let (c, w) = (1.0, 0.1);
    let s = Spectrum::parametric(ShapeKind::Gaussian, c, w, c + 5.0 * w, 1e-4, 1.0).unwrap();
    let (mut num, mut den) = (0.0, 0.0);
    for j in 1..=150_000 {
        let x = j as f64 * 1e-5;
        let a = (-(x - c) * (x - c) / (2.0 * w * w)).exp();
        num += a * x;
        den += a / x;
    }
    let rel = (s.g().powi(2) / s.total_lambda() / (num / den) - 1.0).abs();
    eprintln!("Gaussian c = 1, σ = 0.1: g²/λ = {:.8} vs quadrature {:.8} (rel {rel:.1e})", s.g().powi(2), num / den);
    assert!(rel < 1e-6);
    // Lorentzian: symmetric about its centre, weight falls as w²/Δω².
    let s = Spectrum::parametric(ShapeKind::Lorentzian, 1.0, 0.05, 2.0, 0.01, 1.0).unwrap();
    let i0 = s.omega.iter().position(|x| (x - 1.0).abs() < 1e-9).unwrap();
    let ratio = |d: usize| (s.lambda[i0 + d] * s.omega[i0 + d]) / (s.lambda[i0 - d] * s.omega[i0 - d]);
    assert!((ratio(5) - 1.0).abs() < 1e-12 && (ratio(20) - 1.0).abs() < 1e-12);
    assert!(((s.lambda[i0 + 5] * s.omega[i0 + 5]) / (s.lambda[i0] * s.omega[i0]) - 0.5).abs() < 1e-12);
}

#[test]
fn narrow_gaussian_threshold_is_the_einstein_one() {
    // σ → 0: λc(T0) of the Gaussian tends to that of one Einstein mode at its centre.
    let t0 = 0.18;
    let ein = lambda_c(&Spectrum::from_modes("m", &[(1.0, 1.0)]).unwrap(), t0, Units::G).unwrap().lambda_c;
    let mut prev = f64::INFINITY;
    for w in [0.08, 0.04, 0.02] {
        let p = Params::parse(&serde_json::json!({
            "task": "threshold", "shape": "gaussian", "shape_center": 1.0, "shape_width": w,
            "shape_step": w / 4.0, "lambda": 1.0, "units": "g", "temperature": t0
        }))
        .unwrap();
        let lc = scalar(&evaluate_point(&p).unwrap(), "lambda_c");
        let rel = (lc / ein - 1.0).abs();
        eprintln!("Gaussian σ = {w}: λc = {lc:.6} vs Einstein {ein:.6} (rel {rel:.2e})");
        // λc − λc(Einstein) = O(σ²): each halving of σ divides it by ~4.
        assert!(rel < prev / 3.0);
        prev = rel;
    }
    assert!(prev < 1e-2);
}

#[test]
fn shipped_shape_sweeps_run() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::set_current_dir(root).unwrap(); // table paths are relative to the repo root
                                              // Gaussian width sweep: λc changes with the shape, smoothly and finitely.
    let (plan, model) = neqkin::config::load_plan(&root.join("configs/eliashberg/shape_sweep.toml")).unwrap();
    let pts: Vec<_> = neqkin::run::schedule::points(&plan).map(|p| p.parsed).collect();
    assert_eq!(pts.len(), 3);
    let obs = model.evaluate(&pts).unwrap().unwrap();
    let lcs: Vec<f64> = obs.iter().map(|o| scalar(o, "lambda_c")).collect();
    eprintln!("λc(σ) at T0 = 0.18 g: {lcs:?}");
    assert!(lcs.iter().all(|x| x.is_finite() && *x > 0.5 && *x < 5.0));
    assert!((lcs[2] - lcs[0]).abs() > 1e-3 * lcs[0], "the shape must matter");
    // Table list swept by index: each point reads its own file.
    let (plan, model) = neqkin::config::load_plan(&root.join("configs/eliashberg/alpha2f_tables.toml")).unwrap();
    let points: Vec<_> = neqkin::run::schedule::points(&plan).collect();
    let pts: Vec<_> = points.iter().map(|p| p.parsed.clone()).collect();
    let obs = model.evaluate(&pts).unwrap().unwrap();
    let lam: Vec<f64> = obs.iter().map(|o| scalar(o, "lambda")).collect();
    let direct: Vec<f64> = ["narrow_peak", "broad"]
        .iter()
        .map(|n| {
            Spectrum::from_csv("t", &root.join(format!("configs/eliashberg/alpha2f/{n}.csv"))).unwrap().total_lambda()
        })
        .collect();
    eprintln!("λ per table: {lam:?} (direct {direct:?})");
    assert!((lam[0] - direct[0]).abs() < 1e-12 && (lam[1] - direct[1]).abs() < 1e-12);
    assert!((lam[0] - lam[1]).abs() > 1e-3);
    // Bad index: a clear error naming the field.
    let mut bad = points[0].params.clone();
    bad["table_index"] = serde_json::json!(2.0);
    let e = Eliashberg.validate(&bad).unwrap_err().to_string();
    assert!(e.contains("params.table_index"), "{e}");
    let e = Eliashberg
        .validate(&serde_json::json!({"task": "threshold", "shape": "gaussian", "shape_center": 1.0,
            "lambda": 1.0, "temperature": 0.1}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("params.shape_width"), "{e}");
}
