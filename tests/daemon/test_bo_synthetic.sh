#!/usr/bin/env bash
# Integration test of the bayes tuner over ZeroMQ: hpod runs the Hartmann-6
# study (examples/hartmann6-study.json) for 30 trials with three hpo-worker
# processes that score trials with --objective hartmann6, once with
# --tuner bayes and once with --tuner random, both with seed 1. The best
# value that the bayes study found must be lower than the random study's.
# It also checks that each study finished 30 distinct configurations and
# that the bayes study proposed from GP fits.
#
# usage: test_bo_synthetic.sh HPOD HPOCTL HPO_WORKER STUDY
# HPO_TEST_KEEP=1 keeps the temporary folder with the logs.
set -euo pipefail

hpod=$1
hpoctl=$2
worker=$3
study=$4
trials=30

tmp=$(mktemp -d /tmp/hpo-test-bo-XXXXXX)
pids=()

cleanup() {
    local status=$?
    for pid in "${pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if ((status != 0)); then
        for log in "$tmp"/*/*.log; do
            echo "--- last lines of $log" >&2
            tail -n 30 "$log" >&2 || true
        done
    fi
    if [[ -n "${HPO_TEST_KEEP:-}" ]]; then
        echo "kept $tmp" >&2
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# Runs one study with tuner $1 in $tmp/$1 and prints its best objective.
run_study() {
    local tuner=$1 dir=$tmp/$1
    mkdir -p "$dir"
    "$hpod" --study "$study" --db "$dir/study.db" --tuner "$tuner" --seed 1 \
        --max-trials "$trials" --workers "ipc://$dir/workers" \
        --control "ipc://$dir/control" --ready-file "$dir/ready" \
        >"$dir/hpod.log" 2>&1 &
    local hpod_pid=$!
    pids+=("$hpod_pid")
    for _ in $(seq 200); do
        [[ -f "$dir/ready" ]] && break
        sleep 0.05
    done
    [[ -f "$dir/ready" ]] || fail "hpod ($tuner) did not start"

    for i in 1 2 3; do
        "$worker" --connect "ipc://$dir/workers" --objective hartmann6 \
            --name "$tuner-$i" >"$dir/worker$i.log" 2>&1 &
        pids+=("$!")
    done

    local waited=0
    while kill -0 "$hpod_pid" 2>/dev/null; do
        ((waited < 600)) || fail "the $tuner study did not end within 60 s"
        sleep 0.1
        waited=$((waited + 1))
    done
    wait "$hpod_pid" || fail "hpod ($tuner) exited with status $?"

    local ok
    ok=$(grep -c '"status":\s*"ok"' <("$hpoctl" --db "$dir/study.db" trials --json) || true)
    ((ok == trials)) || fail "the $tuner study finished $ok ok trials, expected $trials"
    local distinct
    distinct=$("$hpoctl" --db "$dir/study.db" trials --csv | tail -n +2 | cut -d, -f9- |
        sort -u | wc -l)
    ((distinct == trials)) || fail "the $tuner study ran $distinct distinct configurations"

    "$hpoctl" --db "$dir/study.db" best --json |
        sed -n 's/^[[:space:]]*"objective":[[:space:]]*\(-\{0,1\}[0-9][-+.0-9eE]*\),\{0,1\}$/\1/p' |
        head -n 1
}

bayes=$(run_study bayes)
random=$(run_study random)
[[ -n "$bayes" && -n "$random" ]] || fail "no best objective (bayes '$bayes', random '$random')"

fits=$(grep -c "GP on" "$tmp/bayes/hpod.log" || true)
((fits > 0)) || fail "the bayes study logged no GP fit"

echo "best Hartmann-6 value after $trials trials, seed 1: bayes $bayes ($fits GP fits)," \
     "random $random; the minimum is -3.32237"
awk -v b="$bayes" -v r="$random" 'BEGIN { exit !(b < r) }' ||
    fail "bayes best $bayes is not below random best $random"
