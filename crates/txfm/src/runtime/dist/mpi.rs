//! MPI through `csrc/mpi.c`: the process group of a job started by `mpirun` (or another launcher
//! of the linked MPI), its collectives on host buffers, and the rendezvous of NCCL. Built only
//! where MPI's headers were found (`cfg(txfm_mpi)`, see build.rs); elsewhere [`Mpi::init`] says how
//! to get it.

use crate::{Error, Result};

/// An initialised MPI world; `MPI_Finalize` runs at [`Mpi::finalize`] or at process exit.
#[derive(Debug)]
pub struct Mpi {
    pub rank: usize,
    pub size: usize,
    /// Rank among the processes on this machine: the GPU this process drives.
    pub local_rank: usize,
    pub local_size: usize,
}

#[cfg(txfm_mpi)]
mod ffi {
    use std::ffi::{c_char, c_int, c_longlong, c_void};

    unsafe extern "C" {
        pub fn txfm_mpi_init(rank: *mut c_int, size: *mut c_int, local_rank: *mut c_int, local_size: *mut c_int) -> c_int;
        pub fn txfm_mpi_finalize() -> c_int;
        pub fn txfm_mpi_abort(code: c_int);
        pub fn txfm_mpi_barrier() -> c_int;
        pub fn txfm_mpi_bcast_bytes(buf: *mut c_void, n: c_longlong, root: c_int) -> c_int;
        pub fn txfm_mpi_allreduce_sum_f32(buf: *mut f32, n: c_longlong) -> c_int;
        pub fn txfm_mpi_allreduce_sum_f64(buf: *mut f64, n: c_longlong) -> c_int;
        pub fn txfm_mpi_iallreduce_sum_f32(buf: *mut f32, n: c_longlong) -> c_int;
        pub fn txfm_mpi_test_all(done: *mut c_int) -> c_int;
        pub fn txfm_mpi_wait_all() -> c_int;
        pub fn txfm_mpi_error_string(code: c_int, buf: *mut c_char, len: c_int);
    }
}

#[cfg(txfm_mpi)]
fn check(what: &str, code: i32) -> Result<()> {
    if code == 0 {
        return Ok(());
    }
    let mut text = [0 as std::ffi::c_char; 512];
    // SAFETY: the shim writes at most `len` bytes, NUL-terminated.
    let message = unsafe {
        ffi::txfm_mpi_error_string(code, text.as_mut_ptr(), text.len() as i32);
        std::ffi::CStr::from_ptr(text.as_ptr()).to_string_lossy().into_owned()
    };
    Err(Error::Invalid(format!("MPI {what} failed: {message} (error {code})")))
}

#[cfg(txfm_mpi)]
impl Mpi {
    /// `MPI_Init_thread`; once per process (MPI cannot be initialised again after finalising).
    pub fn init() -> Result<Mpi> {
        let (mut rank, mut size, mut local_rank, mut local_size) = (0, 0, 0, 0);
        // SAFETY: plain out-parameters; called once per process by `super::world`.
        check("init", unsafe { ffi::txfm_mpi_init(&mut rank, &mut size, &mut local_rank, &mut local_size) })?;
        Ok(Mpi { rank: rank as usize, size: size as usize, local_rank: local_rank as usize, local_size: local_size as usize })
    }

    pub fn finalize(&self) -> Result<()> {
        // SAFETY: the shim checks MPI_Finalized first, so a second call is harmless.
        check("finalize", unsafe { ffi::txfm_mpi_finalize() })
    }

    pub fn abort(&self, code: i32) -> ! {
        // SAFETY: MPI_Abort does not return; the exit below only satisfies the type.
        unsafe { ffi::txfm_mpi_abort(code) };
        std::process::exit(code)
    }

    pub fn barrier(&self) -> Result<()> {
        // SAFETY: no buffers.
        check("barrier", unsafe { ffi::txfm_mpi_barrier() })
    }

