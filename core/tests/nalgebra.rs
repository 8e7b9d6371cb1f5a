//! The `nalgebra` feature: states seen as nalgebra matrices without copying, and back.
#![cfg(feature = "nalgebra")]

use keel_core::dynamics::systems::ChainPendulum;
use keel_core::dynamics::Phase;
use keel_core::integrate::StateVector;
use nalgebra::{Matrix2x3, SMatrix};

#[test]
fn a_state_is_a_d_by_n_matrix_per_half_without_copies() {
    let p = ChainPendulum::<f64, 3>::paper().unwrap();
    let mut z = p.state_from_angles(&[0.3, -0.2, 1.1], &[0.0, 0.5, -0.3]);
    let x = z.x_matrix();
    assert_eq!(x.shape(), (2, 3));
    for j in 0..3 {
        for i in 0..2 {
            assert_eq!(x[(i, j)], z.x()[j][i], "node {j}, coordinate {i}");
            assert_eq!(z.p_matrix()[(i, j)], z.p()[j][i]);
        }
    }
    // The views read the state's own memory.
    assert!(core::ptr::eq(x.as_ptr(), z.x().as_ptr().cast()));
    let v = z.vector();
    assert_eq!(v.len(), 12);
    assert_eq!(v.as_slice(), z.as_slice());
    // Writes through the mutable views land in the state.
    z.x_matrix_mut()[(1, 2)] = 7.0;
    z.p_matrix_mut().column_mut(0).fill(-1.0);
    assert_eq!(z.x()[2][1], 7.0);
    assert_eq!(z.p()[0], [-1.0, -1.0]);
    // nalgebra arithmetic on the views: the centre of the three nodes.
    let centre = z.x_matrix().column_sum() / 3.0;
    let want: f64 = (0..3).map(|j| z.x()[j][0]).sum::<f64>() / 3.0;
    assert!((centre[0] - want).abs() < 1e-15);
}

#[test]
fn a_state_is_built_from_matrices() {
    let x = Matrix2x3::new(1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0);
    let p = SMatrix::<f32, 2, 3>::from_fn(|i, j| (10 * i + j) as f32);
    let z = Phase::<f32, 3, 2>::from_matrices(&x, &p);
    assert_eq!(z.x(), &[[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]]);
    assert_eq!(z.p()[2], [2.0, 12.0]);
    assert_eq!(z.x_matrix(), x);
    assert_eq!(z.p_matrix(), p);
}
