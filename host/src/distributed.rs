//! Work spread over several processes (MPI ranks, each with its own memory): the collective
//! operations Keel's loops need, and the data-parallel HMC target.
//!
//! The reference full-batch HMC (`bnn_hmc`, "What Are Bayesian Neural Network Posteriors Really
//! Like?") shards the training rows over hundreds of accelerators and sums the log-likelihood and
//! its gradient over them at every leapfrog step (`pmap` with `lax.psum` in
//! `bnn_hmc/utils/train_utils.py`). [`Sharded`] is that sum for any [`Target`]: each rank's
//! target holds its own rows, and the one reduction per evaluation is a single call
//! ([`Collective::sum`]) on the concatenated `[log L, ∇ log L]`; the model code knows nothing
//! of it. The chain's random choices — the momentum and the Metropolis–Hastings draw — are made on
//! rank 0 and shared ([`Target::agree`]), so every rank holds the same chain.
//!
//! [`Single`] is one process (every operation the identity). The `keel` command built with its
//! `mpi` feature implements [`Collective`] for `MPI_COMM_WORLD` through the `mpi` crate (rsmpi)
//! over the system's MPI (`host/cli/src/mpi_world.rs`), summing tensors on GPUs by NCCL where
//! every rank can.

use crate::backend::hmc::PriorArgs;
use crate::backend::{DType, Device};
use crate::bayes::hmc::{BatchTarget, Target};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The collective operations of a group of processes that run the same program (ranks
/// `0..size`). Every rank must make the same calls in the same order with buffers of the same
/// length; a call that one rank skips blocks the others.
pub trait Collective {
    /// This process's rank, `0..size`.
    fn rank(&self) -> usize;
    /// Number of processes.
    fn size(&self) -> usize;
    /// Replaces `values` by their element-wise sum over the ranks. Every rank receives the same
    /// bits (MPI's reduction of a commutative operation; an implementation that cannot promise
    /// this must reduce on one rank and broadcast).
    ///
    /// # Errors
    /// Communication failures.
    fn sum(&self, values: &mut [f64]) -> Result<()>;
    /// Replaces `values` by rank 0's.
    ///
    /// # Errors
    /// Communication failures.
    fn share(&self, values: &mut [f64]) -> Result<()>;
    /// Every rank's `value`, in rank order, on every rank.
    ///
    /// # Errors
    /// Communication failures.
    fn all_gather(&self, value: u64) -> Result<Vec<u64>>;
    /// Every rank's `bytes` (of any length), in rank order, on rank 0; `None` on the others.
    ///
    /// # Errors
    /// Communication failures; more than 2³¹ bytes from one rank.
    fn gather(&self, bytes: &[u8]) -> Result<Option<Vec<Vec<u8>>>>;
    /// The element-wise sum over the ranks of `t`, computed where `t` lives (a GPU's memory,
    /// by NCCL) when this group can; `None` when it cannot — a tensor on the CPU, no NCCL — and
    /// the caller sums through host buffers ([`Collective::sum`]). Every rank receives the same
    /// values. Every rank must make the call, with a tensor of the same shape and type.
    ///
    /// # Errors
    /// Communication failures.
    fn sum_on_device(&self, t: &Tensor) -> Result<Option<Tensor>> {
        let _ = t;
        Ok(None)
    }
}

/// One process: rank 0 of 1.
#[derive(Clone, Copy, Debug, Default)]
pub struct Single;

impl Collective for Single {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn sum(&self, _: &mut [f64]) -> Result<()> {
        Ok(())
    }
    fn share(&self, _: &mut [f64]) -> Result<()> {
        Ok(())
    }
    fn all_gather(&self, value: u64) -> Result<Vec<u64>> {
        Ok(vec![value])
    }
    fn gather(&self, bytes: &[u8]) -> Result<Option<Vec<Vec<u8>>>> {
        Ok(Some(vec![bytes.to_vec()]))
    }
}

/// The rows `[start, end)` of `rows` that rank `rank` of `size` holds: contiguous blocks whose
/// lengths differ by at most one, in rank order.
///
/// # Errors
/// More ranks than rows (a rank would hold none), or a rank outside `0..size`.
pub fn shard(rows: usize, rank: usize, size: usize) -> Result<(usize, usize)> {
    if size == 0 || rank >= size {
        return Err(Error::invalid(
            "rank",
            rank,
            format!("not a rank of a group of {size}"),
        ));
    }
    if size > rows {
        return Err(Error::invalid(
            "ranks",
            size,
            format!("more ranks than the {rows} training rows: every rank needs at least one"),
        ));
    }
    Ok((rank * rows / size, (rank + 1) * rows / size))
}

/// Which of `items` (members, chains, seeds) rank `rank` of `size` runs: `rank, rank + size, …`,
/// so that gathering the ranks' results and interleaving them restores the order.
pub fn round_robin(items: usize, rank: usize, size: usize) -> impl Iterator<Item = usize> {
    (rank..items).step_by(size.max(1))
}

/// Puts the ranks' result lists (rank `r` holding the results of `round_robin(items, r, size)`)
/// back in item order.
///
/// # Errors
/// Lists that do not match the round-robin split of `items`.
pub fn interleave<T>(per_rank: Vec<Vec<T>>, items: usize) -> Result<Vec<T>> {
    let size = per_rank.len();
    for (r, list) in per_rank.iter().enumerate() {
        let expected = round_robin(items, r, size).count();
        if list.len() != expected {
            return Err(Error::invalid(
                "ranks",
                size,
                format!(
                    "rank {r} returned {} results for its {expected} runs",
                    list.len()
                ),
            ));
        }
    }
    let mut iters: Vec<_> = per_rank.into_iter().map(Vec::into_iter).collect();
    let mut out = Vec::with_capacity(items);
    for i in 0..items {
        // Checked above: rank i % size has one left.
        if let Some(x) = iters[i % size].next() {
            out.push(x);
        }
    }
    Ok(out)
}

/// 64-bit FNV-1a of `bytes`: the fingerprint ranks exchange to check they hold the same data
/// and settings (a check against mistakes, not tampering).
pub fn fingerprint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Encodes lists of f64 vectors for [`Collective::gather`]: the count, then each vector's
/// length and its values, all little-endian.
pub fn encode(vectors: &[Vec<f64>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + vectors.iter().map(|v| 8 + 8 * v.len()).sum::<usize>());
    out.extend_from_slice(&(vectors.len() as u64).to_le_bytes());
    for v in vectors {
        out.extend_from_slice(&(v.len() as u64).to_le_bytes());
        for x in v {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out
}

/// Decodes [`encode`]'s bytes.
///
/// # Errors
/// Bytes that are not such an encoding (cut short, lengths beyond the bytes).
pub fn decode(bytes: &[u8]) -> Result<Vec<Vec<f64>>> {
    let bad = || Error::invalid("ranks", "gathered results", "a rank sent a malformed list");
    let mut words = bytes.chunks_exact(8).map(|c| {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        w
    });
    if !bytes.len().is_multiple_of(8) {
        return Err(bad());
    }
    let next_len = |words: &mut dyn Iterator<Item = [u8; 8]>| {
        words
            .next()
            .map(u64::from_le_bytes)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n <= bytes.len() / 8)
            .ok_or_else(bad)
    };
    let count = next_len(&mut words)?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let len = next_len(&mut words)?;
        let v: Vec<f64> = words.by_ref().take(len).map(f64::from_le_bytes).collect();
        if v.len() != len {
            return Err(bad());
        }
        out.push(v);
    }
    if words.next().is_some() {
        return Err(bad());
    }
    Ok(out)
}

/// A target whose rows are spread over the ranks of `comm`: `local` holds this rank's rows, and
/// the likelihood and gradient are the sums over the ranks — one [`Collective::sum`] per
/// evaluation on host buffers, or, for a target on a GPU when the group can, the gradient summed
/// on the device ([`Collective::sum_on_device`], NCCL) and only the likelihood on the host.
/// The momentum and Metropolis–Hastings draws are rank 0's ([`Target::agree`]), so given the
/// same seed every rank runs the same chain, and that chain is the one a single process runs on
/// all the rows, up to the order of the sum.
pub struct Sharded<'a, T: ?Sized> {
    /// This rank's part of the target.
    pub local: &'a T,
    /// The ranks.
    pub comm: &'a dyn Collective,
}

