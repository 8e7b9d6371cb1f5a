//! Equivariant bases: the null space of the stacked constraints `ρ(h_k) − I`, `dρ(A_k)`.
//!
//! A representation is split into tensor monomials ([`Rep::terms`]); each distinct monomial
//! `T(p, q)` of one group is solved once and cached (in memory and on disk), monomials spanning
//! several groups take the Kronecker product of the per-group bases (`Q₁ ⊗ Q₂`), and the basis of
//! the whole representation is the block assembly of its terms' bases ([`Basis`]), never a dense
//! `N × dim` matrix unless asked for.
//!
//! Per monomial of size `N = d^{p+q}`:
//! - **Permutation groups** (every generator a permutation matrix, no Lie algebra): the invariant
//!   vectors are exactly the indicator vectors of the orbits of multi-indices, found by union–find
//!   in `O(N · #generators)`. Exact, no floating-point rank decision.
//! - **Otherwise**: the Gram matrix `G = Σ_k C_kᵀ C_k` is assembled column by column from the
//!   sparse Kronecker(-sum) structure of the constraints (never forming `C`), its null space —
//!   equal to `C`'s — is found by a diagonally pivoted Cholesky factorisation that stops when the
//!   largest remaining pivot falls below `1e-9 · max diag G` (singular values of `C` below about
//!   `3e-5 · ‖C‖`), and the null vectors `[−L₁₁⁻ᵀL₂₁ᵀ; I]` are orthonormalised (Gram–Schmidt,
//!   twice). `O(N³/3)` with a small constant, against `O(N³)` with a large one for the
//!   reference's dense SVD of the `(M+D)N × N` matrix. Every solution is verified: the residual
//!   `max_k ‖C_k Q‖_max` must be below `1e-8 · max(1, ‖A‖)` or the solve is an error.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use super::group::Group;
use super::mat::Mat;
use super::rep::{Rep, Term};
use crate::error::{Error, Result};

mod iterative;

/// Largest monomial size `N` solved through the dense Gram matrix (`N²` entries, `N³/3` flops
/// for its pivoted Cholesky); larger ones go to the matrix-free iterative solver.
pub const DENSE_MAX: usize = 4096;
/// Largest monomial size `N` the iterative solver takes (SO(5) `T(7)` = 78,125 fits).
pub const ITERATIVE_MAX: usize = 1 << 17;
/// Largest dense basis block (entries): 4 GiB of `f64`.
pub const MAX_BASIS_ENTRIES: usize = 1 << 29;

/// The equivariant basis of a representation, as blocks over its terms.
#[derive(Clone, Debug)]
pub struct Basis {
    /// Size of the representation.
    pub size: usize,
    /// One block per term with a non-empty basis: rows of `q` sit at `indices`.
    pub blocks: Vec<Block>,
}

/// The basis of one term.
#[derive(Clone, Debug)]
pub struct Block {
    /// Positions of the term in the representation's vector.
    pub indices: Vec<usize>,
    /// Orthonormal basis of the term's invariant subspace (`indices.len() × r`).
    pub q: Arc<Mat>,
}

impl Basis {
    /// Number of independent equivariant maps (columns).
    pub fn dim(&self) -> usize {
        self.blocks.iter().map(|b| b.q.cols).sum()
    }

    /// The dense `size × dim` basis (columns block by block). Refuses sizes over
    /// [`MAX_BASIS_ENTRIES`].
    pub fn dense(&self) -> Result<Mat> {
        let entries = self.size.saturating_mul(self.dim());
        if entries > MAX_BASIS_ENTRIES {
            return Err(Error::TooLarge {
                what: format!("dense basis {} × {}", self.size, self.dim()),
                bytes: entries as u128 * 8,
            });
        }
        let mut out = Mat::zeros(self.size, self.dim());
        let mut col = 0;
        for b in &self.blocks {
            for (k, &i) in b.indices.iter().enumerate() {
                for c in 0..b.q.cols {
                    *out.at_mut(i, col + c) = b.q.at(k, c);
                }
            }
            col += b.q.cols;
        }
        Ok(out)
    }

