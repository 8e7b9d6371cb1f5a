//! Matrix products through the `gemm` crate (cache-blocked, SIMD, multi-threaded above its own
//! work threshold). Transposed operands are passed as swapped strides, never copied.
//!
//! This is the host's one `unsafe` site outside the CUDA launch module: `gemm::gemm` takes raw
//! pointers and strides ([`matmul`] for the engine's products, [`gemm_into`] for kernels that
//! run their own small products).

use super::float::Float;

/// Shape of one product: `C[m×n] = op(A)[m×k] · op(B)[k×n]`, `op` = transpose when flagged.
#[derive(Clone, Copy, Debug)]
pub struct MatmulDims {
    /// Rows of the result.
    pub m: usize,
    /// Columns of the result.
    pub n: usize,
    /// Inner dimension.
    pub k: usize,
    /// `A` is stored `[k, m]` and used transposed.
    pub ta: bool,
    /// `B` is stored `[n, k]` and used transposed.
    pub tb: bool,
}

/// Products of fewer multiply–adds than this (`m·n·k`, as the `gemm` crate counts its blocks)
/// run on the calling thread; larger ones on rayon's pool. The crate's default, 48·48·256 ≈ 0.6 M,
/// sends a training step's products of a few million multiply–adds to the pool, whose wake-up
/// and wait cost more than the second thread saves on 2 vCPUs: side by side
/// (`cargo bench -p keel-benches --bench engine`, AMD EPYC Zen 5, 2 vCPUs) `matmul/f32/128`
/// (2.1 M) takes 16.2 µs on one thread against 20.2 µs on two, and `mlp_step` (its largest
/// product 128·256·256 = 8.4 M) 365 µs against 516 µs, while `matmul/f32/256` (16.8 M) gains
/// from two (80 against 125 µs). So the threshold lies between those two sizes; set once, at
/// the first product (it is the crate's global setting). It counts multiply–adds whatever the
/// type: counting an `f64` one twice sent the digits HMC leapfrog's two products of 1617·64·64
/// to two threads, and the step from 606–653 to 828–1018 µs.
const PARALLEL_MACS: usize = 12 << 20;

/// `batch` products (`a_stride`/`b_stride` elements between operands, 0 to broadcast one operand
/// across the batch), each written row-major into consecutive `m·n` blocks of the result;
/// products of `PARALLEL_MACS` multiply–adds or more on rayon's pool — the same bits as on one
/// thread (`gemm` splits the output, never a sum; tested).
pub fn matmul<T: Float>(
    a: &[T],
    a_stride: usize,
    b: &[T],
    b_stride: usize,
    batch: usize,
    d: MatmulDims,
) -> Vec<T> {
    static THRESHOLD: std::sync::Once = std::sync::Once::new();
    THRESHOLD.call_once(|| gemm::set_threading_threshold(PARALLEL_MACS));
    matmul_with(
        a,
        a_stride,
        b,
        b_stride,
        batch,
        d,
        gemm::Parallelism::Rayon(0),
    )
}

