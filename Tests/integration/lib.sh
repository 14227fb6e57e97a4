# The shared start of every suite in Tests/integration. A suite begins with its header comment,
# then
#   set -uo pipefail
#   . "$(dirname "$0")/lib.sh" NAME      # NAME: how the suite names itself in its output
# and ends with `summary NAME`. Sourcing this file
#   - moves to the repository ($repo) and sources Launch/common.sh (swift on PATH, run_mpi,
#     run_stoppable, use_venv: $python in the repository's .venv);
#   - sets $bin to the absolute path of the release binary, or stops the suite with
#     "NAME: no BIN (build it first: bash Launch/setup.sh)" and "NAME: 0 passed, 1 failed";
#   - makes $tmp, a fresh folder removed when the suite exits (after the commands given to
#     at_exit), and sets $tools to Tests/integration/tools (the suites' Python and C helpers).
# The helpers below count checks, wait for runs, and read checkpoints and logs.
suite_name=$1
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo" || exit 1
. Launch/common.sh
tools=$repo/Tests/integration/tools

# Count checks, print "  ok: ..." / "  FAILED: ...", and the closing "NAME: N passed, M failed"
# line (summary NAME [MORE] appends ", MORE"); the suite's exit status is 0 only with no failure.
passed=0 failed=0
ok() { echo "  ok: $*"; passed=$((passed + 1)); }
bad() { echo "  FAILED: $*"; failed=$((failed + 1)); }
summary() { echo "$1: $passed passed, $failed failed${2:+, $2}"; [ "$failed" -eq 0 ]; }
# abort MESSAGE: the suite cannot run here; says why and ends it as one failure.
abort() { echo "$suite_name: $*"; echo "$suite_name: 0 passed, 1 failed"; exit 1; }

bin=$repo/.build/release/vae-dist
[ -x "$bin" ] || abort "no $bin (build it first: bash Launch/setup.sh)"

# at_exit COMMAND...: run on exit, before $tmp is removed (stop processes, tear down namespaces).
exit_commands=()
at_exit() { exit_commands+=("$*"); }
on_exit() {
  local command
  for command in "${exit_commands[@]}"; do eval "$command"; done
  chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"  # u+w: suites make read-only folders in it
}
tmp=$(mktemp -d); trap on_exit EXIT

# compare A B [TOLERANCE]: prints the largest difference of the model tensors of two checkpoints
# (each a .safetensors file or a run folder: its checkpoints/latest.safetensors); fails above
# TOLERANCE (default: never).
compare() { "$python" "$tools/compare_checkpoints.py" "$(checkpoint_of "$1")" "$(checkpoint_of "$2")" ${3:+"$3"}; }
checkpoint_of() { if [ -d "$1" ]; then echo "$1/checkpoints/latest.safetensors"; else echo "$1"; fi; }
# same A B: the model tensors are bit-identical (prints nothing).
same() { compare "$1" "$2" 0 > /dev/null; }
# valid CHECKPOINT: loads, and every tensor is finite.
valid() { "$python" -c 'import sys; from safetensors.numpy import load_file; import numpy as np; t = load_file(sys.argv[1]); assert all(np.isfinite(v).all() for v in t.values())' "$1" 2>/dev/null; }
# meta CHECKPOINT KEY: one metadata field of a checkpoint (empty when absent).
meta() { "$python" -c 'import sys; from safetensors import safe_open
with safe_open(sys.argv[1], "np") as f: print(f.metadata().get(sys.argv[2], ""))' "$1" "$2" 2>/dev/null; }

# From a run's log: the global step it resumed at, and how many steps the process ran.
resumed_at() { sed -n 's/^vae-dist: resumed from .* at global step \([0-9]*\) .*/\1/p' "$1" | tail -1; }
ran_steps() { sed -n 's/^vae-dist: this process ran \([0-9]*\) steps.*/\1/p' "$1" | tail -1; }

# For the suites that stop runs at a step (fault_test.sh, watchdog_test.sh):
# reached_step LOG STEP PID: waits until the run's --log-every lines reach STEP (or it ended).
reached_step() {
  for _ in $(seq 6000); do
    local last
    last=$(sed -n 's/^step \([0-9]*\) .*/\1/p' "$1" 2>/dev/null | tail -1)
    [ -n "$last" ] && [ "$last" -ge "$2" ] && return 0
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.02
  done
  return 1
}

# held LOG STEP PID: waits until a run started with VAE_DIST_FAULT=hold:STEP says it holds there
# (it cannot go on before a signal or its release file), or until it ended.
held() {
  for _ in $(seq 12000); do
    grep -q "^vae-dist: test hook: holding before step $2\$" "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
