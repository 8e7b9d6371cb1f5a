//! WISKI: the structured-kernel-interpolation GP updated in constant time per observation.
//!
//! # Model
//! `K_XX ≈ W K_UU Wᵀ` with `W` the sparse cubic-interpolation weights onto a regular grid `U`
//! of `m` nodes and `K_UU = s ⊗_k K_k` (one 1-D kernel matrix per dimension); observations
//! `y = f + ε`, `ε ~ N(0, σ² D)` with fixed per-point factors `d_i` and a noise σ². Writing
//! `K′ = K_UU/σ²`, `A = WᵀD⁻¹W`, `b = WᵀD⁻¹y`, the posterior of the grid values is
//! `N(σ² C b, σ² C)` with `C = (K′⁻¹ + A)⁻¹`, so
//! `μ(x*) = w*ᵀ a` (`a = C b`) and `Var f(x*) = σ² w*ᵀ C w*`.
//!
//! # The update (a choice, measured in benches/RESULTS.md)
//! The reference keeps a root `L` of `A` and an inverse root, updates both by an SVD in
//! `O(m r²)`, and re-forms `Q = I + LᵀK′L` (`O(r³)`) before predicting. Here each observation is
//! a Kalman measurement update of the grid values, applied to a square root `S` of `C`
//! (`C = S Sᵀ`) by Potter's algorithm:
//! `φ = Sᵀw`, `s = d + φᵀφ`, `S ← S − γ (Sφ) φᵀ` with `γ = 1/(s + √(d s))`, and
//! `a ← a + Sφ (y − wᵀa)/s`. With `w` holding `4^D` non-zeros this is `2m² + O(4^D m)` flops,
//! independent of how many points came before, and `C = S Sᵀ` stays positive semi-definite by
//! construction (the covariance-form rank-1 downdate does not, in `f32`). The initial `S` is an
//! eigen-root of `K′` (no inverse of the badly conditioned `K_UU` is ever formed).
//!
//! The log marginal likelihood accumulates from the innovations,
//! `log p(y) = −½ Σ_i [e_i²/(σ² s_i) + log(σ² s_i) + log 2π]`, `e_i = y_i − w_iᵀa`, which equals the
//! cached-statistics formula `−½[(c_yy − bᵀa)/σ² + log|I + K′A| + log|D| + n log σ² + n log 2π]`.
//!
//! [`Wiski::refactorize`] rebuilds `S`, `a` and the likelihood terms from the sufficient
//! statistics (`A`, `b`, `c_yy`, `log|D|`, `n`) in `O(m³)`: `S = S₀ R⁻ᵀ` with `R Rᵀ =
//! I + S₀ᵀ A S₀` and `S₀` the root of `K′`. That is also how new hyperparameters take effect.

use super::grid::{Grid, MAX_NONZEROS};
use super::kernel::Kernel;
use super::Prediction;
use crate::error::{expect_count, positive};
use crate::error::{Error, Result};
use crate::linalg::{cholesky_lanes_in_place, dot_lanes, symmetric_eigen};
use crate::real::Real;

/// The slices a [`Wiski`] works in (`m` = grid nodes): `root` and `precision` hold `m²`
/// scalars, `b`, `mean` `m`, `work` `2m`.
#[derive(Debug)]
pub struct WiskiBuffers<'a, T> {
    /// `S` (row-major `m×m`) with `S Sᵀ = C`.
    pub root: &'a mut [T],
    /// `A = WᵀD⁻¹W` (row-major `m×m`).
    pub precision: &'a mut [T],
    /// `b = WᵀD⁻¹y`.
    pub b: &'a mut [T],
    /// `a = C b`.
    pub mean: &'a mut [T],
    /// Scratch: `φ` and `Sφ`.
    pub work: &'a mut [T],
}

/// Storage for a [`Wiski`] on a grid of `M` nodes: `2M² + 4M` scalars (`M = 64` in `f32`:
/// 33 kB).
#[derive(Clone, Debug)]
pub struct WiskiMemory<T: Real, const M: usize> {
    root: [[T; M]; M],
    precision: [[T; M]; M],
    b: [T; M],
    mean: [T; M],
    work: [[T; M]; 2],
}

