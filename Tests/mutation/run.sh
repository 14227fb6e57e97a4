#!/usr/bin/env bash
# Mutation test of the test suite: each mutant is one deliberate bug (a sign, a dropped term, a
# skipped step, a wrong seed, a resume that ignores its checkpoint, a rank that writes, a
# reduction that averages twice, a build error...). Each is applied alone to a clean copy of this
# working tree, and `bash Tests/test.sh` must then fail. A mutant that the suite lets through is
# a hole in the tests.
#
#   bash Tests/mutation/run.sh              every mutant (about an hour on 2 cores)
#   bash Tests/mutation/run.sh NAME...      only those
#   bash Tests/mutation/run.sh --list       names and what each breaks
#   bash Tests/mutation/run.sh --check      only that every mutant applies (Tests/test.sh runs it)
#
# A mutant is Tests/mutation/mutants/NAME.patch: a unified diff as `git diff` writes it, after a
# header of comment lines that this script reads (git apply skips text before the diff):
#   # NAME: what it breaks
#   # first: SUITE        optional: the suite expected to catch it (Tests/integration/SUITE.sh),
#                         which Tests/test.sh then runs first (only to save time: every suite
#                         still runs until one fails)
#   # fresh-build: yes    optional: .build is removed before the run (a fresh clone's build)
# A new mutant: change the source, `git diff > Tests/mutation/mutants/NAME.patch`, put the
# header above the diff, and restore the file (git checkout -- FILE).
# When code moves, --check names the patches that no longer apply. A patch carries the blob ids
# it was made from, so git can carry it over the move with a three-way merge:
#   git apply -3 Tests/mutation/mutants/NAME.patch     (resolve any conflict by hand), then
#   { sed '/^diff --git/q' Tests/mutation/mutants/NAME.patch | sed '$d'; git diff HEAD -- FILE; } > new.patch
#   mv new.patch Tests/mutation/mutants/NAME.patch; git reset -q -- FILE; git checkout -- FILE
# (git apply already accepts a patch whose lines only moved up or down in the file, with the
# same lines around them.) If the mutated line moved to another file, make the mutant again.
#
# The copy lives in $VAE_DIST_MUTATION_DIR (default /tmp/vae-dist-mutants) and keeps its .build
# between mutants, so each one rebuilds only what it touched. Tests/test.sh runs with
# VAE_DIST_TEST_FAIL_FAST=1 (it stops at the first red suite). The unmutated copy must pass
# first (skip that with VAE_DIST_MUTATION_BASELINE=0). Prints one line per mutant and
# "mutation: N passed, M failed", where passed means caught.
set -uo pipefail
cd "$(dirname "$0")/../.."
mutants=$PWD/Tests/mutation/mutants

# header PATCH FIELD: a header field (what: the text after "# NAME: ").
header() {
  case "$2" in
    what) sed -n '1s/^# [^:]*: //p' "$1" ;;
    *) sed -n '/^diff --git/q; s/^# '"$2"': //p' "$1" ;;
  esac
}
apply() { git apply --whitespace=nowarn "$@"; }

patches=("$mutants"/*.patch)
if [ "${1:-}" = "--list" ]; then
  for patch in "${patches[@]}"; do printf '%-34s %s\n' "$(basename "$patch" .patch)" "$(header "$patch" what)"; done
  exit 0
fi
# --check: only that every mutant still applies to the source (Tests/test.sh runs this, so a
# refactor that moves the mutated code also updates the patches).
if [ "${1:-}" = "--check" ]; then
  stale=0
  for patch in "${patches[@]}"; do
    out=$(apply --check "$patch" 2>&1) || { echo "mutation: $(basename "$patch" .patch): does not apply: $(head -1 <<< "$out")"; stale=1; }
    # A misnamed first suite would fail Tests/test.sh by itself: a mutant "caught" for nothing.
    first=$(header "$patch" first)
    if [ -n "$first" ] && [ ! -f "Tests/integration/${first%@*}.sh" ]; then
      echo "mutation: $(basename "$patch" .patch): first: $first is no suite (Tests/integration/${first%@*}.sh)"; stale=1
    fi
  done
  [ "$stale" -eq 0 ] && echo "mutation: all ${#patches[@]} mutants apply to the source"
  exit "$stale"
fi
selected=("$@")
for name in "${selected[@]}"; do
  [ -f "$mutants/$name.patch" ] || { echo "mutation: no mutant '$name' (bash Tests/mutation/run.sh --list)"; exit 1; }
done
wanted() { [ ${#selected[@]} -eq 0 ] && return 0; local s; for s in "${selected[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

passed=0 failed=0
ok() { echo "  ok: $*"; passed=$((passed + 1)); }
bad() { echo "  FAILED: $*"; failed=$((failed + 1)); }

work=${VAE_DIST_MUTATION_DIR:-/tmp/vae-dist-mutants}
copy=$work/src pristine=$work/pristine
# The copy is this working tree (committed or not), minus build products; a pristine second
# copy restores each mutated file.
rm -rf "$pristine"; mkdir -p "$copy" "$pristine"
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$pristine"
(cd "$pristine" && tar -cf - .) | tar -xf - -C "$copy"
# The copy has no .git: its builds record this tree's commit (Launch/setup.sh, run records).
export VAE_DIST_BUILD_COMMIT="$(git rev-parse HEAD)$(git diff --quiet HEAD || echo -dirty)"
echo "mutation: working copy $copy ($(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ', with uncommitted changes'))"

run_suite() {  # LOG [MUTANT [FIRST-SUITE]]: test.sh in the copy, fail-fast; returns its exit status
  (cd "$copy" && VAE_DIST_TEST_FAIL_FAST=1 VAE_DIST_MUTANT=${2:-} VAE_DIST_TEST_FIRST=${3:-} timeout 1800 bash Tests/test.sh) > "$1" 2>&1
}
first_red() {  # LOG: the first line that says what failed (not an ok line that quotes an error)
  grep -E "FAILED|✘|error:" "$1" | grep -v "^ *ok:" | head -1 | sed 's/^ *//' | cut -c1-200
}

if [ "${VAE_DIST_MUTATION_BASELINE:-1}" = 1 ]; then
  if run_suite "$work/baseline.log"; then
    echo "  ok: the unmutated copy passes Tests/test.sh"
  else
    echo "mutation: the unmutated copy fails Tests/test.sh ($(first_red "$work/baseline.log")); see $work/baseline.log"
    echo "mutation: 0 passed, 1 failed"
    exit 1
  fi
fi

for patch in "${patches[@]}"; do
  name=$(basename "$patch" .patch)
  wanted "$name" || continue
  files=$(cd "$copy" && apply --numstat "$patch" 2>/dev/null | cut -f3)
  if ! (cd "$copy" && apply "$patch" 2> "$work/$name.apply"); then
    bad "$name: $(basename "$patch") does not apply to the copy: $(head -1 "$work/$name.apply")"
    continue
  fi
  [ "$(header "$patch" fresh-build)" = yes ] && rm -rf "$copy/.build"
  start=$(date +%s)
  if run_suite "$work/$name.log" "$name" "$(header "$patch" first)"; then
    bad "$name ($(header "$patch" what)): Tests/test.sh still passes"
  else
    ok "$name caught in $(( $(date +%s) - start ))s: $(first_red "$work/$name.log")"
  fi
  for file in $files; do cp "$pristine/$file" "$copy/$file"; done  # restore
done
echo "mutation: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
