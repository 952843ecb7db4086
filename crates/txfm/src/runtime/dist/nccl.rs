//! NCCL for the gradients of CUDA runs, loaded at run time: `libnccl.so.2` as the process already
//! has it (libtorch_cuda links the torch wheel's copy), else the wheel's `nvidia/nccl/lib` found at
//! build time, else the system's. Its unique id is broadcast through MPI, so `mpirun` is the one
//! launcher and rendezvous for CPU and GPU runs alike. The CUDA runtime calls it needs (streams and
//! events) are looked up in the CUDA runtime libtorch_cuda has loaded.
//!
//! **Untested on a GPU**: no GPU was available to this project when it was written. What runs
//! without one is tested: the library and every symbol load, `ncclGetVersion` and
//! `ncclGetUniqueId` answer; the bucket logic around it is the one the MPI path tests.
//!
//! Streams: libtorch's kernels run on CUDA's legacy default stream (a null `cudaStream_t`; txfm
//! never selects another, and tch cannot). [`Nccl::broadcast`] (of the initial weights) is
//! enqueued there, after the kernels that wrote their buffers. The
//! gradient buckets' sums ([`Nccl::start_all_reduce_sum`]) run on a stream of their own, which
//! waits on an event recorded on the default stream, so they overlap the rest of the backward
//! pass; [`Nccl::join`] makes the default stream wait for them. No call synchronises the host.

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
type GetVersion = unsafe extern "C" fn(*mut c_int) -> c_int;
type SetDevice = unsafe extern "C" fn(c_int) -> c_int;
type Stream = *mut c_void;
type Event = *mut c_void;
type StreamCreateWithFlags = unsafe extern "C" fn(*mut Stream, u32) -> c_int;
type EventCreateWithFlags = unsafe extern "C" fn(*mut Event, u32) -> c_int;
type EventRecord = unsafe extern "C" fn(Event, Stream) -> c_int;
type StreamWaitEvent = unsafe extern "C" fn(Stream, Event, u32) -> c_int;
/// `cudaStreamNonBlocking`: no implicit synchronisation with the legacy default stream.
const CUDA_STREAM_NON_BLOCKING: u32 = 1;
/// `cudaEventDisableTiming`: the cheapest event, for ordering only.
const CUDA_EVENT_DISABLE_TIMING: u32 = 2;
/// CUDA's legacy default stream, libtorch's default.
const DEFAULT_STREAM: Stream = std::ptr::null_mut();

/// NCCL's and the CUDA runtime's entry points, resolved once.
#[derive(Clone, Copy)]
pub(super) struct NcclLib {
    get_unique_id: GetUniqueId,
    comm_init_rank: CommInitRank,
    all_reduce: AllReduce,
    broadcast: Broadcast,
    error_string: ErrorString,
    get_version: GetVersion,
    set_device: SetDevice,
    stream_create: StreamCreateWithFlags,
    event_create: EventCreateWithFlags,
    event_record: EventRecord,
    stream_wait_event: StreamWaitEvent,
}

impl NcclLib {
    /// Loads NCCL and looks every symbol up (NCCL's in its library, the CUDA runtime's in the
    /// process, where libtorch_cuda put it).
    pub(super) fn load() -> Result<NcclLib> {
        let lib = open(&["libnccl.so.2", env!("TXFM_WHEEL_NCCL"), "libnccl.so"])?;
        let cuda = libc::RTLD_DEFAULT;
        Ok(NcclLib {
            get_unique_id: symbol(lib, "ncclGetUniqueId")?,
            comm_init_rank: symbol(lib, "ncclCommInitRank")?,
            all_reduce: symbol(lib, "ncclAllReduce")?,
            broadcast: symbol(lib, "ncclBroadcast")?,
            error_string: symbol(lib, "ncclGetErrorString")?,
            get_version: symbol(lib, "ncclGetVersion")?,
            set_device: symbol(cuda, "cudaSetDevice")?,
            stream_create: symbol(cuda, "cudaStreamCreateWithFlags")?,
            event_create: symbol(cuda, "cudaEventCreateWithFlags")?,
            event_record: symbol(cuda, "cudaEventRecord")?,
            stream_wait_event: symbol(cuda, "cudaStreamWaitEvent")?,
        })
    }

    /// NCCL's version code (e.g. 22809 for 2.28.9).
    pub(super) fn version(&self) -> Result<i32> {
        let mut v = 0;
        // SAFETY: writes one int.
        nccl_check(self.error_string, "ncclGetVersion", unsafe { (self.get_version)(&mut v) })?;
        Ok(v)
    }

    /// A fresh rendezvous id (needs no GPU: it names rank 0's bootstrap socket).
    pub(super) fn unique_id(&self) -> Result<[u8; 128]> {
        let mut id = UniqueId { internal: [0; 128] };
        // SAFETY: writes the 128-byte id.
        nccl_check(self.error_string, "ncclGetUniqueId", unsafe { (self.get_unique_id)(&mut id) })?;
        Ok(id.internal.map(|c| c as u8))
    }
}

fn cuda_check(what: &str, code: c_int) -> Result<()> {
    if code == 0 { Ok(()) } else { Err(Error::Invalid(format!("{what} failed with CUDA error {code}"))) }
}

