//! The Newton steady-state method (`solver.method = "newton"`, `src/engine/steady.rs`):
//! band LU against a dense solve, and Newton on manufactured nonlinear problems whose
//! discrete steady state is known exactly, with a banded (coloured) difference Jacobian;
//! a member without a steady state fails with a reason while the others converge.
use std::sync::Arc;

use neqkin::engine::cpu::CpuBackend;
use neqkin::engine::dense::Lu;
use neqkin::engine::model::{BatchLayout, BatchProblem, KernelSource, Observables};
use neqkin::engine::program::status;
use neqkin::engine::solve::{integrate, Method, SolveOptions};
use neqkin::engine::steady::BandLu;

/// A deterministic pseudo-random sequence in [−1, 1).
fn lcg(seed: &mut u64) -> f64 {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    ((*seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
}

#[test]
fn band_lu_matches_dense_lu_with_pivoting() {
    let mut seed = 7;
    for (n, kl, ku) in [(1, 0, 0), (7, 1, 1), (40, 2, 3), (33, 5, 1), (12, 11, 11)] {
        let mut band = BandLu::zeros(n, kl, ku);
        let mut dense = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                if band.in_band(i, j) {
                    // Small diagonal: pivoting is needed.
                    let v = lcg(&mut seed) * if i == j { 0.01 } else { 1.0 };
                    band.set(i, j, v);
                    dense[i * n + j] = v;
                }
            }
        }
        let b: Vec<f64> = (0..n).map(|_| lcg(&mut seed)).collect();
        assert!(band.factor());
        let mut x = b.clone();
        band.solve(&mut x);
        let want = Lu::factor(n, &dense).solve(&b);
        let err = x.iter().zip(&want).fold(0.0f64, |a, (p, q)| a.max((p - q).abs()));
        let scale = want.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        println!("n = {n}, band ({kl}, {ku}): max |x_band − x_dense| = {err:.2e} (max |x| = {scale:.2e})");
        assert!(err <= 1e-11 * scale.max(1.0), "n = {n}: {err:e}");
    }
}

/// `dy_i/dt = c Σ_{k=1..w} (y_{i+k} − 2y_i + y_{i−k}) − y_i³ − a·y_i + s_i` (missing
/// neighbours equal y_i: zero flux), with `s` chosen so that `y*_i = sin(3x_i) + ½ x_i` is
/// the exact discrete steady state. Monotone operator: the steady state is unique.
/// Member params: [c, a, b]; b ≠ 0 replaces the right-hand side by `b + y_i²`, which has
/// no steady state for b > 0.
struct Manufactured {
    n: usize,
    width: usize,
    params: Vec<f64>,
    sources: Vec<f64>,
}

impl Manufactured {
    fn exact(&self, i: usize) -> f64 {
        let x = (i as f64 + 0.5) / self.n as f64;
        (3.0 * x).sin() + 0.5 * x
    }
    fn operator(&self, p: &[f64], y: &[f64], out: &mut [f64]) {
        let n = self.n;
        for i in 0..n {
            let mut lap = 0.0;
            for k in 1..=self.width {
                let l = if i >= k { y[i - k] } else { y[i] };
                let r = if i + k < n { y[i + k] } else { y[i] };
                lap += l - 2.0 * y[i] + r;
            }
            out[i] = p[0] * lap - y[i].powi(3) - p[1] * y[i];
        }
    }
    fn new(n: usize, width: usize, params: Vec<[f64; 3]>) -> Self {
        let mut m = Manufactured { n, width, params: params.concat(), sources: vec![] };
        let star: Vec<f64> = (0..n).map(|i| m.exact(i)).collect();
        let mut sources = vec![];
        for p in params {
            let mut out = vec![0.0; n];
            m.operator(&[p[0], p[1], 0.0], &star, &mut out);
            sources.extend(out.iter().map(|v| -v));
        }
        m.sources = sources;
        m
    }
}