impl<T: Real, const M: usize> WiskiMemory<T, M> {
    /// Zeroed storage.
    pub fn new() -> Self {
        WiskiMemory {
            root: [[T::ZERO; M]; M],
            precision: [[T::ZERO; M]; M],
            b: [T::ZERO; M],
            mean: [T::ZERO; M],
            work: [[T::ZERO; M]; 2],
        }
    }

    /// The slices of this storage.
    pub fn buffers(&mut self) -> WiskiBuffers<'_, T> {
        WiskiBuffers {
            root: self.root.as_flattened_mut(),
            precision: self.precision.as_flattened_mut(),
            b: &mut self.b,
            mean: &mut self.mean,
            work: self.work.as_flattened_mut(),
        }
    }
}

impl<T: Real, const M: usize> Default for WiskiMemory<T, M> {
    fn default() -> Self {
        Self::new()
    }
}

/// Scalars of scratch [`Wiski::new`] and [`Wiski::refactorize`] need for a grid of `m` nodes
/// (`usize::MAX`, which no buffer holds, when `2m²` overflows).
pub const fn refactor_scratch_len(m: usize) -> usize {
    m.saturating_mul(m).saturating_mul(2)
}

/// [`Error::CountMismatch`] unless every buffer holds what a grid of `m` nodes needs.
fn check_buffers<T>(buf: &WiskiBuffers<'_, T>, m: usize) -> Result<()> {
    // Saturated sizes: m² of a large grid must not overflow (a panic in debug builds, and a
    // wrapped size a short buffer could match); no buffer holds usize::MAX scalars.
    let m2 = m.saturating_mul(m);
    expect_count("root buffer entries (grid nodes²)", buf.root.len(), m2)?;
    expect_count(
        "precision buffer entries (grid nodes²)",
        buf.precision.len(),
        m2,
    )?;
    expect_count("b buffer entries (grid nodes)", buf.b.len(), m)?;
    expect_count("mean buffer entries (grid nodes)", buf.mean.len(), m)?;
    expect_count(
        "work buffer entries (2 × grid nodes)",
        buf.work.len(),
        m.saturating_mul(2),
    )
}

/// The online SKI GP (see the module documentation).
#[derive(Debug)]
pub struct Wiski<'a, T: Real, const D: usize> {
    grid: Grid<T, D>,
    kernel: Kernel<T, D>,
    noise: T,
    m: usize,
    buf: WiskiBuffers<'a, T>,
    n: u64,
    c_yy: T,
    log_det_d: T,
    log_det_q: T,
    quad: T,
}

impl<'a, T: Real, const D: usize> Wiski<'a, T, D> {
    /// An empty model: `C = K′`, `a = 0`. `scratch` (≥ [`refactor_scratch_len`]`(m)` scalars)
    /// is used only while building the root of `K′`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a non-positive noise; [`Error::CountMismatch`] if a
    /// buffer's length does not match the grid (`expected` saturated at `usize::MAX` where `m²`
    /// overflows); [`Error::ScratchTooSmall`].
    pub fn new(
        grid: Grid<T, D>,
        kernel: Kernel<T, D>,
        noise: T,
        buf: WiskiBuffers<'a, T>,
        scratch: &mut [T],
    ) -> Result<Self> {
        positive("noise", noise)?;
        let m = grid.len();
        check_buffers(&buf, m)?;
        let mut gp = Wiski {
            grid,
            kernel,
            noise,
            m,
            buf,
            n: 0,
            c_yy: T::ZERO,
            log_det_d: T::ZERO,
            log_det_q: T::ZERO,
            quad: T::ZERO,
        };
        gp.buf.precision.fill(T::ZERO);
        gp.buf.b.fill(T::ZERO);
        gp.refactorize(scratch)?;
        Ok(gp)
    }

