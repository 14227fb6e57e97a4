#!/usr/bin/env bash
# Sets up (apt packages, release build) and runs the tests:
#   unit and integration tests (swift test, release build: the kernels are SIMD code),
#   every subcommand and the error contract (Tests/integration/cli_test.sh),
#   the MPI tests with real ranks (mpi_test.sh),
#   ranks on separate hosts (network namespaces) over TCP, hostfile and Slurm launch (multihost_test.sh),
#   the checkpoint interoperability test in Python (python_test.sh),
#   faults: kill -9, full disk, signals, NaN, drift (fault_test.sh),
#   stalled ranks (watchdog_test.sh), gradient accumulation (accumulate_test.sh).
#
#   bash Tests/test.sh                      everything: swift test, then every suite
#   bash Tests/test.sh fault_test lock_test only those suites (after setup and build; `swift`
#                                           names the Swift tests, SUITE@SPEED one speed)
#   bash Tests/test.sh --list               the suites, in the order they run
#
# Python tools run in .venv at the repository root (created here; see use_venv in Launch/common.sh).
# Exit status 0 only when everything built and passed. Tests/mutation/run.sh checks
# that this script goes red on broken variants of the source.
set -euo pipefail
cd "$(dirname "$0")/.."

# VAE_DIST_TEST_FAIL_FAST=1 stops at the first failing suite (Tests/mutation/run.sh uses it).
# VAE_DIST_TEST_FIRST=SUITE runs that suite first (mutation/run.sh: the one expected to fail).
# SUITE@SPEED runs a suite with VAE_DIST_TEST_SPEED=SPEED: the fault and signal suite runs with
# every step slower and with a smaller, faster model, to show it holds on a CPU of any speed.
# Each suite is Tests/integration/SUITE.sh.
suites=(isa_test cli_test cli_usability_test latent_test resume_test mpi_test multihost_test regimes_test threads_test conv_test python_test disentangle_test beta_sweep_test torch_test tensorboard_test readme_test reduction_test compression_test python_package_test external_package_test lock_test runs_test integrity_test data_safety_test own_data_test image_folder_test fault_test@slow fault_test@fast watchdog_test accumulate_test)

if [ "${1:-}" = "--list" ]; then
  echo swift; printf '%s\n' "${suites[@]}"; exit 0
fi
swift_tests=1
if [ $# -gt 0 ]; then
  # Only the suites named: a plain name also runs its SUITE@SPEED entries; `swift` the Swift tests.
  swift_tests=0 chosen=()
  for name in "$@"; do
    name=${name##*/}; name=${name%.sh}; found=0
    [ "$name" = swift ] && { swift_tests=1; continue; }
    for suite in "${suites[@]}"; do
      [ "$suite" = "$name" ] || [ "${suite%@*}" = "$name" ] && { chosen+=("$suite"); found=1; }
    done
    if [ "$found" -eq 0 ]; then
      [ -f "Tests/integration/$name.sh" ] || { echo "test: no suite '$name' (bash Tests/test.sh --list)"; exit 1; }
      chosen+=("$name")
    fi
  done
  suites=(${chosen[@]+"${chosen[@]}"})
fi

bash Launch/setup.sh
. Launch/common.sh

# Test-only tools: strace (proves only rank 0 writes), numpy + safetensors (Python interop) in
# the repository's .venv (Launch/common.sh use_venv; never the system Python).
# objdump/nm (binutils) read the binary's machine code for isa_test.sh; qemu-x86_64
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

if [ "$swift_tests" -eq 1 ]; then
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
fi

# The mutants of Tests/mutation/mutants must still apply to this source (not checked while
# Tests/mutation/run.sh itself runs the suite on a mutant: the mutated text is then missing).
if [ -z "${VAE_DIST_MUTANT:-}" ]; then
  bash Tests/mutation/run.sh --check || { echo "test: FAILED: Tests/mutation/mutants is out of date with the source"; exit 1; }
fi

if [ -n "${VAE_DIST_TEST_FIRST:-}" ]; then
  ordered=("$VAE_DIST_TEST_FIRST")
  for suite in ${suites[@]+"${suites[@]}"}; do [ "$suite" = "$VAE_DIST_TEST_FIRST" ] || ordered+=("$suite"); done
  suites=("${ordered[@]}")
fi
status=0
for suite in ${suites[@]+"${suites[@]}"}; do
  name=${suite%@*} speed=""
  [ "$name" != "$suite" ] && speed=${suite#*@}
  echo "test: Tests/integration/$name.sh${speed:+ (VAE_DIST_TEST_SPEED=$speed)}"
  if ! VAE_DIST_TEST_SPEED=$speed bash "Tests/integration/$name.sh"; then
    status=1
    [ "${VAE_DIST_TEST_FAIL_FAST:-0}" = 1 ] && { echo "test: FAILED (Tests/integration/$suite.sh; stopping early)"; exit 1; }
  fi
done
[ "$status" -eq 0 ] && echo "test: all passed" || echo "test: FAILED"
exit "$status"