/// [`matmul`] with the parallelism given.
fn matmul_with<T: Float>(
    a: &[T],
    a_stride: usize,
    b: &[T],
    b_stride: usize,
    batch: usize,
    d: MatmulDims,
    par: gemm::Parallelism,
) -> Vec<T> {
    let MatmulDims { m, n, k, ta, tb } = d;
    let len = batch * m * n;
    let mut out = T::take(len);
    if m == 0 || n == 0 || k == 0 {
        out.resize(len, T::ZERO); // empty, or empty sums
        return out;
    }
    // Row/column strides of the logical operands.
    let (a_rs, a_cs) = if ta {
        (1isize, m as isize)
    } else {
        (k as isize, 1isize)
    };
    let (b_rs, b_cs) = if tb {
        (1isize, k as isize)
    } else {
        (n as isize, 1isize)
    };
    assert!(
        a.len() >= (batch - 1) * a_stride + m * k && b.len() >= (batch - 1) * b_stride + k * n,
        "matmul operand sizes"
    );
    // The products are written straight into the buffer's spare capacity: no zero fill first.
    let spare = &mut out.spare_capacity_mut()[..len];
    for (i, c) in spare.chunks_exact_mut(m * n).enumerate() {
        let pa = a[i * a_stride..].as_ptr();
        let pb = b[i * b_stride..].as_ptr();
        // SAFETY: `gemm::gemm::<T>(m, n, k, dst, dst_cs, dst_rs, read_dst, lhs, lhs_cs, lhs_rs,
        // rhs, rhs_cs, rhs_rs, alpha, beta, …)`: `c` holds exactly m·n (uninitialised)
        // elements written with row stride n and column stride 1; the operands were checked
        // above to hold the m·k and k·n elements their strides reach from `pa`/`pb`;
        // `read_dst = false`, so `dst` is only written and `alpha` is unused: `c = beta·A·B`
        // with beta = 1.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr().cast::<T>(),
                1,
                n as isize,
                false,
                pa,
                a_cs,
                a_rs,
                pb,
                b_cs,
                b_rs,
                T::ZERO,
                T::ONE,
                false,
                false,
                false,
                par,
            );
        }
    }
    // SAFETY: the loop above had gemm write every one of the first `len` elements (batch
    // blocks of m·n, m, n, k ≥ 1), and `take` returned a buffer with capacity ≥ len.
    unsafe { out.set_len(len) };
    out
}

/// The furthest element a `[rows, cols]` operand with strides `[row, col]` reaches, plus one.
fn reach([rows, cols]: [usize; 2], [rs, cs]: [usize; 2]) -> usize {
    (rows - 1) * rs + (cols - 1) * cs + 1
}

