//! Exact master-equation checker for a few momentum modes.
//!
//! Builds the Fock space of `m` momenta × 2 bands (dimension `4^m`), the mean-field
//! Hamiltonian of Eq 2 in the rotating frame (with Δ taken from the state), the
//! Lindblad jump operators (phonon `c†_{jα} c_{iα}` per table jump, radiative
//! `c†_{k1} c_{k2}` per momentum) and evaluates `d⟨O⟩/dt = Tr(O 𝓛[ρ])` for
//! O ∈ {n11_k, n22_k, n21_k, s21_k}. For a Gaussian ρ the Wick factorisation is exact, so
//! the model's right-hand side must agree with these derivatives to rounding.
//! Used by `tests/interband_exact.rs`; not needed at run time.

use super::lindblad::{P_CV, P_DET, P_GPH, P_GRR, P_OMEGA};
use super::tables::Jump;

/// A complex number (just enough arithmetic for this checker).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct C {
    /// Real part.
    pub re: f64,
    /// Imaginary part.
    pub im: f64,
}

impl C {
    /// `re + i im`.
    pub fn new(re: f64, im: f64) -> Self {
        C { re, im }
    }
    fn mul(self, o: C) -> C {
        C::new(self.re * o.re - self.im * o.im, self.re * o.im + self.im * o.re)
    }
    fn add(self, o: C) -> C {
        C::new(self.re + o.re, self.im + o.im)
    }
    fn scale(self, s: f64) -> C {
        C::new(self.re * s, self.im * s)
    }
    fn conj(self) -> C {
        C::new(self.re, -self.im)
    }
}

/// A product of fermion operators: `(mode, dagger)` from left to right.
pub type Word = Vec<(usize, bool)>;

/// A monomial as a map of basis states: column `c` ↦ `(row, sign)` or nothing.
struct Mono(Vec<Option<(usize, f64)>>);

/// Fock space of `m` momenta × 2 bands. Mode of band `b` (0 = valence) at grid index `j`
/// is `b·m + j`; Jordan-Wigner order is the mode order.
pub struct Fock {
    /// Number of momenta.
    pub m: usize,
    /// Hilbert-space dimension `4^m`.
    pub dim: usize,
}

