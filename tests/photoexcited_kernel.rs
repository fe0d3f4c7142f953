//! The WGSL kernel of the photoexcited model: naga validation (f32 and f64) and agreement
//! of its layout constants with the CPU twin. The GPU-vs-CPU comparison of the kernel's
//! output belongs with the GPU backend's tests.

use neqkin::models::photoexcited::{collision, KERNEL_SOURCE};

/// Minimal preprocessor: `alias Real = ..;` + inlined `//! import shared/rhs_bindings`.
fn preprocess(real: &str) -> String {
    let bindings =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/shared/rhs_bindings.wgsl")).unwrap();
    format!("alias Real = {real};\n{}", KERNEL_SOURCE.replace("//! import shared/rhs_bindings", &bindings))
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