impl BatchProblem for Manufactured {
    fn layout(&self) -> BatchLayout {
        BatchLayout {
            batch: self.params.len() / 3,
            state_len: self.n,
            params_len: 3,
            table_len: self.n,
            table_stride: self.n,
            scratch_len: 0,
        }
    }
    fn params(&self) -> &[f64] {
        &self.params
    }
    fn tables(&self) -> &[f64] {
        &self.sources
    }
    fn initial_state(&self) -> Vec<f64> {
        vec![0.0; self.params.len() / 3 * self.n]
    }
    fn rhs_member(&self, _m: usize, p: &[f64], tab: &[f64], _t: f64, y: &[f64], dy: &mut [f64], _s: &mut [f64]) {
        if p[2] != 0.0 {
            for (d, v) in dy.iter_mut().zip(y) {
                *d = p[2] + v * v;
            }
            return;
        }
        self.operator(p, y, dy);
        for (d, s) in dy.iter_mut().zip(tab) {
            *d += s;
        }
    }
    fn kernel(&self) -> KernelSource {
        KernelSource { name: "test/manufactured".into(), source: String::new() }
    }
    fn jacobian_band(&self) -> Option<(usize, usize)> {
        Some((self.width, self.width))
    }
    fn observables(&self, _m: usize, _t: f64, _y: &[f64]) -> Observables {
        Observables::default()
    }
}

fn newton(problem: Arc<Manufactured>, tol: f64) -> (Vec<Vec<f64>>, Vec<f64>, Vec<f64>, Vec<String>) {
    let mut backend = CpuBackend::new(problem.clone());
    let opts = SolveOptions { method: Method::Newton, steady_tol: Some(tol), ..Default::default() };
    let n = problem.n;
    let (mut y, mut st, mut steps, mut msg) = (vec![], vec![], vec![], vec![]);
    integrate(&mut backend, &*problem, &opts, &mut |fr| {
        y = fr.state.chunks(n).map(|c| c.to_vec()).collect();
        st = fr.status.to_vec();
        steps = fr.n_accept.to_vec();
        msg = fr.messages.to_vec();
        Ok(())
    })
    .unwrap();
    (y, st, steps, msg)
}

#[test]
fn newton_finds_the_exact_discrete_steady_state() {
    for width in [1, 3] {
        let n = 400;
        // Stiff diffusion (c/dx² ~ 1.6e5 relative to the cubic): pseudo-time relaxation would
        // need ~1e5 steps here.
        let problem = Arc::new(Manufactured::new(n, width, vec![[1.0, 1.0, 0.0], [0.05, 3.0, 0.0]]));
        let (y, st, steps, msg) = newton(problem.clone(), 1e-12);
        for m in 0..2 {
            let err = (0..n).fold(0.0f64, |a, i| a.max((y[m][i] - problem.exact(i)).abs()));
            println!("band {width}, member {m}: {} Newton steps, max |y − y*| = {err:.2e}; {}", steps[m], msg[m]);
            assert_eq!(st[m], status::STEADY, "{}", msg[m]);
            assert!(err < 1e-10, "band {width} member {m}: {err:e}");
            assert!(steps[m] <= 40.0, "band {width} member {m}: {} steps", steps[m]);
        }
    }
}

#[test]
fn newton_flags_a_member_without_steady_state_and_finishes_the_others() {
    // Member 1: dy/dt = 1 + y² has no steady state. Member 0 is the regular problem.
    let n = 50;
    let problem = Arc::new(Manufactured::new(n, 1, vec![[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]));
    let (y, st, _steps, msg) = newton(problem.clone(), 1e-12);
    println!("member 0: {}; member 1: {}", msg[0], msg[1]);
    assert_eq!(st[0], status::STEADY);
    let err = (0..n).fold(0.0f64, |a, i| a.max((y[0][i] - problem.exact(i)).abs()));
    assert!(err < 1e-10, "{err:e}");
    assert_eq!(st[1], status::FAILED);
    assert!(msg[1].starts_with("newton:"), "{}", msg[1]);
}