    /// A model rebuilt from sufficient statistics that `buf.precision` (`A`) and `buf.b` (`b`)
    /// already hold, with `c_yy`, `log|D|` and `n` beside them — how a model exported by the host
    /// resumes on the controller ([`WiskiFile`](super::WiskiFile)). One refactorisation
    /// (`O(m³)`), after which predictions, updates and the likelihood continue as if the points
    /// had been observed here.
    ///
    /// # Errors
    /// As [`Wiski::new`]; [`Error::NonFinite`] for a non-finite statistic (index 0: `A` or `b`,
    /// 1: `c_yy`, 2: `log|D|`).
    pub fn from_statistics(
        grid: Grid<T, D>,
        kernel: Kernel<T, D>,
        noise: T,
        buf: WiskiBuffers<'a, T>,
        (c_yy, log_det_d, n): (T, T, u64),
        scratch: &mut [T],
    ) -> Result<Self> {
        positive("noise", noise)?;
        let m = grid.len();
        check_buffers(&buf, m)?;
        if !buf
            .precision
            .iter()
            .chain(buf.b.iter())
            .all(|v| v.is_finite())
        {
            return Err(Error::NonFinite { index: 0, t: 0.0 });
        }
        for (i, v) in [(1, c_yy), (2, log_det_d)] {
            if !v.is_finite() {
                return Err(Error::NonFinite { index: i, t: 0.0 });
            }
        }
        let mut gp = Wiski {
            grid,
            kernel,
            noise,
            m,
            buf,
            n,
            c_yy,
            log_det_d,
            log_det_q: T::ZERO,
            quad: T::ZERO,
        };
        gp.refactorize(scratch)?;
        Ok(gp)
    }

    /// The grid.
    pub fn grid(&self) -> &Grid<T, D> {
        &self.grid
    }

    /// The kernel.
    pub fn kernel(&self) -> &Kernel<T, D> {
        &self.kernel
    }

    /// The noise σ².
    pub fn noise(&self) -> T {
        self.noise
    }

    /// Observations absorbed.
    pub fn len(&self) -> u64 {
        self.n
    }

    /// No observations yet.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Sufficient statistics `(A, b, c_yy, log|D|, n)`: everything the data left behind.
    pub fn statistics(&self) -> (&[T], &[T], T, T, u64) {
        (
            self.buf.precision,
            self.buf.b,
            self.c_yy,
            self.log_det_d,
            self.n,
        )
    }

    /// The mean cache `a = C b` (the posterior mean of the grid values).
    pub fn grid_mean(&self) -> &[T] {
        self.buf.mean
    }

    /// The root `S` (`C = S Sᵀ`, row-major `m×m`).
    pub fn root(&self) -> &[T] {
        self.buf.root
    }

    /// Absorbs `(x, y)` with noise variance σ² (`d = 1`).
    ///
    /// # Errors
    /// As [`Wiski::observe_with_noise`].
    pub fn observe(&mut self, x: &[T; D], y: T) -> Result<()> {
        self.observe_with_noise(x, y, T::ONE)
    }

    /// Absorbs `(x, y)` with noise variance `σ² d`, in time independent of the number of
    /// points seen. Nothing changes if it fails.
    ///
    /// # Errors
    /// [`Error::OutOfGrid`] for an input off the grid (unless it clamps), [`Error::NonFinite`]
    /// for a non-finite target (index = D), [`Error::InvalidParameter`] for `d ≤ 0`.
    pub fn observe_with_noise(&mut self, x: &[T; D], y: T, d: T) -> Result<()> {
        let mut idx = [0usize; MAX_NONZEROS];
        let mut w = [T::ZERO; MAX_NONZEROS];
        let nnz = self.observation(x, y, d, &mut idx, &mut w)?;
        let (idx, w) = (&idx[..nnz], &w[..nnz]);
        let m = self.m;
        let s_mat = &mut *self.buf.root;
        let (phi, u) = self.buf.work.split_at_mut(m);
        // φ = Sᵀ w: a combination of the 4^D rows of S at w's non-zeros.
        phi.fill(T::ZERO);
        let mut innovation = y;
        for (&i, &wi) in idx.iter().zip(w) {
            // cannot fail: the grid's flattened indices are < m, and s_mat holds m² (checked in
            // Wiski::new).
            for (p, r) in phi.iter_mut().zip(&s_mat[i * m..(i + 1) * m]) {
                *p += wi * *r;
            }
            innovation -= wi * self.buf.mean[i];
        }
        let s = d + phi.iter().fold(T::ZERO, |acc, p| acc + *p * *p);
        // u = S φ = C w.
        for (ui, row) in u.iter_mut().zip(s_mat.chunks_exact(m)) {
            *ui = dot_lanes(row, phi);
        }
        let gamma = T::ONE / (s + (d * s).sqrt());
        for (row, ui) in s_mat.chunks_exact_mut(m).zip(u.iter()) {
            let g = gamma * *ui;
            for (r, p) in row.iter_mut().zip(phi.iter()) {
                *r -= g * *p;
            }
        }
        let gain = innovation / s;
        for (a, ui) in self.buf.mean.iter_mut().zip(u.iter()) {
            *a += gain * *ui;
        }
        self.add_statistics(idx, w, y, d);
        self.log_det_q += (s / d).libm_ln();
        self.quad += innovation * gain;
        Ok(())
    }