/// One product `dst[m×n] = a[m×k] · b[k×n]` on the calling thread, every operand given by its
/// `[row, column]` element strides (so transposes are stride swaps), `dst` overwritten. For
/// kernels that run many small products from their own parallel tasks (the convolutions).
///
/// # Panics
/// If a stride reaches past its slice.
pub fn gemm_into<T: Float>(
    dst: &mut [T],
    dst_s: [usize; 2],
    a: &[T],
    a_s: [usize; 2],
    b: &[T],
    b_s: [usize; 2],
    [m, n, k]: [usize; 3],
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                dst[i * dst_s[0] + j * dst_s[1]] = T::ZERO;
            }
        }
        return;
    }
    assert!(
        dst.len() >= reach([m, n], dst_s)
            && a.len() >= reach([m, k], a_s)
            && b.len() >= reach([k, n], b_s),
        "gemm_into operand sizes"
    );
    let is = |v: usize| v as isize;
    // SAFETY: `gemm::gemm::<T>(m, n, k, dst, dst_cs, dst_rs, read_dst, lhs, lhs_cs, lhs_rs,
    // rhs, rhs_cs, rhs_rs, alpha, beta, …)`: the assert above checked that every element the
    // strides reach from each pointer lies in its slice; `dst` is exclusively borrowed;
    // `read_dst = false`, so `dst` is only written and `alpha` is unused: `dst = beta·A·B`
    // with beta = 1.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            is(dst_s[1]),
            is(dst_s[0]),
            false,
            a.as_ptr(),
            is(a_s[1]),
            is(a_s[0]),
            b.as_ptr(),
            is(b_s[1]),
            is(b_s[0]),
            T::ZERO,
            T::ONE,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A product on rayon's pool returns the bits of the same product on one thread: `gemm`
    /// splits the output among threads, never a sum (the shapes of the digits MLP's leapfrog,
    /// both transposes, and a batch).
    #[test]
    fn threads_do_not_change_a_product() {
        // Every product handed to the pool runs there while this test runs: the crate's threshold
        // is process-wide, so `matmul` sets it first (its once-only setting) and the test
        // restores it (other tests meanwhile run their products on two threads: the same bits).
        let one = MatmulDims {
            m: 1,
            n: 1,
            k: 1,
            ta: false,
            tb: false,
        };
        matmul(&[1.0f64], 0, &[1.0f64], 0, 1, one);
        gemm::set_threading_threshold(0);
        fn check<T: Float>(batch: usize, d: MatmulDims) {
            let wave = |n: usize, f: f64| -> Vec<T> {
                (0..n).map(|i| T::from_f64((f * i as f64).sin())).collect()
            };
            let (a, b) = (wave(batch * d.m * d.k, 0.37), wave(batch * d.k * d.n, 0.91));
            let (sa, sb) = (d.m * d.k, d.k * d.n);
            let one = matmul_with(&a, sa, &b, sb, batch, d, gemm::Parallelism::None);
            let pool = matmul_with(&a, sa, &b, sb, batch, d, gemm::Parallelism::Rayon(0));
            assert!(
                one.iter()
                    .zip(&pool)
                    .all(|(x, y)| x.to_f64().to_bits() == y.to_f64().to_bits()),
                "{d:?}"
            );
        }
        let dims = |m, n, k, ta, tb| MatmulDims { m, n, k, ta, tb };
        check::<f64>(1, dims(1617, 64, 64, false, false));
        check::<f64>(1, dims(64, 64, 1617, true, false));
        check::<f64>(1, dims(1617, 64, 10, false, true));
        check::<f32>(1, dims(300, 200, 700, false, false));
        check::<f32>(3, dims(130, 150, 300, true, true));
        gemm::set_threading_threshold(PARALLEL_MACS);
    }

    fn naive(a: &[f64], b: &[f64], d: MatmulDims) -> Vec<f64> {
        let mut c = vec![0.0; d.m * d.n];
        for i in 0..d.m {
            for j in 0..d.n {
                for p in 0..d.k {
                    let av = if d.ta { a[p * d.m + i] } else { a[i * d.k + p] };
                    let bv = if d.tb { b[j * d.k + p] } else { b[p * d.n + j] };
                    c[i * d.n + j] += av * bv;
                }
            }
        }
        c
    }

    #[test]
    fn all_transpose_combinations_match_the_naive_product() {
        let (m, n, k) = (5, 7, 3);
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.91).cos()).collect();
        for ta in [false, true] {
            for tb in [false, true] {
                let d = MatmulDims { m, n, k, ta, tb };
                let got = matmul(&a, 0, &b, 0, 1, d);
                let want = naive(&a, &b, d);
                for (x, y) in got.iter().zip(&want) {
                    assert!((x - y).abs() < 1e-14, "ta={ta} tb={tb}");
                }
            }
        }
    }

    #[test]
    fn batched_products_overwrite_a_reused_buffer() {
        // A pooled buffer of the result's length, full of NaN: the products must not read it.
        let (m, n, k, batch) = (4, 6, 5, 3);
        f64::give(vec![f64::NAN; batch * m * n]);
        let a: Vec<f64> = (0..batch * m * k)
            .map(|i| (i as f64 * 0.37).sin())
            .collect();
        let b: Vec<f64> = (0..batch * k * n)
            .map(|i| (i as f64 * 0.91).cos())
            .collect();
        let d = MatmulDims {
            m,
            n,
            k,
            ta: false,
            tb: true,
        };
        let got = matmul(&a, m * k, &b, k * n, batch, d);
        assert_eq!(got.len(), batch * m * n);
        for i in 0..batch {
            let want = naive(&a[i * m * k..][..m * k], &b[i * k * n..][..k * n], d);
            for (x, y) in got[i * m * n..][..m * n].iter().zip(&want) {
                assert!((x - y).abs() < 1e-14, "batch {i}: {x} vs {y}");
            }
        }
    }
}
