//! Issue 5: the interband WGSL kernel parses and validates with naga (f64 and f32), and
//! the model's conservation laws hold for its CPU twin on random states.

use neqkin::engine::backend::Precision;
use neqkin::engine::model::{BatchProblem, Model};
use neqkin::models::interband::lindblad::{
    lindblad, lindblad_portable, lindblad_simd, LindbladPlan, PARAMS_LEN, P_CV, P_DET, P_GPH, P_GRR, P_N, P_OMEGA, P_W,
};
use neqkin::models::interband::tables::band_len;
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

/// The kernel's own reading of the tables (shaders/interband/lindblad.wgsl, written out
/// plainly): jump sums slot by slot through the stored indices, padding included. The CPU
/// twin regroups the jumps into runs when the batch is built; this checks that it reads
/// the same jumps with the same weights and applies them to the same momenta.
fn kernel_slot_form(params: &[f64], tables: &[f64], y: &[f64]) -> Vec<f64> {
    let n = params[P_N] as usize;
    let w = params[P_W] as usize;
    let (g, omega, grr, det, cv) = (params[P_GPH], params[P_OMEGA], params[P_GRR], params[P_DET], params[P_CV]);
    let rates = |band: usize, p: usize| {
        let base = 2 * n + band * band_len(n, w);
        let pop = &y[band * n..(band + 1) * n];
        let mut out = 0.0;
        for s in 0..2 {
            out += tables[base + 4 * p + 2 * s + 1] * (1.0 - pop[tables[base + 4 * p + 2 * s] as usize]);
        }
        let mut inc = 0.0;
        for s in 0..w {
            let o = base + 4 * n + 2 * (w * p + s);
            inc += tables[o + 1] * pop[tables[o] as usize];
        }
        (g * inc, g * out)
    };
    let (sr, si): (f64, f64) = (y[4 * n..5 * n].iter().sum(), y[5 * n..6 * n].iter().sum());
    let (dsr, dsi) = (cv * sr, cv * si);
    let (dr, di) = (dsr, -dsi);
    let mut dy = vec![0.0; 6 * n];
    for p in 0..n {
        let m = n - 1 - p;
        let (n1, n2, xr, xi, sr, si) = (y[p], y[n + p], y[2 * n + p], y[3 * n + p], y[4 * n + p], y[5 * n + p]);
        let (smr, smi, n1m, n2m) = (y[4 * n + m], y[5 * n + m], y[m], y[n + m]);
        let (e1p, e2p, e1m) = (tables[p] + 0.5 * det, tables[n + p] - 0.5 * det, tables[m] + 0.5 * det);
        let ((in1, out1), (in2, out2), (in1m, out1m)) = (rates(0, p), rates(1, p), rates(0, m));
        let rr = grr * (n2 * (1.0 - n1) + xr * xr + xi * xi);
        let (im_dsm, im_ds) = (dr * smi + di * smr, dr * si + di * sr);
        dy[p] = -omega * xi - 2.0 * im_dsm + in1 * (1.0 - n1) - out1 * n1 + rr;
        dy[n + p] = omega * xi - 2.0 * im_ds + in2 * (1.0 - n2) - out2 * n2 - rr;
        let (ex, gx) = (e2p - e1p, 0.5 * (in1 + out1 + in2 + out2 + grr));
        dy[2 * n + p] = -ex * xi - gx * xr;
        dy[3 * n + p] = ex * xr + 0.5 * omega * (n1 - n2) - gx * xi;
        let (es, nt) = (e2p + e1m, n2 + n1m - 1.0);
        let gs = 0.5 * (in1m + out1m + in2 + out2 + grr * (1.0 - n1 + n2m));
        dy[4 * n + p] = -es * si - dsi * nt - gs * sr;
        dy[5 * n + p] = es * sr + dsr * nt - gs * si;
    }
    dy
}

/// The CPU twin (jump runs built once per batch, SIMD passes) equals the kernel's slot form
/// to rounding, for both phonon profiles, several grids and velocities (different run
/// structures, clamped targets at the box edge), per-member tables and a detuning; its
/// dispatched SIMD build equals its portable build bit for bit; the batch's planned RHS
/// equals the plain entry point bit for bit.
#[test]
fn cpu_twin_matches_the_kernels_slot_form() {
    let mut rng = Lcg(7);
    let mut worst = 0.0f64;
    for (v, dk) in [(0.1, 0.01), (0.07, 0.002), (0.3, 0.005), (0.1, 0.0035)] {
        for profile in ["constant", "eq_b2"] {
            let pts: Vec<InterbandParams> = [(0.0, 0.02), (0.013, 0.0)]
                .iter()
                .map(|&(det, gph)| {
                    small(serde_json::json!({"phonon_velocity": v, "grid_step": dk, "phonon_profile": profile,
                        "coupling_v": 5.0, "rabi_frequency": 0.3, "detuning": det, "gamma_ph": gph,
                        "gamma_rr": 0.002}))
                })
                .collect();
            let problem = InterbandProblem::new(pts).unwrap();
            let l = problem.layout();
            let n = problem.n_momenta();
            for member in 0..l.batch {
                let params = &problem.params()[member * PARAMS_LEN..(member + 1) * PARAMS_LEN];
                let tables = &problem.tables()[member * l.table_stride..member * l.table_stride + l.table_len];
                let y = random_state(n, &mut rng);
                let reference = kernel_slot_form(params, tables, &y);
                let scale = reference.iter().fold(0.0f64, |a, x| a.max(x.abs()));
                let mut scratch = vec![0.0; l.scratch_len];
                let mut plain = vec![0.0; 6 * n];
                lindblad(params, tables, 0.0, &y, &mut plain, &mut scratch);
                let err = plain.iter().zip(&reference).fold(0.0f64, |a, (x, r)| a.max((x - r).abs()));
                worst = worst.max(err / scale);
                assert!(err <= 1e-14 * scale, "v = {v}, dk = {dk}, {profile}, member {member}: {err:e} of {scale:e}");
                let mut batch = vec![0.0; 6 * n];
                problem.rhs_member(member, params, tables, 0.0, &y, &mut batch, &mut scratch);
                let plan = LindbladPlan::new(params, tables);
                let (mut simd, mut portable) = (vec![0.0; 6 * n], vec![0.0; 6 * n]);
                lindblad_simd(&plan, params, &y, &mut simd, &mut scratch);
                lindblad_portable(&plan, params, &y, &mut portable, &mut scratch);
                for (name, other) in [("batch", &batch), ("simd", &simd), ("portable", &portable)] {
                    assert!(
                        plain.iter().zip(other).all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{name} differs from lindblad() (v = {v}, dk = {dk}, {profile})"
                    );
                }
            }
        }
    }
    eprintln!("CPU twin vs the kernel's slot form: max |Δ| / max |dy| = {worst:.2e}");
}
