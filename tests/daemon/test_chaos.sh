#!/usr/bin/env bash
# Fault tests of a real study: hpod on IPC endpoints, two hpo-worker
# processes training on CIFAR-10, and processes killed while they work.
#
#   test_chaos.sh MODE HPOD HPOCTL HPO_WORKER STUDY_FILE
#
# MODE "worker-kill" kills a worker by SIGKILL mid-trial. hpod must declare
# it lost and queue its trial again within the configured timeout
# (--lost-after heartbeat intervals), the other worker must finish that
# trial, and the study must end with exactly max trials finished, none
# twice.
# MODE "worker-term" stops a worker by SIGTERM mid-trial. The worker must
# report the trial as interrupted and exit 0, and hpod must queue the trial
# again at once, long before the lost-worker timeout. The other worker
# finishes it.
# MODE "hpod-kill" kills hpod by SIGKILL five times at random moments of a
# study, restarting it on the same database each time. No result that hpod
# acknowledged may be lost, every trial that a worker received must have
# been recorded as assigned, and the study must complete with both workers
# reconnecting each time. HPO_CHAOS_SEED=N repeats the kill moments of an
# earlier run, which prints its seed.
#
# IPC endpoints, because a restarted hpod must bind the same endpoint, and
# on TCP a port of the ephemeral range can meanwhile be taken by a worker's
# reconnect attempt that connects to itself.
# e2e_lib.sh describes where the data comes from and when the test skips.
set -euo pipefail

mode=$1 hpod=$2 hpoctl=$3 worker=$4 study=$5
source "$(dirname "${BASH_SOURCE[0]}")/e2e_lib.sh"

workers_endpoint=ipc://$tmp/workers
control_endpoint=ipc://$tmp/control

# Writes the study file with $1 epochs per trial to $tmp/study.json, so that
# a trial runs long enough to be interrupted.
write_study() {
    sed "s/\"epochs\": 2,/\"epochs\": $1,/" "$study" >"$tmp/study.json"
    grep -q "\"epochs\": $1," "$tmp/study.json" ||
        fail "cannot set the epochs of $study; expected \"epochs\": 2 in its budget"
}

# Waits up to 60 s until worker process $1 trains a trial with at least one
# stored epoch, and prints the trial id.
wait_mid_trial() {
    local pid=$1 trial=
    local deadline=$((SECONDS + 60))
    while [[ -z "$trial" ]]; do
        ((SECONDS < deadline)) || fail "worker $pid trained no trial within 60 s"
        sleep 0.05
        trial=$(sql "SELECT t.id FROM trials t JOIN workers w ON w.id = t.worker
            WHERE t.status = 'running' AND w.pid = $pid
              AND EXISTS (SELECT 1 FROM epochs e WHERE e.trial = t.id)
            LIMIT 1" 2>/dev/null || true)
    done
    echo "$trial"
}

# Prints the milliseconds from $1 (seconds since the epoch) to the first
# `requeued` event of trial $2.
requeue_delay_ms() {
    sql "SELECT CAST(round(((julianday(min(time)) - 2440587.5) * 86400.0 - $1)
        * 1000) AS INTEGER) FROM events WHERE trial = $2 AND event = 'requeued'"
}

