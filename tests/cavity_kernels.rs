//! The cavity kernels parse and validate with naga (f64 and f32), and their layout
//! constants match the CPU twins' (issue 3).
use neqkin::engine::backend::Precision;
use neqkin::models::cavity::{cpu, COLLISION_WGSL, RICCATI_WGSL, SHIFT_WGSL};

/// The engine's host preprocessor (`Real` alias, inlined bindings).
fn preprocess(src: &str, real: &str) -> String {
    let p = if real == "f64" { Precision::F64 } else { Precision::F32 };
    neqkin::engine::gpu::preprocess::preprocess("cavity", src, p).unwrap()
}

fn validate(name: &str, src: &str, real: &str) -> naga::Module {
    let text = preprocess(src, real);
    let module =
        naga::front::wgsl::parse_str(&text).unwrap_or_else(|e| panic!("{name} ({real}): {}", e.emit_to_string(&text)));
    let caps = if real == "f64" { naga::valid::Capabilities::FLOAT64 } else { naga::valid::Capabilities::empty() };
    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name} ({real}): {e:?}"));
    module
}

#[test]
fn cavity_kernels_validate_with_naga() {
    for (name, src) in [("collision", COLLISION_WGSL), ("shift", SHIFT_WGSL), ("riccati", RICCATI_WGSL)] {
        for real in ["f64", "f32"] {
            let m = validate(name, src, real);
            assert!(m.entry_points.iter().any(|e| e.name == "rhs"), "{name}: entry point `rhs` missing");
        }
    }
}

/// The `const X: u32 = N;` declarations of a kernel, by name.
fn consts(src: &str) -> Vec<(String, usize)> {
    src.lines()
        .filter_map(|l| {
            let l = l.trim().strip_prefix("const ")?;
            let (name, rest) = l.split_once(':')?;
            let v = rest.split('=').nth(1)?.trim().trim_end_matches(';').trim_end_matches('u');
            Some((name.trim().to_string(), v.parse().ok()?))
        })
        .collect()
}

#[test]
fn cavity_kernel_constants_match_cpu_twins() {
    let want = [
        ("C_P_GAMMA", cpu::C_P_GAMMA),
        ("S_P_GAMMA", cpu::S_P_GAMMA),
        ("S_P_D", cpu::S_P_D),
        ("S_P_SHIFT", cpu::S_P_SHIFT),
        ("S_P_SIGN", cpu::S_P_SIGN),
        ("R_P_OMEGA", cpu::R_P_OMEGA),
        ("R_P_DIR", cpu::R_P_DIR),
        ("R_P_TMIR", cpu::R_P_TMIR),
        ("R_P_TCRY", cpu::R_P_TCRY),
        ("R_P_EPS", cpu::R_P_EPS),
        ("R_P_GAMMA", cpu::R_P_GAMMA),
        ("R_P_KAPPA", cpu::R_P_KAPPA),
        ("R_P_MU0", cpu::R_P_MU0),
    ];
    let all: Vec<(String, usize)> = [COLLISION_WGSL, SHIFT_WGSL, RICCATI_WGSL].iter().flat_map(|s| consts(s)).collect();
    for (name, v) in want {
        let got = all.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
        assert_eq!(got, Some(v), "WGSL constant {name}");
    }
    // The riccati kernel's F0 table: density and reach as in the CPU twin, and one Horner
    // line per Taylor degree.
    for (name, v) in [("FERMI_TABLE_DENSITY", cpu::FERMI_TABLE_DENSITY), ("FERMI_TABLE_REACH", cpu::FERMI_TABLE_REACH)]
    {
        let line = format!("const {name}: f32 = {v:.1};");
        assert!(RICCATI_WGSL.contains(&line), "riccati.wgsl lacks `{line}`");
    }
    let horner = RICCATI_WGSL.matches("p = Real(1.0) - d * p").count();
    assert_eq!(horner, cpu::FERMI_TAYLOR_DEGREE as usize, "riccati.wgsl Taylor degree");
}
