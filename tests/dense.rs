//! `engine::dense` (issue 12 item 5): the LU against matrices with known inverses and
//! solutions, residuals of random systems (backward stability, relative to ε‖A‖‖x‖),
//! singular and non-finite detection, the pivot measure against the textbook unblocked
//! algorithm, and eigenvalues of matrices with known spectra (real, complex pairs,
//! symmetric, complex), each to a stated tolerance.
use neqkin::engine::dense::{
    c64, cholesky_lower, complex_eigenvalues, condition_number, eigenvalues, eigenvalues_row_major,
    is_positive_definite, singular_values, solve_lower_in_place, solve_lower_transpose_in_place, symmetric_eigen, Lu,
    Mat,
};

/// A deterministic pseudo-random sequence in [−1, 1).
fn lcg(seed: &mut u64) -> f64 {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    ((*seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
}

fn random(n: usize, seed: &mut u64) -> Vec<f64> {
    (0..n * n).map(|_| lcg(seed)).collect()
}

fn matvec(n: usize, a: &[f64], x: &[f64]) -> Vec<f64> {
    (0..n).map(|i| a[i * n..(i + 1) * n].iter().zip(x).map(|(p, q)| p * q).sum()).collect()
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0f64, |m, x| m.max(x.abs()))
}

/// Textbook unblocked LU with partial pivoting (the pre-faer code): smallest |pivot| over
/// the largest |entry|.
fn reference_min_pivot(n: usize, a: &[f64]) -> f64 {
    let mut a = a.to_vec();
    let scale = max_abs(&a);
    let mut min_piv = f64::INFINITY;
    for c in 0..n {
        let (mut p, mut best) = (c, a[c * n + c].abs());
        for r in c + 1..n {
            if a[r * n + c].abs() > best {
                best = a[r * n + c].abs();
                p = r;
            }
        }
        min_piv = min_piv.min(best / scale);
        if best == 0.0 {
            return 0.0;
        }
        for j in 0..n {
            a.swap(c * n + j, p * n + j);
        }
        for r in c + 1..n {
            let f = a[r * n + c] / a[c * n + c];
            for j in c..n {
                a[r * n + j] -= f * a[c * n + j];
            }
        }
    }
    min_piv
}

#[test]
fn hilbert_like_and_permutation_systems_solve_exactly_known_answers() {
    // A permutation matrix needs every pivot swap and has an exact inverse.
    let n = 7;
    let p = [3usize, 0, 6, 1, 5, 2, 4];
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        a[i * n + p[i]] = 1.0;
    }
    let b: Vec<f64> = (0..n).map(|i| i as f64 + 1.0).collect();
    let lu = Lu::factor(n, &a);
    assert_eq!(lu.min_pivot(), 1.0);
    let x = lu.solve(&b);
    for i in 0..n {
        assert_eq!(x[p[i]], b[i], "permutation solve is exact");
    }
    // The 1-D Laplacian tridiag(−1, 2, −1) of order n with b = A·x for x_i = i(n+1−i):
    // well conditioned (κ ~ 0.4 n²), solved to 1e-12 relative.
    let n = 200;
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        a[i * n + i] = 2.0;
        if i > 0 {
            a[i * n + i - 1] = -1.0;
        }
        if i + 1 < n {
            a[i * n + i + 1] = -1.0;
        }
    }
    let want: Vec<f64> = (1..=n).map(|i| (i * (n + 1 - i)) as f64).collect();
    let b = matvec(n, &a, &want);
    let x = Lu::factor(n, &a).solve(&b);
    let err = x.iter().zip(&want).fold(0.0f64, |m, (p, q)| m.max((p - q).abs()));
    assert!(err <= 1e-12 * max_abs(&want), "Laplacian: max error {err:e}");
}

#[test]
fn random_systems_have_backward_stable_residuals_and_textbook_pivots() {
    let mut seed = 11;
    // Sizes on both sides of the parallel threshold and of faer's blocking.
    for n in [1usize, 2, 5, 31, 64, 191, 192, 300, 513] {
        let a = random(n, &mut seed);
        let lu = Lu::factor(n, &a);
        // Several right-hand sides against one factorisation.
        let rhs: Vec<Vec<f64>> = (0..3).map(|_| (0..n).map(|_| lcg(&mut seed)).collect()).collect();
        let bmat = Mat::from_fn(n, 3, |i, k| rhs[k][i]);
        let xmat = lu.solve_mat(bmat.as_ref());
        for (k, b) in rhs.iter().enumerate() {
            let x = lu.solve(b);
            // One right-hand side and a block of three take different kernels: the same
            // solution to rounding.
            for i in 0..n {
                assert!((x[i] - xmat[(i, k)]).abs() <= 1e-12 * max_abs(&x), "vector and block solves agree");
            }
            let r: Vec<f64> = matvec(n, &a, &x).iter().zip(b).map(|(p, q)| p - q).collect();
            // ‖Ax − b‖∞ ≤ c·n·ε·(‖A‖∞‖x‖∞ + ‖b‖∞), c = 10 (partial pivoting on random
            // matrices: growth is O(1)).
            let norm_a = (0..n).map(|i| a[i * n..(i + 1) * n].iter().map(|v| v.abs()).sum::<f64>()).fold(0.0, f64::max);
            let bound = 10.0 * n as f64 * f64::EPSILON * (norm_a * max_abs(&x) + max_abs(b));
            assert!(max_abs(&r) <= bound, "n = {n}: residual {:e} > {bound:e}", max_abs(&r));
        }
        // Same pivot choices as the unblocked algorithm: the smallest pivot agrees to
        // rounding (1e-9 relative: the blocked update reorders sums, the pivots are the same).
        let want = reference_min_pivot(n, &a);
        let got = lu.min_pivot();
        assert!((got - want).abs() <= 1e-9 * want, "n = {n}: min pivot {got:e} vs unblocked {want:e}");
    }
}

