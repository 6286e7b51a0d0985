#!/usr/bin/env bash
# Several hosts: hpod in one network namespace and an hpo-worker in each of
# two others, joined by veth pairs with addresses that exist only inside
# the namespaces (10.77.1.0/24 and 10.77.2.0/24). They tune a tiny study
# on CIFAR-10 over TCP. While worker A trains a trial, its link is cut for
# longer than the ZeroMQ heartbeat timeout, so its connection is dropped,
# and then restored. The study must complete with exactly max-trials ok
# trials, no trial stored twice, and the cut trial's result delivered.
#
#   test_netns.sh HPOD HPO_WORKER
#
# Skips (exit 77) without the ip tool, without the right to make network
# namespaces (root or CAP_NET_ADMIN), without CIFAR-10 ($HPO_CIFAR10_DIR,
# else $HPO_TEST_CIFAR10_DIR) or without the sqlite3 shell. The host's
# own interfaces are never touched; the namespaces, and with them the veth
# pairs, are deleted on exit.
set -euo pipefail

hpod=$1 worker=$2

skip() {
    echo "SKIP: $*" >&2
    exit 77
}

command -v ip >/dev/null || skip "the ip tool (iproute2) is missing; scripts/setup.sh installs it"
command -v sqlite3 >/dev/null || skip "the sqlite3 shell is missing; scripts/setup.sh installs it"
data=${HPO_CIFAR10_DIR:-${HPO_TEST_CIFAR10_DIR:-}}
[[ -n "$data" && -f "$data/data_batch_1.bin" ]] ||
    skip "CIFAR-10 not found in '${data}'; set HPO_CIFAR10_DIR"

# Namespace names are unique to this run; interface names live inside them.
ns_c=hpo-$$-coord ns_a=hpo-$$-a ns_b=hpo-$$-b
made=()
tmp=$(mktemp -d /tmp/hpo-test-netns-XXXXXX)
pids=()

