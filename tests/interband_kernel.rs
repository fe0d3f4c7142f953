//! Issue 5: the interband WGSL kernel parses and validates with naga (f64 and f32), and
//! the model's conservation laws hold for its CPU twin on random states.

use neqkin::engine::backend::Precision;
use neqkin::engine::model::{BatchProblem, Model};
use neqkin::models::interband::lindblad::{lindblad, P_CV, P_GPH, P_GRR, P_OMEGA};
use neqkin::models::interband::{Interband, InterbandParams, InterbandProblem, KERNEL_SOURCE};

fn preprocess(real: &str) -> String {
    let precision = if real == "f64" { Precision::F64 } else { Precision::F32 };
    neqkin::engine::gpu::preprocess::preprocess("interband/lindblad.wgsl", KERNEL_SOURCE, precision).unwrap()
}

fn validate(real: &str) {
    let src = preprocess(real);
    let module = naga::front::wgsl::parse_str(&src)
        .unwrap_or_else(|e| panic!("WGSL parse ({real}): {}", e.emit_to_string(&src)));
    let caps = if real == "f64" { naga::valid::Capabilities::FLOAT64 } else { naga::valid::Capabilities::empty() };
    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
        .validate(&module)
        .unwrap_or_else(|e| panic!("WGSL validation ({real}): {e:?}"));
    assert!(module.entry_points.iter().any(|e| e.name == "rhs"));
}

#[test]
fn kernel_validates_f64() {
    validate("f64");
}

#[test]
fn kernel_validates_f32() {
    validate("f32");
}

fn small(extra: serde_json::Value) -> InterbandParams {
    let mut v = serde_json::json!({"cutoff": 0.2, "grid_step": 0.01, "phonon_velocity": 0.1});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    InterbandParams::from_json(&v).unwrap()
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A random state with 0 ≤ n ≤ 1 and moderate coherences.
fn random_state(n: usize, rng: &mut Lcg) -> Vec<f64> {
    let mut y = vec![0.0; 6 * n];
    for v in y[..2 * n].iter_mut() {
        *v = rng.next();
    }
    for v in y[2 * n..].iter_mut() {
        *v = 0.3 * (rng.next() - 0.5);
    }
    y
}

fn rhs_with(problem: &InterbandProblem, keep: &[usize], y: &[f64]) -> Vec<f64> {
    let mut params = problem.params()[..problem.layout().params_len].to_vec();
    for key in [P_CV, P_OMEGA, P_GPH, P_GRR] {
        if !keep.contains(&key) {
            params[key] = 0.0;
        }
    }
    let mut dy = vec![0.0; y.len()];
    lindblad(&params, problem.tables(), 0.0, y, &mut dy, &mut vec![0.0; y.len()]);
    dy
}

#[test]
fn conservation_laws() {
    let p = small(serde_json::json!({"coupling_v": 5.0}));
    let problem = InterbandProblem::new(vec![p]).unwrap();
    let n = problem.n_momenta();
    let mut rng = Lcg(42);
    let mut worst = [0.0f64; 3];
    for _ in 0..5 {
        let y = random_state(n, &mut rng);
        // Laser alone: n11 + n22 per k.
        let dy = rhs_with(&problem, &[P_OMEGA], &y);
        for k in 0..n {
            worst[0] = worst[0].max((dy[k] + dy[n + k]).abs());
        }
        // Phonons alone: each band's particle number.
        let dy = rhs_with(&problem, &[P_GPH], &y);
        let s1: f64 = dy[..n].iter().sum();
        let s2: f64 = dy[n..2 * n].iter().sum();
        worst[1] = worst[1].max(s1.abs()).max(s2.abs());
        // Everything with Δ ≠ 0: the total.
        let dy = rhs_with(&problem, &[P_CV, P_OMEGA, P_GPH, P_GRR], &y);
        let tot: f64 = dy[..2 * n].iter().sum();
        worst[2] = worst[2].max(tot.abs());
    }
    eprintln!(
        "conservation errors: laser per k {:.2e}, phonon per band {:.2e}, total {:.2e}",
        worst[0], worst[1], worst[2]
    );
    assert!(worst[0] < 1e-15 && worst[1] < 1e-14 && worst[2] < 1e-13, "{worst:?}");
}

#[test]
fn validation_names_fields() {
    let m = Interband;
    let err = m.validate(&serde_json::json!({"coupling": 1.0})).unwrap_err().to_string();
    assert!(err.contains("params.coupling"), "{err}");
    let err = m.validate(&serde_json::json!({"band_a1": -1.0})).unwrap_err().to_string();
    assert!(err.contains("params.band_a1"), "{err}");
    let err = m.validate(&serde_json::json!({"grid_step": 0.15})).unwrap_err().to_string();
    assert!(err.contains("params.grid_step"), "{err}");
    assert!(m.validate(&serde_json::json!({})).is_ok());
}

#[test]
fn tables_shared_unless_band_parameters_vary() {
    let m = Interband;
    let a = m
        .build(&m.parse_all(&[serde_json::json!({"coupling_v": 1.0}), serde_json::json!({"coupling_v": 2.0})]).unwrap())
        .unwrap();
    assert_eq!(a.layout().table_stride, 0);
    let b = m
        .build(
            &m.parse_all(&[serde_json::json!({"phonon_velocity": 0.1}), serde_json::json!({"phonon_velocity": 0.2})])
                .unwrap(),
        )
        .unwrap();
    assert_eq!(b.layout().table_stride, b.layout().table_len);
}

/// Every shipped config loads through the config layer, which validates every sweep point.
#[test]
fn shipped_configs_validate() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/interband");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let (plan, model) = neqkin::config::load_plan(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        assert_eq!(model.name(), "interband");
        assert!(plan.n_points() >= 1);
        count += 1;
    }
    assert!(count >= 6);
}

/// The physical jump tables are mirror-symmetric (k ↦ −k), which keeps the dynamics in
/// the parity-symmetric subspace where the four-variable closure is exact.
#[test]
fn phonon_tables_are_parity_symmetric() {
    for (v, dk) in [(0.1, 0.01), (0.07, 0.002), (0.3, 0.005)] {
        for profile in ["constant", "eq_b2"] {
            let p = InterbandParams::from_json(&serde_json::json!({
                "phonon_velocity": v, "grid_step": dk, "phonon_profile": profile
            }))
            .unwrap();
            let n = p.n_momenta();
            let jumps = p.jumps();
            assert!(!jumps.is_empty());
            for a in &jumps {
                let mirrored = jumps.iter().any(|b| {
                    b.band == a.band
                        && b.from == n - 1 - a.from
                        && b.to == n - 1 - a.to
                        && (b.weight - a.weight).abs() < 1e-9 * a.weight.max(1.0)
                });
                assert!(mirrored, "no mirror image of {a:?} (v = {v}, dk = {dk}, {profile})");
            }
        }
    }
}
