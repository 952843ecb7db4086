//! NCCL for the gradients of CUDA runs, loaded at run time: `libnccl.so.2` as the process already
//! has it (libtorch_cuda links the torch wheel's copy), else the wheel's `nvidia/nccl/lib` found at
//! build time, else the system's. Its unique id is broadcast through MPI, so `mpirun` is the one
//! launcher and rendezvous for CPU and GPU runs alike.
//!
//! **Untested on a GPU**: no GPU was available to this project when it was written; it compiles
//! and its CPU-side logic is shared with the tested MPI path, but no NCCL call has been run.
//!
//! Collectives are enqueued on CUDA's legacy default stream (a null `cudaStream_t`). That is
//! libtorch's current stream as long as nobody selects another (txfm never does; tch cannot), so
//! they run after the backward kernels that produced the gradients and before the optimiser's,
//! with no host synchronisation.

use std::ffi::{c_char, c_int, c_void, CStr, CString};

use tch::{Device, Kind, Tensor};

use super::mpi::Mpi;
use crate::{Error, Result};

/// `ncclUniqueId`: 128 opaque bytes (NCCL_UNIQUE_ID_BYTES), passed by value.
#[repr(C)]
#[derive(Clone, Copy)]
struct UniqueId {
    internal: [c_char; 128],
}

type Comm = *mut c_void;
/// `ncclFloat32` and `ncclSum` of nccl.h, stable across NCCL 2.x.
const NCCL_FLOAT32: c_int = 7;
const NCCL_SUM: c_int = 0;

type GetUniqueId = unsafe extern "C" fn(*mut UniqueId) -> c_int;
type CommInitRank = unsafe extern "C" fn(*mut Comm, c_int, UniqueId, c_int) -> c_int;
type AllReduce = unsafe extern "C" fn(*const c_void, *mut c_void, usize, c_int, c_int, Comm, *mut c_void) -> c_int;
type Broadcast = unsafe extern "C" fn(*const c_void, *mut c_void, usize, c_int, c_int, Comm, *mut c_void) -> c_int;
type ErrorString = unsafe extern "C" fn(c_int) -> *const c_char;
type SetDevice = unsafe extern "C" fn(c_int) -> c_int;

/// A communicator over every rank, each on its own GPU.
pub struct Nccl {
    comm: Comm,
    all_reduce: AllReduce,
    broadcast: Broadcast,
    error_string: ErrorString,
    device: Device,
}

// SAFETY: an NCCL communicator may be used from any thread as long as calls are not concurrent;
// `World` only uses it from the training loop.
unsafe impl Send for Nccl {}
unsafe impl Sync for Nccl {}

fn dlerror() -> String {
    // SAFETY: dlerror returns a thread-local message or null.
    let e = unsafe { libc::dlerror() };
    if e.is_null() { "unknown error".into() } else { unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned() }
}

fn open(names: &[&str]) -> Result<*mut c_void> {
    let mut tried = Vec::new();
    for name in names {
        let c = CString::new(*name).expect("no NUL in library names");
        // SAFETY: loading a shared library; the handle is kept for the life of the process.
        let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        if !handle.is_null() {
            return Ok(handle);
        }
        tried.push(format!("{name}: {}", dlerror()));
    }
    Err(Error::Invalid(format!("cannot load NCCL ({})", tried.join("; "))))
}

fn symbol<T: Copy>(handle: *mut c_void, name: &str) -> Result<T> {
    let c = CString::new(name).expect("no NUL in symbol names");
    // SAFETY: looking a symbol up; the caller states its C signature as `T`, a fn pointer type.
    let p = unsafe { libc::dlsym(handle, c.as_ptr()) };
    if p.is_null() {
        return Err(Error::Invalid(format!("NCCL/CUDA symbol {name} not found: {}", dlerror())));
    }
    // SAFETY: `T` is a function pointer type of the same size as a data pointer on Linux.
    Ok(unsafe { std::mem::transmute_copy(&p) })
}

