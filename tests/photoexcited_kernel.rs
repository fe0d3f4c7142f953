//! The WGSL kernel of the photoexcited model: naga validation (f32 and f64) and agreement
//! of its layout constants with the CPU twin. The GPU-vs-CPU comparison of the kernel's
//! output belongs with the GPU backend's tests.

use neqkin::engine::backend::Precision;
use neqkin::models::photoexcited::{collision, KERNEL_SOURCE};

/// The engine's own preprocessor (prelude with `alias Real`, every `//! import shared/..`
/// inlined), so the test validates exactly what the backend compiles.
fn preprocess(real: &str) -> String {
    let precision = if real == "f64" { Precision::F64 } else { Precision::F32 };
    neqkin::engine::gpu::preprocess::preprocess("photoexcited/collision.wgsl", KERNEL_SOURCE, precision).unwrap()
}

#[test]
fn kernel_validates_with_naga() {
    for (real, caps) in [("f32", naga::valid::Capabilities::empty()), ("f64", naga::valid::Capabilities::FLOAT64)] {
        let src = preprocess(real);
        let module =
            naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| panic!("{real}: {}", e.emit_to_string(&src)));
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
            .validate(&module)
            .unwrap_or_else(|e| panic!("{real}: {e:?}"));
        assert!(module.entry_points.iter().any(|e| e.name == "rhs"));
    }
}

#[test]
fn layout_constants_match_cpu_twin() {
    let expected: &[(&str, usize)] = &[
        ("P_N", collision::P_N),
        ("P_H", collision::P_H),
        ("P_INV_H", collision::P_INV_H),
        ("P_IN_PREF", collision::P_IN_PREF),
        ("P_TANH", collision::P_TANH),
        ("P_FIELD", collision::P_FIELD),
        ("P_SELF_CONSISTENT", collision::P_SELF_CONSISTENT),
        ("P_KAPPA", collision::P_KAPPA),
        ("P_ZETA_FREE", collision::P_ZETA_FREE),
        ("P_INV_TAU_PH", collision::P_INV_TAU_PH),
        ("P_INV_TAU_PULSE", collision::P_INV_TAU_PULSE),
        ("P_ZETA_SCALE", collision::P_ZETA_SCALE),
        ("P_N_LINES", collision::P_N_LINES),
        ("P_FIELD_UNIT", collision::P_FIELD_UNIT),
        ("P_FIELD_SEED", collision::P_FIELD_SEED),
        ("P_INV_SIGMA0", collision::P_INV_SIGMA0),
        ("P_LINES", collision::P_LINES),
        ("LINE_LEN", collision::LINE_LEN),
        ("T_DOS", collision::T_DOS),
        ("T_INV_DOS", collision::T_INV_DOS),
        ("T_DOS2_FACE", collision::T_DOS2_FACE),
        ("T_SIGMA_FACE", collision::T_SIGMA_FACE),
        ("T_EPS", collision::T_EPS),
    ];
    for (name, value) in expected {
        let line = format!("const {name}: u32 = {value}u;");
        assert!(KERNEL_SOURCE.contains(&line), "collision.wgsl lacks `{line}`");
    }
}

/// The right-hand side as the kernel computes it, cell by cell (gather form: each pair rate
/// evaluated in both cells, every term evaluated whatever its prefactor, sums in cell
/// order). The CPU twin's throughput version must give the same `f` derivatives bit for bit
/// (same operations per cell in the same order) and the same ζ, pump and E*² derivatives to
/// rounding (its sums are accumulated in interleaved partial sums).
fn reference_rhs(params: &[f64], tables: &[f64], y: &[f64]) -> (Vec<f64>, f64) {
    use collision::*;
    let n = params[P_N] as usize;
    let inv_h = params[P_INV_H];
    let (pref, tanh_h) = (params[P_IN_PREF], params[P_TANH]);
    let n_lines = params[P_N_LINES] as usize;
    let tab = |t: usize| &tables[t * n..(t + 1) * n];
    let (dos, inv_dos, d2f, sgf) = (tab(T_DOS), tab(T_INV_DOS), tab(T_DOS2_FACE), tab(T_SIGMA_FACE));
    let f = &y[..n];
    let (zeta, pump, e2) = (y[n], y[n + 1], y[n + 2].max(0.0));
    let field = params[P_FIELD] + params[P_SELF_CONSISTENT] * e2 * params[P_FIELD_UNIT];
    let mut dy = vec![0.0; n + 3];
    let (mut sigma, mut production) = (0.0, 0.0);
    for i in 0..n {
        let fi = f[i];
        let mut acc = 0.0;
        for l in 0..n_lines {
            let base = P_LINES + LINE_LEN * l;
            let (k, c, a) = (params[base] as usize, params[base + 1], zeta + params[base + 2]);
            if i + k < n {
                acc += pair_rate(c, dos[i + k], dos[i], a, f[i + k], fi);
            }
            if i >= k {
                let r = pair_rate(c, dos[i], dos[i - k], a, fi, f[i - k]);
                acc -= r;
                production += r * k as f64;
            }
        }
        let (mut fu, mut gu, mut fd, mut gd) = (0.0, 0.0, 0.0, 0.0);
        if i + 1 < n {
            fu = inelastic_flux(pref, tanh_h, d2f[i], fi, f[i + 1]);
            gu = sgf[i] * (f[i + 1] - fi) * inv_h;
            sigma += sgf[i] * (fi - f[i + 1]);
        }
        if i > 0 {
            fd = inelastic_flux(pref, tanh_h, d2f[i - 1], f[i - 1], fi);
            gd = sgf[i - 1] * (fi - f[i - 1]) * inv_h;
        }
        acc = acc + (fu - fd) * inv_h + field * (gu - gd) * inv_h;
        dy[i] = acc * inv_dos[i];
    }
    let zf = params[P_ZETA_FREE];
    dy[n] = zf * (production * params[P_ZETA_SCALE] + pump - zeta * params[P_INV_TAU_PH]);
    dy[n + 1] = -zf * pump * params[P_INV_TAU_PULSE];
    let s = sigma * params[P_INV_SIGMA0];
    if params[P_SELF_CONSISTENT] != 0.0 {
        // docs/models/photoexcited.md, "Internal field": Maxwell's −2κ(σ/σ0)E*² (an overshoot
        // below 0 relaxes at rate 2κ) plus the seed, which feeds only growth (σ < 0).
        let seed_source = if s < 0.0 { -2.0 * params[P_KAPPA] * s * params[P_FIELD_SEED] } else { 0.0 };
        let maxwell = if y[n + 2] < 0.0 { -2.0 * params[P_KAPPA] * y[n + 2] } else { -2.0 * params[P_KAPPA] * s * e2 };
        dy[n + 2] = maxwell + seed_source;
    }
    (dy, sigma)
}

