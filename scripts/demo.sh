#!/usr/bin/env bash
# Runs a small tuning study on this machine: builds hpod, finds CIFAR-10,
# starts hpod on loopback with two hpo-workers, waits for the study to
# finish and prints the best trial.
#
#   scripts/demo.sh [--study FILE] [--workers N] [--max-trials N] [--build DIR]
#
# CIFAR-10 is found as hpo-worker finds it: $HPO_CIFAR10_DIR, else
# ../shared/cifar10. Without either, the official binary archive is
# downloaded once into ${XDG_CACHE_HOME:-~/.cache}/hpod. The database and
# the logs stay in build/demo/ (DIR/demo/ with --build DIR).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD

study=examples/demo-study.json
workers=2
max_trials=
build=build
cifar_url=https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz

usage() {
    sed -n '2,12s/^# \{0,1\}//p' "$0"
}

while (($# > 0)); do
    case "$1" in
        --study | --workers | --max-trials | --build)
            (($# >= 2)) || { echo "demo: $1 needs a value; see scripts/demo.sh --help" >&2; exit 2; }
            ;;
    esac
    case "$1" in
        --study) study=$2; shift 2 ;;
        --workers) workers=$2; shift 2 ;;
        --max-trials) max_trials=$2; shift 2 ;;
        --build) build=$2; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "demo: unknown option '$1'; see scripts/demo.sh --help" >&2; exit 2 ;;
    esac
done
[[ -f "$study" ]] || { echo "demo: study file $study not found" >&2; exit 2; }
[[ "$workers" =~ ^[1-9][0-9]*$ ]] ||
    { echo "demo: --workers '$workers' is not a positive integer" >&2; exit 2; }

say() {
    echo "demo: $*"
}

# 1. Build (scripts/setup.sh installs the packages and configures build/).
if [[ ! -d "$build" ]]; then
    say "configuring $build (run scripts/setup.sh first if packages are missing)"
    meson setup "$build" -Dwerror=true >/dev/null
fi
ninja -C "$build" daemon/hpod daemon/hpoctl worker/hpo-worker >/dev/null
bin=$(cd "$build" && pwd)

# 2. CIFAR-10: the folder must hold the five training batches and the test
# batch of the official binary layout, 30,730,000 bytes each.
has_cifar10() {
    local dir=$1 file
    for file in data_batch_{1..5}.bin test_batch.bin; do
        [[ -f "$dir/$file" && $(stat -c %s "$dir/$file") == 30730000 ]] || return 1
    done
}

find_cifar10() {
    local cache=${XDG_CACHE_HOME:-$HOME/.cache}/hpod
    if [[ -n "${HPO_CIFAR10_DIR:-}" ]]; then
        has_cifar10 "$HPO_CIFAR10_DIR" && { data=$HPO_CIFAR10_DIR; return; }
        echo "demo: HPO_CIFAR10_DIR=$HPO_CIFAR10_DIR does not contain the CIFAR-10" \
             "binary files (data_batch_1.bin ... test_batch.bin)" >&2
        exit 1
    fi
    for data in ../shared/cifar10 "$cache/cifar-10-batches-bin"; do
        has_cifar10 "$data" && return
    done

    say "CIFAR-10 not found; downloading $cifar_url (about 170 MB) into $cache"
    command -v curl >/dev/null ||
        { echo "demo: curl is missing; install it or set HPO_CIFAR10_DIR" >&2; exit 1; }
    mkdir -p "$cache"
    if ! curl -fL --retry 2 --connect-timeout 20 -o "$cache/cifar-10-binary.tar.gz.part" \
            "$cifar_url"; then
        echo "demo: downloading CIFAR-10 failed; this machine may be offline." \
             "Fetch $cifar_url elsewhere, unpack it, and set HPO_CIFAR10_DIR" \
             "to the folder with data_batch_1.bin" >&2
        exit 1
    fi
    tar -xzf "$cache/cifar-10-binary.tar.gz.part" -C "$cache"
    rm -f "$cache/cifar-10-binary.tar.gz.part"
    data=$cache/cifar-10-batches-bin
    has_cifar10 "$data" ||
        { echo "demo: the downloaded archive lacks the expected files in $data" >&2; exit 1; }
}
find_cifar10
data=$(cd "$data" && pwd)
say "CIFAR-10 from $data"

# 3. hpod on free loopback ports, its database and logs in build/demo/.
run=$bin/demo/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$run"
pids=()
stop_all() {
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap stop_all EXIT
trap 'echo; say "interrupted; stopping"; exit 130' INT TERM

hpod_args=(--study "$study" --db "$run/study.db" --ready-file "$run/ready"
           --workers tcp://127.0.0.1:0 --control tcp://127.0.0.1:0)
[[ -n "$max_trials" ]] && hpod_args+=(--max-trials "$max_trials")
"$bin/daemon/hpod" "${hpod_args[@]}" 2>"$run/hpod.log" &
hpod_pid=$!
pids+=("$hpod_pid")
for _ in $(seq 100); do
    [[ -f "$run/ready" ]] && break
    kill -0 "$hpod_pid" 2>/dev/null || break
    sleep 0.1
done
if [[ ! -f "$run/ready" ]]; then
    echo "demo: hpod did not start; its log:" >&2
    cat "$run/hpod.log" >&2
    exit 1
fi
workers_endpoint=$(sed -n 's/^workers=//p' "$run/ready")
control_endpoint=$(sed -n 's/^control=//p' "$run/ready")
say "hpod listens for workers on $workers_endpoint, for hpoctl on $control_endpoint"

# 4. Workers, sharing the CPUs.
threads=$(($(nproc) / workers))
((threads >= 1)) || threads=1
for i in $(seq "$workers"); do
    "$bin/worker/hpo-worker" --connect "$workers_endpoint" --data "$data" \
        --threads "$threads" --name "demo-$i" 2>"$run/worker-$i.log" &
    pids+=("$!")
done
unit=thread
((threads == 1)) || unit=threads
say "$workers workers with $threads $unit each; logs in $run"

# 5. Wait for the study to end, with a status line every 10 s.
seconds=0
while kill -0 "$hpod_pid" 2>/dev/null; do
    sleep 1
    seconds=$((seconds + 1))
    if ((seconds % 10 == 0)); then
        "$bin/daemon/hpoctl" --connect "$control_endpoint" status 2>/dev/null |
            sed -n 's/^Trials: /demo: trials: /p' || true
    fi
done
status=0
wait "$hpod_pid" || status=$?
if ((status != 0)); then
    echo "demo: hpod exited with status $status; the end of its log:" >&2
    tail -n 20 "$run/hpod.log" >&2
    exit 1
fi
grep -E ' study .* (complete|failed|stopped) \(' "$run/hpod.log" | tail -n 1 |
    sed 's/^.* INFO /demo: /' || true

# 6. The result, read from the database.
echo
"$bin/daemon/hpoctl" --db "$run/study.db" summary --top 3
echo
"$bin/daemon/hpoctl" --db "$run/study.db" best
echo
say "database: $run/study.db"
say "inspect it with: $bin/daemon/hpoctl --db $run/study.db trials"
