//! Shared test fixtures: exact-solution problems and the error-check helper.
#![allow(dead_code)]

use neqkin::engine::model::{BatchLayout, BatchProblem, KernelSource, Observables};

/// Checks `|got - want| <= tol·max(1, |want|)` with a message naming what was compared.
pub fn assert_close(what: &str, got: f64, want: f64, tol: f64) {
    let err = (got - want).abs() / want.abs().max(1.0);
    assert!(err <= tol, "{what}: got {got:.15e}, want {want:.15e}, rel. error {err:.3e} > {tol:.1e}");
}

/// Heat equation with zero-flux ends plus linear decay, one rate per member:
/// `dy_i/dt = -k_m y_i + D (y_{i+1} - 2 y_i + y_{i-1})/dx²`. The initial state is the
/// discrete cosine mode `cos(π q (i+½)/n)`, an exact eigenvector of the discrete
/// Laplacian, so `y(t) = y(0)·exp(-(k_m + 4D/dx² sin²(πq/2n)) t)` exactly.
pub struct HeatDecay {
    pub n: usize,
    pub rates: Vec<f64>,
    pub diffusion: f64,
    pub mode: usize,
}

impl HeatDecay {
    pub fn dx(&self) -> f64 {
        1.0 / self.n as f64
    }
    pub fn eigenvalue(&self, m: usize) -> f64 {
        let s = (std::f64::consts::PI * self.mode as f64 / (2.0 * self.n as f64)).sin();
        -(self.rates[m] + 4.0 * self.diffusion / (self.dx() * self.dx()) * s * s)
    }
    pub fn initial(&self, i: usize) -> f64 {
        (std::f64::consts::PI * self.mode as f64 * (i as f64 + 0.5) / self.n as f64).cos()
    }
    pub fn exact(&self, m: usize, i: usize, t: f64) -> f64 {
        self.initial(i) * (self.eigenvalue(m) * t).exp()
    }
}

impl BatchProblem for HeatDecay {
    fn layout(&self) -> BatchLayout {
        BatchLayout {
            batch: self.rates.len(),
            state_len: self.n,
            params_len: 1,
            table_len: 0,
            table_stride: 0,
            scratch_len: 0,
        }
    }
    fn params(&self) -> &[f64] {
        &self.rates
    }
    fn tables(&self) -> &[f64] {
        &[]
    }
    fn initial_state(&self) -> Vec<f64> {
        (0..self.rates.len()).flat_map(|_| (0..self.n).map(|i| self.initial(i))).collect()
    }
    fn rhs_member(&self, _m: usize, params: &[f64], _t: &[f64], _time: f64, y: &[f64], dy: &mut [f64], _s: &mut [f64]) {
        let k = params[0];
        let c = self.diffusion / (self.dx() * self.dx());
        let n = self.n;
        for i in 0..n {
            let left = if i > 0 { y[i - 1] } else { y[i] };
            let right = if i + 1 < n { y[i + 1] } else { y[i] };
            dy[i] = -k * y[i] + c * (left - 2.0 * y[i] + right);
        }
    }
    fn kernel(&self) -> KernelSource {
        KernelSource { name: "test/heat_decay".into(), source: String::new() }
    }
    fn spectral_radius(&self) -> Option<Vec<f64>> {
        let c = self.diffusion / (self.dx() * self.dx());
        Some(self.rates.iter().map(|k| k + 4.0 * c).collect())
    }
    fn observables(&self, _m: usize, _t: f64, _y: &[f64]) -> Observables {
        Observables::default()
    }
}
