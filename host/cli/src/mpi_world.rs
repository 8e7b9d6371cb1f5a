//! `MPI_COMM_WORLD` through rsmpi (the `mpi` crate) over the system's MPI: Keel's
//! [`Collective`] for `mpirun -np N keel …` (built with the `mpi` feature).

use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::{CommunicatorCollectives, Root};
use mpi::Count;

use std::cell::RefCell;

use keel::backend::cuda::nccl;
use keel::backend::Device;
use keel::distributed::Collective;
use keel::error::{Error, Result};
use keel::tensor::Tensor;

/// Whether this rank sums device tensors by NCCL: decided by all ranks together at the first
/// sum ([`Mpi::open_nccl`]) and kept for the run.
enum Nccl {
    /// A communicator on this GPU.
    Open(nccl::Communicator),
    /// Host buffers through MPI.
    Off,
}

thread_local! {
    /// MPI is used from the main thread only (`MPI_THREAD_FUNNELED`), and so is NCCL.
    static NCCL: RefCell<Option<Nccl>> = const { RefCell::new(None) };
}

/// The world communicator of an initialised MPI (the caller keeps the
/// [`mpi::environment::Universe`] alive while it is used; its drop finalises MPI).
#[derive(Clone, Copy, Debug, Default)]
pub struct Mpi;

fn world() -> SimpleCommunicator {
    SimpleCommunicator::world()
}

pub use mpi::environment::Universe;

impl Mpi {
    /// Initialises MPI for a process whose other threads (the engine's pool) do not
    /// communicate (`MPI_THREAD_FUNNELED`); `None` if it already was. Keep the universe
    /// while MPI is used: dropping it finalises MPI.
    pub fn init() -> Option<Universe> {
        mpi::initialize_with_threading(mpi::Threading::Funneled).map(|u| u.0)
    }

    /// The MPI library's first line of `MPI_Get_library_version` (e.g. `Open MPI v4.1.4`).
    pub fn library() -> Option<String> {
        let v = mpi::environment::library_version().ok()?;
        let first = v.lines().next()?.split(',').next()?.trim().to_string();
        (!first.is_empty()).then_some(first)
    }

    /// Ends every rank of the job with `code` (`MPI_Abort`): for a rank that failed while the
    /// others wait in a collective operation.
    pub fn abort(code: i32) -> ! {
        world().abort(code)
    }

    /// Decides, with every other rank, whether device tensors are summed by NCCL: only if every
    /// rank's tensor is on a GPU and every rank can load NCCL — otherwise all sum through host
    /// buffers, and rank 0 says why when GPUs were in use. Rank 0 makes NCCL's unique id and
    /// MPI broadcasts it; each rank then joins on its GPU.
    fn open_nccl(&self, device: Device) -> Result<Nccl> {
        let why = match device {
            Device::Cuda(_) => nccl::library().err(),
            Device::Cpu => Some(String::new()),
        };
        let usable = self.all_gather(u64::from(why.is_none()))?;
        let on_gpus = self.all_gather(u64::from(device != Device::Cpu))?;
        if let Some(r) = usable.iter().position(|&u| u == 0) {
            if on_gpus.iter().all(|&g| g == 0) {
                return Ok(Nccl::Off);
            }
            if let Some(reasons) = self.gather(why.unwrap_or_default().as_bytes())? {
                eprintln!(
                    "keel: summing over MPI on host buffers, not by NCCL: rank {r} of {}: {}",
                    self.size(),
                    match String::from_utf8_lossy(&reasons[r]) {
                        s if s.is_empty() => "its tensors are on the CPU".into(),
                        s => s,
                    }
                );
            }
            return Ok(Nccl::Off);
        }
        let Device::Cuda(ordinal) = device else {
            return Ok(Nccl::Off);
        };
        let mut id = [0u8; 128];
        if self.rank() == 0 {
            id = nccl::unique_id()?;
        }
        world().process_at_rank(0).broadcast_into(&mut id[..]);
        let comm = nccl::Communicator::new(ordinal, self.rank(), self.size(), &id)?;
        if self.rank() == 0 {
            let version = nccl::library().unwrap_or_default();
            eprintln!(
                "keel: gradients summed on the GPUs by NCCL {}.{}.{} ({} ranks)",
                version / 10000,
                version / 100 % 100,
                version % 100,
                self.size()
            );
        }
        Ok(Nccl::Open(comm))
    }
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        world().rank() as usize
    }
    fn size(&self) -> usize {
        world().size() as usize
    }
    fn sum(&self, values: &mut [f64]) -> Result<()> {
        let send = values.to_vec();
        world().all_reduce_into(&send[..], values, SystemOperation::sum());
        Ok(())
    }
    fn share(&self, values: &mut [f64]) -> Result<()> {
        world().process_at_rank(0).broadcast_into(values);
        Ok(())
    }
    fn all_gather(&self, value: u64) -> Result<Vec<u64>> {
        let mut out = vec![0u64; self.size()];
        world().all_gather_into(&value, &mut out[..]);
        Ok(out)
    }
    fn sum_on_device(&self, t: &Tensor) -> Result<Option<Tensor>> {
        NCCL.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                *slot = Some(self.open_nccl(t.device())?);
            }
            match slot.as_ref() {
                Some(Nccl::Open(comm)) => comm.sum(t).map(Some).map_err(Into::into),
                _ => Ok(None),
            }
        })
    }
    fn gather(&self, bytes: &[u8]) -> Result<Option<Vec<Vec<u8>>>> {
        let too_long = || {
            Error::invalid(
                "ranks",
                bytes.len(),
                "a rank's results exceed MPI's 2³¹-byte message",
            )
        };
        let len = Count::try_from(bytes.len()).map_err(|_| too_long())?;
        let w = world();
        let root = w.process_at_rank(0);
        if w.rank() != 0 {
            root.gather_into(&len);
            root.gather_varcount_into(bytes);
            return Ok(None);
        }
        let mut counts = vec![0 as Count; w.size() as usize];
        root.gather_into_root(&len, &mut counts[..]);
        let mut displs = Vec::with_capacity(counts.len());
        let mut total: Count = 0;
        for &c in &counts {
            displs.push(total);
            total = total.checked_add(c).ok_or_else(too_long)?;
        }
        // One byte more than the messages: an empty buffer's null pointer is not a valid
        // argument to MPI_Gatherv even when every rank sends nothing.
        let mut all = vec![0u8; total as usize + 1];
        {
            let mut part = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
            root.gather_varcount_into_root(bytes, &mut part);
        }
        Ok(Some(
            counts
                .iter()
                .zip(&displs)
                .map(|(&c, &d)| all[d as usize..(d + c) as usize].to_vec())
                .collect(),
        ))
    }
}
