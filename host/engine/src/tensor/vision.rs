//! Differentiable geometry on images: PyTorch's `affine_grid` + `grid_sample` (bilinear, zero
//! padding, `align_corners=True`) and the matrix exponential — what Augerino ("Learning
//! Invariances in Neural Networks", Benton et al. 2020; `augerino/models/aug_modules.py`) needs
//! to warp an image by `expm(Σ εᵢGᵢ)` and learn the εᵢ's range through the warp.
//!
//! All three are composites of recorded operations, so their derivatives (to the image, to the
//! sampling grid and through it to the affine matrix, to the matrix of the exponential) are
//! exact derivatives of what is computed, to any order.

use super::Tensor;
use crate::error::{Error, Result};

/// Degree of the Taylor polynomial of [`Tensor::matrix_exp`] after scaling to ‖A‖₁ ≤ ½: the
/// remainder is below ½¹⁹/19! ≈ 1.6·10⁻²³, far under f64's rounding.
const EXPM_DEGREE: usize = 18;

impl Tensor {
    /// The sampling grid `[n, h, w, 2]` of the affine maps `theta` `[n, 2, 3]` over an `h × w`
    /// output, in normalised coordinates (PyTorch's `affine_grid(theta, (n, ·, h, w),
    /// align_corners=True)`): output pixel `(i, j)` is the point `x = −1 + 2j/(w − 1)`,
    /// `y = −1 + 2i/(h − 1)` (0 for a size of 1), and the grid holds `theta · (x, y, 1)`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a `theta` that is not `[n, 2, 3]` or an empty output.
    pub fn affine_grid(theta: &Tensor, n: usize, h: usize, w: usize) -> Result<Tensor> {
        if theta.dims() != [n, 2, 3] {
            return Err(Error::invalid(
                "theta",
                theta.shape(),
                format!("affine_grid takes [{n}, 2, 3]"),
            ));
        }
        if h == 0 || w == 0 {
            return Err(Error::invalid(
                "grid size",
                format!("{h}x{w}"),
                "must be ≥ 1",
            ));
        }
        let coord = |k: usize, size: usize| {
            if size == 1 {
                0.0
            } else {
                -1.0 + 2.0 * k as f64 / (size - 1) as f64
            }
        };
        let mut base = Vec::with_capacity(h * w * 3);
        for i in 0..h {
            for j in 0..w {
                base.extend([coord(j, w), coord(i, h), 1.0]);
            }
        }
        let base =
            Tensor::from_f64s(&base, &[h * w, 3], theta.dtype())?.to_device(theta.device())?;
        base.matmul_t(theta, false, true)?.reshape(&[n, h, w, 2])
    }