impl Fock {
    /// The Fock space of `m` momenta.
    pub fn new(m: usize) -> Self {
        Fock { m, dim: 1 << (2 * m) }
    }
    /// Mode index of band `band` (0, 1) at grid index `k`.
    pub fn mode(&self, band: usize, k: usize) -> usize {
        band * self.m + k
    }
    fn apply(state: usize, word: &[(usize, bool)]) -> Option<(usize, f64)> {
        let mut s = state;
        let mut sign = 1.0;
        for &(mode, dag) in word.iter().rev() {
            let occ = (s >> mode) & 1 == 1;
            if occ == dag {
                return None;
            }
            if (s & ((1usize << mode) - 1)).count_ones() % 2 == 1 {
                sign = -sign;
            }
            s ^= 1 << mode;
        }
        Some((s, sign))
    }
    fn mono(&self, word: &[(usize, bool)]) -> Mono {
        Mono((0..self.dim).map(|c| Self::apply(c, word)).collect())
    }
    /// Dense matrix of `Σ coef · word`.
    fn dense(&self, terms: &[(C, Word)]) -> Vec<C> {
        let d = self.dim;
        let mut a = vec![C::default(); d * d];
        for (coef, w) in terms {
            for c in 0..d {
                if let Some((r, s)) = Self::apply(c, w) {
                    a[r * d + c] = a[r * d + c].add(coef.scale(s));
                }
            }
        }
        a
    }
    fn matmul(&self, a: &[C], b: &[C]) -> Vec<C> {
        let d = self.dim;
        let mut out = vec![C::default(); d * d];
        for i in 0..d {
            for k in 0..d {
                let aik = a[i * d + k];
                if aik.re == 0.0 && aik.im == 0.0 {
                    continue;
                }
                for j in 0..d {
                    out[i * d + j] = out[i * d + j].add(aik.mul(b[k * d + j]));
                }
            }
        }
        out
    }
    /// Normalised Gaussian state `exp(−H)/Tr` of a quadratic Hermitian `H` (given as
    /// terms; the caller includes the Hermitian conjugates). Scaling and squaring of a
    /// Taylor series.
    pub fn gaussian(&self, h_terms: &[(C, Word)]) -> Vec<C> {
        let d = self.dim;
        let h = self.dense(h_terms);
        let norm: f64 = (0..d)
            .map(|i| (0..d).map(|j| (h[i * d + j].re.powi(2) + h[i * d + j].im.powi(2)).sqrt()).sum::<f64>())
            .fold(0.0, f64::max);
        let mut s = 0;
        while norm / (1u64 << s) as f64 > 0.25 {
            s += 1;
        }
        let scale = -1.0 / (1u64 << s) as f64;
        let x: Vec<C> = h.iter().map(|z| z.scale(scale)).collect();
        let mut e = vec![C::default(); d * d];
        for i in 0..d {
            e[i * d + i] = C::new(1.0, 0.0);
        }
        let mut term = e.clone();
        for k in 1..=18 {
            term = self.matmul(&term, &x).iter().map(|z| z.scale(1.0 / k as f64)).collect();
            for (a, b) in e.iter_mut().zip(&term) {
                *a = a.add(*b);
            }
        }
        for _ in 0..s {
            e = self.matmul(&e, &e);
        }
        let tr: f64 = (0..d).map(|i| e[i * d + i].re).sum();
        e.iter().map(|z| z.scale(1.0 / tr)).collect()
    }
    /// `Tr(O ρ)` for a monomial word O.
    pub fn expect(&self, rho: &[C], word: &[(usize, bool)]) -> C {
        let d = self.dim;
        let mut acc = C::default();
        for r in 0..d {
            if let Some((rp, s)) = Self::apply(r, word) {
                // (Oρ)[rp, r'] = s ρ[r, r'] → trace picks r' = rp.
                acc = acc.add(rho[r * d + rp].scale(s));
            }
        }
        acc
    }
    fn left(&self, coef: C, a: &Mono, rho: &[C], out: &mut [C]) {
        let d = self.dim;
        for (r, img) in a.0.iter().enumerate() {
            if let Some((rp, s)) = img {
                let cs = coef.scale(*s);
                for c in 0..d {
                    out[rp * d + c] = out[rp * d + c].add(cs.mul(rho[r * d + c]));
                }
            }
        }
    }
    fn right(&self, coef: C, a: &Mono, rho: &[C], out: &mut [C]) {
        // (ρ A)[r, c] = Σ_k ρ[r, k] A[k, c], A maps c ↦ (k, s).
        let d = self.dim;
        for (c, img) in a.0.iter().enumerate() {
            if let Some((k, s)) = img {
                let cs = coef.scale(*s);
                for r in 0..d {
                    out[r * d + c] = out[r * d + c].add(cs.mul(rho[r * d + k]));
                }
            }
        }
    }
    fn right_dag(&self, coef: C, a: &Mono, rho: &[C], out: &mut [C]) {
        // (ρ A†)[r, c] = Σ_k ρ[r, k] conj(A[c, k]), A maps k ↦ (c, s).
        let d = self.dim;
        for (k, img) in a.0.iter().enumerate() {
            if let Some((c, s)) = img {
                let cs = coef.scale(*s);
                for r in 0..d {
                    out[r * d + c] = out[r * d + c].add(cs.mul(rho[r * d + k]));
                }
            }
        }
    }
}

