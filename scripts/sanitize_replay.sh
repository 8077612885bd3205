#!/usr/bin/env bash
# Builds rlkit.replay._core with AddressSanitizer+UBSan and, separately, ThreadSanitizer
# (plain cmake builds in a temp dir, not pip), and runs the replay buffer's threaded stress
# test under each (and the API, bad-input and prioritized tests under ASan+UBSan).
# Exit status 0 means both runs were clean. About 3-4 minutes on 2 idle cores.
#
#   scripts/sanitize_replay.sh            # both
#   scripts/sanitize_replay.sh address    # or: thread
#
# Python itself is not instrumented, so the sanitizer runtime is LD_PRELOADed into it.
# The seqlock copies in the core race with writers by design (the reader detects the race
# and copies again); the TSan suppressions below name exactly those functions.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python}
KINDS=${*:-address thread}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/rlkit-sanitize.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
NB_DIR=$("$PY" -m nanobind --cmake_dir)
# Rows per writer of the threaded stress test (3 writers into a ring of 3,000 rows).
# ASan+UBSan: 6,000 (the ring lapped 6 times). TSan, 5-15x slower: 3,000 (lapped 3
# times). TSan flags two accesses to the same memory that no synchronization orders,
# without needing them to collide in time; every lap has the writers overwriting rows
# while the sampler copies rows out, so 3 laps make the same kinds of access pairs as 6
# (the seqlock copies' own races are the suppressed ones below).
ROWS_ADDRESS=${RLKIT_STRESS_ROWS:-6000}
ROWS_THREAD=${RLKIT_STRESS_ROWS:-3000}
# An editable install (pip install -e .) redirects rlkit's modules to its build dir unless
# that dir is listed here; a regular install is simply shadowed by PYTHONPATH.
SKIP=$(printf '%s:' "$ROOT"/build/*)

cat > "$TMP/tsan.supp" <<'SUPP'
race:rlkit::ReplayCore::write_rows
race:rlkit::ReplayCore::copy_rows
race:rlkit::ReplayCore::read_row
race:rlkit::ReplayCore::read_next_obs
race:rlkit::ReplayCore::read_step
SUPP

status=0
for kind in $KINDS; do
  start=$(date +%s)
  build="$TMP/build-$kind"
  echo "== building _core with -fsanitize=$kind"
  cmake -S "$ROOT" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DRLKIT_SANITIZE="$kind" -Dnanobind_DIR="$NB_DIR" -DPython_EXECUTABLE="$(command -v "$PY")" \
    > "$build.log" 2>&1 || { cat "$build.log"; exit 1; }
  cmake --build "$build" --target _core -j "$(nproc)" >> "$build.log" 2>&1 || { cat "$build.log"; exit 1; }
  # A stand-alone copy of the package holding the sanitized module.
  stage="$TMP/py-$kind"
  mkdir -p "$stage/rlkit/replay"
  cp rlkit/__init__.py rlkit/errors.py rlkit/limits.py "$stage/rlkit/"
  cp rlkit/replay/*.py "$stage/rlkit/replay/"
  cp "$build"/cpp/_core*.so "$stage/rlkit/replay/"
  # ASan+UBSan: the stress test and the API / bad-input / prioritized tests.
  # TSan (5-15x slower): the stress test, which is what it is for.
  tests=("$ROOT/tests/replay/test_replay_threads.py")
  if [ "$kind" = address ]; then
    tests+=("$ROOT/tests/replay/test_replay_buffer.py" "$ROOT/tests/replay/test_replay_prioritized.py")
  fi
  if [ "$kind" = thread ]; then
    export RLKIT_STRESS_ROWS=$ROWS_THREAD
    preload="$(gcc -print-file-name=libtsan.so) $(gcc -print-file-name=libstdc++.so)"
    export TSAN_OPTIONS="suppressions=$TMP/tsan.supp exitcode=66 report_signal_unsafe=0 second_deadlock_stack=1"
  else
    export RLKIT_STRESS_ROWS=$ROWS_ADDRESS
    # libstdc++ preloaded too: ASan's __cxa_throw interceptor must find it at start-up.
    preload="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)"
    export ASAN_OPTIONS="detect_leaks=0 halt_on_error=1 abort_on_error=0"
    export UBSAN_OPTIONS="print_stacktrace=1 halt_on_error=1"
  fi
  echo "== running tests/replay under $kind (preload $preload)"
  set +e
  (cd "$stage" && LD_PRELOAD="$preload" PYTHONPATH="$stage" SKBUILD_EDITABLE_SKIP="$SKIP" \
    "$PY" -c "import rlkit.replay._core as c, sys; assert c.__file__.startswith('$stage'), c.__file__" &&
   LD_PRELOAD="$preload" PYTHONPATH="$stage" SKBUILD_EDITABLE_SKIP="$SKIP" \
    "$PY" -m pytest -q -s -n 0 -p no:cacheprovider --rootdir "$ROOT" -c "$ROOT/pyproject.toml" \
      "${tests[@]}") 2>&1 | tee "$TMP/$kind.out"
  rc=${PIPESTATUS[0]}
  set -e
  if grep -q "ERROR: AddressSanitizer\|runtime error:\|WARNING: ThreadSanitizer" "$TMP/$kind.out"; then rc=1; fi
  echo "== $kind: $([ "$rc" = 0 ] && echo clean || echo FAILED) in $(( $(date +%s) - start )) s"
  [ "$rc" = 0 ] || status=1
done
exit $status
