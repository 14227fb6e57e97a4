// Open MPI defines its handles as macros over the addresses of globals
// (#define MPI_COMM_WORLD OMPI_PREDEFINED_GLOBAL(MPI_Comm, ompi_mpi_comm_world)),
// which Swift cannot import. These inline functions hand them to Swift.
#ifndef VAE_DIST_CMPI_SHIM_H
#define VAE_DIST_CMPI_SHIM_H
#include <mpi.h>

static inline MPI_Comm vae_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype vae_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype vae_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype vae_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype vae_mpi_uint64(void) { return MPI_UINT64_T; }
static inline MPI_Datatype vae_mpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Datatype vae_mpi_int32(void) { return MPI_INT32_T; }
static inline MPI_Op vae_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op vae_mpi_max(void) { return MPI_MAX; }
static inline MPI_Op vae_mpi_min(void) { return MPI_MIN; }
static inline void *vae_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Request vae_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Status *vae_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline int vae_mpi_success(void) { return MPI_SUCCESS; }
static inline int vae_mpi_thread_multiple(void) { return MPI_THREAD_MULTIPLE; }
static inline int vae_mpi_errors_return(MPI_Comm comm) {
    return MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
}
// Memory shared by the ranks of one node (MPI-3 shared-memory windows).
static inline int vae_mpi_comm_type_shared(void) { return MPI_COMM_TYPE_SHARED; }
static inline MPI_Info vae_mpi_info_null(void) { return MPI_INFO_NULL; }
static inline int vae_mpi_mode_nocheck(void) { return MPI_MODE_NOCHECK; }
static inline int vae_mpi_win_allocate_shared(MPI_Aint bytes, MPI_Comm comm, MPI_Win *win) {
    void *base = 0;
    return MPI_Win_allocate_shared(bytes, 1, MPI_INFO_NULL, comm, &base, win);
}
static inline int vae_mpi_win_shared_query(MPI_Win win, int rank, void **base) {
    MPI_Aint size = 0;
    int unit = 0;
    return MPI_Win_shared_query(win, rank, &size, &unit, base);
}
static inline int vae_mpi_win_errors_return(MPI_Win win) {
    return MPI_Win_set_errhandler(win, MPI_ERRORS_RETURN);
}
#endif
