//! Issue 5: the interband model's equations of motion against the exact Lindblad master
//! equation on 4 momenta × 2 bands (Fock dimension 256), for Gaussian states inside the
//! model's closure, where the Wick factorisation is exact. Agreement must be to rounding.

use neqkin::models::interband::exact::{exact_derivative, outside_closure, state_of, Fock, Word, C};
use neqkin::models::interband::lindblad::{lindblad, PARAMS_LEN, P_CV, P_DET, P_GPH, P_GRR, P_N, P_OMEGA, P_W};
use neqkin::models::interband::tables::{build_tables, grid, incoming_width, Jump};

const M: usize = 4;

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }
}

fn jumps() -> Vec<Jump> {
    let j = |band, from, to, weight| Jump { band, from, to, weight };
    vec![
        j(0, 0, 2, 0.7),
        j(0, 0, 1, 0.3),
        j(0, 3, 1, 1.0),
        j(0, 2, 1, 0.5),
        j(1, 1, 3, 0.4),
        j(1, 3, 0, 0.9),
        j(1, 2, 0, 0.6),
        j(1, 2, 1, 0.2),
        j(1, 0, 2, 1.3),
    ]
}

/// Which Gaussian states to draw.
#[derive(Clone, Copy)]
enum Kind {
    /// Parity-symmetric, normal interband and pairing terms.
    Symmetric,
    /// No normal interband coherence, asymmetric pairing and populations.
    PairingOnly,
    /// No pairing, asymmetric populations and interband coherence.
    NormalOnly,
}

fn gaussian(f: &Fock, kind: Kind, rng: &mut Lcg) -> Vec<C> {
    let (a, b) = (|k: usize| f.mode(0, k), |k: usize| f.mode(1, k));
    let mut coef = vec![[0.0; 6]; M];
    for c in coef.iter_mut() {
        for v in c.iter_mut() {
            *v = 1.5 * rng.next();
        }
    }
    if let Kind::Symmetric = kind {
        for k in 0..M / 2 {
            coef[M - 1 - k] = coef[k];
        }
    }
    let mut h: Vec<(C, Word)> = Vec::new();
    for (k, c) in coef.iter().enumerate() {
        h.push((C::new(c[0], 0.0), vec![(a(k), true), (a(k), false)]));
        h.push((C::new(c[1], 0.0), vec![(b(k), true), (b(k), false)]));
        if !matches!(kind, Kind::PairingOnly) {
            h.push((C::new(c[2], c[3]), vec![(b(k), true), (a(k), false)]));
            h.push((C::new(c[2], -c[3]), vec![(a(k), true), (b(k), false)]));
        }
        if !matches!(kind, Kind::NormalOnly) {
            h.push((C::new(c[4], c[5]), vec![(b(k), true), (a(M - 1 - k), true)]));
            h.push((C::new(c[4], -c[5]), vec![(a(M - 1 - k), false), (b(k), false)]));
        }
    }
    f.gaussian(&h)
}

fn setup() -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<Jump>) {
    let k = grid(M, 0.05);
    let e1: Vec<f64> = k.iter().map(|k| 7.0 * k * k).collect();
    let e2: Vec<f64> = k.iter().map(|k| 24.0 * k * k + 0.01 * k).collect();
    let jumps = jumps();
    let w = incoming_width(M, &jumps);
    let tables = build_tables(&e1, &e2, &jumps, w);
    let mut params = vec![0.0; PARAMS_LEN];
    params[P_N] = M as f64;
    params[P_W] = w as f64;
    params[P_CV] = 0.8;
    params[P_OMEGA] = 0.3;
    params[P_GPH] = 0.11;
    params[P_GRR] = 0.07;
    params[P_DET] = 0.05;
    (params, tables, e1, e2, jumps)
}