    /// Bilinear sampling of this `[n, c, h, w]` image at `grid` `[n, ho, wo, 2]` (normalised
    /// `(x, y)` pairs; PyTorch's `grid_sample(mode="bilinear", padding_mode="zeros",
    /// align_corners=True)`): the point `(x, y)` is pixel `((x + 1)/2·(w − 1), (y + 1)/2·(h − 1))`,
    /// interpolated between its four neighbours, with zeros outside the image. Differentiable in
    /// the image and in the grid (almost everywhere: the weights have kinks on pixel lines).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for shapes that do not fit, or a non-finite grid.
    pub fn grid_sample(&self, grid: &Tensor) -> Result<Tensor> {
        let &[n, c, h, w] = self.dims() else {
            return Err(Error::invalid(
                "image",
                self.shape(),
                "grid_sample takes [batch, channels, height, width]",
            ));
        };
        let &[gn, ho, wo, 2] = grid.dims() else {
            return Err(Error::invalid(
                "grid",
                grid.shape(),
                "grid_sample takes a grid [batch, height, width, 2]",
            ));
        };
        if gn != n {
            return Err(Error::ShapeMismatch {
                op: "grid_sample",
                lhs: self.shape(),
                rhs: grid.shape(),
            });
        }
        let p = n * ho * wo;
        let flat = grid.reshape(&[p, 2])?;
        // Pixel coordinates, differentiable.
        let ix = flat
            .narrow(1, 0, 1)?
            .affine(0.5 * (w as f64 - 1.0), 0.5 * (w as f64 - 1.0))?;
        let iy = flat
            .narrow(1, 1, 1)?
            .affine(0.5 * (h as f64 - 1.0), 0.5 * (h as f64 - 1.0))?;
        // The cell of each point (constants: the weights' derivatives do not see the floor).
        let (xs, ys) = (ix.to_vec_f64()?, iy.to_vec_f64()?);
        if let Some(bad) = xs.iter().chain(&ys).find(|v| !v.is_finite()) {
            return Err(Error::invalid(
                "grid",
                bad,
                "grid_sample: sampling points must be finite",
            ));
        }
        let x0: Vec<f64> = xs.iter().map(|v| v.floor()).collect();
        let y0: Vec<f64> = ys.iter().map(|v| v.floor()).collect();
        let (dt, dev) = (self.dtype(), self.device());
        let column =
            |v: &[f64]| -> Result<Tensor> { Tensor::from_f64s(v, &[p, 1], dt)?.to_device(dev) };
        let fx = ix.sub(&column(&x0)?)?; // ∈ [0, 1)
        let fy = iy.sub(&column(&y0)?)?;
        let wx = [fx.affine(-1.0, 1.0)?, fx];
        let wy = [fy.affine(-1.0, 1.0)?, fy];
        // Pixels as rows [n·h·w, c], gathered per corner.
        let rows = self.permute(&[0, 2, 3, 1])?.reshape(&[n * h * w, c])?;
        let mut acc: Option<Tensor> = None;
        for (dy, wy) in wy.iter().enumerate() {
            for (dx, wx) in wx.iter().enumerate() {
                let mut idx = Vec::with_capacity(p);
                let mut valid = Vec::with_capacity(p);
                for k in 0..p {
                    let (cx, cy) = (x0[k] + dx as f64, y0[k] + dy as f64);
                    let inside = cx >= 0.0 && cx < w as f64 && cy >= 0.0 && cy < h as f64;
                    let b = k / (ho * wo);
                    idx.push(if inside {
                        (b * h + cy as usize) * w + cx as usize
                    } else {
                        0
                    });
                    valid.push(if inside { 1.0 } else { 0.0 });
                }
                let weight = wx.mul(wy)?.mul(&column(&valid)?)?;
                let term = rows.index_select(0, &idx)?.mul(&weight)?;
                acc = Some(match acc {
                    None => term,
                    Some(a) => a.add(&term)?,
                });
            }
        }
        let Some(out) = acc else {
            unreachable!("four corners");
        };
        out.reshape(&[n, ho, wo, c])?.permute(&[0, 3, 1, 2])
    }

    /// The matrix exponential of this `[…, m, m]` tensor (batched over leading axes), by
    /// scaling and squaring: `exp(A) = (T₁₈(A/2ˢ))^(2ˢ)` with the degree-18 Taylor polynomial
    /// and `s` the least with ‖A/2ˢ‖₁ ≤ ½ over the batch. Accurate to a few ulps times the
    /// conditioning of the squarings (checked against `scipy.linalg.expm` by
    /// `fixtures/gen/conv_ops.py`); its derivative is the exact derivative of this computation.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a non-square or non-finite input.
    pub fn matrix_exp(&self) -> Result<Tensor> {
        let r = self.rank();
        if r < 2 || self.dims()[r - 1] != self.dims()[r - 2] {
            return Err(Error::invalid(
                "matrix",
                self.shape(),
                "matrix_exp takes square matrices [..., m, m]",
            ));
        }
        let m = self.dims()[r - 1];
        let v = self.to_vec_f64()?;
        // Largest 1-norm (max column sum) over the batch.
        let mut norm = 0.0f64;
        for a in v.chunks(m * m.max(1)) {
            for j in 0..m {
                let col: f64 = (0..m).map(|i| a[i * m + j].abs()).sum();
                if !col.is_finite() {
                    return Err(Error::invalid(
                        "matrix",
                        col,
                        "matrix_exp: entries must be finite",
                    ));
                }
                norm = norm.max(col);
            }
        }
        let s = if norm > 0.5 {
            (norm / 0.5).log2().ceil() as i32
        } else {
            0
        };
        let scaled = self.mul_scalar(0.5f64.powi(s))?;
        let eye: Vec<f64> = (0..m * m)
            .map(|k| if k / m == k % m { 1.0 } else { 0.0 })
            .collect();
        let eye = Tensor::from_f64s(&eye, &[m, m], self.dtype())?.to_device(self.device())?;
        // Horner: T = I + B(I + B/2(I + B/3(… (I + B/18)))).
        let mut t = eye.clone();
        for k in (1..=EXPM_DEGREE).rev() {
            t = scaled.matmul(&t)?.mul_scalar(1.0 / k as f64)?.add(&eye)?;
        }
        for _ in 0..s {
            t = t.matmul(&t)?;
        }
        Ok(t)
    }
}
