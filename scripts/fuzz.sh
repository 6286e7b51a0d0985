#!/usr/bin/env bash
# Builds the libFuzzer harnesses of tests/fuzz with clang, AddressSanitizer
# and UndefinedBehaviorSanitizer, runs each for SECONDS (default 300), one
# after the other, and reports executions and findings per harness.
#
#   scripts/fuzz.sh [SECONDS [HARNESS...]]
#
# HARNESS is fuzz_msg_decode, fuzz_study_parse or fuzz_model_spec; the
# default is all three.
#
# Needs clang, libclang-rt-14-dev and libomp-dev (`scripts/setup.sh
# --fuzz`). The build lives in build-libfuzzer/; new inputs that libFuzzer
# finds go to build-libfuzzer/corpus/<harness>/ and crash inputs to
# build-libfuzzer/artifacts/<harness>/. The seed corpora under
# tests/fuzz/corpus/ are only read. Each harness runs as one process
# (the machines this project runs on have few cores). Exit status: 0 when
# every harness ran its time without a finding, 1 otherwise.
set -euo pipefail

cd "$(dirname "$0")/.."

seconds="${1:-300}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || ((seconds < 1)); then
  echo "usage: scripts/fuzz.sh [SECONDS [HARNESS...]]; SECONDS is a positive integer" >&2
  exit 2
fi
shift $(($# > 0 ? 1 : 0))
if ! command -v clang >/dev/null; then
  echo "fuzz.sh: clang is not installed; run scripts/setup.sh --fuzz" >&2
  exit 2
fi

build=build-libfuzzer
harnesses=(fuzz_msg_decode fuzz_study_parse fuzz_model_spec)
if (($# > 0)); then
  for h in "$@"; do
    if [[ " ${harnesses[*]} " != *" $h "* ]]; then
      echo "fuzz.sh: unknown harness '$h'; expected one of ${harnesses[*]}" >&2
      exit 2
    fi
  done
  harnesses=("$@")
fi

# The libraries get coverage instrumentation (fuzzer-no-link); only the
# harnesses link libFuzzer's main. Any UBSan report stops the run like a
# crash. oneDNN is left out: the harnesses do not train.
sanitize_args="-fsanitize=fuzzer-no-link -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
if [[ ! -d "$build" ]]; then
  CC=clang meson setup "$build" \
    -Dfuzz=true -Ddnnl=disabled -Dnative=false \
    -Db_sanitize=address,undefined -Db_lundef=false \
    -Dc_args="$sanitize_args" -Dc_link_args="-fno-sanitize-recover=undefined"
fi
targets=()
for h in "${harnesses[@]}"; do
  targets+=("tests/fuzz/$h")
done
ninja -C "$build" "${targets[@]}"

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:symbolize=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

declare -A dict=([fuzz_msg_decode]=msg.dict [fuzz_study_parse]=study.dict
                 [fuzz_model_spec]=study.dict)
failed=0
summary=()
for h in "${harnesses[@]}"; do
  name="${h#fuzz_}"
  work="$build/corpus/$name"
  artifacts="$build/artifacts/$name"
  log="$build/$h.log"
  mkdir -p "$work" "$artifacts"
  # Only inputs written by this run count; older ones stay for reference.
  stamp="$build/$h.started"
  touch "$stamp"
  echo "fuzz.sh: running $h for $seconds s (log: $log)"
  status=0
  "$build/tests/fuzz/$h" "$work" "tests/fuzz/corpus/$name" \
    -dict="tests/fuzz/${dict[$h]}" \
    -max_total_time="$seconds" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1 || status=$?

  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  peak=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
  found=$(find "$artifacts" -type f -newer "$stamp" | wc -l)
  if ((status != 0)) || ((found > 0)); then
    failed=1
    verdict="FAILED (exit $status; $found inputs in $artifacts)"
    grep -m 5 -E "ERROR: |runtime error|SUMMARY" "$log" >&2 || true
  else
    verdict="ok"
  fi
  summary+=("$(printf '%-18s %8s s %12s runs %6s MB peak  %s' "$h" "$seconds" \
    "${runs:-?}" "${peak:-?}" "$verdict")")
done

echo
echo "fuzz.sh: summary"
printf '  %s\n' "${summary[@]}"
exit "$failed"
