//! Data-parallel training's process group: the [`World`] of ranks started by `mpirun`, and the
//! collectives training needs from it — a barrier, broadcasts of bytes and of tensors, sums of host
//! scalars, and the bucketed all-reduce-mean of gradients.
//!
//! Backends: MPI (Debian's Open MPI, through `csrc/mpi.c`) carries the rendezvous, every host-side
//! collective and the gradients of CPU runs, so CI tests the data-parallel code on loopback; NCCL
//! ([`nccl`], loaded at run time from the torch wheel) carries the gradients of CUDA runs. libtorch's
//! own process groups are out of reach: the wheel ships `ProcessGroupGloo.hpp` without the gloo
//! headers it includes, and `ProcessGroupNCCL` is a C++ class tch cannot hold.
//!
//! Gradients are averaged by a [`GradReducer`] in buckets of `bucket_mb` (PyTorch DDP's 25 MB by
//! default), each started the moment the backward pass has produced its last gradient, so the
//! communication overlaps the rest of the backward pass (libtorch's post-accumulate-grad hooks,
//! through `csrc/grad_hooks.cpp`).
//!
//! A process not started by a launcher is a world of one: every collective is a no-op, and no MPI
//! call is made, so single-process runs are what they were before data parallelism existed.

pub mod mpi;
mod nccl;
mod reducer;

pub use reducer::GradReducer;

use std::ops::Range;
use std::sync::OnceLock;

use tch::{Device, Kind, Tensor};

use self::mpi::Mpi;
use self::nccl::Nccl;
use crate::{Error, Result};

/// Bucket size in bytes of [`World::broadcast_tensors`]: PyTorch DDP's default `bucket_cap_mb = 25`.
pub const BUCKET_BYTES: usize = 25 << 20;

/// The ranks of one training job and this process's place among them.
pub struct World {
    pub rank: usize,
    pub size: usize,
    /// Rank among the processes on this machine: the GPU this process drives.
    pub local_rank: usize,
    /// Processes on this machine, which share its cores.
    pub local_size: usize,
    /// `None` in a world of one.
    mpi: Option<Mpi>,
    /// Set by [`World::use_device`] for a CUDA run of several ranks.
    nccl: OnceLock<Nccl>,
}

static WORLD: OnceLock<std::result::Result<World, String>> = OnceLock::new();

/// The world size a launcher announced in the environment (`OMPI_COMM_WORLD_SIZE` from Open MPI's
/// `mpirun`), or `None` outside a launcher.
pub fn launcher_world_size() -> Option<usize> {
    std::env::var("OMPI_COMM_WORLD_SIZE").ok()?.parse().ok()
}

/// This process's world, initialised on first use: MPI under a launcher that started more than one
/// process (`mpirun -n N` with N > 1, or Slurm's `srun --mpi=pmix`), a world of one otherwise.
pub fn world() -> Result<&'static World> {
    WORLD
        .get_or_init(|| {
            let launched = match launcher_world_size() {
                Some(n) => n > 1,
                None => std::env::var_os("PMIX_RANK").is_some(),
            };
            if launched { World::launched().map_err(|e| e.to_string()) } else { Ok(World::single()) }
        })
        .as_ref()
        .map_err(|e| Error::Invalid(e.clone()))
}

/// Finalises MPI if this process initialised it; call once at the end of a multi-rank command.
pub fn finalize() -> Result<()> {
    match WORLD.get() {
        Some(Ok(World { mpi: Some(mpi), .. })) => mpi.finalize(),
        _ => Ok(()),
    }
}

impl World {
    fn single() -> World {
        World { rank: 0, size: 1, local_rank: 0, local_size: 1, mpi: None, nccl: OnceLock::new() }
    }

    fn launched() -> Result<World> {
        let mpi = Mpi::init()?;
        let (rank, size, local_rank, local_size) = (mpi.rank, mpi.size, mpi.local_rank, mpi.local_size);
        Ok(World { rank, size, local_rank, local_size, mpi: Some(mpi), nccl: OnceLock::new() })
    }

    /// Whether several ranks train together.
    pub fn is_distributed(&self) -> bool {
        self.size > 1
    }

    /// Rank 0, the one that writes the run folder.
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    fn mpi(&self) -> Option<&Mpi> {
        self.mpi.as_ref()
    }

    /// Prepares the tensor collectives for `device`: NCCL for CUDA in a world of several ranks
    /// (collective: every rank calls it with its own GPU), nothing otherwise.
    pub fn use_device(&self, device: Device) -> Result<()> {
        if let (Some(mpi), Device::Cuda(index)) = (self.mpi(), device)
            && self.nccl.get().is_none()
        {
            let nccl = Nccl::init(mpi, index)?;
            let _ = self.nccl.set(nccl);
        }
        Ok(())
    }

    /// Ends the whole job: for a rank that failed while the others wait in a collective.
    pub fn abort(&self, code: i32) -> ! {
        match self.mpi() {
            Some(mpi) => mpi.abort(code),
            None => std::process::exit(code),
        }
    }

    pub fn barrier(&self) -> Result<()> {
        self.mpi().map_or(Ok(()), Mpi::barrier)
    }

    /// Replaces `bytes` on every rank with rank `root`'s (any length).
    pub fn broadcast_bytes(&self, bytes: &mut Vec<u8>, root: usize) -> Result<()> {
        let Some(mpi) = self.mpi() else { return Ok(()) };
        let mut len = (bytes.len() as u64).to_le_bytes();
        mpi.broadcast(&mut len, root)?;
        bytes.resize(u64::from_le_bytes(len) as usize, 0);
        mpi.broadcast(bytes, root)
    }

