//! The relaxation fixture itself: its CPU right-hand side against the exact solution
//! through the real integrators, its parameter checks, and its WGSL kernel through naga
//! (f32 and f64), so a broken shader fails `cargo test` on any machine.

use neqkin::engine::cpu::CpuBackend;
use neqkin::engine::model::Model;
use neqkin::engine::program::status;
use neqkin::engine::solve::{integrate, Method, SolveOptions};
use neqkin::models::relaxation::{Relaxation, PARAMS_LEN};
use serde_json::json;

#[test]
fn dopri5_matches_the_exact_solution() {
    let points = [
        json!({"grid_points": 5, "rate": 2.0, "target": 1.0, "initial": [0.0, 1.0, 2.0, 3.0, 4.0]}),
        json!({"grid_points": 5, "rate": 0.5, "target": -1.0, "initial": 3.0, "diffusion": 0.2}),
    ];
    for p in &points {
        Relaxation.validate(p).unwrap();
    }
    let problem = Relaxation.build(&Relaxation.parse_all(&points).unwrap()).unwrap();
    assert_eq!(problem.layout().params_len, PARAMS_LEN);
    let mut backend = CpuBackend::new(problem.clone());
    let opts = SolveOptions {
        method: Method::Dopri5,
        rtol: 1e-10,
        atol: 1e-12,
        output_times: vec![0.5, 2.0],
        ..Default::default()
    };
    let mut frames = 0;
    integrate(&mut backend, &*problem, &opts, &mut |f| {
        frames += 1;
        for m in 0..2 {
            assert_eq!(f.status[m], status::REACHED);
            let obs = problem.observables(m, f.time_reached[m], &f.state[m * 5..(m + 1) * 5]);
            let err = obs.scalars.iter().find(|(n, _)| n == "error_vs_exact").unwrap().1;
            assert!(err < 1e-8, "member {m} at t = {}: error {err}", f.t);
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(frames, 2);
}

#[test]
fn parameters_are_checked_by_name() {
    let cases = [
        (json!({"rate": "fast"}), "params.rate"),
        (json!({"grid_points": 2.5}), "params.grid_points"),
        (json!({"grid_points": 0}), "params.grid_points"),
        (json!({"diffusion": -1.0}), "params.diffusion"),
        (json!({"grid_points": 3, "initial": [1.0, 2.0]}), "params.initial"),
        (json!({"temperature": 1.0}), "params.temperature"),
    ];
    for (p, field) in cases {
        let e = Relaxation.validate(&p).unwrap_err().to_string();
        assert!(e.contains(field), "{p}: {e}");
    }
    // Profile with diffusion: no exact solution, the observable says NaN.
    let p = json!({"grid_points": 2, "initial": [0.0, 1.0], "diffusion": 1.0});
    let b = Relaxation.build(&Relaxation.parse_all(&[p]).unwrap()).unwrap();
    let obs = b.observables(0, 0.0, &[0.0, 1.0]);
    assert!(obs.scalars[1].1.is_nan());
}

/// Inlines `//! import shared/<name>` and prepends the `Real` alias, like the GPU
/// backend's preprocessor (kept minimal so this test needs no GPU code).
fn preprocess(src: &str, real: &str) -> String {
    let mut out = format!("alias Real = {real};\n");
    for line in src.lines() {
        match line.trim().strip_prefix("//! import ") {
            Some(path) => {
                let file = format!("{}/shaders/{}.wgsl", env!("CARGO_MANIFEST_DIR"), path.trim());
                out.push_str(&std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}")));
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[test]
fn kernel_validates_with_naga_in_f32_and_f64() {
    let problem = Relaxation.build(&Relaxation.parse_all(&[json!({})]).unwrap()).unwrap();
    let k = problem.kernel();
    assert!(k.source.contains("//! import shared/rhs_bindings"));
    for real in ["f32", "f64"] {
        let src = preprocess(&k.source, real);
        let module = naga::front::wgsl::parse_str(&src)
            .unwrap_or_else(|e| panic!("{} ({real}): {}", k.name, e.emit_to_string(&src)));
        let mut v =
            naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::FLOAT64);
        v.validate(&module).unwrap_or_else(|e| panic!("{} ({real}): {}", k.name, e.emit_to_string(&src)));
        let ep = module.entry_points.iter().find(|e| e.name == "rhs").expect("entry point rhs");
        assert_eq!(ep.workgroup_size, [256, 1, 1]);
    }
}
