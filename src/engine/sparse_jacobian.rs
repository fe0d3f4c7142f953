//! Sparse finite-difference Jacobians and the band LU of `I − c·J`, shared by the host
//! implicit methods (`rosenbrock`, `bdf`).
//!
//! The model declares the sparsity ([`crate::engine::model::BatchProblem::jacobian_pattern`],
//! else its `jacobian_band` stencil). The pattern splits the state into a sparse *core*
//! (`0..core`, each row listing the core columns it depends on) and a small dense *border*
//! (`core..n`, e.g. a global phonon occupation). Core columns are grouped by a greedy
//! colouring (columns sharing no row), one right-hand-side evaluation per colour; every border
//! column is one evaluation; `∂f/∂t` one more when asked for and the RHS is not autonomous.
//! The caller counts them ([`Prepared::evals_per_jacobian`]). The border rows' dependence on
//! the core is not evaluated (taken as 0): exact when those rows do not depend on the core
//! (`border_rows_coupled = false`), otherwise an approximation (a W-method keeps its order; a
//! Newton iteration converges more slowly). With that, `W = I − cJ = [A B; 0 D]` is block
//! upper triangular: `D` (border × border) by a small dense LU, `A` (core) by a band LU
//! without pivoting in the reverse Cuthill–McKee order (for `J` a Metzler matrix whose
//! weighted column sums vanish `A` is an M-matrix and needs no pivoting; in general a pivot
//! below `1e-12` of the largest entry makes `Linear::factor` return false, and the caller
//! shrinks the step: `W → I` as `c → 0`). Memory and work are O(N·band) and O(N·band²).

// The CSR/CSC and band loops index several arrays with one index; `!(x > y)` is meant to be
// true for NaN.
#![allow(clippy::needless_range_loop, clippy::neg_cmp_op_on_partial_ord)]

/// Sparsity of one member's RHS Jacobian `∂f_i/∂y_j` for [`crate::engine::rosenbrock`].
#[derive(Clone, Debug, PartialEq)]
pub struct JacobianPattern {
    /// Components `0..core` form the sparse core; `core..n` the dense border.
    pub core: usize,
    /// For each core row `i`, the core columns `j` whose entry may be nonzero (the diagonal
    /// is always included).
    pub rows: Vec<Vec<usize>>,
    /// Whether border rows depend on core components (not evaluated: a W-method
    /// approximation then).
    pub border_rows_coupled: bool,
    /// The RHS does not depend on `t` explicitly (no `∂f/∂t` evaluation).
    pub autonomous: bool,
    /// The border rows vanish identically (the border never changes): its columns are not
    /// evaluated (their stage increments are 0 whatever they hold).
    pub border_constant: bool,
}

impl JacobianPattern {
    /// Row `i` depends on `i + o` for every offset `o` in `offsets` that stays in `0..core`.
    pub fn stencil(core: usize, offsets: &[isize], border_rows_coupled: bool, autonomous: bool) -> Self {
        Self::stencil_rows(core, offsets, border_rows_coupled, autonomous)
    }

    fn stencil_rows(core: usize, offsets: &[isize], border_rows_coupled: bool, autonomous: bool) -> Self {
        let rows = (0..core as isize)
            .map(|i| {
                let mut r: Vec<usize> = offsets
                    .iter()
                    .map(|o| i + o)
                    .chain(std::iter::once(i))
                    .filter(|&j| j >= 0 && j < core as isize)
                    .map(|j| j as usize)
                    .collect();
                r.sort_unstable();
                r.dedup();
                r
            })
            .collect();
        JacobianPattern { core, rows, border_rows_coupled, autonomous, border_constant: false }
    }

    /// Every core entry (for problems that declare nothing: dense, O(core³) per LU).
    pub fn dense(core: usize) -> Self {
        JacobianPattern {
            core,
            rows: vec![(0..core).collect(); core],
            border_rows_coupled: false,
            autonomous: false,
            border_constant: false,
        }
    }
}

/// A pattern prepared for one member: CSR rows, CSC positions, colours, ordering, band.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub(crate) n: usize,
    pub(crate) core: usize,
    pub(crate) autonomous: bool,
    pub(crate) border_constant: bool,
    pub(crate) row_ptr: Vec<usize>,
    pub(crate) cols: Vec<usize>,
    /// CSC: for column j, `col_ptr[j]..col_ptr[j+1]` into `col_rows` / `col_pos` (the
    /// position of that entry in the CSR value array).
    pub(crate) col_ptr: Vec<usize>,
    pub(crate) col_rows: Vec<usize>,
    pub(crate) col_pos: Vec<usize>,
    /// Core columns per colour.
    pub(crate) colours: Vec<Vec<usize>>,
    /// `perm[new] = old`, `inv[old] = new` (reverse Cuthill–McKee).
    pub(crate) perm: Vec<usize>,
    pub(crate) inv: Vec<usize>,
    /// Band of the permuted core pattern.
    pub kl: usize,
    /// Band of the permuted core pattern.
    pub ku: usize,
}

impl Prepared {
    /// Prepares `p` for a state of length `n`.
    pub fn new(p: &JacobianPattern, n: usize) -> Prepared {
        let core = p.core.min(n);
        let (row_ptr, cols) = core_rows(p, core);
        // CSC.
        let mut count = vec![0usize; core + 1];
        for &j in &cols {
            count[j + 1] += 1;
        }
        for j in 0..core {
            count[j + 1] += count[j];
        }
        let col_ptr = count.clone();
        let mut fill = count;
        let mut col_rows = vec![0; cols.len()];
        let mut col_pos = vec![0; cols.len()];
        for i in 0..core {
            for q in row_ptr[i]..row_ptr[i + 1] {
                let j = cols[q];
                col_rows[fill[j]] = i;
                col_pos[fill[j]] = q;
                fill[j] += 1;
            }
        }
        // Greedy colouring: columns sharing a row get different colours.
        let mut colour = vec![usize::MAX; core];
        let mut mark: Vec<usize> = Vec::new();
        let mut n_colours = 0;
        for j in 0..core {
            for q in col_ptr[j]..col_ptr[j + 1] {
                let i = col_rows[q];
                for &j2 in &cols[row_ptr[i]..row_ptr[i + 1]] {
                    let c = colour[j2];
                    if c != usize::MAX {
                        if mark.len() <= c {
                            mark.resize(c + 1, usize::MAX);
                        }
                        mark[c] = j;
                    }
                }
            }
            let c = (0..).find(|&c| c >= mark.len() || mark[c] != j).unwrap();
            colour[j] = c;
            n_colours = n_colours.max(c + 1);
        }
        let mut colours = vec![Vec::new(); n_colours];
        for (j, &c) in colour.iter().enumerate() {
            colours[c].push(j);
        }
        let (perm, inv, kl, ku) = reorder(core, &row_ptr, &cols);
        Prepared {
            n,
            core,
            autonomous: p.autonomous,
            border_constant: p.border_constant,
            row_ptr,
            cols,
            col_ptr,
            col_rows,
            col_pos,
            colours,
            perm,
            inv,
            kl,
            ku,
        }
    }