impl<T: ?Sized> Sharded<'_, T> {
    fn placed(&self, values: &[f64], dims: &[usize], placement: (Device, DType)) -> Result<Tensor> {
        let (device, dtype) = placement;
        Ok(Tensor::from_f64s(values, dims, dtype)?.to_device(device)?)
    }
}

impl<T: Target + ?Sized> Target for Sharded<'_, T> {
    fn dim(&self) -> usize {
        self.local.dim()
    }

    fn placement(&self) -> (Device, DType) {
        self.local.placement()
    }

    fn likelihood_and_gradient(&self, theta: &Tensor) -> Result<(f64, Tensor)> {
        let (ll, g) = self.local.likelihood_and_gradient(theta)?;
        if let Some(g) = self.comm.sum_on_device(&g)? {
            let mut ll = [ll];
            self.comm.sum(&mut ll)?;
            return Ok((ll[0], g));
        }
        let mut buf = Vec::with_capacity(1 + self.dim());
        buf.push(ll);
        buf.extend(g.to_vec_f64()?);
        self.comm.sum(&mut buf)?;
        let g = self.placed(&buf[1..], g.dims(), self.placement())?;
        Ok((buf[0], g))
    }

    fn prior(&self) -> (PriorArgs, f64) {
        self.local.prior()
    }

    fn agree(&self, values: &mut [f64]) -> Result<()> {
        self.comm.share(values)
    }
}

