//! Small dense row-major matrices in `f64`: group generators and their products. The large
//! objects (constraint Gram matrices, bases) use the same type, built by the solver.

/// A dense row-major `f64` matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Mat {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// `rows × cols` entries, row-major.
    pub data: Vec<f64>,
}

impl Mat {
    /// The zero matrix.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Mat {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// The identity.
    pub fn eye(n: usize) -> Self {
        let mut m = Mat::zeros(n, n);
        for i in 0..n {
            m.data[i * n + i] = 1.0;
        }
        m
    }

    /// Entry-wise construction.
    pub fn from_fn(rows: usize, cols: usize, f: impl Fn(usize, usize) -> f64) -> Self {
        let mut data = Vec::with_capacity(rows * cols);
        for i in 0..rows {
            for j in 0..cols {
                data.push(f(i, j));
            }
        }
        Mat { rows, cols, data }
    }

    /// From nested rows (all the same length).
    pub fn from_rows(rows: &[Vec<f64>]) -> Self {
        let r = rows.len();
        let c = rows.first().map_or(0, Vec::len);
        Mat::from_fn(r, c, |i, j| rows[i][j])
    }

    /// The permutation matrix with `(P x)_i = x_{perm[i]}` (the reference's `LazyPerm`).
    pub fn permutation(perm: &[usize]) -> Self {
        let n = perm.len();
        let mut m = Mat::zeros(n, n);
        for (i, &p) in perm.iter().enumerate() {
            m.data[i * n + p] = 1.0;
        }
        m
    }

    /// Entry `(i, j)`.
    #[inline]
    pub fn at(&self, i: usize, j: usize) -> f64 {
        self.data[i * self.cols + j]
    }

    /// Mutable entry `(i, j)`.
    #[inline]
    pub fn at_mut(&mut self, i: usize, j: usize) -> &mut f64 {
        &mut self.data[i * self.cols + j]
    }

    /// `self · other`.
    pub fn matmul(&self, other: &Mat) -> Mat {
        assert_eq!(self.cols, other.rows, "matmul: inner sizes differ");
        let mut out = Mat::zeros(self.rows, other.cols);
        for i in 0..self.rows {
            let row = &mut out.data[i * other.cols..(i + 1) * other.cols];
            for k in 0..self.cols {
                let a = self.data[i * self.cols + k];
                if a == 0.0 {
                    continue;
                }
                let brow = &other.data[k * other.cols..(k + 1) * other.cols];
                for (o, b) in row.iter_mut().zip(brow) {
                    *o += a * b;
                }
            }
        }
        out
    }

    /// The transpose.
    pub fn t(&self) -> Mat {
        Mat::from_fn(self.cols, self.rows, |i, j| self.at(j, i))
    }

    /// `self · s`.
    pub fn scale(&self, s: f64) -> Mat {
        Mat {
            rows: self.rows,
            cols: self.cols,
            data: self.data.iter().map(|x| x * s).collect(),
        }
    }

    /// `self + other`.
    pub fn add(&self, other: &Mat) -> Mat {
        let data = self
            .data
            .iter()
            .zip(&other.data)
            .map(|(a, b)| a + b)
            .collect();
        Mat {
            rows: self.rows,
            cols: self.cols,
            data,
        }
    }

    /// `self − other`.
    pub fn sub(&self, other: &Mat) -> Mat {
        let data = self
            .data
            .iter()
            .zip(&other.data)
            .map(|(a, b)| a - b)
            .collect();
        Mat {
            rows: self.rows,
            cols: self.cols,
            data,
        }
    }

    /// The Kronecker product `self ⊗ other` (row-major multi-index `(i, k)` ↦ `i·rows(other) + k`).
    pub fn kron(&self, other: &Mat) -> Mat {
        let (r, c) = (self.rows * other.rows, self.cols * other.cols);
        Mat::from_fn(r, c, |i, j| {
            self.at(i / other.rows, j / other.cols) * other.at(i % other.rows, j % other.cols)
        })
    }

