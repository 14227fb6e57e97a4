#!/usr/bin/env bash
# Sets up (apt packages, release build) and runs every test:
#   unit and integration tests (swift test, release build: the kernels are SIMD code),
#   every subcommand and the error contract (Launch/cli_test.sh),
#   the MPI tests with real ranks (Launch/mpi_test.sh),
#   ranks on separate hosts (network namespaces) over TCP, hostfile and Slurm launch (Launch/multihost_test.sh),
#   the checkpoint interoperability test in Python (Launch/python_test.sh),
#   faults: kill -9, full disk, signals, NaN, drift (Launch/fault_test.sh),
#   stalled ranks (Launch/watchdog_test.sh), gradient accumulation (Launch/accumulate_test.sh).
# Python tools run in .venv at the repository root (created here; see use_venv in common.sh).
# Exit status 0 only when everything built and passed. Launch/mutation_test.sh checks
# that this script goes red on broken variants of the source.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Launch/setup.sh
. Launch/common.sh

# Test-only tools: strace (proves only rank 0 writes), numpy + safetensors (Python interop) in
# the repository's .venv (Launch/common.sh use_venv; never the system Python).
# objdump/nm (binutils) read the binary's machine code for Launch/isa_test.sh; qemu-x86_64
# (qemu-user) runs it on an emulated CPU without AVX2 there.
tools=()
command -v strace >/dev/null || tools+=(strace)
command -v objdump >/dev/null && command -v nm >/dev/null || tools+=(binutils)
[ "$(uname -m)" = x86_64 ] && ! command -v qemu-x86_64 >/dev/null && tools+=(qemu-user)
if [ ${#tools[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${tools[@]}" >/dev/null
fi
use_venv || { echo "test: FAILED: cannot set up .venv with numpy and safetensors"; exit 1; }

echo "test: swift test"
log=$(mktemp)
if ! swift build -c release --build-tests > "$log" 2>&1; then
  grep -E "error:" "$log" | head -20; rm -f "$log"
  echo "test: FAILED: the tests do not build (swift build -c release --build-tests)"; exit 1
fi
grep -E "Build complete" "$log"
code=0; swift test -c release --skip-build > "$log" 2>&1 || code=$?
# Failures, then the runner's closing line: Test run with N tests ... passed (━ instead of ✔
# when it counts known issues: ToleranceTests expects its helpers to record some).
grep -E "✘|^(✔|━) Test run with|error:" "$log" || true
rm -f "$log"
[ "$code" -eq 0 ] || { echo "test: swift test failed (exit $code)"; exit 1; }

# The mutants of Launch/mutation_test.sh must still apply to this source (not checked while
# mutation_test.sh itself runs the suite on a mutant: the mutated text is then missing).
if [ -z "${VAE_DIST_MUTANT:-}" ]; then
  bash Launch/mutation_test.sh --check || { echo "test: FAILED: Launch/mutation_test.sh is out of date with the source"; exit 1; }
fi

# VAE_DIST_TEST_FAIL_FAST=1 stops at the first failing suite (Launch/mutation_test.sh uses it).
# VAE_DIST_TEST_FIRST=SUITE runs that suite first (mutation_test.sh: the one expected to fail).
# SUITE@SPEED runs a suite with VAE_DIST_TEST_SPEED=SPEED: the fault and signal suite runs with
# every step slower and with a smaller, faster model, to show it holds on a CPU of any speed.
suites=(isa_test cli_test cli_usability_test latent_test resume_test mpi_test multihost_test regimes_test threads_test python_test disentangle_test beta_sweep_test torch_test tensorboard_test readme_test external_package_test lock_test integrity_test data_safety_test fault_test@slow fault_test@fast watchdog_test accumulate_test)
if [ -n "${VAE_DIST_TEST_FIRST:-}" ]; then
  ordered=("$VAE_DIST_TEST_FIRST")
  for suite in "${suites[@]}"; do [ "$suite" = "$VAE_DIST_TEST_FIRST" ] || ordered+=("$suite"); done
  suites=("${ordered[@]}")
fi
status=0
for suite in "${suites[@]}"; do
  name=${suite%@*} speed=""
  [ "$name" != "$suite" ] && speed=${suite#*@}
  echo "test: Launch/$name.sh${speed:+ (VAE_DIST_TEST_SPEED=$speed)}"
  if ! VAE_DIST_TEST_SPEED=$speed bash "Launch/$name.sh"; then
    status=1
    [ "${VAE_DIST_TEST_FAIL_FAST:-0}" = 1 ] && { echo "test: FAILED (Launch/$suite.sh; stopping early)"; exit 1; }
  fi
done
[ "$status" -eq 0 ] && echo "test: all passed" || echo "test: FAILED"
exit "$status"
