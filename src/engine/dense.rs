//! Dense linear algebra: the one LU code path of the crate and the eigenproblems, on
//! [faer](https://docs.rs/faer) (blocked, SIMD, parallel over rayon for large matrices).
//!
//! Callers hold row-major `n × n` slices (the layout of `LinearlyImplicit::lhs_matrix` and
//! of the models' matrices); [`Lu::factor`] copies into faer's column-major storage
//! (O(n²), negligible beside the O(n³) factorisation) and factors once, after which
//! [`Lu::solve`] / [`Lu::solve_in_place`] / [`Lu::solve_mat`] solve any number of
//! right-hand sides. The factorisation carries what the callers' stop messages need: the
//! smallest |pivot| relative to the largest |entry| of the matrix ([`Lu::min_pivot`], 0 for
//! an exactly singular or non-finite matrix), and [`condition_number`] gives the 2-norm
//! condition number from the singular values.
//!
//! Partial pivoting chooses the same pivots as the textbook unblocked algorithm (largest
//! |entry| of the column) up to ties and rounding; the blocked update changes the
//! rounding of the factors, not their accuracy (backward stable, `tests/dense.rs`).
//!
//! Parallelism: matrices from [`PAR_MIN_N`] up use faer's global parallelism (rayon, all
//! threads of the current pool); smaller ones run sequentially, so that a batch solved
//! member-parallel does not pay fork-join overhead per small factorisation.
//!
//! Eigenproblems: [`eigenvalues`] (general real, Hessenberg QR), [`complex_eigenvalues`]
//! (general complex), [`symmetric_eigen`] (self-adjoint, ascending), [`cholesky_lower`] /
//! [`is_positive_definite`] (Sylvester inertia tests by Cholesky), and triangular solves.

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::lu::partial_pivoting::{factor as lu_factor, solve as lu_solve};
use faer::perm::PermRef;
use faer::{Conj, Par, Side};

pub use faer::{c64, Mat, MatMut, MatRef};

/// Matrices of this order and above are factorised with faer's global parallelism.
pub const PAR_MIN_N: usize = 192;

fn par_for(n: usize) -> Par {
    if n >= PAR_MIN_N {
        faer::get_global_parallelism()
    } else {
        Par::Seq
    }
}

/// Copies a row-major `n × n` slice into a column-major matrix.
pub fn from_row_major(n: usize, a: &[f64]) -> Mat<f64> {
    assert_eq!(a.len(), n * n, "dense: matrix of {} entries is not {n} × {n}", a.len());
    Mat::from_fn(n, n, |i, j| a[i * n + j])
}

/// An LU factorisation with partial pivoting, `P A = L U`, factored once and applied to
/// many right-hand sides.
pub struct Lu {
    n: usize,
    /// Unit lower factor strictly below the diagonal, U on and above it.
    lu: Mat<f64>,
    fwd: Vec<usize>,
    bwd: Vec<usize>,
    min_pivot: f64,
}

impl Lu {
    /// Factors the row-major `n × n` matrix `a`.
    pub fn factor(n: usize, a: &[f64]) -> Lu {
        Lu::factor_mat(from_row_major(n, a))
    }

    /// Factors `a` (square), consuming it as the storage of the factors.
    pub fn factor_mat(a: Mat<f64>) -> Lu {
        let n = a.nrows();
        assert_eq!(n, a.ncols(), "dense: LU of a non-square matrix");
        let mut lu = a;
        let mut scale = 0.0f64;
        let mut finite = true;
        for j in 0..n {
            for &x in lu.col(j).iter() {
                finite &= x.is_finite();
                scale = scale.max(x.abs());
            }
        }
        let mut fwd = vec![0usize; n];
        let mut bwd = vec![0usize; n];
        if n > 0 {
            let par = par_for(n);
            let req = lu_factor::lu_in_place_scratch::<usize, f64>(n, n, par, Default::default());
            let mut mem = MemBuffer::new(req);
            lu_factor::lu_in_place(lu.as_mut(), &mut fwd, &mut bwd, par, MemStack::new(&mut mem), Default::default());
        }
        let scale = scale.max(1e-300);
        let mut min_pivot = if finite { f64::INFINITY } else { 0.0 };
        for i in 0..n {
            let p = lu[(i, i)].abs();
            if p == 0.0 || !p.is_finite() {
                min_pivot = 0.0;
            }
            min_pivot = min_pivot.min(p / scale);
        }
        Lu { n, lu, fwd, bwd, min_pivot }
    }

    /// Order of the matrix.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Smallest |pivot| (diagonal of U) over the largest |entry| of the factored matrix:
    /// 0 when a pivot is exactly zero or the matrix has non-finite entries.
    pub fn min_pivot(&self) -> f64 {
        self.min_pivot
    }

    /// True when a pivot is exactly zero (or the matrix was not finite): the solves would
    /// divide by zero.
    pub fn is_singular(&self) -> bool {
        self.min_pivot <= 0.0
    }

    /// Diagonal of U (the pivots, in elimination order).
    pub fn pivots(&self) -> Vec<f64> {
        (0..self.n).map(|i| self.lu[(i, i)]).collect()
    }

    /// The row permutation: row `i` of `P A` is row `perm()[i]` of `A`.
    pub fn perm(&self) -> &[usize] {
        &self.fwd
    }