    /// The band `(lower, upper)` [`Prepared::new`] would give `p` for a state of length `n`,
    /// without the colouring and column structure it also builds (the run layer's memory
    /// estimate asks for it once per sweep point).
    pub fn band(p: &JacobianPattern, n: usize) -> (usize, usize) {
        let core = p.core.min(n);
        let (row_ptr, cols) = core_rows(p, core);
        let (_, _, kl, ku) = reorder(core, &row_ptr, &cols);
        (kl, ku)
    }

    /// Number of colours of the core columns.
    pub fn n_colours(&self) -> usize {
        self.colours.len()
    }

    /// RHS evaluations per Jacobian: colours, border columns, `∂f/∂t`.
    pub fn evals_per_jacobian(&self) -> usize {
        let border = if self.border_constant { 0 } else { self.n - self.core };
        self.colours.len() + border + usize::from(!self.autonomous)
    }
}

/// The core rows of `p` (columns inside the core, the diagonal added, sorted) in CSR form.
fn core_rows(p: &JacobianPattern, core: usize) -> (Vec<usize>, Vec<usize>) {
    let mut row_ptr = vec![0usize];
    let mut cols = Vec::new();
    let mut r: Vec<usize> = Vec::new();
    for i in 0..core {
        r.clear();
        r.extend(p.rows[i].iter().copied().filter(|&j| j < core).chain(std::iter::once(i)));
        r.sort_unstable();
        r.dedup();
        cols.extend_from_slice(&r);
        row_ptr.push(cols.len());
    }
    (row_ptr, cols)
}

/// Reverse Cuthill–McKee of the symmetrised core pattern: the permutation, its inverse and
/// the band `(lower, upper)` of the reordered pattern.
fn reorder(core: usize, row_ptr: &[usize], cols: &[usize]) -> (Vec<usize>, Vec<usize>, usize, usize) {
    // Reverse Cuthill–McKee on the symmetrised pattern.
    // Flat (CSR) adjacency lists, each sorted and without repeats: one allocation instead of
    // one per node (the memory estimate reorders once per sweep point).
    let mut fill = vec![0usize; core + 1];
    for i in 0..core {
        for &j in &cols[row_ptr[i]..row_ptr[i + 1]] {
            if j != i {
                fill[i + 1] += 1;
                fill[j + 1] += 1;
            }
        }
    }
    for u in 0..core {
        fill[u + 1] += fill[u];
    }
    let mut raw = vec![0usize; fill[core]];
    let mut next = fill.clone();
    for i in 0..core {
        for &j in &cols[row_ptr[i]..row_ptr[i + 1]] {
            if j != i {
                raw[next[i]] = j;
                next[i] += 1;
                raw[next[j]] = i;
                next[j] += 1;
            }
        }
    }
    let mut adj_ptr = Vec::with_capacity(core + 1);
    adj_ptr.push(0usize);
    let mut adj_idx = Vec::with_capacity(raw.len());
    for u in 0..core {
        let list = &mut raw[fill[u]..fill[u + 1]];
        list.sort_unstable();
        let start = adj_idx.len();
        for &v in list.iter() {
            if adj_idx.len() == start || *adj_idx.last().unwrap() != v {
                adj_idx.push(v);
            }
        }
        adj_ptr.push(adj_idx.len());
    }
    let perm = rcm(&Adjacency { ptr: &adj_ptr, idx: &adj_idx });
    let mut inv = vec![0; core];
    for (new, &old) in perm.iter().enumerate() {
        inv[old] = new;
    }
    let (mut kl, mut ku) = (0usize, 0usize);
    for i in 0..core {
        for &j in &cols[row_ptr[i]..row_ptr[i + 1]] {
            let (a, b) = (inv[i], inv[j]);
            if b < a {
                kl = kl.max(a - b);
            } else {
                ku = ku.max(b - a);
            }
        }
    }
    (perm, inv, kl, ku)
}

/// Adjacency lists of an undirected graph in CSR form: node `u`'s neighbours are
/// `idx[ptr[u]..ptr[u + 1]]`, sorted.
struct Adjacency<'a> {
    ptr: &'a [usize],
    idx: &'a [usize],
}

impl Adjacency<'_> {
    fn len(&self) -> usize {
        self.ptr.len() - 1
    }
    fn of(&self, u: usize) -> &[usize] {
        &self.idx[self.ptr[u]..self.ptr[u + 1]]
    }
    fn degree(&self, u: usize) -> usize {
        self.ptr[u + 1] - self.ptr[u]
    }
}

/// Reverse Cuthill–McKee ordering of an undirected graph (each component from a
/// pseudo-peripheral node found from its least-degree node). O(edges) per BFS.
fn rcm(adj: &Adjacency) -> Vec<usize> {
    let n = adj.len();
    let mut seen = vec![false; n];
    let mut order = Vec::with_capacity(n);
    let mut by_degree: Vec<usize> = (0..n).collect();
    by_degree.sort_by_key(|&u| adj.degree(u));
    let mut stamp = vec![0u32; n];
    let mut nb: Vec<usize> = Vec::new();
    let mut generation = 0u32;
    // Farthest least-degree node from `start` within its component, and the depth.
    let mut bfs_last = |start: usize, stamp: &mut [u32]| -> (usize, usize) {
        generation += 1;
        let mut level = vec![start];
        stamp[start] = generation;
        let mut depth = 0;
        loop {
            let mut next = Vec::new();
            for &u in &level {
                for &v in adj.of(u) {
                    if stamp[v] != generation {
                        stamp[v] = generation;
                        next.push(v);
                    }
                }
            }
            if next.is_empty() {
                let far = *level.iter().min_by_key(|&&u| adj.degree(u)).unwrap();
                return (far, depth);
            }
            depth += 1;
            level = next;
        }
    };
    for &cand in &by_degree {
        if seen[cand] {
            continue;
        }
        let mut start = cand;
        if adj.degree(cand) != 0 {
            let (mut far, mut depth) = bfs_last(start, &mut stamp);
            for _ in 0..4 {
                let (f2, d2) = bfs_last(far, &mut stamp);
                if d2 <= depth {
                    break;
                }
                far = f2;
                depth = d2;
            }
            start = far;
        }
        let first = order.len();
        order.push(start);
        seen[start] = true;
        let mut head = first;
        while head < order.len() {
            let u = order[head];
            head += 1;
            nb.clear();
            nb.extend(adj.of(u).iter().copied().filter(|&v| !seen[v]));
            nb.sort_by_key(|&v| adj.degree(v));
            for &v in &nb {
                seen[v] = true;
                order.push(v);
            }
        }
    }
    order.reverse();
    order
}