    /// The orthogonal projection `Q Qᵀ x` onto the invariant subspace.
    pub fn project(&self, x: &[f64]) -> Vec<f64> {
        let mut y = vec![0.0; x.len()];
        for b in &self.blocks {
            let (n, r) = (b.q.rows, b.q.cols);
            let mut c = vec![0.0; r];
            for k in 0..n {
                let xv = x[b.indices[k]];
                if xv != 0.0 {
                    let row = &b.q.data[k * r..(k + 1) * r];
                    for (cc, q) in c.iter_mut().zip(row) {
                        *cc += q * xv;
                    }
                }
            }
            for k in 0..n {
                let row = &b.q.data[k * r..(k + 1) * r];
                y[b.indices[k]] = row.iter().zip(&c).map(|(q, c)| q * c).sum();
            }
        }
        y
    }
}

/// Solves and caches monomial bases.
pub struct Solver {
    memory: Mutex<HashMap<String, Arc<Mat>>>,
    disk: Option<PathBuf>,
}

impl Default for Solver {
    fn default() -> Self {
        Solver::new(default_cache_dir())
    }
}

/// `$XDG_CACHE_HOME/keel/emlp` or `~/.cache/keel/emlp`.
pub fn default_cache_dir() -> Option<PathBuf> {
    keel_engine::cache::dir("emlp")
}

impl Solver {
    /// A solver caching on disk under `disk` (`None`: memory only).
    pub fn new(disk: Option<PathBuf>) -> Solver {
        Solver {
            memory: Mutex::new(HashMap::new()),
            disk,
        }
    }

    /// The equivariant basis of `rep` (invariant vectors of `rep`).
    pub fn basis(&self, rep: &Rep) -> Result<Basis> {
        let terms = rep.terms().map_err(|reason| Error::TooLarge {
            what: reason,
            bytes: 0,
        })?;
        let mut blocks = Vec::new();
        for t in terms {
            let q = self.term_basis(&t)?;
            if q.cols > 0 {
                blocks.push(Block {
                    indices: t.indices,
                    q,
                });
            }
        }
        Ok(Basis {
            size: rep.size(),
            blocks,
        })
    }

    /// Only the dimension (solves the same blocks; cheap once cached).
    pub fn dim(&self, rep: &Rep) -> Result<usize> {
        Ok(self.basis(rep)?.dim())
    }

    /// The orthonormal invariant basis of one term (rows in the term's canonical order).
    pub fn term_basis(&self, t: &Term) -> Result<Arc<Mat>> {
        let key = t.key();
        if let Some(q) = self.memory.lock().map_err(poisoned)?.get(&key) {
            return Ok(q.clone());
        }
        let mut q: Option<Mat> = None;
        for (g, p, qd) in t.monomials() {
            let part = self.monomial(&g, p, qd)?;
            q = Some(match q {
                None => (*part).clone(),
                Some(acc) => {
                    let entries = acc
                        .rows
                        .saturating_mul(part.rows)
                        .saturating_mul(acc.cols * part.cols);
                    if entries > MAX_BASIS_ENTRIES {
                        return Err(Error::TooLarge {
                            what: format!("basis block of {key}"),
                            bytes: entries as u128 * 8,
                        });
                    }
                    acc.kron(&part)
                }
            });
        }
        let q = Arc::new(q.unwrap_or_else(|| Mat::from_rows(&[vec![1.0]])));
        self.memory.lock().map_err(poisoned)?.insert(key, q.clone());
        Ok(q)
    }

    fn monomial(&self, g: &Arc<Group>, p: usize, q: usize) -> Result<Arc<Mat>> {
        let key = format!("{}:{p}:{q}", g.name);
        if let Some(m) = self.memory.lock().map_err(poisoned)?.get(&key) {
            return Ok(m.clone());
        }
        let file = self
            .disk
            .as_ref()
            .map(|d| d.join(format!("{:016x}.bin", cache_hash(g, p, q))));
        let cached = file.as_ref().and_then(|f| read_cached(f));
        let m = match cached {
            Some(m) => m,
            None => {
                let m = solve_monomial(g, p, q)?;
                if let Some(f) = &file {
                    // The cache is an optimisation: failing to write it is not an error.
                    let _ = write_cached(f, &m);
                }
                m
            }
        };
        let m = Arc::new(m);
        self.memory.lock().map_err(poisoned)?.insert(key, m.clone());
        Ok(m)
    }
}

fn poisoned<T>(_: T) -> Error {
    Error::Solver {
        reason: "basis cache lock poisoned by an earlier panic".into(),
    }
}

const CACHE_MAGIC: &[u8; 8] = b"KEELQv1\0";