#[test]
fn rhs_equals_exact_master_equation_on_gaussian_states() {
    let f = Fock::new(M);
    let (params, tables, e1, e2, jumps) = setup();
    let mut rng = Lcg(12345);
    let mut worst: f64 = 0.0;
    for kind in [Kind::Symmetric, Kind::PairingOnly, Kind::NormalOnly] {
        for _ in 0..2 {
            let rho = gaussian(&f, kind, &mut rng);
            let leak = outside_closure(&f, &rho);
            assert!(leak < 1e-13, "state leaves the closure: {leak:e}");
            let y = state_of(&f, &rho);
            let exact = exact_derivative(&f, &rho, &params, &e1, &e2, &jumps);
            let mut dy = vec![0.0; 6 * M];
            lindblad(&params, &tables, 0.0, &y, &mut dy, &mut [0.0; 4 * M]);
            let scale = exact.iter().fold(0.0f64, |a, v| a.max(v.abs()));
            assert!(scale > 1e-2, "derivative trivially small");
            let err = dy.iter().zip(&exact).fold(0.0f64, |a, (u, v)| a.max((u - v).abs()));
            // Each block must be exercised (nonzero s and n21 derivatives where present).
            eprintln!("max |rhs − exact| = {err:.3e} (max |exact| = {scale:.3e})");
            assert!(
                err < 1e-13,
                "rhs differs from the exact master equation by {err:e}\nrhs   {dy:?}\nexact {exact:?}"
            );
            worst = worst.max(err);
        }
    }
    eprintln!("worst deviation over 6 Gaussian states: {worst:.3e}");
}

/// Each bath alone, so a compensating error between terms cannot hide.
#[test]
fn each_term_alone_matches_exact() {
    let f = Fock::new(M);
    let (base, tables, e1, e2, jumps) = setup();
    let mut rng = Lcg(777);
    let rho = gaussian(&f, Kind::Symmetric, &mut rng);
    let y = state_of(&f, &rho);
    for keep in [P_CV, P_OMEGA, P_GPH, P_GRR] {
        let mut params = base.clone();
        for key in [P_CV, P_OMEGA, P_GPH, P_GRR] {
            if key != keep {
                params[key] = 0.0;
            }
        }
        let exact = exact_derivative(&f, &rho, &params, &e1, &e2, &jumps);
        let mut dy = vec![0.0; 6 * M];
        lindblad(&params, &tables, 0.0, &y, &mut dy, &mut [0.0; 4 * M]);
        let err = dy.iter().zip(&exact).fold(0.0f64, |a, (u, v)| a.max((u - v).abs()));
        assert!(err < 1e-13, "term {keep}: deviation {err:e}");
    }
}

/// The model's own build path (parameter block with rate_factor and V·dk/2π, physical
/// phonon tables of both bands from the T = 0 energy conservation, detuning) against the
/// exact master equation on its 4-momentum grid.
#[test]
fn built_problem_equals_exact_master_equation() {
    use neqkin::engine::model::Model;
    use neqkin::models::interband::{Interband, InterbandParams};
    let spec = serde_json::json!({
        "cutoff": 0.2, "grid_step": 0.1, "phonon_velocity": 0.5, "band_a1": 7.0, "band_a2": 24.0,
        "coupling_v": 40.0, "rabi_frequency": 0.4, "gamma_ph": 0.03, "gamma_rr": 0.02, "detuning": 0.1,
        "phonon_profile": "eq_b2"
    });
    let p = InterbandParams::from_json(&spec).unwrap();
    assert_eq!(p.n_momenta(), M);
    let jumps = p.jumps();
    assert!(jumps.iter().any(|j| j.band == 0) && jumps.iter().any(|j| j.band == 1), "{jumps:?}");
    let problem = Interband.build(&Interband.parse_all(&[spec]).unwrap()).unwrap();
    let params = problem.params().to_vec();
    let (e1, e2) = p.energies();
    let f = Fock::new(M);
    let mut rng = Lcg(4242);
    for kind in [Kind::Symmetric, Kind::PairingOnly] {
        let rho = gaussian(&f, kind, &mut rng);
        let y = state_of(&f, &rho);
        let exact = exact_derivative(&f, &rho, &params, &e1, &e2, &jumps);
        let mut dy = vec![0.0; 6 * M];
        problem.rhs_member(
            0,
            &params,
            problem.tables(),
            0.0,
            &y,
            &mut dy,
            &mut vec![0.0; problem.layout().scratch_len],
        );
        let err = dy.iter().zip(&exact).fold(0.0f64, |a, (u, v)| a.max((u - v).abs()));
        eprintln!("built problem: max |rhs − exact| = {err:.3e}");
        assert!(err < 1e-13, "built problem deviates from the exact master equation by {err:e}");
    }
}
