# Shared by the Launch/ scripts: find swift, and the Open MPI settings this
# machine needs (only when it needs them, so cluster defaults stay untouched).

# Swift toolchain: on PATH, or the usual /opt/swift install.
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
  export PATH=/opt/swift/usr/bin:$PATH
fi

# mpirun_flags NP: prints the extra mpirun flags for NP ranks on this machine and
# exports the run-as-root variables when running as root.
mpi_setup() {
  local np=$1
  MPIRUN_FLAGS=()
  mpi_allow_root
  if [ -z "${SLURM_JOB_ID:-}" ] && [ "$np" -gt "$(nproc)" ]; then
    MPIRUN_FLAGS+=(--oversubscribe)
  fi
}

# Open MPI refuses to run as root unless told so (containers, test machines).
mpi_allow_root() {
  if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  fi
}

# run_mpi NP COMMAND...: mpirun with this machine's flags.
run_mpi() { local np=$1; shift; mpi_setup "$np"; mpirun -n "$np" "${MPIRUN_FLAGS[@]}" "$@"; }

# For the test scripts: count checks, print "  ok: ..." / "  FAILED: ...", and the
# closing "NAME: N passed, M failed" line that CI reads.
passed=0 failed=0
ok() { echo "  ok: $*"; passed=$((passed + 1)); }
bad() { echo "  FAILED: $*"; failed=$((failed + 1)); }
summary() { echo "$1: $passed passed, $failed failed"; [ "$failed" -eq 0 ]; }