    /// Adds `(x, y)` to the sufficient statistics only (`O(16^D)`), leaving the root and the mean
    /// as they were: for loading many points at once, follow the batch with
    /// [`Wiski::refactorize`] (`O(m³)` once), which gives the model that observing them one by
    /// one would have. Until then, predictions and the likelihood ignore the batch.
    ///
    /// # Errors
    /// As [`Wiski::observe_with_noise`].
    pub fn accumulate(&mut self, x: &[T; D], y: T, d: T) -> Result<()> {
        let mut idx = [0usize; MAX_NONZEROS];
        let mut w = [T::ZERO; MAX_NONZEROS];
        let nnz = self.observation(x, y, d, &mut idx, &mut w)?;
        self.add_statistics(&idx[..nnz], &w[..nnz], y, d);
        Ok(())
    }

    /// Checks an observation and writes its interpolation weights; returns how many.
    fn observation(
        &self,
        x: &[T; D],
        y: T,
        d: T,
        idx: &mut [usize; MAX_NONZEROS],
        w: &mut [T; MAX_NONZEROS],
    ) -> Result<usize> {
        if !y.is_finite() {
            return Err(Error::NonFinite { index: D, t: 0.0 });
        }
        positive("noise factor", d)?;
        self.grid.weights(x, idx, w)
    }

    fn add_statistics(&mut self, idx: &[usize], w: &[T], y: T, d: T) {
        let m = self.m;
        for (&i, &wi) in idx.iter().zip(w) {
            let wd = wi / d;
            for (&j, &wj) in idx.iter().zip(w) {
                self.buf.precision[i * m + j] += wd * wj;
            }
            self.buf.b[i] += wd * y;
        }
        self.c_yy += y * y / d;
        self.log_det_d += d.libm_ln();
        self.n += 1;
    }

    /// Posterior mean and variances of `f(x)` and `y(x)` (noise factor 1), in `O(4^D m)`.
    ///
    /// # Errors
    /// [`Error::OutOfGrid`] (unless the grid clamps).
    pub fn predict(&self, x: &[T; D]) -> Result<Prediction<T>> {
        let mut idx = [0usize; MAX_NONZEROS];
        let mut w = [T::ZERO; MAX_NONZEROS];
        let nnz = self.grid.weights(x, &mut idx, &mut w)?;
        let (idx, w) = (&idx[..nnz], &w[..nnz]);
        let m = self.m;
        let mut mean = T::ZERO;
        for (&i, &wi) in idx.iter().zip(w) {
            mean += wi * self.buf.mean[i];
        }
        // |Sᵀw|², accumulating φ = Sᵀw a block of columns at a time from contiguous row slices.
        const BLOCK: usize = 64;
        let mut var = T::ZERO;
        let mut phi = [T::ZERO; BLOCK];
        for j0 in (0..m).step_by(BLOCK) {
            let len = BLOCK.min(m - j0);
            let phi = &mut phi[..len];
            phi.fill(T::ZERO);
            for (&i, &wi) in idx.iter().zip(w) {
                let row = &self.buf.root[i * m + j0..i * m + j0 + len];
                for (p, r) in phi.iter_mut().zip(row) {
                    *p += wi * *r;
                }
            }
            var += dot_lanes(phi, phi);
        }
        let var_f = self.noise * var;
        Ok(Prediction {
            mean,
            var_f,
            var_y: var_f + self.noise,
        })
    }