impl Nccl {
    /// Makes this rank's communicator on CUDA device `index`: rank 0 draws the unique id and MPI
    /// broadcasts it. Collective: every rank must call it.
    pub fn init(mpi: &Mpi, index: usize) -> Result<Nccl> {
        let lib = open(&["libnccl.so.2", env!("TXFM_WHEEL_NCCL"), "libnccl.so"])?;
        let get_unique_id: GetUniqueId = symbol(lib, "ncclGetUniqueId")?;
        let comm_init_rank: CommInitRank = symbol(lib, "ncclCommInitRank")?;
        let error_string: ErrorString = symbol(lib, "ncclGetErrorString")?;
        // libtorch_cuda has loaded the CUDA runtime; NCCL binds a communicator to the current device.
        let set_device: SetDevice = symbol(libc::RTLD_DEFAULT, "cudaSetDevice")?;
        // SAFETY: selects an existing device (the trainer resolved it through libtorch).
        let code = unsafe { set_device(index as c_int) };
        if code != 0 {
            return Err(Error::Invalid(format!("cudaSetDevice({index}) failed with CUDA error {code}")));
        }
        let mut id = UniqueId { internal: [0; 128] };
        if mpi.rank == 0 {
            // SAFETY: writes the 128-byte id.
            nccl_check(error_string, "ncclGetUniqueId", unsafe { get_unique_id(&mut id) })?;
        }
        // SAFETY: `UniqueId` is plain bytes.
        let bytes = unsafe { std::slice::from_raw_parts_mut(id.internal.as_mut_ptr().cast::<u8>(), 128) };
        mpi.broadcast(bytes, 0)?;
        let mut comm: Comm = std::ptr::null_mut();
        // SAFETY: every rank passes the same id, the world size and its own rank.
        nccl_check(error_string, "ncclCommInitRank", unsafe { comm_init_rank(&mut comm, mpi.size as c_int, id, mpi.rank as c_int) })?;
        Ok(Nccl {
            comm,
            all_reduce: symbol(lib, "ncclAllReduce")?,
            broadcast: symbol(lib, "ncclBroadcast")?,
            error_string,
            device: Device::Cuda(index),
        })
    }

    fn check_tensor(&self, t: &Tensor) -> Result<()> {
        if t.device() != self.device || t.kind() != Kind::Float || !t.is_contiguous() {
            return Err(Error::Invalid(format!(
                "NCCL collectives take contiguous float32 tensors on {:?}, got {:?} {:?}",
                self.device,
                t.kind(),
                t.device()
            )));
        }
        Ok(())
    }

    /// In-place sum over the world of a contiguous float32 tensor on this rank's GPU.
    pub fn all_reduce_sum(&self, t: &Tensor) -> Result<()> {
        self.check_tensor(t)?;
        let p = t.data_ptr();
        // SAFETY: `p` holds `numel` floats on this communicator's device; in place is allowed.
        let code = unsafe { (self.all_reduce)(p, p, t.numel(), NCCL_FLOAT32, NCCL_SUM, self.comm, std::ptr::null_mut()) };
        nccl_check(self.error_string, "ncclAllReduce", code)
    }

    /// Broadcasts a contiguous float32 tensor on this rank's GPU from `root`, in place.
    pub fn broadcast(&self, t: &Tensor, root: usize) -> Result<()> {
        self.check_tensor(t)?;
        let p = t.data_ptr();
        // SAFETY: as in `all_reduce_sum`.
        let code = unsafe { (self.broadcast)(p, p, t.numel(), NCCL_FLOAT32, root as c_int, self.comm, std::ptr::null_mut()) };
        nccl_check(self.error_string, "ncclBroadcast", code)
    }
}

fn nccl_check(error_string: ErrorString, what: &str, code: c_int) -> Result<()> {
    if code == 0 {
        return Ok(());
    }
    // SAFETY: NCCL returns a static string for any result code.
    let text = unsafe { CStr::from_ptr(error_string(code)) }.to_string_lossy();
    Err(Error::Invalid(format!("{what} failed: {text} (NCCL result {code})")))
}
