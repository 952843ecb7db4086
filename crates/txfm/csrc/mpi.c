// The few MPI calls txfm's data-parallel training makes, with C linkage for Rust. A C shim rather
// than Rust declarations because MPI's handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM...) are macros
// whose expansion differs between implementations (in Open MPI, addresses of global objects).
// Every call uses MPI_COMM_WORLD and returns an MPI error code (0 = MPI_SUCCESS): the world's error
// handler is switched to MPI_ERRORS_RETURN so that failures reach Rust as errors instead of
// aborting the process.
#include <stdlib.h>
#include <mpi.h>

// MPI counts are ints: long buffers go in pieces of at most this many elements.
#define CHUNK (1 << 30)

static void finalize_at_exit(void) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) {
    MPI_Finalize();
  }
}

// Fills this process's rank and the world size, and the rank and size among the processes on this
// machine (from a shared-memory split, so it holds under any launcher).
int txfm_mpi_init(int *rank, int *size, int *local_rank, int *local_size) {
  int provided = 0;
  // All MPI calls come from one thread at a time (the training loop's).
  int err = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided);
  if (err != MPI_SUCCESS) {
    return err;
  }
  // A process that exits without MPI_Finalize makes mpirun report the whole job as failed.
  atexit(finalize_at_exit);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  if ((err = MPI_Comm_rank(MPI_COMM_WORLD, rank)) != MPI_SUCCESS) return err;
  if ((err = MPI_Comm_size(MPI_COMM_WORLD, size)) != MPI_SUCCESS) return err;
  MPI_Comm node;
  err = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, *rank, MPI_INFO_NULL, &node);
  if (err != MPI_SUCCESS) return err;
  if ((err = MPI_Comm_rank(node, local_rank)) != MPI_SUCCESS) return err;
  if ((err = MPI_Comm_size(node, local_size)) != MPI_SUCCESS) return err;
  return MPI_Comm_free(&node);
}

int txfm_mpi_finalize(void) {
  int finalized = 0;
  MPI_Finalized(&finalized);
  return finalized ? MPI_SUCCESS : MPI_Finalize();
}

// Ends every process of the job (mpirun kills the others): for a rank that failed while the others
// wait in a collective.
void txfm_mpi_abort(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
}

int txfm_mpi_barrier(void) {
  return MPI_Barrier(MPI_COMM_WORLD);
}

int txfm_mpi_bcast_bytes(void *buf, long long n, int root) {
  for (long long at = 0; at < n; at += CHUNK) {
    int count = (int)(n - at < CHUNK ? n - at : CHUNK);
    int err = MPI_Bcast((char *)buf + at, count, MPI_BYTE, root, MPI_COMM_WORLD);
    if (err != MPI_SUCCESS) return err;
  }
  return MPI_SUCCESS;
}

// In-place sums over the world.
int txfm_mpi_allreduce_sum_f32(float *buf, long long n) {
  for (long long at = 0; at < n; at += CHUNK) {
    int count = (int)(n - at < CHUNK ? n - at : CHUNK);
    int err = MPI_Allreduce(MPI_IN_PLACE, buf + at, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    if (err != MPI_SUCCESS) return err;
  }
  return MPI_SUCCESS;
}

int txfm_mpi_allreduce_sum_f64(double *buf, long long n) {
  for (long long at = 0; at < n; at += CHUNK) {
    int count = (int)(n - at < CHUNK ? n - at : CHUNK);
    int err = MPI_Allreduce(MPI_IN_PLACE, buf + at, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    if (err != MPI_SUCCESS) return err;
  }
  return MPI_SUCCESS;
}

// Non-blocking in-place sums, for gradient buckets started during the backward pass: every call
// adds its requests to one list, which txfm_mpi_test_all advances and txfm_mpi_wait_all completes
// and empties. Requests are started from one thread at a time (MPI_THREAD_SERIALIZED).
static MPI_Request *requests = NULL;
static int n_requests = 0, cap_requests = 0;

int txfm_mpi_iallreduce_sum_f32(float *buf, long long n) {
  for (long long at = 0; at < n; at += CHUNK) {
    if (n_requests == cap_requests) {
      int cap = cap_requests ? 2 * cap_requests : 64;
      MPI_Request *grown = realloc(requests, (size_t)cap * sizeof(MPI_Request));
      if (grown == NULL) return MPI_ERR_NO_MEM;
      requests = grown;
      cap_requests = cap;
    }
    int count = (int)(n - at < CHUNK ? n - at : CHUNK);
    int err = MPI_Iallreduce(MPI_IN_PLACE, buf + at, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &requests[n_requests]);
    if (err != MPI_SUCCESS) return err;
    n_requests++;
  }
  return MPI_SUCCESS;
}

// Lets MPI progress the started sums (Open MPI moves a non-blocking collective along only inside
// MPI calls); sets *done when all have completed.
int txfm_mpi_test_all(int *done) {
  *done = 1;
  return n_requests == 0 ? MPI_SUCCESS : MPI_Testall(n_requests, requests, done, MPI_STATUSES_IGNORE);
}

int txfm_mpi_wait_all(void) {
  int err = n_requests == 0 ? MPI_SUCCESS : MPI_Waitall(n_requests, requests, MPI_STATUSES_IGNORE);
  n_requests = 0;
  return err;
}

// Writes the text of error `code` into `buf` (NUL-terminated, at most `len` bytes).
void txfm_mpi_error_string(int code, char *buf, int len) {
  char text[MPI_MAX_ERROR_STRING];
  int n = 0;
  if (MPI_Error_string(code, text, &n) != MPI_SUCCESS) {
    n = 0;
  }
  if (len <= 0) return;
  if (n >= len) n = len - 1;
  for (int i = 0; i < n; i++) buf[i] = text[i];
  buf[n] = '\0';
}