/// Band LU without pivoting, row-major: row `i` holds columns `i − kl ..= i + ku`
/// (`a[i·w + kl + j − i]`), zeros outside the matrix, and beyond a tridiagonal band zeros up
/// to a row stride `w = kl + 1 + ku′` with `ku′` the next multiple of 8 above `ku`
/// ([`band_stride`]), so that each row update of the factorisation is whole vectors. After `factor` the
/// rows of `U` are divided by their pivots, so that the back substitution has a unit
/// diagonal (the forward sweep divides the right-hand side instead, off the dependency
/// chain). Both substitutions are row-oriented: unknown `i` is its right-hand side minus one
/// dot product over the previous `kl` (forward) or next `ku` (back) unknowns, the older part
/// with vectors and the [`RECENT`] newest one by one, so that the chain from one unknown to
/// the next is a single multiply and subtract.
#[derive(Clone, Debug)]
pub(crate) struct Band {
    pub(crate) n: usize,
    pub(crate) kl: usize,
    pub(crate) ku: usize,
    pub(crate) a: Vec<f64>,
    /// Reciprocals of the pivots (set by `factor`).
    pub(crate) inv_diag: Vec<f64>,
}

/// Row stride of a [`Band`] (see there).
#[inline]
fn band_stride(kl: usize, ku: usize) -> usize {
    if kl + ku <= 2 {
        kl + ku + 1
    } else {
        kl + 1 + ku.div_ceil(8) * 8
    }
}

/// Band LU without pivoting of `a` (layout of [`Band`]); on success the strict upper part
/// holds `U` with its rows divided by their pivots, `inv_diag` the reciprocal pivots. False
/// when a pivot is below `1e-12` of the largest entry.
#[inline(always)]
fn band_factor_impl(n: usize, kl: usize, ku: usize, a: &mut [f64], inv_diag: &mut Vec<f64>) -> bool {
    let w = band_stride(kl, ku);
    let a = &mut a[..n * w];
    let scale = a.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    for k in 0..n {
        let piv = a[k * w + kl];
        if !(piv.abs() > 1e-12 * scale) || !piv.is_finite() {
            return false;
        }
        let last = (k + kl).min(n - 1);
        // Entries right of the diagonal in row k: the padded width (the padding and the
        // columns past the matrix hold zeros and leave the rows below as they are), or
        // what the tridiagonal layout has.
        let cols = if w > kl + ku + 1 { w - kl - 1 } else { (k + ku).min(n - 1) - k };
        let (top, bot) = a.split_at_mut((k + 1) * w);
        let src = &top[k * w + kl + 1..k * w + kl + 1 + cols];
        let inv_piv = 1.0 / piv;
        for r in k + 1..=last {
            let row = &mut bot[(r - k - 1) * w..(r - k) * w];
            let l = row[k + kl - r] * inv_piv;
            row[k + kl - r] = l;
            if l != 0.0 {
                let start = k + 1 + kl - r;
                sub_scaled(&mut row[start..start + cols], l, src);
            }
        }
    }
    inv_diag.clear();
    inv_diag.extend((0..n).map(|k| 1.0 / a[k * w + kl]));
    for (row, d) in a.chunks_exact_mut(w).zip(inv_diag.iter()) {
        row[kl + 1..].iter_mut().for_each(|u| *u *= d);
    }
    true
}

/// `dst −= l·src` in explicit blocks of 8 and 4 (the rows of a band are 1–40 long: a loop
/// left to the vectoriser would unroll to 16–32 entries per iteration and leave these
/// short rows to its scalar remainder).
#[inline(always)]
fn sub_scaled(dst: &mut [f64], l: f64, src: &[f64]) {
    let n = dst.len().min(src.len());
    let (dst, src) = (&mut dst[..n], &src[..n]);
    let mut d8 = dst.chunks_exact_mut(8);
    let mut s8 = src.chunks_exact(8);
    for (d, s) in (&mut d8).zip(&mut s8) {
        // `src` is read into registers first: `dst` and `src` come from one matrix, and the
        // vectoriser would not otherwise assume that they do not overlap.
        let s: [f64; 8] = std::array::from_fn(|q| s[q]);
        for q in 0..8 {
            d[q] -= l * s[q];
        }
    }
    let (dst, src) = (d8.into_remainder(), s8.remainder());
    let mut d4 = dst.chunks_exact_mut(4);
    let mut s4 = src.chunks_exact(4);
    for (d, s) in (&mut d4).zip(&mut s4) {
        let s: [f64; 4] = std::array::from_fn(|q| s[q]);
        for q in 0..4 {
            d[q] -= l * s[q];
        }
    }
    for (d, s) in d4.into_remainder().iter_mut().zip(s4.remainder()) {
        *d -= l * s;
    }
}

/// Entries of a row's dot product that are summed one by one, newest last: the unknowns
/// found in the last few rows are still in the store buffer, and a vector load across them
/// would stall on store forwarding; the older ones are summed with vectors.
const RECENT: usize = 4;

/// `Σ a_i b_i` over four independent partial sums (so that it vectorises).
#[inline(always)]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    if n < 8 {
        return a.iter().zip(b).map(|(a, b)| a * b).sum();
    }
    let mut acc = [0.0; 4];
    let chunks = n / 4;
    for c in 0..chunks {
        for q in 0..4 {
            acc[q] += a[4 * c + q] * b[4 * c + q];
        }
    }
    let mut s = (acc[0] + acc[2]) + (acc[1] + acc[3]);
    for i in 4 * chunks..n {
        s += a[i] * b[i];
    }
    s
}

/// Solves `L U x = b[perm]` (`shape = (n, kl, ku)`) with the factors of
/// [`band_factor_impl`] and writes `x` to `b[perm]` (`perm[new] = old`); the gather is fused into the forward sweep, the scatter
/// into the back sweep. `xp` holds `n + kl + ku` reals (`x_j` at `xp[kl + j]`, zeros around
/// it, so that every row's dot product has its full length).
#[inline(always)]
fn band_solve_impl(
    shape: (usize, usize, usize),
    a: &[f64],
    inv_diag: &[f64],
    perm: &[usize],
    b: &mut [f64],
    xp: &mut [f64],
) {
    let (n, kl, ku) = shape;
    let w = band_stride(kl, ku);
    let (a, inv_diag, perm, xp) = (&a[..n * w], &inv_diag[..n], &perm[..n], &mut xp[..n + kl + ku]);
    if n == 0 {
        return;
    }
    if kl == 1 && ku == 1 {
        // Tridiagonal: carry the last unknown in a register.
        let mut prev = b[perm[0]];
        for j in 1..n {
            let cur = b[perm[j]] - a[j * w] * prev;
            xp[j - 1] = prev * inv_diag[j - 1];
            prev = cur;
        }
        let mut next = prev * inv_diag[n - 1];
        b[perm[n - 1]] = next;
        for j in (0..n - 1).rev() {
            next = xp[j] - a[j * w + 2] * next;
            b[perm[j]] = next;
        }
        return;
    }
    xp[..kl].iter_mut().for_each(|x| *x = 0.0);
    xp[kl + n..].iter_mut().for_each(|x| *x = 0.0);
    let split = kl.saturating_sub(RECENT);
    for i in 0..n {
        let r = &a[i * w..i * w + kl];
        let (xs, rest) = xp[i..].split_at_mut(kl);
        let mut y = b[perm[i]] - dot(&r[..split], &xs[..split]);
        for q in split..kl {
            y -= r[q] * xs[q];
        }
        rest[0] = y;
    }
    let split = RECENT.min(ku);
    for i in (0..n).rev() {
        let r = &a[i * w + kl + 1..i * w + kl + 1 + ku];
        let (head, xs) = xp[..kl + i + 1 + ku].split_at_mut(kl + i + 1);
        // U's rows are divided by their pivots: so is the right-hand side (off the chain).
        let mut x = head[kl + i] * inv_diag[i] - dot(&r[split..], &xs[split..]);
        for q in (0..split).rev() {
            x -= r[q] * xs[q];
        }
        head[kl + i] = x;
        b[perm[i]] = x;
    }
}