# Trial $1 finished ok on its second attempt, on a worker other than
# process $2.
check_finished_elsewhere() {
    local trial=$1 pid=$2 row
    row=$(sql "SELECT t.status, t.attempts, w.pid FROM trials t
        JOIN workers w ON w.id = t.worker WHERE t.id = $trial")
    local status=${row%%|*} rest=${row#*|}
    local attempts=${rest%%|*} by=${rest#*|}
    [[ "$status" == ok ]] || fail "trial $trial ended $status, expected ok"
    ((attempts == 2)) || fail "trial $trial had $attempts attempts, expected 2"
    ((by != pid)) || fail "trial $trial was finished by the worker that was stopped"
}

# Starts hpod with max trials $1, heartbeats every 250 ms and workers lost
# after $2 of them, then the workers "victim" and "survivor". Sets victim to
# the victim's process id and trial to the trial it trains, once an epoch of
# it is stored.
victim=
trial=
start_victim_mid_trial() {
    write_study 6
    start_hpod --study "$tmp/study.json" --max-trials "$1" \
        --heartbeat-ms 250 --lost-after "$2"
    start_worker victim
    victim=$worker_pid
    start_worker survivor
    trial=$(wait_mid_trial "$victim")
}

# After the victim stopped: the study completes with the survivor alone,
# the victim's trial finished there, and every trial finished once.
check_study_survives() {
    wait_for 120 "SELECT state = 'complete' FROM study" "the study to complete"
    wait_hpod 0
    wait_workers
    check_finished_elsewhere "$trial" "$victim"
    check_complete_once "$1"
}

check_worker_kill() {
    local max=6 lost_after=4
    local timeout_ms=$((250 * lost_after))
    start_victim_mid_trial "$max" "$lost_after"

    local killed_at
    killed_at=$(now_seconds)
    kill -KILL "$victim"
    wait "$victim" 2>/dev/null || true
    forget_worker "$victim"

    wait_for 30 "SELECT count(*) > 0 FROM events WHERE trial = $trial
        AND event = 'requeued'" "trial $trial to be queued again"
    local delay_ms detail
    delay_ms=$(requeue_delay_ms "$killed_at" "$trial")
    detail=$(sql "SELECT detail FROM events WHERE trial = $trial AND event = 'requeued'")
    [[ "$detail" == "no message for $timeout_ms ms"* ]] ||
        fail "trial $trial was queued again for '$detail', expected a lost worker"
    # hpod checks for lost workers every 250 ms; the rest is slack for a
    # busy machine.
    ((delay_ms <= timeout_ms + 1500)) ||
        fail "trial $trial was queued again $delay_ms ms after the kill; the timeout is $timeout_ms ms"
    echo "worker-kill: trial $trial queued again $delay_ms ms after SIGKILL" \
         "(timeout $timeout_ms ms)"

    check_study_survives "$max"
    echo "worker-kill: $max trials finished once each"
}

check_worker_term() {
    # A lost-worker timeout of 10 s: a trial queued again sooner was
    # reported as interrupted.
    local max=4 lost_after=40
    local timeout_ms=$((250 * lost_after))
    start_victim_mid_trial "$max" "$lost_after"

    local stopped_at
    stopped_at=$(now_seconds)
    kill -TERM "$victim"
    local deadline=$((SECONDS + 20)) status=0
    while kill -0 "$victim" 2>/dev/null; do
        ((SECONDS < deadline)) || fail "worker $victim did not exit within 20 s of SIGTERM"
        sleep 0.05
    done
    wait "$victim" || status=$?
    forget_worker "$victim"
    ((status == 0)) || fail "worker $victim exited with $status after SIGTERM, expected 0"
    grep -q "result of trial $trial (interrupted) acknowledged" "$tmp/victim.log" ||
        fail "the stopped worker's interrupted result of trial $trial was not acknowledged"

    local delay_ms detail
    delay_ms=$(requeue_delay_ms "$stopped_at" "$trial")
    detail=$(sql "SELECT detail FROM events WHERE trial = $trial AND event = 'requeued'")
    [[ "$detail" == "interrupted on worker "* ]] ||
        fail "trial $trial was queued again for '$detail', expected an interrupted result"
    ((delay_ms < timeout_ms / 2)) ||
        fail "trial $trial was queued again $delay_ms ms after SIGTERM"
    echo "worker-term: trial $trial queued again $delay_ms ms after SIGTERM" \
         "(lost-worker timeout $timeout_ms ms)"

    check_study_survives "$max"
    echo "worker-term: $max trials finished once each"
}

# Every result that a worker logged as acknowledged with status ok or
# failed is a finished trial in the database.
check_acked_stored() {
    local acked
    acked=$(cat "$tmp"/worker-*.log |
        sed -n 's/.*result of trial \([0-9]*\) (\(ok\|failed\)) acknowledged.*/\1/p' |
        sort -un | paste -sd ,)
    [[ -n "$acked" ]] || fail "the workers logged no acknowledged result"
    local listed stored
    listed=$(tr ',' '\n' <<<"$acked" | wc -l)
    stored=$(sql "SELECT count(*) FROM trials WHERE id IN ($acked)
        AND status IN ('ok', 'failed')")
    ((stored == listed)) ||
        fail "$((listed - stored)) of $listed acknowledged results are not stored"
    echo "hpod-kill: $listed acknowledged results all stored"
}

# A worker receives a trial only after hpod committed the assignment, so no
# trial was received more often than its stored attempts count. A trial id
# reused after a crash would show up here.
check_receipts_recorded() {
    local count trial attempts
    while read -r count trial; do
        attempts=$(sql "SELECT attempts FROM trials WHERE id = $trial")
        [[ -n "$attempts" ]] || fail "workers received trial $trial, which is not stored"
        ((count <= attempts)) ||
            fail "workers received trial $trial $count times, but $attempts attempts are stored"
    done < <(cat "$tmp"/worker-*.log | sed -n 's/.* trial \([0-9]*\) received:.*/\1/p' |
        sort -n | uniq -c)
}

check_hpod_kill() {
    local max=20 kills=5
    local seed=${HPO_CHAOS_SEED:-$((RANDOM * 32768 + RANDOM))}
    RANDOM=$seed
    echo "hpod-kill: seed $seed"
    local options=(--heartbeat-ms 300 --lost-after 10)
    write_study 6
    start_hpod --study "$tmp/study.json" --max-trials "$max" "${options[@]}"
    start_worker worker-a
    start_worker worker-b

    for ((k = 1; k <= kills; k++)); do
        local delay_ms=$((100 + RANDOM % 1100))
        sleep "$((delay_ms / 1000)).$(printf '%03d' $((delay_ms % 1000)))"
        [[ "$(sql "SELECT state FROM study")" == running ]] ||
            fail "the study ended after $((k - 1)) kills; raise its max trials"
        kill -KILL "$hpod_pid"
        wait_hpod 137
        snapshot "$tmp/kill-$k.txt"
        echo "hpod-kill: kill $k, $delay_ms ms after hpod listened, with" \
             "$(wc -l <"$tmp/kill-$k.txt") trials finished and" \
             "$(sql "SELECT count(*) FROM trials WHERE status = 'running'") running"
        start_hpod "${options[@]}"
    done

    wait_for 120 "SELECT state = 'complete' FROM study" "the study to complete"
    wait_hpod 0
    wait_workers
    for ((k = 1; k <= kills; k++)); do
        check_kept "$tmp/kill-$k.txt"
    done
    check_acked_stored
    check_receipts_recorded
    check_complete_once "$max"
    echo "hpod-kill: $max trials finished once each after $kills kills"
}

case "$mode" in
    worker-kill) check_worker_kill ;;
    worker-term) check_worker_term ;;
    hpod-kill) check_hpod_kill ;;
    *) fail "unknown mode '$mode'; use worker-kill, worker-term or hpod-kill" ;;
esac