    /// Solves `A X = B` in place for the columns of `b` (`n × k`).
    pub fn solve_mat_in_place(&self, b: MatMut<'_, f64>) {
        assert_eq!(b.nrows(), self.n, "dense: right-hand side has the wrong number of rows");
        if self.n == 0 {
            return;
        }
        let par = par_for(self.n);
        let perm = PermRef::new_checked(&self.fwd, &self.bwd, self.n);
        let req = lu_solve::solve_in_place_scratch::<usize, f64>(self.n, b.ncols(), par);
        let mut mem = MemBuffer::new(req);
        lu_solve::solve_in_place_with_conj(
            self.lu.as_ref(),
            self.lu.as_ref(),
            perm,
            Conj::No,
            b,
            par,
            MemStack::new(&mut mem),
        );
    }

    /// Solves `A X = B` (`B` is `n × k`).
    pub fn solve_mat(&self, b: MatRef<'_, f64>) -> Mat<f64> {
        let mut x = b.to_owned();
        self.solve_mat_in_place(x.as_mut());
        x
    }

    /// Solves `A x = b` in place.
    pub fn solve_in_place(&self, b: &mut [f64]) {
        assert_eq!(b.len(), self.n, "dense: right-hand side of length {} for n = {}", b.len(), self.n);
        let view = MatMut::from_column_major_slice_mut(b, self.n, 1);
        self.solve_mat_in_place(view);
    }

    /// Solves `A x = b`.
    pub fn solve(&self, b: &[f64]) -> Vec<f64> {
        let mut x = b.to_vec();
        self.solve_in_place(&mut x);
        x
    }
}

/// Singular values of the row-major `n × n` matrix `a`, descending (None when the SVD does
/// not converge).
pub fn singular_values(n: usize, a: &[f64]) -> Option<Vec<f64>> {
    if n == 0 {
        return Some(vec![]);
    }
    from_row_major(n, a).singular_values().ok()
}

/// 2-norm condition number `σ_max/σ_min` of the row-major `n × n` matrix `a` (infinite
/// when singular, NaN when the SVD fails or the matrix is not finite).
pub fn condition_number(n: usize, a: &[f64]) -> f64 {
    if a.iter().any(|x| !x.is_finite()) {
        return f64::NAN;
    }
    match singular_values(n, a) {
        Some(sv) if !sv.is_empty() => {
            let mx = sv.iter().cloned().fold(0.0, f64::max);
            let mn = sv.iter().cloned().fold(f64::INFINITY, f64::min);
            if mn > 0.0 {
                mx / mn
            } else {
                f64::INFINITY
            }
        }
        Some(_) => 1.0,
        None => f64::NAN,
    }
}

/// Cholesky factor `L` (lower, `A = L Lᵀ`) of the symmetric matrix `a` (its lower triangle
/// is read), or None when `a` is not (numerically) positive definite.
pub fn cholesky_lower(a: MatRef<'_, f64>) -> Option<Mat<f64>> {
    let l = a.llt(Side::Lower).ok()?;
    let l = l.L().to_owned();
    // A NaN entry can pass the factorisation's sign tests.
    (0..l.nrows()).all(|i| l[(i, i)].is_finite() && l[(i, i)] > 0.0).then_some(l)
}

/// Whether the symmetric matrix `a` is positive definite (Cholesky succeeds): by Sylvester's
/// law of inertia the test of a congruent matrix's inertia.
pub fn is_positive_definite(a: MatRef<'_, f64>) -> bool {
    cholesky_lower(a).is_some()
}

/// Solves `L X = B` in place, `L` lower triangular (only its lower triangle is read).
pub fn solve_lower_in_place(l: MatRef<'_, f64>, b: MatMut<'_, f64>) {
    let par = par_for(l.nrows());
    faer::linalg::triangular_solve::solve_lower_triangular_in_place(l, b, par);
}

/// Solves `Lᵀ X = B` in place, `L` lower triangular.
pub fn solve_lower_transpose_in_place(l: MatRef<'_, f64>, b: MatMut<'_, f64>) {
    let par = par_for(l.nrows());
    faer::linalg::triangular_solve::solve_upper_triangular_in_place(l.transpose(), b, par);
}

/// Eigen-decomposition of the symmetric matrix `a` (lower triangle read): eigenvalues
/// ascending and the orthonormal eigenvectors as the columns of the matrix.
pub fn symmetric_eigen(a: MatRef<'_, f64>) -> Option<(Vec<f64>, Mat<f64>)> {
    let e = a.self_adjoint_eigen(Side::Lower).ok()?;
    let vals = e.S().column_vector().iter().cloned().collect();
    Some((vals, e.U().to_owned()))
}

/// Eigenvalues of a general real square matrix (complex-conjugate pairs as such), in no
/// particular order; None when the QR iteration does not converge.
pub fn eigenvalues(a: MatRef<'_, f64>) -> Option<Vec<c64>> {
    if a.nrows() == 0 {
        return Some(vec![]);
    }
    a.eigenvalues().ok()
}

/// Eigenvalues of the row-major real `n × n` matrix `a` (see [`eigenvalues`]).
pub fn eigenvalues_row_major(n: usize, a: &[f64]) -> Option<Vec<c64>> {
    eigenvalues(from_row_major(n, a).as_ref())
}

/// Eigenvalues of a general complex square matrix, in no particular order; None when the
/// QR iteration does not converge.
pub fn complex_eigenvalues(a: MatRef<'_, c64>) -> Option<Vec<c64>> {
    if a.nrows() == 0 {
        return Some(vec![]);
    }
    a.eigenvalues().ok()
}