crate::multiversion! {
    /// [`band_factor_impl`], runtime-dispatched to the widest vectors the CPU has.
    fn band_factor / band_factor_portable (n: usize, kl: usize, ku: usize, a: &mut [f64], inv_diag: &mut Vec<f64>) -> bool => band_factor_impl
}

crate::multiversion! {
    /// [`band_solve_impl`], runtime-dispatched to the widest vectors the CPU has.
    fn band_solve / band_solve_portable (shape: (usize, usize, usize), a: &[f64], inv_diag: &[f64], perm: &[usize], b: &mut [f64], xp: &mut [f64]) => band_solve_impl
}

impl Band {
    pub(crate) fn new(n: usize, kl: usize, ku: usize) -> Band {
        Band { n, kl, ku, a: vec![0.0; n * band_stride(kl, ku)], inv_diag: Vec::new() }
    }
    /// Position of entry `(i, j)` (`i − kl ≤ j ≤ i + ku`).
    #[inline]
    pub(crate) fn at(&self, i: usize, j: usize) -> usize {
        i * band_stride(self.kl, self.ku) + (j + self.kl - i)
    }
    /// Factorises in place; false when a pivot is below `1e-12` of the largest entry.
    #[inline(never)]
    pub(crate) fn factor(&mut self) -> bool {
        band_factor(self.n, self.kl, self.ku, &mut self.a, &mut self.inv_diag)
    }
    /// Solves `A x = b[perm]` with the factors and writes `x` to `b[perm]` (`perm[new] =
    /// old`); `work` is resized as needed.
    #[inline(never)]
    pub(crate) fn solve_permuted(&self, perm: &[usize], b: &mut [f64], work: &mut Vec<f64>) {
        let (n, kl, ku) = (self.n, self.kl, self.ku);
        if work.len() < n + kl + ku {
            work.resize(n + kl + ku, 0.0);
        }
        band_solve((n, kl, ku), &self.a, &self.inv_diag, perm, b, work)
    }
}

/// The Jacobian of one member and the factors of `W = I − γhJ`.
pub(crate) struct Linear {
    /// Core entries (CSR order of [`Prepared`]).
    pub(crate) vals: Vec<f64>,
    /// Border columns, column-major `n` each.
    pub(crate) border: Vec<f64>,
    /// `∂f/∂t` (empty when autonomous).
    pub(crate) ft: Vec<f64>,
    /// Factors for `gh = γh` (None: not factorised).
    pub(crate) band: Option<Band>,
    /// Border block `I − γh J_bb` (LU).
    pub(crate) dlu: Option<crate::engine::dense::Lu>,
    pub(crate) gh: f64,
}

impl Linear {
    /// `out = J x` with the stored Jacobian (border rows: border columns only).
    #[inline(never)]
    pub(crate) fn matvec(&self, p: &Prepared, x: &[f64], out: &mut [f64]) {
        let (n, core) = (p.n, p.core);
        for i in 0..core {
            let mut s = 0.0;
            for q in p.row_ptr[i]..p.row_ptr[i + 1] {
                s += self.vals[q] * x[p.cols[q]];
            }
            out[i] = s;
        }
        out[core..n].iter_mut().for_each(|o| *o = 0.0);
        for c in 0..n - core {
            let xc = x[core + c];
            if xc != 0.0 {
                for (o, j) in out.iter_mut().zip(&self.border[c * n..(c + 1) * n]) {
                    *o += j * xc;
                }
            }
        }
    }

    /// Factorises `W = I − gh·J`; false when a pivot is too small.
    #[inline(never)]
    pub(crate) fn factor(&mut self, p: &Prepared, gh: f64) -> bool {
        let (n, core) = (p.n, p.core);
        let mut band = match self.band.take() {
            Some(mut b) => {
                b.a.iter_mut().for_each(|x| *x = 0.0);
                b
            }
            None => Band::new(core, p.kl, p.ku),
        };
        for i in 0..core {
            let ni = p.inv[i];
            for q in p.row_ptr[i]..p.row_ptr[i + 1] {
                let j = p.cols[q];
                let v = if i == j { 1.0 } else { 0.0 } - gh * self.vals[q];
                let k = band.at(ni, p.inv[j]);
                band.a[k] = v;
            }
        }
        let ok = core == 0 || band.factor();
        self.band = Some(band);
        self.gh = gh;
        let m = n - core;
        self.dlu = (m > 0).then(|| {
            let d: Vec<f64> = (0..m * m)
                .map(|k| {
                    let (r, c) = (k / m, k % m);
                    let id = if r == c { 1.0 } else { 0.0 };
                    id - gh * self.border[c * n + core + r]
                })
                .collect();
            crate::engine::dense::Lu::factor(m, &d)
        });
        ok && self.dlu.as_ref().is_none_or(|l| !l.is_singular())
    }

    /// Solves `W x = b` in place.
    #[inline(never)]
    pub(crate) fn solve(&self, p: &Prepared, b: &mut [f64], work: &mut Vec<f64>) {
        let (n, core) = (p.n, p.core);
        let m = n - core;
        if m > 0 {
            self.dlu.as_ref().unwrap().solve_in_place(&mut b[core..n]);
            // The border's solution, copied to `work` (no allocation per solve; the band
            // solve below overwrites all of it before reading).
            if work.len() < m {
                work.resize(m, 0.0);
            }
            work[..m].copy_from_slice(&b[core..n]);
            let xb = &work[..m];
            for c in 0..m {
                let xc = self.gh * xb[c];
                if xc != 0.0 {
                    for (o, j) in b[..core].iter_mut().zip(&self.border[c * n..c * n + core]) {
                        *o += j * xc;
                    }
                }
            }
        }
        if core > 0 {
            self.band.as_ref().unwrap().solve_permuted(&p.perm, b, work);
        }
    }
}

/// Most distinct off-diagonal offsets `j − i` for which [`SplitJacobian`] is built (each is
/// one vector pass per sweep).
pub(crate) const SPLIT_MAX_DIAGONALS: usize = 32;