#[test]
fn singular_and_non_finite_matrices_are_detected() {
    // Exactly singular: a zero column, and a repeated row (exact in binary).
    let n = 6;
    let mut seed = 5;
    let mut a = random(n, &mut seed);
    for i in 0..n {
        a[i * n + 2] = 0.0;
    }
    let lu = Lu::factor(n, &a);
    assert!(lu.is_singular() && lu.min_pivot() == 0.0, "zero column: {}", lu.min_pivot());
    let mut a = vec![0.0; 9];
    a.copy_from_slice(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1.0, 2.0, 3.0]);
    assert!(Lu::factor(3, &a).is_singular());
    // The SVD sees rank 2 (σ_min at rounding level, or exactly 0).
    assert!(condition_number(3, &a) > 1e15, "κ = {}", condition_number(3, &a));
    // Nearly singular: the pivot measure sees it (1e-14 rank-one perturbation).
    let mut a = vec![1.0, 2.0, 2.0, 4.0 + 1e-14];
    let lu = Lu::factor(2, &a);
    assert!(!lu.is_singular() && lu.min_pivot() < 1e-13, "{}", lu.min_pivot());
    // Non-finite entries count as singular.
    a[1] = f64::NAN;
    assert!(Lu::factor(2, &a).is_singular());
    a[1] = f64::INFINITY;
    assert!(Lu::factor(2, &a).is_singular());
    assert!(condition_number(2, &a).is_nan());
    // The empty matrix is trivially solvable.
    assert!(Lu::factor(0, &[]).solve(&[]).is_empty());
}

#[test]
fn condition_number_and_singular_values_of_known_matrices() {
    // diag(1, …, 10) rotated by an orthogonal Householder reflector: σ = 1…10, κ = 10.
    let n = 10;
    let v: Vec<f64> = (0..n).map(|i| (i as f64 + 0.5).sin()).collect();
    let vv: f64 = v.iter().map(|x| x * x).sum();
    let h = |i: usize, j: usize| if i == j { 1.0 } else { 0.0 } - 2.0 * v[i] * v[j] / vv;
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            a[i * n + j] = (0..n).map(|k| h(i, k) * (k + 1) as f64 * h(k, j)).sum();
        }
    }
    let sv = singular_values(n, &a).unwrap();
    for (k, s) in sv.iter().enumerate() {
        assert!((s - (n - k) as f64).abs() < 1e-13 * n as f64, "σ_{k} = {s}");
    }
    let kappa = condition_number(n, &a);
    assert!((kappa - 10.0).abs() < 1e-12, "κ = {kappa}");
}