/// A communicator over every rank, each on its own GPU.
pub struct Nccl {
    lib: NcclLib,
    comm: Comm,
    device: Device,
    /// The stream the gradient buckets' sums run on.
    stream: Stream,
    /// Recorded on the default stream before a bucket's sum starts.
    ready: Event,
    /// Recorded on `stream` by [`Nccl::join`].
    done: Event,
}

// SAFETY: an NCCL communicator may be used from any thread as long as calls are not concurrent;
// `World` uses it from the training loop, and during the backward pass from the one thread that
// runs it while the training loop waits. The streams and events are likewise used one call at a time.
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
        let lib = NcclLib::load()?;
        // NCCL binds a communicator, and CUDA its streams and events, to the current device.
        // SAFETY: selects an existing device (the trainer resolved it through libtorch).
        cuda_check(&format!("cudaSetDevice({index})"), unsafe { (lib.set_device)(index as c_int) })?;
        let mut id = if mpi.rank == 0 { lib.unique_id()? } else { [0; 128] };
        mpi.broadcast(&mut id, 0)?;
        let id = UniqueId { internal: id.map(|b| b as c_char) };
        let mut comm: Comm = std::ptr::null_mut();
        // SAFETY: every rank passes the same id, the world size and its own rank.
        nccl_check(lib.error_string, "ncclCommInitRank", unsafe { (lib.comm_init_rank)(&mut comm, mpi.size as c_int, id, mpi.rank as c_int) })
            .map_err(|e| Error::Invalid(format!("rank {} on cuda:{index}, NCCL version code {}: {e}", mpi.rank, lib.version().unwrap_or(0))))?;
        let (mut stream, mut ready, mut done): (Stream, Event, Event) = (std::ptr::null_mut(), std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: out-parameters for handles on the current device, kept for the life of the process.
        unsafe {
            cuda_check("cudaStreamCreateWithFlags", (lib.stream_create)(&mut stream, CUDA_STREAM_NON_BLOCKING))?;
            cuda_check("cudaEventCreateWithFlags", (lib.event_create)(&mut ready, CUDA_EVENT_DISABLE_TIMING))?;
            cuda_check("cudaEventCreateWithFlags", (lib.event_create)(&mut done, CUDA_EVENT_DISABLE_TIMING))?;
        }
        Ok(Nccl { lib, comm, device: Device::Cuda(index), stream, ready, done })
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

    /// Starts an in-place sum over the world of `t` on the collectives' own stream, once the
    /// default stream's work so far (the kernels that wrote `t`) is done. `t` must not be freed,
    /// nor touched by the default stream, before [`Nccl::join`].
    pub fn start_all_reduce_sum(&self, t: &Tensor) -> Result<()> {
        self.check_tensor(t)?;
        let p = t.data_ptr();
        // SAFETY: handles made in `init` on this device; `p` holds `numel` floats on it (in place
        // is allowed).
        unsafe {
            cuda_check("cudaEventRecord", (self.lib.event_record)(self.ready, DEFAULT_STREAM))?;
            cuda_check("cudaStreamWaitEvent", (self.lib.stream_wait_event)(self.stream, self.ready, 0))?;
            let code = (self.lib.all_reduce)(p, p, t.numel(), NCCL_FLOAT32, NCCL_SUM, self.comm, self.stream);
            nccl_check(self.lib.error_string, "ncclAllReduce", code)
        }
    }

    /// Makes the default stream wait for every sum started so far (no host synchronisation).
    pub fn join(&self) -> Result<()> {
        // SAFETY: handles made in `init` on this device.
        unsafe {
            cuda_check("cudaEventRecord", (self.lib.event_record)(self.done, self.stream))?;
            cuda_check("cudaStreamWaitEvent", (self.lib.stream_wait_event)(DEFAULT_STREAM, self.done, 0))
        }
    }

    /// Broadcasts a contiguous float32 tensor on this rank's GPU from `root`, in place.
    pub fn broadcast(&self, t: &Tensor, root: usize) -> Result<()> {
        self.check_tensor(t)?;
        let p = t.data_ptr();
        // SAFETY: `p` holds `numel` floats on this communicator's device; in place is allowed.
        let code = unsafe { (self.lib.broadcast)(p, p, t.numel(), NCCL_FLOAT32, root as c_int, self.comm, DEFAULT_STREAM) };
        nccl_check(self.lib.error_string, "ncclBroadcast", code)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What of the NCCL path runs without a GPU: loading, every symbol, the version, the id.
    #[test]
    fn nccl_and_the_cuda_runtime_load_from_the_torch_wheel() {
        let lib = std::path::Path::new(env!("TXFM_WHEEL_NCCL"));
        if !lib.exists() {
            eprintln!("\n*** SKIPPED: this torch has no NCCL ({} missing): a CPU-only wheel ***\n", lib.display());
            return;
        }
        let nccl = NcclLib::load().unwrap();
        let version = nccl.version().unwrap();
        assert!((2_0000..3_0000).contains(&version), "NCCL 2.x, got version code {version}");
        let (a, b) = (nccl.unique_id().unwrap(), nccl.unique_id().unwrap());
        assert!(a.iter().any(|&x| x != 0), "an id is not all zeros");
        assert_ne!(a, b, "each id names a fresh rendezvous");
    }
}
