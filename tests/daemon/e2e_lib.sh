# Helpers shared by the end-to-end tests (test_e2e.sh, test_chaos.sh). They
# keep the study database in a temporary folder and kill the hpod and
# hpo-worker processes they started when the test ends. Their checks query
# the database with the sqlite3 shell, independently of hpod's own code.
#
# Source it after setting hpod, hpoctl, worker and study. CIFAR-10 comes
# from $HPO_CIFAR10_DIR, else from $HPO_TEST_CIFAR10_DIR. The test is
# skipped (exit 77) when neither contains the data or sqlite3 is missing.
# HPO_TEST_KEEP=1 keeps the temporary folder with the logs.

data=${HPO_CIFAR10_DIR:-${HPO_TEST_CIFAR10_DIR:-}}
if [[ -z "$data" || ! -f "$data/data_batch_1.bin" ]]; then
    echo "SKIP: CIFAR-10 not found in '${data}'; set HPO_CIFAR10_DIR to the" \
         "folder with data_batch_1.bin" >&2
    exit 77
fi
if ! command -v sqlite3 >/dev/null; then
    echo "SKIP: the sqlite3 shell is missing; scripts/setup.sh installs it" >&2
    exit 77
fi

tmp=$(mktemp -d /tmp/hpo-test-e2e-XXXXXX)
db=$tmp/study.db
pids=()
worker_pids=()

cleanup() {
    local status=$?
    for pid in "${pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if ((status != 0)); then
        for log in "$tmp"/*.log; do
            echo "--- last lines of $log" >&2
            tail -n 60 "$log" >&2 || true
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

sql() {
    sqlite3 -batch -noheader "$db" "$@"
}

# Waits up to $1 seconds for the SQL query $2 to print "1".
wait_for() {
    local seconds=$1 query=$2 what=$3
    local deadline=$((SECONDS + seconds))
    while ((SECONDS < deadline)); do
        if [[ -f "$db" && "$(sql "$query" 2>/dev/null || true)" == 1 ]]; then
            return 0
        fi
        sleep 0.1
    done
    fail "timed out after ${seconds} s waiting for $what"
}

# Prints the time as seconds since the epoch, with milliseconds.
now_seconds() {
    date +%s.%3N
}

# Starts hpod and waits until it listens. Without preset endpoints the first
# start binds free loopback ports; later starts bind the same endpoints, so
# the workers can reconnect.
hpod_pid=
start_hpod() {
    rm -f "$tmp/ready"
    "$hpod" --db "$db" "$@" \
        --workers "${workers_endpoint:-tcp://127.0.0.1:0}" \
        --control "${control_endpoint:-tcp://127.0.0.1:0}" \
        --ready-file "$tmp/ready" >>"$tmp/hpod.log" 2>&1 &
    hpod_pid=$!
    pids+=("$hpod_pid")
    local deadline=$((SECONDS + 30))
    while [[ ! -f "$tmp/ready" ]]; do
        kill -0 "$hpod_pid" 2>/dev/null || fail "hpod exited before listening"
        ((SECONDS < deadline)) || fail "hpod did not start listening within 30 s"
        sleep 0.05
    done
    workers_endpoint=$(sed -n 's/^workers=//p' "$tmp/ready")
    control_endpoint=$(sed -n 's/^control=//p' "$tmp/ready")
}

# Waits for hpod to exit and checks its exit status.
wait_hpod() {
    local expected=$1 status=0
    wait "$hpod_pid" || status=$?
    ((status == expected)) || fail "hpod exited with $status, expected $expected"
}

# Starts a worker named $1, with the options that follow, and sets
# worker_pid to its process id.
worker_pid=
start_worker() {
    local name=$1
    shift
    "$worker" --connect "$workers_endpoint" --data "$data" --threads 1 \
        --name "$name" "$@" >>"$tmp/$name.log" 2>&1 &
    worker_pid=$!
    pids+=("$worker_pid")
    worker_pids+=("$worker_pid")
}

# Removes worker process $1, which the test stopped itself, from the
# workers that wait_workers() checks.
forget_worker() {
    local kept=() pid
    for pid in "${worker_pids[@]}"; do
        [[ "$pid" == "$1" ]] || kept+=("$pid")
    done
    worker_pids=("${kept[@]}")
}

# Waits up to 30 s for every worker to exit by itself with status 0. A
# worker that does not exit fails the test: it did not reconnect to the
# last hpod or missed the study's end.
wait_workers() {
    local deadline=$((SECONDS + 30))
    for pid in "${worker_pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null; do
            ((SECONDS < deadline)) || fail "worker $pid did not exit after the study"
            sleep 0.1
        done
        local status=0
        wait "$pid" 2>/dev/null || status=$?
        ((status == 0)) || fail "worker $pid exited with $status, expected 0"
    done
}

ctl() {
    "$hpoctl" --connect "$control_endpoint" --timeout 10000 "$@"
}

# Stores "id|status|objective" of every finished trial in $1, sorted as
# comm expects.
snapshot() {
    sql "SELECT id, status, objective FROM trials WHERE status IN ('ok', 'failed')" |
        LC_ALL=C sort >"$1"
}

# Each row of snapshot $1 must still be in the database unchanged.
check_kept() {
    local now=$tmp/now.txt
    snapshot "$now"
    local missing
    missing=$(LC_ALL=C comm -23 "$1" "$now" | wc -l)
    ((missing == 0)) || fail "$missing finished trials of $1 changed or vanished"
}

# The study is complete with exactly $1 counted trials, none finished
# twice, no configuration trained twice and trial ids without gaps.
check_complete_once() {
    local max=$1
    [[ "$(sql "SELECT state FROM study")" == complete ]] || fail "the study is not complete"
    local counted
    counted=$(sql "SELECT count(*) FROM trials
        WHERE status = 'ok' OR (status = 'failed' AND attempts > 0)")
    ((counted == max)) || fail "$counted trials counted, expected $max"
    local repeated
    repeated=$(sql "SELECT count(*) FROM (SELECT trial FROM events
        WHERE event IN ('ok', 'failed') GROUP BY trial HAVING count(*) > 1)")
    ((repeated == 0)) || fail "$repeated trials finished more than once"
    local duplicates
    duplicates=$(sql "SELECT count(*) - count(DISTINCT active) FROM trials
        WHERE active IS NOT NULL")
    ((duplicates == 0)) || fail "$duplicates configurations were trained twice"
    [[ "$(sql "SELECT max(id) = count(*) FROM trials")" == 1 ]] ||
        fail "trial ids have gaps or were reused"
}