#[test]
fn cpu_rhs_matches_the_cell_by_cell_reference() {
    use neqkin::models::photoexcited::{PhotoexcitedBatch, PhotoexcitedParams};
    use serde_json::json;
    // Fig 2a terms only (Γ_in = 0, E = 0: the face terms are skipped), every term on, a
    // dispersive phonon (many lines, shifts up to ~N/2), ζ and E*² free, a 1D band, and a
    // line so high that only a few pairs exist (k close to N); N not a multiple of the
    // vector width.
    let points = [
        json!({"grid_points": 203, "phonon_frequency": 0.52, "zeta": 20.0}),
        json!({"grid_points": 203, "phonon_frequency": 0.3711, "zeta": 5.0, "inelastic_rate": 0.1, "electric_field": 0.05, "temperature": 0.02}),
        json!({"grid_points": 203, "phonon_frequency": 0.36, "phonon_width": 0.02, "zeta_initial": 3.0, "pump_strength": 5.0, "phonon_lifetime": 4.0, "self_consistent_field": true, "inelastic_rate": 0.02}),
        json!({"grid_points": 203, "dos": "one_dimensional", "phonon_frequency": 0.25, "zeta": 20.0, "electric_field": 0.1}),
        json!({"grid_points": 203, "phonon_frequency": 0.97, "zeta": 1.0}),
    ];
    for p in &points {
        let b = PhotoexcitedBatch::new(&[PhotoexcitedParams::from_json(p).unwrap()]).unwrap();
        let (params, tables) = (b.member_params(0), b.member_tables(0));
        let mut y = neqkin::engine::model::BatchProblem::initial_state(&b);
        let n = y.len() - 3;
        for (i, f) in y[..n].iter_mut().enumerate() {
            *f = (*f + 0.2 * (0.37 * i as f64).sin()).clamp(0.01, 0.99);
        }
        y[n + 2] = 0.01;
        let (reference, sigma) = reference_rhs(params, tables, &y);
        let mut fast = vec![0.0; n + 3];
        let mut portable = vec![0.0; n + 3];
        let mut scratch = [0.0];
        let s_fast = collision::rhs(params, tables, 0.5, &y, &mut fast, &mut scratch);
        let s_port = collision::rhs_portable(params, tables, 0.5, &y, &mut portable, &mut scratch);
        // SIMD build (runtime-selected) and portable build: bit for bit.
        assert_eq!(fast, portable, "{p}: SIMD and portable builds differ");
        assert_eq!(s_fast, s_port, "{p}");
        // Against the kernel's cell-by-cell form: f derivatives bit for bit.
        for i in 0..n {
            assert_eq!(fast[i].to_bits(), reference[i].to_bits(), "{p}: cell {i}: {} vs {}", fast[i], reference[i]);
        }
        let scale = reference.iter().fold(0.0f64, |a, x| a.max(x.abs()));
        for i in n..n + 3 {
            assert!(
                (fast[i] - reference[i]).abs() <= 1e-13 * scale,
                "{p}: component {i}: {} vs {}",
                fast[i],
                reference[i]
            );
        }
        assert!((s_fast.sigma - sigma).abs() <= 1e-14 * sigma.abs().max(1.0), "{p}: σ {} vs {sigma}", s_fast.sigma);
    }
}
