#!/usr/bin/env bash
# End-to-end tests of a real study: hpod on loopback TCP or IPC, two hpo-worker
# processes training on CIFAR-10, and hpoctl. The database is checked with
# the sqlite3 shell, independently of hpod's own code.
#
#   test_e2e.sh MODE HPOD HPOCTL HPO_WORKER STUDY_FILE
#
# MODE "study" runs a study on loopback TCP to completion and checks that
# best and summary agree with the database and that both workers trained.
# MODE "resume" stops hpod by SIGTERM, which sends the workers the restart
# notice, and later kills it by SIGKILL mid-study, restarting it on the
# same database each time. Both workers must reconnect each time and exit
# at the end, and the study must complete with no finished trial lost or
# repeated. test_chaos.sh kills hpod and workers more often.
# e2e_lib.sh describes where the data comes from and when the test skips.
set -euo pipefail

mode=$1 hpod=$2 hpoctl=$3 worker=$4 study=$5
source "$(dirname "${BASH_SOURCE[0]}")/e2e_lib.sh"

# Extracts a value from a JSON document with SQLite's json_extract.
json_get() {
    sqlite3 -batch -noheader :memory: "SELECT json_extract(readfile('$1'), '$2')"
}

check_study() {
    start_hpod --study "$study" --max-trials 6 --linger
    start_worker worker-a
    start_worker worker-b
    wait_for 150 "SELECT state = 'complete' FROM study" "the study to complete"

    local ok
    ok=$(sql "SELECT count(*) FROM trials WHERE status = 'ok'")
    ((ok >= 6)) || fail "$ok trials finished ok, expected at least 6"

    # The best trial: the maximum stored val_accuracy, ties by id.
    local expected_best expected_score
    expected_best=$(sql "SELECT id FROM trials WHERE status = 'ok'
        ORDER BY json_extract(metrics, '\$.val_accuracy') DESC, id LIMIT 1")
    expected_score=$(sql "SELECT max(json_extract(metrics, '\$.val_accuracy'))
        FROM trials WHERE status = 'ok'")
    ctl best --json >"$tmp/best.json"
    local best_id best_score
    best_id=$(json_get "$tmp/best.json" '$.trial.id')
    best_score=$(json_get "$tmp/best.json" '$.trial.metrics.val_accuracy')
    [[ "$best_id" == "$expected_best" ]] ||
        fail "hpoctl best returned trial $best_id, the database's best is $expected_best"
    [[ "$best_score" == "$expected_score" ]] ||
        fail "hpoctl best reports val_accuracy $best_score, the maximum stored is $expected_score"

    # hpoctl best in text form names the same trial.
    ctl best | grep -qx "Best trial: $expected_best" ||
        fail "hpoctl best (text) does not name trial $expected_best"

    # summary lists the ok trials in descending val_accuracy.
    local expected_order summary_order
    expected_order=$(sql "SELECT group_concat(id, ' ') FROM (SELECT id FROM trials
        WHERE status = 'ok' ORDER BY objective DESC, id)")
    summary_order=$(ctl summary --top 100 | sed -n 's/^Trial \([0-9]*\) summary$/\1/p' |
        paste -sd ' ')
    [[ "$summary_order" == "$expected_order" ]] ||
        fail "hpoctl summary order '$summary_order', expected '$expected_order'"
    ctl summary | grep '^Score: ' | sed 's/^Score: //' | sort -c -g -r ||
        fail "hpoctl summary scores are not in descending order"

    # Both worker processes trained at least one trial.
    local trained
    trained=$(sql "SELECT count(DISTINCT w.pid) FROM trials t
        JOIN workers w ON w.id = t.worker WHERE t.status = 'ok'")
    ((trained == 2)) || fail "$trained worker processes trained trials, expected 2"

    # Every ok trial stored its epochs.
    local missing
    missing=$(sql "SELECT count(*) FROM trials t WHERE status = 'ok' AND
        (SELECT count(*) FROM epochs e WHERE e.trial = t.id) != t.epochs_run")
    ((missing == 0)) || fail "$missing ok trials lack stored epochs"

    # The offline answer from the database equals hpod's.
    "$hpoctl" --db "$db" best --json >"$tmp/best-offline.json"
    cmp -s "$tmp/best.json" "$tmp/best-offline.json" ||
        fail "hpoctl --db best differs from hpod's answer"

    ctl status | grep -q '^Study tiny: complete' || fail "hpoctl status is not complete"
    ctl stop >/dev/null
    wait_hpod 0
    wait_workers
    echo "study: $ok trials ok, best trial $best_id with val_accuracy $best_score"
}

check_resume() {
    local max=10
    # IPC endpoints: a restarted hpod must bind the same endpoint again, and
    # a TCP port from the ephemeral range can meanwhile be taken by a
    # worker's reconnect attempt connecting to itself.
    workers_endpoint=ipc://$tmp/workers
    control_endpoint=ipc://$tmp/control
    start_hpod --study "$study" --max-trials "$max"
    start_worker worker-a
    start_worker worker-b

    # SIGTERM while trials run: hpod queues them again and exits 0.
    wait_for 120 "SELECT count(*) >= 2 FROM trials WHERE status = 'ok'" \
        "two finished trials"
    # hpoctl status names each worker by the --name it was started with.
    for name in worker-a worker-b; do
        ctl status | grep -q "^  w[0-9]* ($name)  " ||
            fail "hpoctl status does not list $name by name"
    done
    kill -TERM "$hpod_pid"
    wait_hpod 0
    snapshot "$tmp/after-term.txt"
    for name in worker-a worker-b; do
        grep -q "coordinator restarting" "$tmp/$name.log" ||
            fail "$name was not told that hpod restarts"
    done
    [[ "$(sql "SELECT state FROM study")" == stopped ]] ||
        fail "the study is not stopped after SIGTERM"
    [[ "$(sql "SELECT count(*) FROM trials WHERE status = 'running'")" == 0 ]] ||
        fail "trials still running after SIGTERM"
    echo "resume: SIGTERM with $(wc -l <"$tmp/after-term.txt") trials finished," \
         "$(sql "SELECT count(*) FROM events WHERE detail = 'stopped by a signal'")" \
         "re-queued"

    # The workers reconnect to the restarted hpod by themselves.
    start_hpod
    wait_for 120 "SELECT count(*) >= $(($(wc -l <"$tmp/after-term.txt") + 2))
        FROM trials WHERE status = 'ok'" "two more finished trials"
    local running
    running=$(sql "SELECT count(*) FROM trials WHERE status = 'running'")
    kill -KILL "$hpod_pid"
    wait_hpod 137
    snapshot "$tmp/after-kill.txt"
    echo "resume: SIGKILL with $(wc -l <"$tmp/after-kill.txt") trials finished," \
         "$running running"

    # The workers reconnect to the restarted hpod by themselves and exit
    # when the study is done.
    start_hpod
    wait_hpod 0
    wait_workers

    check_kept "$tmp/after-term.txt"
    check_kept "$tmp/after-kill.txt"
    check_complete_once "$max"
    echo "resume: $max trials counted after two restarts"
}

case "$mode" in
    study) check_study ;;
    resume) check_resume ;;
    *) fail "unknown mode '$mode'; use study or resume" ;;
esac