cleanup() {
    local status=$?
    for pid in "${pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    for ns in "${made[@]}"; do
        ip netns del "$ns" 2>/dev/null || true
    done
    if ((status != 0 && status != 77)); then
        for log in "$tmp"/*.log; do
            echo "--- last lines of $log" >&2
            tail -n 40 "$log" >&2 || true
        done
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

if ! ip netns add "$ns_c" 2>"$tmp/netns.err"; then
    skip "cannot create a network namespace ($(head -n 1 "$tmp/netns.err")); run as root or with CAP_NET_ADMIN"
fi
made+=("$ns_c")
ip netns add "$ns_a"
made+=("$ns_a")
ip netns add "$ns_b"
made+=("$ns_b")

# coord:c2a 10.77.1.1 <-> a:a2c 10.77.1.2, coord:c2b 10.77.2.1 <-> b:b2c 10.77.2.2
ip -n "$ns_c" link add c2a type veth peer name a2c netns "$ns_a"
ip -n "$ns_c" link add c2b type veth peer name b2c netns "$ns_b"
ip -n "$ns_c" addr add 10.77.1.1/24 dev c2a
ip -n "$ns_c" addr add 10.77.2.1/24 dev c2b
ip -n "$ns_a" addr add 10.77.1.2/24 dev a2c
ip -n "$ns_b" addr add 10.77.2.2/24 dev b2c
for ns in "$ns_c" "$ns_a" "$ns_b"; do
    ip -n "$ns" link set lo up
done
ip -n "$ns_c" link set c2a up
ip -n "$ns_c" link set c2b up
ip -n "$ns_a" link set a2c up
ip -n "$ns_b" link set b2c up

# A study of quick trials: about 2 s of training each on one thread.
cat >"$tmp/study.json" <<'EOF'
{
  "name": "netns",
  "objective": {"metric": "val_accuracy", "direction": "max"},
  "budget": {"epochs": 10, "train_size": 2000, "val_size": 200, "batch_size": 50,
             "max_trials": 4},
  "space": {
    "filters": {"type": "choice", "values": [4, 8]},
    "learning_rate": {"type": "choice", "values": [0.001, 0.003, 0.01]}
  },
  "model": {
    "input_shape": [32, 32, 3],
    "layers": [
      {"type": "conv2d", "filters": "$filters", "kernel_size": 3, "activation": "relu"},
      {"type": "maxpool2d", "pool_size": 4},
      {"type": "flatten"},
      {"type": "dense", "units": 10, "activation": "softmax"}
    ],
    "training": {"optimizer": "adam", "learning_rate": "$learning_rate"}
  }
}
EOF

db=$tmp/study.db
sql() {
    sqlite3 -batch -noheader "$db" "$@"
}

# hpod listens on every address of its namespace. It refuses a
# non-loopback address without CURVE unless --insecure is given; this test
# is about the network, not authentication.
insecure=()
if "$hpod" --help 2>&1 | grep -q -- '--insecure'; then
    insecure=(--insecure)
fi
ip netns exec "$ns_c" "$hpod" --db "$db" --study "$tmp/study.json" \
    --workers tcp://0.0.0.0:5555 --control "ipc://$tmp/control" \
    --worker-timeout 30 --ready-file "$tmp/ready" "${insecure[@]}" \
    >"$tmp/hpod.log" 2>&1 &
hpod_pid=$!
pids+=("$hpod_pid")
deadline=$((SECONDS + 30))
while [[ ! -f "$tmp/ready" ]]; do
    kill -0 "$hpod_pid" 2>/dev/null || fail "hpod exited before listening"
    ((SECONDS < deadline)) || fail "hpod did not listen within 30 s"
    sleep 0.05
done

# The workers reach hpod only through their veth pair.
ip netns exec "$ns_a" "$worker" --connect tcp://10.77.1.1:5555 --data "$data" \
    --threads 1 --name worker-a --reply-timeout 3000 >"$tmp/worker-a.log" 2>&1 &
pid_a=$!
pids+=("$pid_a")
ip netns exec "$ns_b" "$worker" --connect tcp://10.77.2.1:5555 --data "$data" \
    --threads 1 --name worker-b --reply-timeout 3000 >"$tmp/worker-b.log" 2>&1 &
pid_b=$!
pids+=("$pid_b")

# Waits up to $1 seconds for the SQL query $2 to print something non-empty
# and other than 0; prints it.
wait_for() {
    local seconds=$1 query=$2 what=$3 value
    local deadline=$((SECONDS + seconds))
    while ((SECONDS < deadline)); do
        value=$(sql "$query" 2>/dev/null || true)
        if [[ -n "$value" && "$value" != 0 ]]; then
            echo "$value"
            return 0
        fi
        sleep 0.1
    done
    fail "timed out after ${seconds} s waiting for $what"
}

# ip netns exec keeps the process id, so the database's workers.pid
# identifies worker A.
running_on_a="SELECT t.id FROM trials t JOIN workers w ON w.id = t.worker
    WHERE t.status = 'running' AND w.pid = $pid_a LIMIT 1"
cut_trial=$(wait_for 30 "$running_on_a" "worker A to run a trial")
echo "cutting worker A's link while it trains trial $cut_trial"
ip -n "$ns_c" link set c2a down
# Longer than ZeroMQ's 5 s heartbeat timeout, so both ends drop the
# connection; shorter than hpod's 30 s worker timeout.
sleep 7
# The result cannot have crossed the cut link, whether or not A finished.
cut_status=$(sql "SELECT status FROM trials WHERE id = $cut_trial")
[[ "$cut_status" == running ]] ||
    fail "trial $cut_trial is $cut_status during the cut; it finished before the link was cut"
ip -n "$ns_c" link set c2a up
echo "restored worker A's link"

wait_for 60 "SELECT state = 'complete' FROM study" "the study to complete" >/dev/null

status=0
wait "$hpod_pid" || status=$?
((status == 0)) || fail "hpod exited with $status, expected 0"
for pid in "$pid_a" "$pid_b"; do
    deadline=$((SECONDS + 20))
    while kill -0 "$pid" 2>/dev/null; do
        ((SECONDS < deadline)) || fail "worker $pid did not exit after the study"
        sleep 0.1
    done
    status=0
    wait "$pid" || status=$?
    ((status == 0)) || fail "worker $pid exited with $status, expected 0"
done

total=$(sql "SELECT count(*) FROM trials")
ok=$(sql "SELECT count(*) FROM trials WHERE status = 'ok'")
((total == 4 && ok == 4)) || fail "$total trials stored, $ok ok; expected 4 ok and no others"
ids=$(sql "SELECT group_concat(id, ' ') FROM (SELECT id FROM trials ORDER BY id)")
[[ "$ids" == "1 2 3 4" ]] || fail "trial ids are '$ids', expected '1 2 3 4'"
cut_status=$(sql "SELECT status FROM trials WHERE id = $cut_trial")
[[ "$cut_status" == ok ]] || fail "trial $cut_trial, cut mid-trial, is $cut_status"
for pid in "$pid_a" "$pid_b"; do
    trained=$(sql "SELECT count(*) FROM trials t JOIN workers w ON w.id = t.worker
        WHERE t.status = 'ok' AND w.pid = $pid")
    ((trained >= 1)) || fail "worker $pid trained no trial"
done
echo "PASS: 4 trials ok across three namespaces; trial $cut_trial survived the link cut"
