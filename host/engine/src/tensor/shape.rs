//! Tensor shapes: rank 0 to 4, row-major, copied by value.

use std::fmt;

use crate::error::{Error, Result};

/// Largest rank a tensor may have.
pub const MAX_RANK: usize = 4;

/// A tensor shape of rank ≤ [`MAX_RANK`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    dims: [usize; MAX_RANK],
    rank: usize,
}

impl Shape {
    /// A shape from its dimensions.
    ///
    /// # Errors
    /// [`Error::Rank`] for more than [`MAX_RANK`] dimensions; [`Error::TooLarge`] for
    /// dimensions whose element count does not fit in a `usize`.
    pub fn new(dims: &[usize]) -> Result<Self> {
        if dims.len() > MAX_RANK {
            return Err(Error::Rank {
                op: "shape",
                rank: dims.len(),
                max: MAX_RANK,
            });
        }
        if dims
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .is_none()
        {
            return Err(Error::TooLarge {
                what: format!("a tensor of shape {dims:?}"),
                bytes: dims.iter().fold(1u128, |n, &d| n.saturating_mul(d as u128)),
            });
        }
        let mut d = [1; MAX_RANK];
        d[..dims.len()].copy_from_slice(dims);
        Ok(Shape {
            dims: d,
            rank: dims.len(),
        })
    }

    /// The rank-0 (scalar) shape.
    pub const fn scalar() -> Self {
        Shape {
            dims: [1; MAX_RANK],
            rank: 0,
        }
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.dims[..self.rank]
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Number of elements (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.dims().iter().product()
    }

    /// Size of dimension `axis`.
    pub fn dim(&self, axis: usize) -> usize {
        self.dims[axis]
    }

    /// Row-major strides.
    pub fn strides(&self) -> [usize; MAX_RANK] {
        let mut s = [0; MAX_RANK];
        let mut acc = 1;
        for i in (0..self.rank).rev() {
            s[i] = acc;
            acc *= self.dims[i];
        }
        s
    }

    /// `(outer, dim, inner)` sizes around `axis`: the tensor viewed as `[outer, dim, inner]`.
    pub fn split_at_axis(&self, axis: usize) -> (usize, usize, usize) {
        let d = self.dims();
        (
            d[..axis].iter().product(),
            d[axis],
            d[axis + 1..].iter().product(),
        )
    }

    /// This shape with dimension `axis` replaced by `size`.
    pub fn with_dim(&self, axis: usize, size: usize) -> Shape {
        let mut s = *self;
        s.dims[axis] = size;
        s
    }

    /// Resolves a possibly negative axis (−1 = last) against the rank.
    ///
    /// # Errors
    /// [`Error::Axis`] naming `op`.
    pub fn axis(&self, op: &'static str, axis: isize) -> Result<usize> {
        let r = self.rank as isize;
        let a = if axis < 0 { axis + r } else { axis };
        if a < 0 || a >= r {
            return Err(Error::Axis {
                op,
                axis,
                shape: *self,
            });
        }
        Ok(a as usize)
    }

    /// The shape both `self` and `other` broadcast to (numpy rules).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] naming `op` and both shapes.
    pub fn broadcast(&self, other: &Shape, op: &'static str) -> Result<Shape> {
        let rank = self.rank.max(other.rank);
        let mut dims = [1; MAX_RANK];
        for i in 0..rank {
            let a = if i + self.rank >= rank {
                self.dims[i + self.rank - rank]
            } else {
                1
            };
            let b = if i + other.rank >= rank {
                other.dims[i + other.rank - rank]
            } else {
                1
            };
            dims[i] = match (a, b) {
                (a, b) if a == b => a,
                (1, b) => b,
                (a, 1) => a,
                _ => {
                    return Err(Error::ShapeMismatch {
                        op,
                        lhs: *self,
                        rhs: *other,
                    })
                }
            };
        }
        Ok(Shape { dims, rank })
    }

    /// Strides for reading a tensor of this shape as if broadcast to `target` (0 where
    /// broadcast), aligned to `target`'s rank.
    pub fn broadcast_strides(&self, target: &Shape) -> [usize; MAX_RANK] {
        let own = self.strides();
        let mut out = [0; MAX_RANK];
        let off = target.rank - self.rank;
        for i in 0..self.rank {
            out[i + off] = if self.dims[i] == 1 && target.dims[i + off] != 1 {
                0
            } else {
                own[i]
            };
        }
        out
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.dims())
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.dims())
    }
}

impl From<&[usize]> for Shape {
    /// Panics above rank 4; use [`Shape::new`] for untrusted input.
    fn from(d: &[usize]) -> Self {
        Shape::new(d).expect("rank ≤ 4")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        let a = Shape::new(&[4, 1, 3]).unwrap();
        let b = Shape::new(&[5, 1]).unwrap();
        assert_eq!(a.broadcast(&b, "add").unwrap().dims(), &[4, 5, 3]);
        let c = Shape::new(&[2, 3]).unwrap();
        assert_eq!(a.broadcast(&c, "add").unwrap().dims(), &[4, 2, 3]);
        let d = Shape::new(&[2, 4]).unwrap();
        let e = a.broadcast(&d, "add").unwrap_err().to_string();
        assert!(
            e.contains("add") && e.contains("[4, 1, 3]") && e.contains("[2, 4]"),
            "{e}"
        );
        assert_eq!(Shape::scalar().broadcast(&c, "mul").unwrap(), c);
    }

    #[test]
    fn strides_and_broadcast_strides() {
        let a = Shape::new(&[2, 3, 4]).unwrap();
        assert_eq!(&a.strides()[..3], &[12, 4, 1]);
        let b = Shape::new(&[3, 1]).unwrap();
        assert_eq!(
            &b.broadcast_strides(&Shape::new(&[2, 3, 4]).unwrap())[..3],
            &[0, 1, 0]
        );
        assert!(Shape::new(&[1, 2, 3, 4, 5]).is_err());
    }
}