fn cache_hash(g: &Group, p: usize, q: usize) -> u64 {
    // FNV-1a over the name, the generators' bits and (p, q): a changed generator set never hits.
    let mut h: u64 = 0xcbf29ce484222325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x100000001b3);
        }
    };
    eat(CACHE_MAGIC);
    eat(g.name.as_bytes());
    for m in g.discrete.iter().chain(&g.lie) {
        for x in &m.data {
            eat(&x.to_le_bytes());
        }
    }
    eat(&(g.discrete.len() as u64).to_le_bytes());
    eat(&(p as u64).to_le_bytes());
    eat(&(q as u64).to_le_bytes());
    h
}

fn read_cached(path: &std::path::Path) -> Option<Mat> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.len() < 24 || &bytes[..8] != CACHE_MAGIC {
        return None;
    }
    let rows = u64::from_le_bytes(bytes[8..16].try_into().ok()?) as usize;
    let cols = u64::from_le_bytes(bytes[16..24].try_into().ok()?) as usize;
    if bytes.len() != 24 + rows.checked_mul(cols)?.checked_mul(8)? {
        return None;
    }
    let data: Vec<f64> = bytes[24..]
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect();
    if data.iter().any(|x| !x.is_finite()) {
        return None;
    }
    Some(Mat { rows, cols, data })
}

fn write_cached(path: &std::path::Path, m: &Mat) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::Write {
            path: dir.into(),
            source: e,
        })?;
    }
    let mut bytes = Vec::with_capacity(24 + m.data.len() * 8);
    bytes.extend_from_slice(CACHE_MAGIC);
    bytes.extend_from_slice(&(m.rows as u64).to_le_bytes());
    bytes.extend_from_slice(&(m.cols as u64).to_le_bytes());
    for x in &m.data {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    crate::output::write_atomic(path, &bytes)
}

/// One constraint on a monomial: per-axis matrices combined as a Kronecker product minus the
/// identity (a discrete generator) or a Kronecker sum (a Lie-algebra generator).
struct Constraint {
    kron: bool,
    /// Per axis, column-wise nonzeros: `cols[a][c] = [(row, value)]`.
    cols: Vec<Nonzeros>,
    /// Per axis, row-wise nonzeros: `rows[a][r] = [(col, value)]`.
    rows: Vec<Nonzeros>,
}

/// Per column (or row) of a small matrix, its nonzero entries `(index, value)`.
type Nonzeros = Vec<Vec<(usize, f64)>>;

fn nonzeros(m: &Mat) -> (Nonzeros, Nonzeros) {
    let mut cols = vec![Vec::new(); m.cols];
    let mut rows = vec![Vec::new(); m.rows];
    for i in 0..m.rows {
        for j in 0..m.cols {
            let x = m.at(i, j);
            if x != 0.0 {
                cols[j].push((i, x));
                rows[i].push((j, x));
            }
        }
    }
    (cols, rows)
}

/// The per-axis matrices of every constraint of `T(p, q)` for `g`.
fn constraints(g: &Group, p: usize, q: usize) -> Result<Vec<Constraint>> {
    let mut out = Vec::new();
    for h in &g.discrete {
        let inv_t = h
            .inverse()
            .ok_or_else(|| Error::Solver {
                reason: format!("{}: a discrete generator is singular", g.name),
            })?
            .t();
        out.push(axis_constraint(true, h, &inv_t, p, q));
    }
    for a in &g.lie {
        out.push(axis_constraint(false, a, &a.t().scale(-1.0), p, q));
    }
    Ok(out)
}

fn axis_constraint(kron: bool, primal: &Mat, dual: &Mat, p: usize, q: usize) -> Constraint {
    let (pc, pr) = nonzeros(primal);
    let (dc, dr) = nonzeros(dual);
    let mut cols = vec![pc; p];
    cols.extend(std::iter::repeat_n(dc, q));
    let mut rows = vec![pr; p];
    rows.extend(std::iter::repeat_n(dr, q));
    Constraint { kron, cols, rows }
}

/// Sparse accumulator over `0..n` that remembers which entries it touched.
struct Sparse {
    val: Vec<f64>,
    hit: Vec<bool>,
    touched: Vec<usize>,
}