    /// In-place sums of host numbers over the world (losses, counts).
    pub fn all_reduce_sum_f64(&self, values: &mut [f64]) -> Result<()> {
        self.mpi().map_or(Ok(()), |mpi| mpi.all_reduce_sum_f64(values))
    }

    /// Gives every tensor rank `root`'s value (the initial parameters), in buckets as above.
    pub fn broadcast_tensors(&self, tensors: &[Tensor], root: usize) -> Result<()> {
        if !self.is_distributed() {
            return Ok(());
        }
        self.bucketed(tensors, |flat| self.broadcast_flat(flat, root))
    }

    /// Copies each bucket of `tensors` into one flat buffer, runs `op` on it and copies it back.
    fn bucketed(&self, tensors: &[Tensor], op: impl Fn(&Tensor) -> Result<()>) -> Result<()> {
        if let Some(t) = tensors.iter().find(|t| t.kind() != Kind::Float) {
            return Err(Error::Invalid(format!("collectives take float32 tensors, got {:?}", t.kind())));
        }
        let numels: Vec<usize> = tensors.iter().map(Tensor::numel).collect();
        tch::no_grad(|| {
            for range in buckets(&numels, BUCKET_BYTES / 4) {
                let group = &tensors[range];
                let flat = Tensor::cat(&group.iter().map(|t| t.detach().reshape([-1])).collect::<Vec<_>>(), 0);
                op(&flat)?;
                let mut at = 0;
                for t in group {
                    let n = t.numel() as i64;
                    t.detach().copy_(&flat.narrow(0, at, n).view_as(t));
                    at += n;
                }
            }
            Ok(())
        })
    }

    /// Starts an in-place sum over the world of a contiguous float32 buffer, which must stay
    /// untouched until [`World::finish_sums`].
    fn start_sum(&self, flat: &Tensor) -> Result<()> {
        if !self.is_distributed() {
            return Ok(());
        }
        match (flat.device(), self.nccl.get(), self.mpi()) {
            (Device::Cuda(_), Some(nccl), _) => nccl.start_all_reduce_sum(flat),
            (Device::Cpu, _, Some(mpi)) => {
                // SAFETY: `flat` is a contiguous float32 CPU tensor that the reducer keeps, unused,
                // until `finish_sums`.
                unsafe { mpi.start_all_reduce_sum_f32(flat.data_ptr().cast(), flat.numel()) }
            }
            (device, ..) => Err(self.no_backend(device)),
        }
    }

    /// Lets MPI advance the sums started on CPU (NCCL's run by themselves on their stream).
    fn progress_sums(&self) -> Result<()> {
        self.mpi().map_or(Ok(()), |mpi| mpi.test_all().map(drop))
    }

    /// Completes every sum started on `device`: waits for MPI's, or makes the default CUDA stream
    /// wait for NCCL's.
    fn finish_sums(&self, device: Device) -> Result<()> {
        if !self.is_distributed() {
            return Ok(());
        }
        match (device, self.nccl.get(), self.mpi()) {
            (Device::Cuda(_), Some(nccl), _) => nccl.join(),
            (_, _, Some(mpi)) => mpi.wait_all(),
            (device, ..) => Err(self.no_backend(device)),
        }
    }

    fn broadcast_flat(&self, flat: &Tensor, root: usize) -> Result<()> {
        match (flat.device(), self.nccl.get(), self.mpi()) {
            (Device::Cuda(_), Some(nccl), _) => nccl.broadcast(flat, root),
            (Device::Cpu, _, Some(mpi)) => {
                // SAFETY: as in `reduce_flat`; the buffer is `numel · 4` bytes.
                let bytes = unsafe { std::slice::from_raw_parts_mut(flat.data_ptr().cast::<u8>(), flat.numel() * 4) };
                mpi.broadcast(bytes, root)
            }
            (device, ..) => Err(self.no_backend(device)),
        }
    }

    fn no_backend(&self, device: Device) -> Error {
        Error::Invalid(format!("rank {}: no collective backend for tensors on {device:?} (World::use_device was not called)", self.rank))
    }
}

/// Splits consecutive tensors of `numels` elements into buckets of at most `cap` elements; a
/// tensor larger than `cap` is a bucket of its own.
fn buckets(numels: &[usize], cap: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut filled) = (0, 0);
    for (i, &n) in numels.iter().enumerate() {
        if i > start && filled + n > cap {
            out.push(start..i);
            (start, filled) = (i, 0);
        }
        filled += n;
    }
    if start < numels.len() {
        out.push(start..numels.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_group_consecutive_tensors_up_to_the_cap() {
        assert_eq!(buckets(&[3, 4, 2, 10, 1, 1], 8), vec![0..2, 2..3, 3..4, 4..6]);
        assert_eq!(buckets(&[8, 8], 8), vec![0..1, 1..2]);
        assert_eq!(buckets(&[], 8), Vec::<Range<usize>>::new());
    }

    #[test]
    fn a_world_of_one_leaves_everything_as_it_is() {
        let w = World::single();
        assert!(!w.is_distributed() && w.is_root());
        let t = Tensor::from_slice(&[1.0f32, 2.0]);
        w.start_sum(&t).unwrap();
        w.finish_sums(t.device()).unwrap();
        w.broadcast_tensors(std::slice::from_ref(&t), 0).unwrap();
        assert_eq!(Vec::<f32>::try_from(&t).unwrap(), vec![1.0, 2.0]);
        let mut v = [1.5];
        w.all_reduce_sum_f64(&mut v).unwrap();
        assert_eq!(v, [1.5]);
        let mut bytes = b"abc".to_vec();
        w.broadcast_bytes(&mut bytes, 0).unwrap();
        assert_eq!(bytes, b"abc");
        w.barrier().unwrap();
    }
}
