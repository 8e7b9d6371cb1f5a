//! Affine bilinear resampling with PyTorch's `affine_grid` + `grid_sample` conventions.

use crate::{Error, Real, Result};

/// Normalised coordinate of pixel `k` of `n` (`align_corners=True`): `−1 + 2k/(n−1)`, `0` when
/// `n = 1`. Computed as `torch.linspace(-1, 1, n)` does — from `−1` upward for the first half and
/// from `+1` downward for the second — so the grid is symmetric and matches PyTorch's bits.
fn normalised<T: Real>(k: usize, n: usize) -> T {
    if n <= 1 {
        return T::zero();
    }
    let step = T::from_f64(2.0) / T::from_usize(n - 1);
    if k < n / 2 {
        -T::one() + step * T::from_usize(k)
    } else {
        T::one() - step * T::from_usize(n - 1 - k)
    }
}

fn checked_len(what: &'static str, a: usize, b: usize, c: usize) -> Result<usize> {
    a.checked_mul(b)
        .and_then(|ab| ab.checked_mul(c))
        .ok_or(Error::InvalidParameter {
            name: what,
            value: f64::INFINITY,
        })
}

/// Resamples a CHW image through the affine map `θ` (2×3), exactly as PyTorch's
/// `grid_sample(image, affine_grid(θ, size, align_corners=True), mode='bilinear',
/// padding_mode='zeros', align_corners=True)`.
///
/// Output pixel `(i, j)` has normalised coordinates `x = −1 + 2j/(out_w−1)`,
/// `y = −1 + 2i/(out_h−1)` (`0` for a size of 1); it samples the source at
/// `(gx, gy) = θ·(x, y, 1)`, i.e. at pixel coordinates `ix = (gx+1)/2·(w−1)`,
/// `iy = (gy+1)/2·(h−1)`, interpolating bilinearly between the four neighbouring pixels, each
/// outside the image counting as zero. `θ` maps *output* coordinates to *input* coordinates, so
/// the picture moves by its inverse: the rotation matrix `[[cos α, −sin α, 0], [sin α, cos α, 0]]`
/// turns the picture by `α` counter-clockwise as displayed (rows running downwards).
///
/// `image` holds `channels × h × w` scalars, `out` `channels × out_h × out_w`; every channel is
/// warped by the same map. Cost: `O(channels · out_h · out_w)`, no allocation, no scratch.
///
/// # Errors
/// - [`Error::ShapeMismatch`] (`what = "warp_bilinear: image"` or `"warp_bilinear: out"`)
///   when a buffer's length does not match its shape;
/// - [`Error::InvalidParameter`] for a zero `h`, `w`, `out_h` or `out_w` (named), a shape whose
///   length overflows `usize`, or a non-finite entry of `θ` (`"warp_bilinear: theta"`).
#[allow(clippy::too_many_arguments)] // the argument list mirrors PyTorch's (image, θ, size)
pub fn warp_bilinear<T: Real>(
    image: &[T],
    channels: usize,
    h: usize,
    w: usize,
    theta: &[[T; 3]; 2],
    out: &mut [T],
    out_h: usize,
    out_w: usize,
) -> Result<()> {
    for (name, n) in [
        ("warp_bilinear: h", h),
        ("warp_bilinear: w", w),
        ("warp_bilinear: out_h", out_h),
        ("warp_bilinear: out_w", out_w),
    ] {
        if n == 0 {
            return Err(Error::InvalidParameter { name, value: 0.0 });
        }
    }
    let in_len = checked_len("warp_bilinear: image shape", channels, h, w)?;
    let out_len = checked_len("warp_bilinear: out shape", channels, out_h, out_w)?;
    if image.len() != in_len {
        return Err(Error::ShapeMismatch {
            what: "warp_bilinear: image",
            expected: in_len,
            got: image.len(),
        });
    }
    if out.len() != out_len {
        return Err(Error::ShapeMismatch {
            what: "warp_bilinear: out",
            expected: out_len,
            got: out.len(),
        });
    }
    if let Some(&bad) = theta.iter().flatten().find(|x| !x.is_finite()) {
        return Err(Error::InvalidParameter {
            name: "warp_bilinear: theta",
            value: bad.as_f64(),
        });
    }

    let two = T::from_f64(2.0);
    let wm1 = T::from_usize(w - 1);
    let hm1 = T::from_usize(h - 1);
    let in_plane = h * w;
    let out_plane = out_h * out_w;
    // Index of pixel (x, y) when it lies inside the image (x, y whole numbers as T).
    let inside = |x: T, y: T| -> Option<usize> {
        if x >= T::zero() && x <= wm1 && y >= T::zero() && y <= hm1 {
            // In range, so the conversions are exact and cannot fail.
            Some(y.to_usize().unwrap_or(0) * w + x.to_usize().unwrap_or(0))
        } else {
            None
        }
    };
    for i in 0..out_h {
        let y = normalised::<T>(i, out_h);
        for j in 0..out_w {
            let x = normalised::<T>(j, out_w);
            let gx = x * theta[0][0] + y * theta[0][1] + theta[0][2];
            let gy = x * theta[1][0] + y * theta[1][1] + theta[1][2];
            let ix = (gx + T::one()) / two * wm1;
            let iy = (gy + T::one()) / two * hm1;
            let x0 = ix.floor();
            let y0 = iy.floor();
            let x1 = x0 + T::one();
            let y1 = y0 + T::one();
            // PyTorch's order: north-west, north-east, south-west, south-east.
            let corners = [
                (inside(x0, y0), (x1 - ix) * (y1 - iy)),
                (inside(x1, y0), (ix - x0) * (y1 - iy)),
                (inside(x0, y1), (x1 - ix) * (iy - y0)),
                (inside(x1, y1), (ix - x0) * (iy - y0)),
            ];
            let o = i * out_w + j;
            for c in 0..channels {
                let plane = &image[c * in_plane..(c + 1) * in_plane];
                let mut v = T::zero();
                for &(k, weight) in &corners {
                    if let Some(k) = k {
                        v += plane[k] * weight;
                    }
                }
                out[c * out_plane + o] = v;
            }
        }
    }
    Ok(())
}