    /// `log p(y)` of everything absorbed, in `O(1)`.
    pub fn log_marginal_likelihood(&self) -> T {
        let n = T::from_usize(self.n as usize);
        -T::HALF
            * (self.quad / self.noise
                + self.log_det_q
                + self.log_det_d
                + n * self.noise.libm_ln()
                + n * (T::TWO * T::PI).libm_ln())
    }

    /// New hyperparameters, applied by a refactorisation (`O(m³)`).
    ///
    /// # Errors
    /// As [`Wiski::refactorize`]; [`Error::InvalidParameter`] for a non-positive noise. On error
    /// the model keeps its statistics but must be refactorised before use.
    pub fn set_hyperparameters(
        &mut self,
        kernel: Kernel<T, D>,
        noise: T,
        scratch: &mut [T],
    ) -> Result<()> {
        positive("noise", noise)?;
        self.kernel = kernel;
        self.noise = noise;
        self.refactorize(scratch)
    }

    /// Rebuilds `S`, `a`, `log|I + K′A|` and `c_yy − bᵀa` from the sufficient statistics, which
    /// resets the rounding accumulated by the updates (`O(m³)`; call it every 10⁴–10⁵ updates in
    /// `f32` if you like: benches/RESULTS.md shows how little drift there is without it).
    ///
    /// # Errors
    /// [`Error::ScratchTooSmall`]; [`Error::NonFinite`] if the kernel matrix is not finite;
    /// [`Error::NotPositiveDefinite`] if `I + S₀ᵀAS₀` is not (only possible through rounding
    /// far beyond what the statistics of finite data produce).
    pub fn refactorize(&mut self, scratch: &mut [T]) -> Result<()> {
        let m = self.m;
        let needed = refactor_scratch_len(m);
        if scratch.len() < needed {
            return Err(Error::ScratchTooSmall {
                needed,
                got: scratch.len(),
            });
        }
        let (s0, q) = scratch[..needed].split_at_mut(m * m);
        self.grid_root(s0, q)?;
        // T1 = A S₀ (into the root buffer, rebuilt below).
        let a = &*self.buf.precision;
        let t1 = &mut *self.buf.root;
        for i in 0..m {
            let (a_row, t_row) = (&a[i * m..(i + 1) * m], &mut t1[i * m..(i + 1) * m]);
            t_row.fill(T::ZERO);
            for (k, &aik) in a_row.iter().enumerate() {
                if aik != T::ZERO {
                    for (t, s) in t_row.iter_mut().zip(&s0[k * m..(k + 1) * m]) {
                        *t += aik * *s;
                    }
                }
            }
        }
        // Q = I + S₀ᵀ T1 (lower triangle) as a sum of outer products of rows (contiguous
        // access), then Q = R Rᵀ.
        q.fill(T::ZERO);
        for (s_row, t_row) in s0.chunks_exact(m).zip(t1.chunks_exact(m)) {
            for (i, &si) in s_row.iter().enumerate() {
                if si != T::ZERO {
                    for (qv, tv) in q[i * m..i * m + i + 1].iter_mut().zip(t_row) {
                        *qv += si * *tv;
                    }
                }
            }
        }
        for i in 0..m {
            q[i * m + i] += T::ONE;
        }
        cholesky_lanes_in_place(q, m)?;
        // S = S₀ R⁻ᵀ: row i of S solves R x = (row i of S₀).
        let s_mat = &mut *self.buf.root;
        s_mat.copy_from_slice(s0);
        for row in s_mat.chunks_exact_mut(m) {
            for j in 0..m {
                let v = row[j] - dot_lanes(&q[j * m..j * m + j], &row[..j]);
                row[j] = v / q[j * m + j];
            }
        }
        self.log_det_q = (0..m).fold(T::ZERO, |acc, i| acc + T::TWO * q[i * m + i].libm_ln());
        // a = S (Sᵀ b).
        let (phi, _) = self.buf.work.split_at_mut(m);
        phi.fill(T::ZERO);
        for (row, &bi) in s_mat.chunks_exact(m).zip(self.buf.b.iter()) {
            for (p, r) in phi.iter_mut().zip(row) {
                *p += bi * *r;
            }
        }
        let mut ba = T::ZERO;
        for ((a, row), &bi) in self
            .buf
            .mean
            .iter_mut()
            .zip(s_mat.chunks_exact(m))
            .zip(self.buf.b.iter())
        {
            *a = row
                .iter()
                .zip(phi.iter())
                .fold(T::ZERO, |acc, (r, p)| acc + *r * *p);
            ba += bi * *a;
        }
        self.quad = self.c_yy - ba;
        Ok(())
    }

