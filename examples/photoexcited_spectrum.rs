//! Spectrum of the photoexcited RHS Jacobian along a DOPRI5 trajectory (issue 12 item 3):
//! `cargo run --release --example photoexcited_spectrum -- N ZETA OMEGA_P`.
//! Prints, at t = 0, 0.1, 1, 10: the largest |λ|, the largest |Im λ| / |λ|, the Gershgorin
//! bound the model declares, and the slowest nonzero decay rate; and DOPRI5's step counts.
use std::sync::Arc;

use neqkin::engine::cpu::CpuBackend;
use neqkin::engine::model::BatchProblem;
use neqkin::engine::solve::{integrate, Method, SolveOptions};
use neqkin::models::photoexcited::{PhotoexcitedBatch, PhotoexcitedParams};
use serde_json::json;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let n: usize = a.get(1).map_or(256, |s| s.parse().unwrap());
    let zeta: f64 = a.get(2).map_or(20.0, |s| s.parse().unwrap());
    let wp: f64 = a.get(3).map_or(0.52, |s| s.parse().unwrap());
    let p = json!({"dos": "semicircular", "transport": "constant_v2_tau", "grid_points": n, "temperature": 0.003,
        "filling": 0.5, "zeta": zeta, "phonon_frequency": wp});
    let pp = PhotoexcitedParams::from_json(&p).unwrap();
    let b = Arc::new(PhotoexcitedBatch::new(&[pp]).unwrap());
    let times = vec![0.1, 1.0, 10.0];
    let opts = SolveOptions {
        method: Method::Dopri5,
        rtol: 1e-6,
        atol: 1e-9,
        output_times: times.clone(),
        ..Default::default()
    };
    let mut backend = CpuBackend::new(b.clone());
    let mut states = vec![(0.0, b.initial_state())];
    let stats = integrate(&mut backend, &*b, &opts, &mut |f| {
        eprintln!("t = {}: accepted {} rejected {}", f.t, f.n_accept[0], f.n_reject[0]);
        states.push((f.t, f.state.to_vec()));
        Ok(())
    })
    .unwrap();
    eprintln!("DOPRI5 rhs evaluations {}", stats.rhs_evaluations);
    let ns = b.layout().state_len;
    let rho = b.spectral_radius().unwrap()[0];
    let rhs = |y: &[f64]| {
        let mut dy = vec![0.0; ns];
        let mut s = vec![0.0; b.layout().scratch_len];
        b.rhs_member(0, b.member_params(0), b.member_tables(0), 0.0, y, &mut dy, &mut s);
        dy
    };
    for (t, y) in &states {
        let f0 = rhs(y);
        let mut j = vec![0.0; n * n];
        for c in 0..n {
            let mut yp = y.clone();
            let d = 1e-7 * y[c].abs().max(1e-3);
            yp[c] += d;
            let f1 = rhs(&yp);
            for r in 0..n {
                j[r * n + c] = (f1[r] - f0[r]) / d;
            }
        }
        let ev = neqkin::engine::dense::eigenvalues_row_major(n, &j).expect("eigenvalues");
        let mut lmax: f64 = 0.0;
        let mut imrel: f64 = 0.0;
        let mut posre: f64 = f64::NEG_INFINITY;
        let mut slow = f64::INFINITY;
        for e in ev.iter() {
            lmax = lmax.max(e.norm());
            if e.norm() > 1e-6 * rho {
                imrel = imrel.max(e.im.abs() / e.norm());
                slow = slow.min(-e.re);
            }
            posre = posre.max(e.re);
        }
        let (mut asym, mut norm) = (0.0, 0.0);
        for r in 0..n {
            for c in 0..n {
                asym += (j[r * n + c] - j[c * n + r]).powi(2);
                norm += j[r * n + c].powi(2);
            }
        }
        let sym = (asym / norm).sqrt();
        eprintln!(
            "t = {t}: max|λ| = {lmax:.4}, Gershgorin bound {rho:.4} (ratio {:.2}), max |Im λ|/|λ| = {imrel:.3e}, max Re λ = {posre:.3e}, slowest nonzero rate {slow:.4e}, ‖J−Jᵀ‖/‖J‖ = {sym:.3}",
            rho / lmax
        );
    }
    let yl = &states.last().unwrap().1;
    let d = rhs(yl);
    let rms = (d[..n].iter().map(|x| x * x).sum::<f64>() / n as f64).sqrt();
    eprintln!(
        "rms(f') at t = 10: {rms:.3e}; σ/σ0 = {:?}",
        b.observables(0, 10.0, yl).scalars.iter().find(|s| s.0 == "sigma_over_sigma0")
    );
}