/// Exact derivatives of the model's state variables for the state `rho`, in the model's
/// state layout (see [`super::lindblad`]). `eps1`, `eps2` are the table energies,
/// `params` a member's parameter block, `jumps` the phonon jumps.
pub fn exact_derivative(f: &Fock, rho: &[C], params: &[f64], eps1: &[f64], eps2: &[f64], jumps: &[Jump]) -> Vec<f64> {
    let m = f.m;
    let d = f.dim;
    let (a, b) = (|k: usize| f.mode(0, k), |k: usize| f.mode(1, k));
    let partner = |k: usize| m - 1 - k;
    let s_word = |k: usize| -> Word { vec![(b(k), true), (a(partner(k)), true)] };
    // Δ* = cv Σ s from the state.
    let mut sum = C::default();
    for k in 0..m {
        sum = sum.add(f.expect(rho, &s_word(k)));
    }
    let dstar = sum.scale(params[P_CV]);
    let delta = dstar.conj();
    let det = params[P_DET];
    let g = 0.5 * params[P_OMEGA];
    // Hamiltonian terms.
    let mut h: Vec<(C, Word)> = Vec::new();
    for k in 0..m {
        h.push((C::new(eps1[k] + 0.5 * det, 0.0), vec![(a(k), true), (a(k), false)]));
        h.push((C::new(eps2[k] - 0.5 * det, 0.0), vec![(b(k), true), (b(k), false)]));
        h.push((C::new(g, 0.0), vec![(a(k), true), (b(k), false)]));
        h.push((C::new(g, 0.0), vec![(b(k), true), (a(k), false)]));
        // −Δ c†_{k2} c†_{−k1} − Δ* c_{−k1} c_{k2}
        h.push((delta.scale(-1.0), s_word(k)));
        h.push((dstar.scale(-1.0), vec![(a(partner(k)), false), (b(k), false)]));
    }
    // L[ρ] = −i[H, ρ] + Σ γ (L ρ L† − ½{L†L, ρ}).
    let mut lr = vec![C::default(); d * d];
    for (coef, w) in &h {
        let mono = f.mono(w);
        f.left(coef.mul(C::new(0.0, -1.0)), &mono, rho, &mut lr);
        f.right(coef.mul(C::new(0.0, 1.0)), &mono, rho, &mut lr);
    }
    let mut lindblad = |gamma: f64, word: Word| {
        let l = f.mono(&word);
        let mut tmp = vec![C::default(); d * d];
        f.left(C::new(1.0, 0.0), &l, rho, &mut tmp);
        f.right_dag(C::new(gamma, 0.0), &l, &tmp, &mut lr);
        // L†L: word† then word.
        let mut ldl: Word = word.iter().rev().map(|&(md, dg)| (md, !dg)).collect();
        ldl.extend(word.iter().copied());
        let ldl = f.mono(&ldl);
        f.left(C::new(-0.5 * gamma, 0.0), &ldl, rho, &mut lr);
        f.right(C::new(-0.5 * gamma, 0.0), &ldl, rho, &mut lr);
    };
    for jp in jumps {
        let md = |k| f.mode(jp.band, k);
        lindblad(params[P_GPH] * jp.weight, vec![(md(jp.to), true), (md(jp.from), false)]);
    }
    for k in 0..m {
        lindblad(params[P_GRR], vec![(a(k), true), (b(k), false)]);
    }
    let mut out = vec![0.0; 6 * m];
    for k in 0..m {
        out[k] = f.expect(&lr, &[(a(k), true), (a(k), false)]).re;
        out[m + k] = f.expect(&lr, &[(b(k), true), (b(k), false)]).re;
        let x = f.expect(&lr, &[(b(k), true), (a(k), false)]);
        out[2 * m + k] = x.re;
        out[3 * m + k] = x.im;
        let s = f.expect(&lr, &s_word(k));
        out[4 * m + k] = s.re;
        out[5 * m + k] = s.im;
    }
    out
}

/// The model's state variables of `rho` (same layout as the model state).
pub fn state_of(f: &Fock, rho: &[C]) -> Vec<f64> {
    let m = f.m;
    let (a, b) = (|k: usize| f.mode(0, k), |k: usize| f.mode(1, k));
    let mut y = vec![0.0; 6 * m];
    for k in 0..m {
        y[k] = f.expect(rho, &[(a(k), true), (a(k), false)]).re;
        y[m + k] = f.expect(rho, &[(b(k), true), (b(k), false)]).re;
        let x = f.expect(rho, &[(b(k), true), (a(k), false)]);
        y[2 * m + k] = x.re;
        y[3 * m + k] = x.im;
        let s = f.expect(rho, &[(b(k), true), (a(m - 1 - k), true)]);
        y[4 * m + k] = s.re;
        y[5 * m + k] = s.im;
    }
    y
}

/// Largest modulus of the correlators outside the model's closure in `rho`:
/// `⟨c†_{k2} c†_{−k2}⟩`, `⟨c†_{k1} c†_{−k1}⟩` and normal ones between different momenta.
pub fn outside_closure(f: &Fock, rho: &[C]) -> f64 {
    let m = f.m;
    let mut worst: f64 = 0.0;
    for b in 0..2 {
        for k in 0..m {
            let z = f.expect(rho, &[(f.mode(b, k), true), (f.mode(b, m - 1 - k), true)]);
            worst = worst.max(z.re.hypot(z.im));
            for k2 in 0..m {
                if k2 != k {
                    for b2 in 0..2 {
                        let z = f.expect(rho, &[(f.mode(b, k), true), (f.mode(b2, k2), false)]);
                        worst = worst.max(z.re.hypot(z.im));
                    }
                }
            }
        }
    }
    worst
}
