# Shared by the Launch/ scripts (and by the test suites through Tests/integration/lib.sh): find
# swift, the Open MPI settings this machine needs (only when it needs them, so cluster defaults
# stay untouched), and the repository's .venv (use_venv: bench.sh, scaling.sh and the tests)
# with the repository's Python package, python/ (vae_dist), in it (use_package).

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

# run_stoppable COMMAND...: runs mpirun (or any launcher that forwards SIGUSR1 to every rank, as
# Open MPI's does at once) in a session of its own and passes Ctrl-C, SIGTERM and SIGHUP on to it
# as SIGUSR1: every rank stops after the same step and rank 0 writes a checkpoint, however long
# that takes. A signal to mpirun itself would reach the ranks as SIGTERM only after
# odls_base_sigkill_timeout (1 s) and SIGKILL them as long again later, cutting a slow write.
# Sets run_status to the command's exit code and run_signaled to the signal passed on (or empty).
run_stoppable() {
  run_signaled=""
  local errexit=0; [[ $- == *e* ]] && errexit=1
  setsid "$@" &
  local pid=$!
  local signal
  for signal in INT TERM HUP; do
    trap 'run_signaled=SIG'"$signal"'; kill -USR1 '"$pid"' 2>/dev/null || true' "$signal"
  done
  set +e
  while :; do
    wait "$pid"; run_status=$?  # returns early when the trap runs; wait again until it is gone
    kill -0 "$pid" 2>/dev/null || break
  done
  [ "$errexit" -eq 1 ] && set -e
  trap - INT TERM HUP
}

# run_mpi NP COMMAND...: mpirun with this machine's flags.
run_mpi() { local np=$1; shift; mpi_setup "$np"; mpirun -n "$np" "${MPIRUN_FLAGS[@]}" "$@"; }

# use_venv [PIP_NAME[:IMPORT_NAME]...]: sets $python to the repository's .venv/bin/python, with
# numpy, safetensors, this checkout's vae_dist (use_package) and the packages named importable. The virtual environment is created on
# first use (python3 -m venv; Debian's python3-venv is installed when venv is missing) and
# packages go into it with its own pip: never into the system Python. Works without a terminal
# (CI=true, no stdin). Torch is not installed here: Tests/integration/torch_test.sh finds it in .venv-torch.
use_venv() {
  local repo spec missing=()
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  python=$repo/.venv/bin/python
  for spec in numpy safetensors "$@"; do
    "$python" -c "import ${spec#*:}" 2>/dev/null || missing+=("${spec%%:*}")
  done
  [ ${#missing[@]} -eq 0 ] && { use_package "$python"; return; }
  if ! "$python" -m pip --version > /dev/null 2>&1; then
    echo "venv: creating .venv (python3 -m venv)" >&2
    if ! python3 -m venv --clear "$repo/.venv" > /dev/null 2>&1; then
      # Debian and Ubuntu ship venv (ensurepip) as a package of its own.
      local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo -n"
      $sudo apt-get update -qq < /dev/null > /dev/null && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv < /dev/null > /dev/null
      python3 -m venv --clear "$repo/.venv" > /dev/null || { echo "venv: cannot create $repo/.venv (python3 -m venv; apt package python3-venv)" >&2; return 1; }
    fi
  fi
  echo "venv: installing ${missing[*]} into .venv" >&2
  "$python" -m pip install -q --disable-pip-version-check "${missing[@]}" < /dev/null \
    || { echo "venv: pip install ${missing[*]} into .venv failed" >&2; return 1; }
  use_package "$python"
}

# use_package PYTHON: makes `import vae_dist` in PYTHON's environment load this checkout's
# python/vae_dist, installing python/ editable (pip install -e) where it does not yet: the
# tests and the docs' blocks then run the code of the checkout they test, with no reinstall
# after an edit. pip builds it with setuptools, which it fetches from PyPI into an isolated
# build environment (a venv's bundled setuptools lacks `wheel`).
use_package() {
  local py=$1 repo here
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
  here=$("$py" -c 'import os, vae_dist; print(os.path.dirname(os.path.dirname(os.path.realpath(vae_dist.__file__))))' 2>/dev/null)
  [ "$here" = "$repo/python" ] && return 0
  echo "venv: installing ./python (vae_dist, editable) into $(dirname "$(dirname "$py")")" >&2
  "$py" -m pip install -q --disable-pip-version-check -e "$repo/python" < /dev/null > /dev/null \
    || { echo "venv: pip install -e $repo/python failed" >&2; return 1; }
}