impl Sparse {
    fn new(n: usize) -> Sparse {
        Sparse {
            val: vec![0.0; n],
            hit: vec![false; n],
            touched: Vec::new(),
        }
    }
    #[inline]
    fn add(&mut self, i: usize, x: f64) {
        if !self.hit[i] {
            self.hit[i] = true;
            self.touched.push(i);
        }
        self.val[i] += x;
    }
    fn clear(&mut self) {
        for &i in &self.touched {
            self.val[i] = 0.0;
            self.hit[i] = false;
        }
        self.touched.clear();
    }
}

/// `out += M · x` for a sparse `x` (entries `(index, value)`), where `M` is the constraint
/// (`transpose`: its transpose) over axes of size `d` with strides `stride`.
fn apply_sparse(
    c: &Constraint,
    transpose: bool,
    d: usize,
    stride: &[usize],
    x: &[(usize, f64)],
    out: &mut Sparse,
) {
    let k = stride.len();
    let nz = if transpose { &c.rows } else { &c.cols };
    let mut digits = vec![0usize; k];
    for &(m, xv) in x {
        for a in 0..k {
            digits[a] = (m / stride[a]) % d;
        }
        if c.kron {
            // ⊗_a M_a e_m − e_m: the cartesian product of the axes' nonzeros.
            out.add(m, -xv);
            let lists: Vec<&Vec<(usize, f64)>> = (0..k).map(|a| &nz[a][digits[a]]).collect();
            if lists.iter().any(|l| l.is_empty()) {
                continue;
            }
            let mut pos = vec![0usize; k];
            'odometer: loop {
                let mut idx = 0;
                let mut v = xv;
                for a in 0..k {
                    let (r, val) = lists[a][pos[a]];
                    idx += r * stride[a];
                    v *= val;
                }
                out.add(idx, v);
                let mut a = k;
                loop {
                    if a == 0 {
                        break 'odometer;
                    }
                    a -= 1;
                    pos[a] += 1;
                    if pos[a] < lists[a].len() {
                        break;
                    }
                    pos[a] = 0;
                }
            }
        } else {
            for a in 0..k {
                let base = m - digits[a] * stride[a];
                for &(r, val) in &nz[a][digits[a]] {
                    out.add(base + r * stride[a], xv * val);
                }
            }
        }
    }
}

/// The basis (orthonormal columns) of the invariant subspace of `T(p, q)` for `g`.
pub fn solve_monomial(g: &Group, p: usize, q: usize) -> Result<Mat> {
    let k = p + q;
    if k == 0 {
        return Ok(Mat::from_rows(&[vec![1.0]]));
    }
    let d = g.d;
    let n = (d as u128).pow(k as u32);
    if g.permutation {
        if n > MAX_BASIS_ENTRIES as u128 {
            return Err(Error::TooLarge {
                what: format!("T({p},{q}) of {}", g.name),
                bytes: n * 8,
            });
        }
        return orbit_basis(g, d, k);
    }
    let n = usize::try_from(n).map_err(|_| Error::TooLarge {
        what: format!("T({p},{q}) of {}", g.name),
        bytes: n.saturating_mul(8),
    })?;
    let (cons, stride) = stacked(g, p, q)?;
    let q_basis = if n <= DENSE_MAX {
        null_space_dense(&cons, d, &stride, n)?
    } else {
        solve_iterative(g, &cons, &stride, p, q)?
    };
    verify(&cons, d, &stride, &q_basis, g)?;
    Ok(q_basis)
}

/// [`solve_monomial`] through the matrix-free iterative solver whatever the size (for tests and
/// benchmarks; permutation groups too).
///
/// # Errors
/// As [`solve_monomial`].
pub fn solve_monomial_iterative(g: &Group, p: usize, q: usize) -> Result<Mat> {
    let k = p + q;
    if k == 0 {
        return Ok(Mat::from_rows(&[vec![1.0]]));
    }
    let (cons, stride) = stacked(g, p, q)?;
    let q_basis = solve_iterative(g, &cons, &stride, p, q)?;
    verify(&cons, g.d, &stride, &q_basis, g)?;
    Ok(q_basis)
}

/// The constraints of `T(p, q)` (`p + q ≥ 1`) and the strides of its row-major axes.
fn stacked(g: &Group, p: usize, q: usize) -> Result<(Vec<Constraint>, Vec<usize>)> {
    let k = p + q;
    let mut stride = vec![1usize; k];
    for a in (0..k.saturating_sub(1)).rev() {
        stride[a] = stride[a + 1] * g.d;
    }
    Ok((constraints(g, p, q)?, stride))
}