    /// Largest absolute entry.
    pub fn max_abs(&self) -> f64 {
        self.data.iter().fold(0.0, |m, x| m.max(x.abs()))
    }

    /// The inverse by Gauss–Jordan elimination with partial pivoting; `None` if singular.
    pub fn inverse(&self) -> Option<Mat> {
        let n = self.rows;
        if n != self.cols {
            return None;
        }
        let mut a = self.clone();
        let mut inv = Mat::eye(n);
        for col in 0..n {
            let piv =
                (col..n).max_by(|&i, &j| a.at(i, col).abs().total_cmp(&a.at(j, col).abs()))?;
            if a.at(piv, col).abs() < 1e-300 || !a.at(piv, col).is_finite() {
                return None;
            }
            for j in 0..n {
                a.data.swap(col * n + j, piv * n + j);
                inv.data.swap(col * n + j, piv * n + j);
            }
            let d = 1.0 / a.at(col, col);
            for j in 0..n {
                *a.at_mut(col, j) *= d;
                *inv.at_mut(col, j) *= d;
            }
            for i in 0..n {
                if i == col {
                    continue;
                }
                let f = a.at(i, col);
                if f == 0.0 {
                    continue;
                }
                for j in 0..n {
                    let (ac, ic) = (a.at(col, j), inv.at(col, j));
                    *a.at_mut(i, j) -= f * ac;
                    *inv.at_mut(i, j) -= f * ic;
                }
            }
        }
        Some(inv)
    }

    /// The matrix exponential by scaling and squaring with a degree-18 Taylor polynomial
    /// (accurate to rounding for the small generator combinations used to sample groups).
    pub fn expm(&self) -> Mat {
        let n = self.rows;
        let norm = (0..n)
            .map(|i| (0..n).map(|j| self.at(i, j).abs()).sum::<f64>())
            .fold(0.0, f64::max);
        let mut s = 0u32;
        while norm / f64::from(1u32 << s.min(30)) > 0.5 && s < 60 {
            s += 1;
        }
        let a = self.scale(0.5f64.powi(s as i32));
        let mut term = Mat::eye(n);
        let mut sum = Mat::eye(n);
        for k in 1..=18 {
            term = term.matmul(&a).scale(1.0 / k as f64);
            sum = sum.add(&term);
        }
        for _ in 0..s {
            sum = sum.matmul(&sum);
        }
        sum
    }

    /// `self^k` for any integer `k` (negative powers through the inverse); `None` if a negative
    /// power of a singular matrix is asked for.
    pub fn pow(&self, k: i64) -> Option<Mat> {
        let base = if k < 0 { self.inverse()? } else { self.clone() };
        let mut out = Mat::eye(self.rows);
        for _ in 0..k.unsigned_abs() {
            out = out.matmul(&base);
        }
        Some(out)
    }

    /// If this is a permutation matrix, the `perm` with `(P x)_i = x_{perm[i]}`.
    pub fn as_permutation(&self) -> Option<Vec<usize>> {
        if self.rows != self.cols {
            return None;
        }
        let n = self.rows;
        let mut perm = Vec::with_capacity(n);
        let mut seen = vec![false; n];
        for i in 0..n {
            let row = &self.data[i * n..(i + 1) * n];
            let mut hit = None;
            for (j, &x) in row.iter().enumerate() {
                if x == 1.0 {
                    if hit.is_some() {
                        return None;
                    }
                    hit = Some(j);
                } else if x != 0.0 {
                    return None;
                }
            }
            let j = hit?;
            if std::mem::replace(&mut seen[j], true) {
                return None;
            }
            perm.push(j);
        }
        Some(perm)
    }

    /// The entries as nested rows (for JSON).
    pub fn to_rows(&self) -> Vec<Vec<f64>> {
        (0..self.rows)
            .map(|i| self.data[i * self.cols..(i + 1) * self.cols].to_vec())
            .collect()
    }
}