    /// Broadcasts `buf` from `root`; every rank must pass a buffer of the same length.
    pub fn broadcast(&self, buf: &mut [u8], root: usize) -> Result<()> {
        // SAFETY: `buf` is valid for writes of its length.
        check("broadcast", unsafe { ffi::txfm_mpi_bcast_bytes(buf.as_mut_ptr().cast(), buf.len() as i64, root as i32) })
    }

    /// In-place sum over the world.
    pub fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
        // SAFETY: `buf` is valid for reads and writes of its length.
        check("all-reduce", unsafe { ffi::txfm_mpi_allreduce_sum_f64(buf.as_mut_ptr(), buf.len() as i64) })
    }

    /// In-place sum over the world of `n` floats at `ptr` (a contiguous CPU tensor's storage).
    ///
    /// # Safety
    /// `ptr` must be valid for reads and writes of `n` `f32`s for the duration of the call.
    pub unsafe fn all_reduce_sum_f32(&self, ptr: *mut f32, n: usize) -> Result<()> {
        // SAFETY: the caller's contract.
        check("all-reduce", unsafe { ffi::txfm_mpi_allreduce_sum_f32(ptr, n as i64) })
    }

    /// Starts an in-place sum over the world of `n` floats at `ptr`; [`Mpi::wait_all`] completes it.
    ///
    /// # Safety
    /// `ptr` must stay valid for reads and writes of `n` `f32`s, and untouched, until
    /// [`Mpi::wait_all`] returns.
    pub unsafe fn start_all_reduce_sum_f32(&self, ptr: *mut f32, n: usize) -> Result<()> {
        // SAFETY: the caller's contract.
        check("all-reduce (non-blocking)", unsafe { ffi::txfm_mpi_iallreduce_sum_f32(ptr, n as i64) })
    }

    /// Advances the started sums; whether all are done.
    pub fn test_all(&self) -> Result<bool> {
        let mut done = 0;
        // SAFETY: an out-parameter; the shim owns the requests.
        check("test", unsafe { ffi::txfm_mpi_test_all(&mut done) })?;
        Ok(done != 0)
    }

    /// Completes every started sum.
    pub fn wait_all(&self) -> Result<()> {
        // SAFETY: the shim owns the requests.
        check("wait", unsafe { ffi::txfm_mpi_wait_all() })
    }
}

#[cfg(not(txfm_mpi))]
impl Mpi {
    pub fn init() -> Result<Mpi> {
        Err(Error::Invalid(
            "this binary was built without MPI, so it cannot train on several ranks; install libopenmpi-dev \
             (Debian: apt-get install openmpi-bin libopenmpi-dev, or run scripts/setup.sh) and rebuild"
                .into(),
        ))
    }

    // An `Mpi` is never made without MPI; these only satisfy the callers' types.
    pub fn finalize(&self) -> Result<()> {
        unreachable!("no Mpi without MPI")
    }

    pub fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }

    pub fn barrier(&self) -> Result<()> {
        unreachable!("no Mpi without MPI")
    }

    pub fn broadcast(&self, _buf: &mut [u8], _root: usize) -> Result<()> {
        unreachable!("no Mpi without MPI")
    }

    pub fn all_reduce_sum_f64(&self, _buf: &mut [f64]) -> Result<()> {
        unreachable!("no Mpi without MPI")
    }

    /// # Safety
    /// Never called: no `Mpi` exists without MPI.
    pub unsafe fn all_reduce_sum_f32(&self, _ptr: *mut f32, _n: usize) -> Result<()> {
        unreachable!("no Mpi without MPI")
    }

    /// # Safety
    /// Never called: no `Mpi` exists without MPI.
    pub unsafe fn start_all_reduce_sum_f32(&self, _ptr: *mut f32, _n: usize) -> Result<()> {
        unreachable!("no Mpi without MPI")
    }

    pub fn test_all(&self) -> Result<bool> {
        unreachable!("no Mpi without MPI")
    }

    pub fn wait_all(&self) -> Result<()> {
        unreachable!("no Mpi without MPI")
    }
}