fn solve_iterative(
    g: &Group,
    cons: &[Constraint],
    stride: &[usize],
    p: usize,
    q: usize,
) -> Result<Mat> {
    let d = g.d;
    let k = stride.len();
    let n = stride[0] * d;
    // The cost is (block size) × 17 Gram products per sweep, each O(N (p+q) nnz): past
    // ITERATIVE_MAX entries a solve takes hours, so it is refused up front.
    if n > ITERATIVE_MAX {
        return Err(Error::TooLarge {
            what: format!(
                "T({p},{q}) of {} (size {n}; the iterative solver takes monomials up to {ITERATIVE_MAX} entries)",
                g.name
            ),
            bytes: 0,
        });
    }
    let op = iterative::Operator { cons, d, stride, n };
    iterative::null_space(
        &op,
        1e-10 * residual_scale(g) * k as f64,
        &format!("T({p},{q}) of {}", g.name),
    )
}

/// The null space of `Σ CᵢᵀCᵢ` from the dense Gram matrix (assembled sparsely, column by column).
fn null_space_dense(cons: &[Constraint], d: usize, stride: &[usize], n: usize) -> Result<Mat> {
    // Gram matrix, one row (= column, it is symmetric) per unit vector.
    let mut gram = vec![0.0f64; n * n];
    gram.par_chunks_mut(n).enumerate().for_each_init(
        || (Sparse::new(n), Sparse::new(n)),
        |(fwd, back), (j, row)| {
            for c in cons {
                fwd.clear();
                apply_sparse(c, false, d, stride, &[(j, 1.0)], fwd);
                let x: Vec<(usize, f64)> = fwd
                    .touched
                    .iter()
                    .map(|&i| (i, fwd.val[i]))
                    .filter(|e| e.1 != 0.0)
                    .collect();
                back.clear();
                apply_sparse(c, true, d, stride, &x, back);
                for &i in &back.touched {
                    row[i] += back.val[i];
                }
            }
        },
    );
    null_space_psd(&mut gram, n)
}

/// Null space of the PSD matrix `gram` (`n × n`, overwritten) by diagonally pivoted Cholesky.
fn null_space_psd(gram: &mut [f64], n: usize) -> Result<Mat> {
    let max_diag = (0..n).map(|i| gram[i * n + i]).fold(0.0f64, f64::max);
    if !max_diag.is_finite() {
        return Err(Error::Solver {
            reason: "constraint matrix has non-finite entries".into(),
        });
    }
    let tol = 1e-9 * max_diag.max(1.0);
    let mut perm: Vec<usize> = (0..n).collect();
    let mut rank = 0;
    for s in 0..n {
        let (pivot, best) = (s..n)
            .map(|i| (i, gram[i * n + i]))
            .fold((s, f64::MIN), |a, b| if b.1 > a.1 { b } else { a });
        if best <= tol {
            break;
        }
        if pivot != s {
            perm.swap(s, pivot);
            for j in 0..n {
                gram.swap(s * n + j, pivot * n + j);
            }
            for i in 0..n {
                gram.swap(i * n + s, i * n + pivot);
            }
        }
        let piv = gram[s * n + s].sqrt();
        gram[s * n + s] = piv;
        let l: Vec<f64> = (s + 1..n).map(|i| gram[i * n + s] / piv).collect();
        for (o, &li) in l.iter().enumerate() {
            gram[(s + 1 + o) * n + s] = li;
        }
        // Trailing update of the whole (symmetric) Schur complement, so that the symmetric
        // swaps above always read current entries.
        let (_, tail) = gram.split_at_mut((s + 1) * n);
        tail.par_chunks_mut(n).enumerate().for_each(|(o, row)| {
            let li = l[o];
            if li != 0.0 {
                for (x, lj) in row[s + 1..].iter_mut().zip(&l) {
                    *x -= li * lj;
                }
            }
        });
        rank = s + 1;
    }
    let r = n - rank;
    if r == 0 {
        return Ok(Mat::zeros(n, 0));
    }
    // Null vectors x = P [x1; e_c] with L11ᵀ x1 = −L21ᵀ e_c.
    let cols: Vec<Vec<f64>> = (0..r)
        .into_par_iter()
        .map(|c| {
            let row = rank + c;
            let mut x = vec![0.0; rank];
            for i in (0..rank).rev() {
                let mut s = -gram[row * n + i];
                for m in i + 1..rank {
                    s -= gram[m * n + i] * x[m];
                }
                x[i] = s / gram[i * n + i];
            }
            let mut full = vec![0.0; n];
            for i in 0..rank {
                full[perm[i]] = x[i];
            }
            full[perm[row]] = 1.0;
            full
        })
        .collect();
    let cols = orthonormalize(cols)?;
    let mut q = Mat::zeros(n, cols.len());
    for (c, v) in cols.iter().enumerate() {
        for i in 0..n {
            *q.at_mut(i, c) = v[i];
        }
    }
    Ok(q)
}