    /// Writes `S₀` with `S₀ S₀ᵀ = K′ = K_UU/σ²` into `s0` (row-major `m×m`), using `work`
    /// (`m²` scalars) for the per-dimension eigen-decompositions: `K_k = V Λ Vᵀ` gives the root
    /// `V Λ^{1/2}` (eigenvalues that rounding made negative are set to zero), and the roots
    /// combine by Kronecker products.
    fn grid_root(&self, s0: &mut [T], work: &mut [T]) -> Result<()> {
        let m = self.m;
        let size = *self.grid.size();
        let scale = (self.kernel.outputscale() / self.noise).sqrt();
        let fill_factor = |k: usize, mat: &mut [T]| {
            let g = size[k];
            for i in 0..g {
                for j in 0..g {
                    let delta = self.grid.coordinate(k, i) - self.grid.coordinate(k, j);
                    mat[i * g + j] = self.kernel.factor(k, delta);
                }
            }
        };
        let to_root = |g: usize, mat: &[T], vecs: &mut [T]| {
            for i in 0..g {
                for (j, v) in vecs[i * g..(i + 1) * g].iter_mut().enumerate() {
                    *v *= mat[j * g + j].max(T::ZERO).sqrt();
                }
            }
        };
        if D == 1 {
            // The 1-D factor is the whole matrix: decompose in `work`, vectors straight into s0.
            fill_factor(0, work);
            symmetric_eigen(work, m, s0)?;
            to_root(m, work, s0);
            for v in s0.iter_mut() {
                *v *= scale;
            }
            return Ok(());
        }
        // D ≥ 2: per-dimension roots side by side in `work` (Σ 2G_k² ≤ m² for G_k ≥ 4).
        let mut offsets = [0usize; 3];
        let mut at = 0;
        for k in 0..D {
            let g = size[k];
            let (mat, rest) = work[at..].split_at_mut(g * g);
            let vecs = &mut rest[..g * g];
            fill_factor(k, mat);
            symmetric_eigen(mat, g, vecs)?;
            to_root(g, mat, vecs);
            offsets[k] = at + g * g;
            at += 2 * g * g;
        }
        for i in 0..m {
            for j in 0..m {
                let (mut ri, mut rj) = (i, j);
                let mut v = scale;
                for k in (0..D).rev() {
                    let g = size[k];
                    let (ik, jk) = (ri % g, rj % g);
                    ri /= g;
                    rj /= g;
                    v *= work[offsets[k] + ik * g + jk];
                }
                s0[i * m + j] = v;
            }
        }
        Ok(())
    }
}

