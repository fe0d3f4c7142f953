//! Issue 10, item 1: audit of the photoexcited, eliashberg and interband models for
//! underflow, overflow or clamping that turns a result into a constant with status
//! `reached`. Each case below was such a constant on the code before the audit (the model
//! docs' audit tables give the numbers); now it is refused with an error naming the field.
//! CPU only (the `check_precision` calls are the ones the GPU backend makes before a run).

use neqkin::engine::backend::Precision;
use neqkin::engine::model::{BatchProblem, Model};
use neqkin::models::eliashberg::kinetic::KineticProblem;
use neqkin::models::eliashberg::Params as EliParams;
use neqkin::models::interband::{Interband, InterbandParams, InterbandProblem};
use neqkin::models::photoexcited::{PhotoexcitedBatch, PhotoexcitedParams};
use serde_json::json;

fn eli(extra: serde_json::Value) -> Result<(), String> {
    let mut v = json!({
        "task": "kinetic", "modes": [[8.0, 0.5], [9.0, 0.5]], "units": "input",
        "temperature": 2.0, "initial_temperature": 2.2, "grid_step": 1.0
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    let p = EliParams::parse(&v).map_err(|e| e.to_string())?;
    KineticProblem::new(&[p]).map(|_| ()).map_err(|e| e.to_string())
}

/// Eliashberg kinetic: ε = 1000 T put f(ε) = e^{−1000} = 0 on every node, so f0 and the
/// initial state were both f ≡ 0 and the run returned deviation_norm = 0, status reached
/// (old binary: `min_zinv_grid` −2.01, two outputs, both 0). A cutoff with
/// e^{−(L − r)/T} ~ 1 broke detailed balance at the top silently.
#[test]
fn eliashberg_kinetic_grid_must_resolve_the_temperature_and_the_cutoff() {
    // Accepted: the defaults and a grid at ε = 2T.
    eli(json!({})).unwrap();
    eli(json!({"temperature": 0.5, "initial_temperature": 0.55})).unwrap();
    for (t, tin) in [(0.001, 0.0011), (0.3, 0.33), (2.0, 0.4)] {
        let e = eli(json!({"temperature": t, "initial_temperature": tin})).unwrap_err();
        assert!(e.contains("params.grid_step") && e.contains("Fermi step"), "T = {t}: {e}");
    }
    // Cutoff: L = 20 with r_max = 9, T_in = 2.2 leaves e^{−11/2.2} = 6.7e-3.
    let e = eli(json!({"grid_points": 20})).unwrap_err();
    assert!(e.contains("params.grid_points") && e.contains("detailed balance"), "{e}");
    // L = 40: e^{−31/2.2} = 7.6e-7, accepted.
    eli(json!({"grid_points": 40})).unwrap();
}

fn ib(v: serde_json::Value) -> Result<InterbandParams, String> {
    InterbandParams::from_json(&v).map_err(|e| e.to_string())
}

/// Interband: a zero seed keeps s21 ≡ 0 exactly (Δ = 0 is a fixed point), so a point that
/// pairs with seed 1e-20 (V = 7.5, Ω = 0.1, dk = 0.01: |Δ| = 0.0335 at t = 2000) read
/// |Δ| = 0, status reached. A phonon velocity with v/(2A) beyond the grid switched Γ^ph off
/// silently. In f32 a seed below ~1e-30 underflows to 0 in the s21 rows.
#[test]
fn interband_zero_seed_no_emission_and_f32_seed_underflow_are_refused() {
    let e = ib(json!({"seed_re": 0.0, "seed_im": 0.0})).unwrap_err();
    assert!(e.contains("params.seed_re") && e.contains("fixed point"), "{e}");
    // Without interaction a zero seed is harmless (s21 plays no role).
    ib(json!({"seed_re": 0.0, "seed_im": 0.0, "coupling_v": 0.0})).unwrap();
    ib(json!({"seed_re": 1e-20, "seed_im": 0.0})).unwrap();
    // v/(2 A1) = 3/14 = 0.214 > the largest grid momentum 0.199.
    let e = ib(json!({"phonon_velocity": 3.0})).unwrap_err();
    assert!(e.contains("params.phonon_velocity") && e.contains("valence"), "{e}");
    // Without phonons the kinematics do not matter.
    ib(json!({"phonon_velocity": 3.0, "gamma_ph": 0.0})).unwrap();
    // f32: seed 1e-35 refused, 1e-20 (the default) accepted; f64 accepts both.
    let tiny = Interband
        .build(&Interband.parse_all(&[json!({"grid_step": 0.02, "seed_re": 1e-35, "seed_im": 0.0})]).unwrap())
        .unwrap();
    let e = tiny.check_precision(Precision::F32.unit_roundoff()).unwrap_err().to_string();
    assert!(e.contains("params.seed_re") && e.contains("underflow"), "{e}");
    tiny.check_precision(Precision::F64.unit_roundoff()).unwrap();
    let ok = InterbandProblem::new(vec![ib(json!({"grid_step": 0.02})).unwrap()]).unwrap();
    ok.check_precision(Precision::F32.unit_roundoff()).unwrap();
}

/// Photoexcited: the pair rate (a+1)f_u(1−f_l) − a f_l(1−f_u) cancels terms of size a·f(1−f)
/// to a result of size f(1−f): in f32 ζ = 1e5 leaves a relative error ~6e-3 on the rates.
#[test]
fn photoexcited_large_zeta_is_refused_in_f32_only() {
    let build = |v: serde_json::Value| PhotoexcitedBatch::new(&[PhotoexcitedParams::from_json(&v).unwrap()]).unwrap();
    let big = build(json!({"zeta": 1e5, "grid_points": 200}));
    let e = big.check_precision(Precision::F32.unit_roundoff()).unwrap_err().to_string();
    assert!(e.contains("params.zeta") && e.contains("rounding"), "{e}");
    big.check_precision(Precision::F64.unit_roundoff()).unwrap();
    let pump = build(json!({"pump_strength": 1e5, "grid_points": 200}));
    let e = pump.check_precision(Precision::F32.unit_roundoff()).unwrap_err().to_string();
    assert!(e.contains("params.pump_strength"), "{e}");
    // Fig 2's ζ = 20 is fine in f32 (a·u = 1.3e-6).
    build(json!({"zeta": 20.0, "grid_points": 200})).check_precision(Precision::F32.unit_roundoff()).unwrap();
}
