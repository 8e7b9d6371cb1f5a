//! The phase-space state of a system of `N` nodes in `D` dimensions.

use crate::integrate::StateVector;
use crate::real::Real;

/// Positions and a second part of the same shape: momenta `p = M ẋ` for the Hamiltonian form,
/// velocities `v = ẋ` for the Lagrangian form (the type does not know which; the functions that
/// produce a `Phase` say).
///
/// Stored as one contiguous array so integrators can treat it as a flat vector of `2·N·D`
/// scalars ([`StateVector::as_slice`]); the flat order is x₀…x_{N−1} then p₀…p_{N−1}, each
/// node's coordinates in order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Phase<T, const N: usize, const D: usize> {
    parts: [[[T; D]; N]; 2],
}

impl<T: Real, const N: usize, const D: usize> Phase<T, N, D> {
    /// A state from positions and momenta (or velocities).
    #[inline]
    pub const fn new(x: [[T; D]; N], p: [[T; D]; N]) -> Self {
        Self { parts: [x, p] }
    }

    /// The all-zero state.
    #[inline]
    pub fn zeros() -> Self {
        Self {
            parts: [[[T::ZERO; D]; N]; 2],
        }
    }

    /// Node positions.
    #[inline]
    pub fn x(&self) -> &[[T; D]; N] {
        &self.parts[0]
    }

    /// Momenta (Hamiltonian form) or velocities (Lagrangian form).
    #[inline]
    pub fn p(&self) -> &[[T; D]; N] {
        &self.parts[1]
    }

    /// Mutable node positions.
    #[inline]
    pub fn x_mut(&mut self) -> &mut [[T; D]; N] {
        &mut self.parts[0]
    }

    /// Mutable momenta (or velocities).
    #[inline]
    pub fn p_mut(&mut self) -> &mut [[T; D]; N] {
        &mut self.parts[1]
    }

    /// Both parts at once, mutably.
    #[inline]
    pub fn split_mut(&mut self) -> (&mut [[T; D]; N], &mut [[T; D]; N]) {
        let [x, p] = &mut self.parts;
        (x, p)
    }

    /// Converts every component with `f` (e.g. between `f64` and `f32`).
    pub fn map<U: Real>(&self, mut f: impl FnMut(T) -> U) -> Phase<U, N, D> {
        let mut out = Phase::<U, N, D>::zeros();
        for (o, i) in out.as_mut_slice().iter_mut().zip(self.as_slice()) {
            *o = f(*i);
        }
        out
    }
}

impl<T: Real, const N: usize, const D: usize> StateVector<T> for Phase<T, N, D> {
    #[inline]
    fn as_slice(&self) -> &[T] {
        self.parts.as_flattened().as_flattened()
    }
    #[inline]
    fn as_mut_slice(&mut self) -> &mut [T] {
        self.parts.as_flattened_mut().as_flattened_mut()
    }
    #[inline]
    fn zeroed() -> Self {
        Self::zeros()
    }
}

/// Views of a state as `nalgebra` matrices, without copying: the positions (or momenta) of `N`
/// nodes in `D` dimensions are laid out as `[[T; D]; N]`, which is exactly nalgebra's
/// column-major `D × N` matrix — column `j` is node `j`.
#[cfg(feature = "nalgebra")]
impl<T: Real + nalgebra::Scalar, const N: usize, const D: usize> Phase<T, N, D> {
    /// The positions as a `D × N` matrix view (column `j` = node `j`).
    #[inline]
    pub fn x_matrix(&self) -> nalgebra::MatrixView<'_, T, nalgebra::Const<D>, nalgebra::Const<N>> {
        nalgebra::MatrixView::<T, nalgebra::Const<D>, nalgebra::Const<N>>::from_slice(
            self.parts[0].as_flattened(),
        )
    }

    /// The momenta (or velocities) as a `D × N` matrix view.
    #[inline]
    pub fn p_matrix(&self) -> nalgebra::MatrixView<'_, T, nalgebra::Const<D>, nalgebra::Const<N>> {
        nalgebra::MatrixView::<T, nalgebra::Const<D>, nalgebra::Const<N>>::from_slice(
            self.parts[1].as_flattened(),
        )
    }

    /// The positions as a mutable `D × N` matrix view.
    #[inline]
    pub fn x_matrix_mut(
        &mut self,
    ) -> nalgebra::MatrixViewMut<'_, T, nalgebra::Const<D>, nalgebra::Const<N>> {
        nalgebra::MatrixViewMut::<T, nalgebra::Const<D>, nalgebra::Const<N>>::from_slice(
            self.parts[0].as_flattened_mut(),
        )
    }

    /// The momenta (or velocities) as a mutable `D × N` matrix view.
    #[inline]
    pub fn p_matrix_mut(
        &mut self,
    ) -> nalgebra::MatrixViewMut<'_, T, nalgebra::Const<D>, nalgebra::Const<N>> {
        nalgebra::MatrixViewMut::<T, nalgebra::Const<D>, nalgebra::Const<N>>::from_slice(
            self.parts[1].as_flattened_mut(),
        )
    }

    /// The whole state `(x, p)` as one vector view of `2·N·D` entries (positions first).
    #[inline]
    pub fn vector(&self) -> nalgebra::DVectorView<'_, T> {
        let flat = self.parts.as_flattened().as_flattened();
        nalgebra::DVectorView::from_slice(flat, flat.len())
    }

    /// A state from `D × N` matrices of positions and momenta (column `j` = node `j`).
    #[inline]
    pub fn from_matrices(x: &nalgebra::SMatrix<T, D, N>, p: &nalgebra::SMatrix<T, D, N>) -> Self {
        let node = |m: &nalgebra::SMatrix<T, D, N>, j: usize| -> [T; D] {
            core::array::from_fn(|i| m[(i, j)])
        };
        Self::new(
            core::array::from_fn(|j| node(x, j)),
            core::array::from_fn(|j| node(p, j)),
        )
    }
}