impl<T: BatchTarget + ?Sized> BatchTarget for Sharded<'_, T> {
    fn likelihoods_and_gradients(&self, thetas: &Tensor) -> Result<(Vec<f64>, Tensor)> {
        let (lls, g) = self.local.likelihoods_and_gradients(thetas)?;
        if let Some(g) = self.comm.sum_on_device(&g)? {
            let mut lls = lls;
            self.comm.sum(&mut lls)?;
            return Ok((lls, g));
        }
        let c = lls.len();
        let mut buf = lls;
        buf.extend(g.to_vec_f64()?);
        self.comm.sum(&mut buf)?;
        let g = self.placed(&buf[c..], g.dims(), self.placement())?;
        buf.truncate(c);
        Ok((buf, g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_rows_once_in_order() {
        for rows in [1, 2, 7, 100] {
            for size in 1..=rows.min(6) {
                let mut next = 0;
                for r in 0..size {
                    let (a, b) = shard(rows, r, size).unwrap();
                    assert_eq!(a, next);
                    assert!(b > a && b - a >= rows / size && b - a <= rows / size + 1);
                    next = b;
                }
                assert_eq!(next, rows);
            }
        }
        assert!(shard(3, 0, 4).is_err());
        assert!(shard(10, 4, 4).is_err());
    }

    #[test]
    fn round_robin_results_interleave_back_in_order() {
        for items in 0..9 {
            for size in 1..5 {
                let per_rank: Vec<Vec<usize>> = (0..size)
                    .map(|r| round_robin(items, r, size).collect())
                    .collect();
                assert_eq!(
                    interleave(per_rank, items).unwrap(),
                    (0..items).collect::<Vec<_>>()
                );
            }
        }
        assert!(interleave(vec![vec![0], vec![]], 2).is_err());
    }

    #[test]
    fn encoding_round_trips_and_refuses_damage() {
        let v = vec![vec![1.5, -0.0, f64::NAN], vec![], vec![f64::INFINITY]];
        let bytes = encode(&v);
        let back = decode(&bytes).unwrap();
        assert_eq!(back.len(), 3);
        for (a, b) in v.iter().zip(&back) {
            assert_eq!(
                a.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                b.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            );
        }
        assert!(decode(&bytes[..bytes.len() - 8]).is_err());
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        let mut long = bytes.clone();
        long.extend_from_slice(&[0; 8]);
        assert!(decode(&long).is_err());
        let mut huge = bytes;
        huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode(&huge).is_err());
    }

    /// Two ranks holding the same rows, as one group sees them: sums double.
    struct Twice {
        on_device: bool,
        device_sums: std::cell::Cell<usize>,
    }

    impl Collective for Twice {
        fn rank(&self) -> usize {
            0
        }
        fn size(&self) -> usize {
            2
        }
        fn sum(&self, values: &mut [f64]) -> Result<()> {
            values.iter_mut().for_each(|v| *v *= 2.0);
            Ok(())
        }
        fn share(&self, _: &mut [f64]) -> Result<()> {
            Ok(())
        }
        fn all_gather(&self, value: u64) -> Result<Vec<u64>> {
            Ok(vec![value; 2])
        }
        fn gather(&self, bytes: &[u8]) -> Result<Option<Vec<Vec<u8>>>> {
            Ok(Some(vec![bytes.to_vec(); 2]))
        }
        fn sum_on_device(&self, t: &Tensor) -> Result<Option<Tensor>> {
            if !self.on_device {
                return Ok(None);
            }
            self.device_sums.set(self.device_sums.get() + 1);
            Ok(Some(t.mul_scalar(2.0)?))
        }
    }

    /// `log L = −½‖θ‖²` for one rank's rows.
    struct Half;

    impl Target for Half {
        fn dim(&self) -> usize {
            3
        }
        fn likelihood_and_gradient(&self, theta: &Tensor) -> Result<(f64, Tensor)> {
            let v = theta.to_vec_f64()?;
            let ll = -0.5 * v.iter().map(|x| x * x).sum::<f64>();
            Ok((ll, theta.mul_scalar(-1.0)?))
        }
        fn prior(&self) -> (PriorArgs, f64) {
            (PriorArgs::NONE, 1.0)
        }
    }

    /// A sharded target sums the gradient where the group can (only the likelihood then goes
    /// through host buffers) and through host buffers where it cannot — the same numbers.
    #[test]
    fn sharded_sums_on_the_device_where_the_group_can() {
        let theta = Tensor::from_f64s(&[1.0, -2.0, 0.5], &[3], DType::F64).unwrap();
        for on_device in [false, true] {
            let comm = Twice {
                on_device,
                device_sums: Default::default(),
            };
            let t = Sharded {
                local: &Half,
                comm: &comm,
            };
            let (ll, g) = t.likelihood_and_gradient(&theta).unwrap();
            assert_eq!(ll, -2.0 * 0.5 * 5.25);
            assert_eq!(g.to_vec_f64().unwrap(), [-2.0, 4.0, -1.0]);
            assert_eq!(comm.device_sums.get(), usize::from(on_device));
        }
    }

    #[test]
    fn fingerprints_differ_for_different_bytes() {
        assert_ne!(fingerprint(b"digits.csv"), fingerprint(b"digits.csw"));
        assert_eq!(fingerprint(b""), 0xcbf2_9ce4_8422_2325);
    }
}