/// The core Jacobian split into its diagonal and its off-diagonals in diagonal (DIA)
/// storage, for solving `W x = b` (`W = I − cJ`) by Jacobi iteration without a factorisation
/// while `c·‖J‖` is small: `x ← (I − c·diag J)⁻¹ (b + c·(J − diag J) x)`. Each sweep is one
/// vector pass per off-diagonal (a mat-vec that vectorises and is not a dependency chain,
/// unlike the band solve). Built only when the border is absent or constant (its rows of `J`
/// vanish, so its block of `W` is `I` and its solution is `b`), as the band path treats it.
#[derive(Clone, Debug)]
pub(crate) struct SplitJacobian {
    core: usize,
    diag: Vec<f64>,
    /// Distinct off-diagonal offsets `o = j − i` of the core pattern.
    offsets: Vec<isize>,
    /// `J[i][i + o]` for offset `q` at `vals[q·core + i]` (0 where the pattern has none).
    vals: Vec<f64>,
    /// `c` of the scaled arrays below (NaN: none).
    c: f64,
    /// `1/(1 − c J_ii)`.
    binv: Vec<f64>,
    /// `c J[i][i + o] / (1 − c J_ii)`, laid out as `vals`.
    scaled: Vec<f64>,
    /// `max_i Σ_o |scaled_o[i]|`: the ∞-norm of the Jacobi iteration matrix at `c`.
    q: f64,
}

impl SplitJacobian {
    /// From the stored Jacobian of `lin`; None when the border is coupled (not constant) or
    /// the pattern has more than [`SPLIT_MAX_DIAGONALS`] distinct off-diagonals.
    pub(crate) fn new(p: &Prepared, lin: &Linear) -> Option<SplitJacobian> {
        let core = p.core;
        if (p.n > core && !p.border_constant) || lin.vals.len() != p.cols.len() {
            return None;
        }
        let mut offsets: Vec<isize> = Vec::new();
        for i in 0..core {
            for &j in &p.cols[p.row_ptr[i]..p.row_ptr[i + 1]] {
                let o = j as isize - i as isize;
                if o != 0 && !offsets.contains(&o) {
                    if offsets.len() == SPLIT_MAX_DIAGONALS {
                        return None;
                    }
                    offsets.push(o);
                }
            }
        }
        offsets.sort_unstable();
        let mut diag = vec![0.0; core];
        let mut vals = vec![0.0; offsets.len() * core];
        for i in 0..core {
            for q in p.row_ptr[i]..p.row_ptr[i + 1] {
                let o = p.cols[q] as isize - i as isize;
                if o == 0 {
                    diag[i] = lin.vals[q];
                } else {
                    let k = offsets.binary_search(&o).unwrap();
                    vals[k * core + i] = lin.vals[q];
                }
            }
        }
        let len = vals.len();
        Some(SplitJacobian {
            core,
            diag,
            offsets,
            vals,
            c: f64::NAN,
            binv: vec![0.0; core],
            scaled: vec![0.0; len],
            q: f64::INFINITY,
        })
    }

    /// Reals held (O(N·diagonals)).
    pub(crate) fn stored_reals(&self) -> usize {
        self.diag.len() + self.vals.len() + self.binv.len() + self.scaled.len()
    }

    /// Scales the splitting for `c` (nothing when it already is); returns the ∞-norm bound
    /// `q` of the iteration matrix (the sweeps contract at least by `q` in the max-norm; ∞
    /// when a diagonal of `W` is not positive).
    pub(crate) fn rescale(&mut self, c: f64) -> f64 {
        if self.c == c {
            return self.q;
        }
        let core = self.core;
        let mut bad = false;
        for i in 0..core {
            let d = 1.0 - c * self.diag[i];
            bad |= !(d > 0.0);
            self.binv[i] = 1.0 / d;
        }
        let mut rowsum = vec![0.0; core];
        for k in 0..self.offsets.len() {
            let (v, s) = (&self.vals[k * core..(k + 1) * core], &mut self.scaled[k * core..(k + 1) * core]);
            for i in 0..core {
                s[i] = c * v[i] * self.binv[i];
                rowsum[i] += s[i].abs();
            }
        }
        let q = rowsum.iter().fold(0.0f64, |m, &x| m.max(x));
        self.q = if bad || !q.is_finite() { f64::INFINITY } else { q };
        self.c = c;
        self.q
    }

    /// Solves `W x = b` (scaled by [`Self::rescale`]) in place by Jacobi sweeps from `x = 0`.
    /// Stops when the remaining error, estimated as `θ/(1 − θ)·‖Δx‖` with `θ` the largest
    /// ratio of successive increments seen and at least the bound `q` of [`Self::rescale`]
    /// (capped at `theta_max`; the first ratios alone can underestimate the contraction when
    /// the stiff rows settle first), is at most `tol` in the max-norm weighted by `iw` (the
    /// Newton iteration's inverse weights). Returns the sweeps made, or None (and
    /// `b` as it was) when `θ` exceeds `theta_max` or `max_sweeps` did not reach `tol`.
    /// `x`, `x_new`: scratch of at least the core's length.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn solve(
        &self,
        b: &mut [f64],
        iw: &[f64],
        tol: f64,
        theta_max: f64,
        max_sweeps: usize,
        x: &mut Vec<f64>,
        x_new: &mut Vec<f64>,
    ) -> Option<usize> {
        let core = self.core;
        x.resize(core.max(x.len()), 0.0);
        x_new.resize(core.max(x_new.len()), 0.0);
        let (bc, iwc) = (&b[..core], &iw[..core]);
        // First sweep from x = 0: x = D⁻¹ b.
        let mut inc_old = jacobi_first_sweep(&self.binv, bc, &mut x[..core], iwc);
        if !inc_old.is_finite() {
            return None;
        }
        let mut theta: f64 = self.q.min(theta_max);
        let mut sweeps = 1;
        let mut converged = inc_old == 0.0;
        while !converged {
            if sweeps >= max_sweeps {
                return None;
            }
            let inc =
                jacobi_sweep(core, &self.offsets, &self.scaled, &self.binv, bc, &x[..core], &mut x_new[..core], iwc);
            sweeps += 1;
            std::mem::swap(x, x_new);
            if !inc.is_finite() {
                return None;
            }
            theta = theta.max(inc / inc_old);
            if theta > theta_max {
                return None;
            }
            converged = inc == 0.0 || theta / (1.0 - theta) * inc <= tol;
            inc_old = inc;
        }
        b[..core].copy_from_slice(&x[..core]);
        Some(sweeps)
    }
}

/// Components per block of [`jacobi_sweep_impl`] (its vectors for one block stay in L1).
const SWEEP_BLOCK: usize = 256;

/// One Jacobi sweep `x_new = D⁻¹ b + Σ_o S_o ∘ x[· + o]`, returning `max_i |(x_new − x)_i·w_i|`
/// (NaN when one is not finite). Block by block: within a block one vector pass per offset,
/// then the block's increment norm, while its values are still in L1 (one pass over memory
/// instead of `offsets + 2`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn jacobi_sweep_impl(
    core: usize,
    offsets: &[isize],
    scaled: &[f64],
    binv: &[f64],
    b: &[f64],
    x: &[f64],
    x_new: &mut [f64],
    w: &[f64],
) -> f64 {
    let (binv, b, x, x_new, w) = (&binv[..core], &b[..core], &x[..core], &mut x_new[..core], &w[..core]);
    let mut inc = 0.0f64;
    let mut lo = 0;
    while lo < core {
        let hi = (lo + SWEEP_BLOCK).min(core);
        for i in lo..hi {
            x_new[i] = binv[i] * b[i];
        }
        for (k, &o) in offsets.iter().enumerate() {
            let s = &scaled[k * core..(k + 1) * core];
            let a = o.unsigned_abs();
            // Rows i of this block with i + o inside the core.
            let (from, to) = if o > 0 { (lo, hi.min(core.saturating_sub(a))) } else { (lo.max(a), hi) };
            if from >= to {
                continue;
            }
            let (dst, s) = (&mut x_new[from..to], &s[from..to]);
            let src = if o > 0 { &x[from + a..to + a] } else { &x[from - a..to - a] };
            for i in 0..to - from {
                dst[i] += s[i] * src[i];
            }
        }
        let (xn, xo, wb) = (&x_new[lo..hi], &x[lo..hi], &w[lo..hi]);
        let m = max_abs_weighted::<true>(xn, xo, wb);
        // NaN, once seen, stays.
        if !inc.is_nan() && (m > inc || m.is_nan()) {
            inc = m;
        }
        lo = hi;
    }
    inc
}