/// Potter's update with nalgebra's BLAS-style kernels, for measurement (feature `nalgebra`).
#[cfg(feature = "nalgebra")]
impl<T: Real + nalgebra::RealField, const D: usize> Wiski<'_, T, D> {
    /// [`Wiski::observe_with_noise`] with its four dense kernels done by nalgebra on views of
    /// the same buffers — `φᵀφ` (`dot`), `u = Sφ` (`gemv_tr`: nalgebra's column-major view of the
    /// row-major `S` is `Sᵀ`), `S ← S − γuφᵀ` (`ger` on that view: `Sᵀ ← Sᵀ − γφuᵀ`) and
    /// `a ← a + gain·u` (`axpy`). Kept to compare nalgebra with Keel's loops (README,
    /// "Architecture notes"; `cargo bench -p keel-benches --bench linalg`,
    /// `firmware/measure_linalg.sh`); it agrees with `observe_with_noise` to rounding, not
    /// bitwise (nalgebra's dot sums in a different order than [`dot_lanes`]).
    ///
    /// # Errors
    /// As [`Wiski::observe_with_noise`].
    pub fn observe_with_noise_nalgebra(&mut self, x: &[T; D], y: T, d: T) -> Result<()> {
        use nalgebra::{DMatrixViewMut, DVectorView, DVectorViewMut};
        let mut idx = [0usize; MAX_NONZEROS];
        let mut w = [T::ZERO; MAX_NONZEROS];
        let nnz = self.observation(x, y, d, &mut idx, &mut w)?;
        let (idx, w) = (&idx[..nnz], &w[..nnz]);
        let m = self.m;
        let s_mat = &mut *self.buf.root;
        let (phi, u) = self.buf.work.split_at_mut(m);
        phi.fill(T::ZERO);
        let mut innovation = y;
        for (&i, &wi) in idx.iter().zip(w) {
            let row = DVectorView::from_slice(&s_mat[i * m..(i + 1) * m], m);
            DVectorViewMut::from_slice(phi, m).axpy(wi, &row, T::ONE);
            innovation -= wi * self.buf.mean[i];
        }
        let phi = DVectorView::from_slice(phi, m);
        let s = d + phi.dot(&phi);
        let mut st = DMatrixViewMut::from_slice(s_mat, m, m);
        let mut uv = DVectorViewMut::from_slice(u, m);
        uv.gemv_tr(T::ONE, &st, &phi, T::ZERO);
        let gamma = T::ONE / (s + num_traits::Float::sqrt(d * s));
        st.ger(-gamma, &phi, &uv, T::ONE);
        let gain = innovation / s;
        DVectorViewMut::from_slice(self.buf.mean, m).axpy(gain, &uv, T::ONE);
        self.add_statistics(idx, w, y, d);
        self.log_det_q += Real::libm_ln(s / d);
        self.quad += innovation * gain;
        Ok(())
    }
}

#[cfg(test)]
#[cfg(feature = "nalgebra")]
mod nalgebra_tests {
    use super::*;
    use crate::gp::{Convention, Family};

    /// The nalgebra update follows the same posterior as Keel's over a stream (f64 and f32).
    macro_rules! agrees {
        ($name:ident, $t:ty, $tol:expr) => {
            #[test]
            fn $name() {
                let grid = Grid::new([-3.0], [3.0], [32], Convention::Endpoints).unwrap();
                let kernel = Kernel::new(Family::Rbf, 1.3, [0.7]).unwrap();
                let (mut m1, mut m2) = (WiskiMemory::<$t, 32>::new(), WiskiMemory::<$t, 32>::new());
                let mut scratch = [0.0; refactor_scratch_len(32)];
                let mut a = Wiski::new(grid, kernel, 0.04, m1.buffers(), &mut scratch).unwrap();
                let mut b = Wiski::new(grid, kernel, 0.04, m2.buffers(), &mut scratch).unwrap();
                for i in 0..300 {
                    let x = -2.9 + 5.8 * ((i * 37 % 101) as $t / 101.0);
                    let y = (3.0 * x).sin() + 0.3 * x;
                    a.observe(&[x], y).unwrap();
                    b.observe_with_noise_nalgebra(&[x], y, 1.0).unwrap();
                }
                for x in [-2.5, -0.3, 0.0, 1.7, 2.8] {
                    let (p, q) = (a.predict(&[x]).unwrap(), b.predict(&[x]).unwrap());
                    assert!(
                        (p.mean - q.mean).abs() <= $tol * (1.0 + p.mean.abs()),
                        "mean at {x}"
                    );
                    assert!((p.var_f - q.var_f).abs() <= $tol * 1.3, "var at {x}");
                }
                let (la, lb) = (a.log_marginal_likelihood(), b.log_marginal_likelihood());
                assert!((la - lb).abs() <= $tol * (1.0 + la.abs()), "{la} vs {lb}");
                // A failing observation changes nothing, as in Keel's.
                assert!(b
                    .observe_with_noise_nalgebra(&[0.0], <$t>::NAN, 1.0)
                    .is_err());
                assert_eq!(b.len(), 300);
            }
        };
    }
    agrees!(nalgebra_update_agrees_f64, f64, 1e-10);
    agrees!(nalgebra_update_agrees_f32, f32, 2e-3);
}
