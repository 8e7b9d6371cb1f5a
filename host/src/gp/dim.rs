//! The input dimension: known at run time on the host, a const generic `D` in the core's
//! models (`keel_core::gp`). `by_dim!` dispatches from one to the other.

/// Largest input dimension of the exact GP (SKI/WISKI: 3).
pub const MAX_EXACT_DIM: usize = 8;

/// Row `i` of a row-major `[n, D]` matrix.
pub(crate) fn row<const D: usize>(x: &[f64], i: usize) -> [f64; D] {
    let mut r = [0.0; D];
    r.copy_from_slice(&x[i * D..(i + 1) * D]);
    r
}

/// Calls `f::<D>(args)` for the run-time dimension `dim` (1 to `max`), or returns
/// [`Error::InvalidInput`](crate::error::Error::InvalidInput) naming the input columns.
macro_rules! by_dim {
    ($dim:expr, $max:literal, $f:ident ( $($arg:expr),* )) => {
        match $dim {
            1 => $f::<1>($($arg),*),
            2 => $f::<2>($($arg),*),
            3 => $f::<3>($($arg),*),
            4 if $max >= 4 => $f::<4>($($arg),*),
            5 if $max >= 5 => $f::<5>($($arg),*),
            6 if $max >= 6 => $f::<6>($($arg),*),
            7 if $max >= 7 => $f::<7>($($arg),*),
            8 if $max >= 8 => $f::<8>($($arg),*),
            d => Err($crate::error::Error::invalid(
                "input columns",
                d,
                format!("supported: 1 to {}", $max),
            )),
        }
    };
}