/// `x = binv ∘ b`, returning `max_i |x_i·w_i|` (NaN when one is not finite).
#[inline(always)]
fn jacobi_first_sweep_impl(binv: &[f64], b: &[f64], x: &mut [f64], w: &[f64]) -> f64 {
    let n = x.len().min(b.len()).min(w.len()).min(binv.len());
    let (binv, b, x, w) = (&binv[..n], &b[..n], &mut x[..n], &w[..n]);
    for i in 0..n {
        x[i] = binv[i] * b[i];
    }
    max_abs_weighted::<false>(x, x, w)
}

/// `max_i |(a_i − b_i)·w_i|` (`SUB = false`: `max_i |a_i·w_i|`, `b` unused), NaN when one is
/// not finite: eight independent running maxima (a compare and a select each, which vectorise;
/// `f64::max` would drop NaN), the non-finite ones caught by a sum of `d·0`.
#[inline(always)]
fn max_abs_weighted<const SUB: bool>(a: &[f64], b: &[f64], w: &[f64]) -> f64 {
    const L: usize = 8;
    let n = a.len().min(w.len()).min(if SUB { b.len() } else { usize::MAX });
    let mut acc = [0.0f64; L];
    let mut bad = [0.0f64; L];
    let body = n / L * L;
    for c in (0..body).step_by(L) {
        // Fixed-size chunks: one bounds check per chunk, and the lanes vectorise.
        let r = c..c + L;
        let (ac, wc): (&[f64; L], &[f64; L]) = (a[r.clone()].try_into().unwrap(), w[r.clone()].try_into().unwrap());
        let bc: &[f64; L] = if SUB { b[r].try_into().unwrap() } else { ac };
        for q in 0..L {
            let d = ((ac[q] - if SUB { bc[q] } else { 0.0 }) * wc[q]).abs();
            acc[q] = if d > acc[q] { d } else { acc[q] };
            bad[q] += d * 0.0;
        }
    }
    let mut m = acc.iter().fold(0.0f64, |m, &x| m.max(x));
    let mut nonfinite = bad.iter().sum::<f64>();
    for i in body..n {
        let d = ((a[i] - if SUB { b[i] } else { 0.0 }) * w[i]).abs();
        m = m.max(d);
        nonfinite += d * 0.0;
    }
    if nonfinite == 0.0 {
        m
    } else {
        f64::NAN
    }
}

crate::multiversion! {
    /// [`jacobi_sweep_impl`], runtime-dispatched to the widest vectors the CPU has.
    fn jacobi_sweep / jacobi_sweep_portable (core: usize, offsets: &[isize], scaled: &[f64], binv: &[f64], b: &[f64], x: &[f64], x_new: &mut [f64], w: &[f64]) -> f64 => jacobi_sweep_impl
}

crate::multiversion! {
    /// [`jacobi_first_sweep_impl`], runtime-dispatched.
    fn jacobi_first_sweep / jacobi_first_sweep_portable (binv: &[f64], b: &[f64], x: &mut [f64], w: &[f64]) -> f64 => jacobi_first_sweep_impl
}

/// A member's right-hand side `(t, y, out)`.
pub(crate) type RhsFn<'a> = dyn FnMut(f64, &[f64], &mut [f64]) + 'a;

impl Linear {
    /// No Jacobian yet, nothing factorised.
    pub(crate) fn empty() -> Linear {
        Linear { vals: Vec::new(), border: Vec::new(), ft: Vec::new(), band: None, dlu: None, gh: f64::NAN }
    }

    /// Reals stored for `J` and the factors of `W` (O(N·band), never N² for a sparse pattern).
    pub fn stored_reals(&self) -> usize {
        self.vals.len()
            + self.border.len()
            + self.ft.len()
            + self.band.as_ref().map_or(0, |b| b.a.len())
            + self.dlu.as_ref().map_or(0, |l| l.n() * l.n())
    }

    /// Evaluates `J = ∂f/∂y` at `(t, y)` by coloured forward differences (and `∂f/∂t` when
    /// `time_derivative` and the pattern is not autonomous); `f0 = f(t, y)`. `rhs(t, y, out)`
    /// is the member's right-hand side; returns the number of evaluations made. Drops the
    /// factors of `W`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn evaluate(
        &mut self,
        p: &Prepared,
        rhs: &mut RhsFn<'_>,
        t: f64,
        y: &[f64],
        f0: &[f64],
        fd_floor: &[f64],
        time_derivative: bool,
        h: f64,
    ) -> u64 {
        let n = p.n;
        let mut evals = 0;
        let mut yp = y.to_vec();
        let mut f1 = vec![0.0; n];
        self.vals.resize(p.cols.len(), 0.0);
        let delta = |j: usize, y: f64| 1e-8 * y.abs().max(fd_floor[j]);
        for group in &p.colours {
            for &j in group {
                yp[j] = y[j] + delta(j, y[j]);
            }
            rhs(t, &yp, &mut f1);
            evals += 1;
            for &j in group {
                let d = yp[j] - y[j];
                for q in p.col_ptr[j]..p.col_ptr[j + 1] {
                    let i = p.col_rows[q];
                    self.vals[p.col_pos[q]] = (f1[i] - f0[i]) / d;
                }
                yp[j] = y[j];
            }
        }
        self.border.resize((n - p.core) * n, 0.0);
        for c in 0..if p.border_constant { 0 } else { n - p.core } {
            let j = p.core + c;
            yp[j] = y[j] + delta(j, y[j]);
            let d = yp[j] - y[j];
            rhs(t, &yp, &mut f1);
            evals += 1;
            for i in 0..n {
                self.border[c * n + i] = (f1[i] - f0[i]) / d;
            }
            yp[j] = y[j];
        }
        if p.autonomous || !time_derivative {
            self.ft.clear();
        } else {
            let dt = 1e-8 * (t.abs() + h.abs()).max(1e-8);
            rhs(t + dt, y, &mut f1);
            evals += 1;
            self.ft = f1.iter().zip(f0).map(|(a, b)| (a - b) / dt).collect();
        }
        self.band = None;
        self.dlu = None;
        evals
    }
}