/// Modified Gram–Schmidt, applied twice.
fn orthonormalize(mut cols: Vec<Vec<f64>>) -> Result<Vec<Vec<f64>>> {
    for c in 0..cols.len() {
        let (done, rest) = cols.split_at_mut(c);
        let v = &mut rest[0];
        for _ in 0..2 {
            for u in done.iter() {
                let dot: f64 = u.iter().zip(v.iter()).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(u).for_each(|(x, u)| *x -= dot * u);
            }
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm < 1e-12 {
            return Err(Error::Solver {
                reason: "null-space vectors are linearly dependent".into(),
            });
        }
        v.iter_mut().for_each(|x| *x /= norm);
    }
    Ok(cols)
}

/// The size of the group's generators, the scale of a constraint residual.
fn residual_scale(g: &Group) -> f64 {
    g.lie
        .iter()
        .chain(&g.discrete)
        .map(Mat::max_abs)
        .fold(1.0f64, f64::max)
}

fn verify(cons: &[Constraint], d: usize, stride: &[usize], q: &Mat, g: &Group) -> Result<()> {
    let n = q.rows;
    let scale = residual_scale(g);
    let worst = (0..q.cols)
        .into_par_iter()
        .map(|c| {
            let x: Vec<(usize, f64)> = (0..n)
                .map(|i| (i, q.at(i, c)))
                .filter(|e| e.1 != 0.0)
                .collect();
            let mut out = Sparse::new(n);
            let mut worst = 0.0f64;
            for con in cons {
                out.clear();
                apply_sparse(con, false, d, stride, &x, &mut out);
                worst = out
                    .touched
                    .iter()
                    .fold(worst, |w, &i| w.max(out.val[i].abs()));
            }
            worst
        })
        .reduce(|| 0.0, f64::max);
    if worst > 1e-8 * scale * stride.len() as f64 {
        return Err(Error::Solver {
            reason: format!(
                "{}: null-space residual {worst:.2e} too large; the constraints are ill-conditioned",
                g.name
            ),
        });
    }
    Ok(())
}

/// Orbit indicator basis of a permutation representation on multi-indices.
fn orbit_basis(g: &Group, d: usize, k: usize) -> Result<Mat> {
    let n = d.pow(k as u32);
    let perms: Vec<Vec<usize>> = g.discrete.iter().filter_map(Mat::as_permutation).collect();
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    let mut digits = vec![0usize; k];
    for i in 0..n {
        let mut m = i;
        for a in (0..k).rev() {
            digits[a] = m % d;
            m /= d;
        }
        for p in &perms {
            let img = digits.iter().fold(0, |acc, &x| acc * d + p[x]);
            let (ra, rb) = (find(&mut parent, i), find(&mut parent, img));
            if ra != rb {
                parent[ra.max(rb)] = ra.min(rb);
            }
        }
    }
    // Orbits in order of their smallest member.
    let mut col_of = HashMap::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    for i in 0..n {
        let r = find(&mut parent, i);
        let c = *col_of.entry(r).or_insert_with(|| {
            members.push(Vec::new());
            members.len() - 1
        });
        members[c].push(i);
    }
    let r = members.len();
    if n.saturating_mul(r) > MAX_BASIS_ENTRIES {
        return Err(Error::TooLarge {
            what: format!("orbit basis {n} × {r} of {}", g.name),
            bytes: (n as u128) * (r as u128) * 8,
        });
    }
    let mut q = Mat::zeros(n, r);
    for (c, m) in members.iter().enumerate() {
        let v = 1.0 / (m.len() as f64).sqrt();
        for &i in m {
            *q.at_mut(i, c) = v;
        }
    }
    Ok(q)
}