#[test]
fn eigenvalues_of_matrices_with_known_spectra() {
    // Upper triangular: the diagonal.
    let n = 12;
    let mut seed = 3;
    let mut a = random(n, &mut seed);
    for i in 0..n {
        for j in 0..i {
            a[i * n + j] = 0.0;
        }
        a[i * n + i] = i as f64 - 4.5;
    }
    // Similarity by a dense well-conditioned S: spectrum unchanged.
    let s: Vec<f64> = random(n, &mut seed)
        .iter()
        .enumerate()
        .map(|(k, v)| v * 0.3 + if k % (n + 1) == 0 { 2.0 } else { 0.0 })
        .collect();
    // B = S A S⁻¹: with C = S A, row i of B solves Sᵀ (row_i B)ᵀ = (row_i C)ᵀ.
    let c: Vec<f64> = (0..n * n).map(|k| (0..n).map(|m| s[(k / n) * n + m] * a[m * n + k % n]).sum()).collect();
    let st: Vec<f64> = (0..n * n).map(|k| s[(k % n) * n + k / n]).collect();
    let lut = Lu::factor(n, &st);
    let mut b = vec![0.0; n * n];
    for i in 0..n {
        b[i * n..(i + 1) * n].copy_from_slice(&lut.solve(&c[i * n..(i + 1) * n]));
    }
    let mut ev: Vec<f64> = eigenvalues_row_major(n, &b)
        .unwrap()
        .iter()
        .map(|z| {
            assert!(z.im.abs() < 1e-9, "real spectrum: {z}");
            z.re
        })
        .collect();
    ev.sort_by(|x, y| x.partial_cmp(y).unwrap());
    for (i, e) in ev.iter().enumerate() {
        assert!((e - (i as f64 - 4.5)).abs() < 1e-9, "λ_{i} = {e}");
    }

    // A block rotation: eigenvalues a ± ib exactly (complex pairs).
    let (p, q) = (0.3, 1.7);
    let m = Mat::from_fn(4, 4, |i, j| match (i, j) {
        (0, 0) | (1, 1) => p,
        (0, 1) => q,
        (1, 0) => -q,
        (2, 2) => -1.0,
        (3, 3) => 2.0,
        (2, 3) => 5.0,
        _ => 0.0,
    });
    let mut ev = eigenvalues(m.as_ref()).unwrap();
    ev.sort_by(|x, y| (x.re, x.im).partial_cmp(&(y.re, y.im)).unwrap());
    let want = [c64::new(-1.0, 0.0), c64::new(p, -q), c64::new(p, q), c64::new(2.0, 0.0)];
    for (g, w) in ev.iter().zip(&want) {
        assert!((g - w).norm() < 1e-13, "{g} vs {w}");
    }

    // Symmetric: the 1-D Dirichlet Laplacian, λ_k = 2 − 2cos(kπ/(n+1)), eigenvectors
    // sin(ikπ/(n+1)) (orthonormal columns, A U = U Λ).
    let n = 50;
    let lap = Mat::from_fn(n, n, |i, j| {
        if i == j {
            2.0
        } else if i.abs_diff(j) == 1 {
            -1.0
        } else {
            0.0
        }
    });
    let (vals, vecs) = symmetric_eigen(lap.as_ref()).unwrap();
    for (k, v) in vals.iter().enumerate() {
        let want = 2.0 - 2.0 * ((k + 1) as f64 * std::f64::consts::PI / (n + 1) as f64).cos();
        assert!((v - want).abs() < 1e-13, "λ_{k} = {v} vs {want}");
    }
    let mut worst = 0.0f64;
    for k in 0..n {
        for i in 0..n {
            let av: f64 = (0..n).map(|j| lap[(i, j)] * vecs[(j, k)]).sum();
            worst = worst.max((av - vals[k] * vecs[(i, k)]).abs());
        }
    }
    assert!(worst < 1e-13, "‖AU − UΛ‖max = {worst:e}");

    // Complex: diagonal plus a rank one i·c·uvᵀ with u = e_0 (triangular in the first row):
    // eigenvalues are the diagonal except the first, which becomes d_0 + i c v_0.
    let n = 6;
    let d: Vec<c64> = (0..n).map(|k| c64::new(-(k as f64) * 0.1, k as f64)).collect();
    let cm = Mat::from_fn(n, n, |i, j| {
        let r = if i == 0 { c64::new(0.0, 0.7 * (j as f64 + 1.0)) } else { c64::new(0.0, 0.0) };
        if i == j {
            d[i] + r
        } else {
            r
        }
    });
    let ev = complex_eigenvalues(cm.as_ref()).unwrap();
    let mut want: Vec<c64> = d.clone();
    want[0] += c64::new(0.0, 0.7);
    for w in &want {
        let best = ev.iter().map(|z| (z - w).norm()).fold(f64::INFINITY, f64::min);
        assert!(best < 1e-12, "eigenvalue {w} missing: {ev:?}");
    }
}

#[test]
fn cholesky_and_triangular_solves() {
    // SPD: the Laplacian; indefinite: its shift by −1 (λ_min ≈ 0.0036 < 1).
    let n = 40;
    let lap = Mat::from_fn(n, n, |i, j| {
        if i == j {
            2.0
        } else if i.abs_diff(j) == 1 {
            -1.0
        } else {
            0.0
        }
    });
    assert!(is_positive_definite(lap.as_ref()));
    let shifted = Mat::from_fn(n, n, |i, j| lap[(i, j)] - if i == j { 1.0 } else { 0.0 });
    assert!(!is_positive_definite(shifted.as_ref()));
    let nan = Mat::from_fn(2, 2, |i, j| if i == j { 1.0 } else { f64::NAN });
    assert!(!is_positive_definite(nan.as_ref()));
    // L Lᵀ = A, and L⁻¹, L⁻ᵀ applied in place invert it.
    let l = cholesky_lower(lap.as_ref()).unwrap();
    let mut worst = 0.0f64;
    for i in 0..n {
        for j in 0..n {
            let llt: f64 = (0..n).map(|k| l[(i, k)] * l[(j, k)]).sum();
            worst = worst.max((llt - lap[(i, j)]).abs());
        }
    }
    assert!(worst < 1e-14, "‖LLᵀ − A‖max = {worst:e}");
    let want: Vec<f64> = (0..n).map(|i| (i as f64 * 0.3).cos()).collect();
    let b: Vec<f64> = (0..n).map(|i| (0..n).map(|j| lap[(i, j)] * want[j]).sum()).collect();
    let mut x = Mat::from_fn(n, 1, |i, _| b[i]);
    solve_lower_in_place(l.as_ref(), x.as_mut());
    solve_lower_transpose_in_place(l.as_ref(), x.as_mut());
    for i in 0..n {
        assert!((x[(i, 0)] - want[i]).abs() < 1e-12, "x_{i}");
    }
}