/// The sparsity member `m` of `problem` declares: its `jacobian_pattern`, else its
/// `jacobian_band` as a stencil, else None.
pub fn declared_pattern(problem: &dyn crate::engine::model::BatchProblem, m: usize) -> Option<JacobianPattern> {
    let n = problem.layout().state_len;
    problem.jacobian_pattern(m).or_else(|| {
        problem.jacobian_band().map(|(l, u)| {
            let offs: Vec<isize> = (-(l as isize)..=u as isize).collect();
            JacobianPattern::stencil(n, &offs, false, false)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Prepared::band` (the run layer's memory estimate) gives the band `Prepared::new`
    /// stores, for phonon-shift stencils of several widths with and without the flux
    /// neighbours and a coupled border.
    #[test]
    fn band_alone_equals_the_prepared_band() {
        for (cells, shifts, fluxes, coupled) in [
            (64usize, vec![3isize], false, false),
            (300, vec![17, 18], true, false),
            (2048, vec![93, 94], false, false),
            (2048, vec![455, 456], true, true),
            (997, vec![1, 2, 40], true, true),
        ] {
            let mut offsets: Vec<isize> = shifts.iter().flat_map(|&k| [k, -k]).collect();
            if fluxes {
                offsets.extend([1, -1]);
            }
            let pattern = JacobianPattern::stencil(cells, &offsets, coupled, true);
            let prepared = Prepared::new(&pattern, cells + 3);
            assert_eq!(
                Prepared::band(&pattern, cells + 3),
                (prepared.kl, prepared.ku),
                "cells {cells} shifts {shifts:?}"
            );
            assert!(prepared.kl + prepared.ku > 0);
        }
    }

    /// The band LU solves `A x = b` (in a permuted order) for every band shape the solver
    /// meets, including the tridiagonal fast path and bands wider than the matrix; the
    /// dispatched and the portable builds agree bit for bit.
    #[test]
    fn band_lu_solves_permuted_systems() {
        for (n, kl, ku) in
            [(1usize, 0usize, 0usize), (7, 1, 1), (50, 1, 1), (50, 2, 3), (40, 5, 1), (9, 19, 19), (64, 0, 2)]
        {
            let mut band = Band::new(n, kl, ku);
            let mut dense = vec![0.0; n * n];
            let mut seed = 12345u64 + n as u64;
            let mut rnd = || {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            };
            for i in 0..n {
                for j in i.saturating_sub(kl)..=(i + ku).min(n - 1) {
                    let v = if i == j { 3.0 + rnd() } else { rnd() / (kl + ku) as f64 };
                    let k = band.at(i, j);
                    band.a[k] = v;
                    dense[i * n + j] = v;
                }
            }
            let perm: Vec<usize> = (0..n).map(|i| (i * 7 + 3) % n).collect();
            let mut seen = vec![false; n];
            perm.iter().for_each(|&p| seen[p] = true);
            let perm: Vec<usize> = if seen.iter().all(|&s| s) { perm } else { (0..n).rev().collect() };
            let rhs: Vec<f64> = (0..n).map(|_| rnd()).collect();
            let mut portable = band.clone();
            assert!(band.factor());
            let mut b = rhs.clone();
            let mut work = vec![0.0; n];
            band.solve_permuted(&perm, &mut b, &mut work);
            for i in 0..n {
                let ax: f64 = (0..n).map(|j| dense[i * n + j] * b[perm[j]]).sum();
                assert!((ax - rhs[perm[i]]).abs() < 1e-12, "n {n} kl {kl} ku {ku} row {i}: {ax} vs {}", rhs[perm[i]]);
            }
            assert!(band_factor_portable(n, kl, ku, &mut portable.a, &mut portable.inv_diag));
            assert_eq!(portable.a, band.a);
            let mut bp = rhs.clone();
            band_solve_portable((n, kl, ku), &portable.a, &portable.inv_diag, &perm, &mut bp, &mut work);
            assert_eq!(bp, b);
        }
    }

    /// The Jacobi solve of `(I − cJ) x = b` without a factorisation agrees with the band LU
    /// where it converges (a Metzler `J` on the photoexcited-like pattern `{±k, ±(k+1)}`
    /// with a constant border, several `c`), stops at its tolerance, and gives up leaving
    /// `b` as it was where the iteration contracts too slowly; it is not built for a
    /// coupled border or too many diagonals.
    #[test]
    fn jacobi_split_solve_agrees_with_the_band_lu() {
        let mut seed = 99u64;
        let mut rnd = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        for (core, k) in [(301usize, 7isize), (64, 1), (97, 30)] {
            let n = core + 3;
            let mut pat = JacobianPattern::stencil(core, &[k, -k, k + 1, -(k + 1)], false, true);
            pat.border_constant = true;
            let p = Prepared::new(&pat, n);
            let mut lin = Linear::empty();
            lin.vals = vec![0.0; p.cols.len()];
            // A constant border: its columns are not evaluated (zero), as `evaluate` leaves them.
            lin.border = vec![0.0; (n - core) * n];
            // Off-diagonal rates in [0, 10), the diagonal minus their row sum and a bit more.
            for i in 0..core {
                let mut sum = 0.0;
                let mut diag = usize::MAX;
                for q in p.row_ptr[i]..p.row_ptr[i + 1] {
                    if p.cols[q] == i {
                        diag = q;
                    } else {
                        lin.vals[q] = 10.0 * rnd();
                        sum += lin.vals[q];
                    }
                }
                lin.vals[diag] = -sum - 5.0 * rnd();
            }
            let mut split = SplitJacobian::new(&p, &lin).expect("photoexcited-like pattern");
            assert_eq!(split.offsets.len(), 4);
            let b0: Vec<f64> = (0..n).map(|_| rnd() - 0.5).collect();
            let iw = vec![1.0; n];
            for c in [1e-4, 3e-3, 1e-2] {
                let q = split.rescale(c);
                assert!(q < 0.5, "c {c}: q {q}");
                let mut x_lu = b0.clone();
                assert!(lin.factor(&p, c));
                lin.solve(&p, &mut x_lu, &mut Vec::new());
                let mut x = b0.clone();
                let (mut s1, mut s2) = (Vec::new(), Vec::new());
                let sweeps = split.solve(&mut x, &iw, 1e-13, 0.9, 200, &mut s1, &mut s2).expect("converges");
                let err = x.iter().zip(&x_lu).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
                assert!(err < 1e-12, "core {core} k {k} c {c}: {err:e} after {sweeps} sweeps");
                // The border's block of W is I.
                assert_eq!(&x[core..], &b0[core..]);
                // A loose tolerance takes fewer sweeps and its error is within it.
                let mut xl = b0.clone();
                let loose = split.solve(&mut xl, &iw, 1e-4, 0.9, 200, &mut s1, &mut s2).unwrap();
                let err = xl.iter().zip(&x_lu).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
                assert!(loose < sweeps && err <= 1e-4, "c {c}: {loose} vs {sweeps} sweeps, error {err:e}");
            }
            // Large c: q ≈ 1, the sweeps contract too slowly for θ ≤ 0.5.
            assert!(split.rescale(10.0) > 0.6);
            let mut x = b0.clone();
            assert!(split.solve(&mut x, &iw, 1e-13, 0.5, 50, &mut Vec::new(), &mut Vec::new()).is_none());
            assert_eq!(x, b0);
        }
        // Coupled border, or more diagonals than SPLIT_MAX_DIAGONALS: not built.
        let pat = JacobianPattern::stencil(50, &[1, -1], true, true);
        let p = Prepared::new(&pat, 52);
        let lin = Linear { vals: vec![0.0; p.cols.len()], ..Linear::empty() };
        assert!(SplitJacobian::new(&p, &lin).is_none());
        let p = Prepared::new(&JacobianPattern::dense(40), 40);
        let lin = Linear { vals: vec![0.0; p.cols.len()], ..Linear::empty() };
        assert!(SplitJacobian::new(&p, &lin).is_none());
    }

    /// The weighted max-norms of the Jacobi solve: the largest `|Δ·w|`, NaN when a component
    /// is NaN or infinite (a plain `f64::max` would drop a NaN), dispatched and portable
    /// builds alike; a sweep without off-diagonals is `x_new = D⁻¹ b` and its increment norm.
    #[test]
    fn weighted_max_norms_see_non_finite_components() {
        let max_weighted_diff = |a: &[f64], b: &[f64], w: &[f64], portable: bool| {
            let n = a.len();
            let (ones, mut xn) = (vec![1.0; n], vec![0.0; n]);
            let f = if portable { jacobi_sweep_portable } else { jacobi_sweep };
            let m = f(n, &[], &[], &ones, a, b, &mut xn, w);
            assert!(xn.iter().zip(a).all(|(x, a)| x.to_bits() == a.to_bits()));
            m
        };
        for n in [1usize, 5, 8, 17, 300, 2048] {
            let a: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
            let b: Vec<f64> = (0..n).map(|i| (i as f64 * 0.11).cos()).collect();
            let w: Vec<f64> = (0..n).map(|i| 1.0 + (i % 3) as f64).collect();
            let plain = (0..n).map(|i| ((a[i] - b[i]) * w[i]).abs()).fold(0.0, f64::max);
            assert_eq!(max_weighted_diff(&a, &b, &w, false), plain);
            assert_eq!(max_weighted_diff(&a, &b, &w, true), plain);
            let mut x = vec![0.0; n];
            let first = jacobi_first_sweep(&b, &a, &mut x, &w);
            assert_eq!(first, (0..n).map(|i| (b[i] * a[i] * w[i]).abs()).fold(0.0, f64::max));
            for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
                let mut a2 = a.clone();
                a2[n / 2] = bad;
                assert!(max_weighted_diff(&a2, &b, &w, false).is_nan(), "n {n}: {bad}");
                assert!(max_weighted_diff(&a2, &b, &w, true).is_nan());
                assert!(jacobi_first_sweep(&b, &a2, &mut x, &w).is_nan());
            }
        }
    }

    /// The blocked sweep gives the bits of the per-offset formula `x_new_i = binv_i b_i +
    /// Σ_o s_o[i]·x[i + o]` (offsets summed in their order) for lengths not a multiple of the
    /// block and offsets reaching across blocks or beyond the core; dispatched = portable.
    #[test]
    fn blocked_jacobi_sweep_matches_the_offset_formula() {
        let offsets: Vec<isize> = vec![-300, -41, -40, -1, 1, 40, 41, 300, 5000];
        for core in [1usize, 255, 256, 257, 1000, 2051] {
            let v = |f: f64| (0..core).map(|i| ((i as f64 + 1.0) * f).sin()).collect::<Vec<f64>>();
            let (binv, b, x, w) = (v(0.3), v(0.7), v(1.1), v(0.05));
            let scaled: Vec<f64> = (0..offsets.len() * core).map(|q| ((q as f64) * 0.013).cos() * 0.1).collect();
            let mut want = vec![0.0; core];
            for i in 0..core {
                let mut a = binv[i] * b[i];
                for (k, &o) in offsets.iter().enumerate() {
                    let j = i as isize + o;
                    if j >= 0 && (j as usize) < core {
                        a += scaled[k * core + i] * x[j as usize];
                    }
                }
                want[i] = a;
            }
            let inc_want = (0..core).map(|i| ((want[i] - x[i]) * w[i]).abs()).fold(0.0, f64::max);
            for portable in [false, true] {
                let f = if portable { jacobi_sweep_portable } else { jacobi_sweep };
                let mut got = vec![0.0; core];
                let inc = f(core, &offsets, &scaled, &binv, &b, &x, &mut got, &w);
                assert_eq!(got, want, "core {core}");
                assert_eq!(inc, inc_want, "core {core}");
            }
        }
    }

    /// Time of one Jacobi sweep (with its increment norm) at N = 2048 on the photoexcited
    /// pattern `{±k, ±(k+1)}` (4 off-diagonals), next to `band_solve_speed`.
    #[test]
    #[ignore]
    fn jacobi_sweep_speed() {
        let core = 2048;
        let offsets: Vec<isize> = vec![-101, -100, 100, 101];
        let scaled = vec![0.01; offsets.len() * core];
        let (binv, b, x, w) = (vec![0.9; core], vec![1.0; core], vec![0.5; core], vec![1e6; core]);
        let mut x_new = vec![0.0; core];
        let mut best = std::time::Duration::MAX;
        let mut sink = 0.0;
        for _ in 0..20 {
            let t0 = std::time::Instant::now();
            for _ in 0..200 {
                sink += jacobi_sweep(core, &offsets, &scaled, &binv, &b, &x, &mut x_new, &w);
            }
            best = best.min(t0.elapsed() / 200);
        }
        eprintln!("Jacobi sweep, 4 off-diagonals, N = {core}: {best:?} (minimum; {sink:e})");
    }

    #[test]
    #[ignore]
    fn band_solve_speed() {
        for (kl, ku) in [(1usize, 1usize), (3, 3), (5, 5), (9, 9), (19, 19)] {
            let n = 2048;
            let mut b = Band::new(n, kl, ku);
            for i in 0..n {
                for j in i.saturating_sub(kl)..=(i + ku).min(n - 1) {
                    let k = b.at(i, j);
                    b.a[k] = if i == j { 4.0 } else { -0.5 / (kl + ku) as f64 };
                }
            }
            let a0 = b.a.clone();
            assert!(b.factor());
            // Minimum over repetitions: the machine is shared.
            let mut tf = std::time::Duration::MAX;
            for _ in 0..20 {
                b.a.copy_from_slice(&a0);
                let t0 = std::time::Instant::now();
                assert!(b.factor());
                tf = tf.min(t0.elapsed());
            }
            let mut x = vec![1.0; n];
            let mut work = vec![0.0; n];
            let perm: Vec<usize> = (0..n).collect();
            let mut ts = std::time::Duration::MAX;
            for _ in 0..20 {
                let t0 = std::time::Instant::now();
                for _ in 0..50 {
                    x.iter_mut().for_each(|v| *v = 1.0);
                    b.solve_permuted(&perm, &mut x, &mut work);
                }
                ts = ts.min(t0.elapsed() / 50);
            }
            eprintln!("band ({kl}, {ku}) N = {n}: factor {tf:?}, solve {ts:?} (minima)");
        }
    }
}
