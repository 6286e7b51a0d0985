#!/usr/bin/env bash
# Authentication tests: hpod with CURVE and an authorized-keys file, against
# hpoctl and hpo-worker processes with no key, an unlisted key, a key whose
# role does not fit, and listed keys. Endpoints are IPC sockets, so no TCP
# port is involved except where a test binds tcp://0.0.0.0:0.
#
#   test_auth.sh MODE HPOD HPOCTL HPO_WORKER STUDY_FILE
#
# MODE "cli" needs no data: key generation, the refusal to listen beyond
# this host without CURVE, secret key file modes, and hpoctl against a
# CURVE hpod (a read key may query but not stop, an admin key may stop).
# MODE "study" runs hpo-workers on CIFAR-10: workers without a listed
# worker key get no trial, a listed one completes a tiny study. It is
# skipped (exit 77) when CIFAR-10 is in neither $HPO_CIFAR10_DIR nor
# $HPO_TEST_CIFAR10_DIR.
set -euo pipefail

mode=$1 hpod=$2 hpoctl=$3 worker=$4 study=$5

tmp=$(mktemp -d /tmp/hpo-test-auth-XXXXXX)
pids=()

cleanup() {
    local status=$?
    for pid in "${pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if ((status != 0)); then
        for log in "$tmp"/*.log; do
            [[ -f "$log" ]] || continue
            echo "--- last lines of $log" >&2
            tail -n 40 "$log" >&2 || true
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

# Runs a command, stores its exit status in $rc and its output in $out.
capture() {
    rc=0
    out=$("$@" 2>&1) || rc=$?
}

# Checks that the last capture exited with $1 and printed the text $2.
expect() {
    local status=$1 text=$2 what=$3
    ((rc == status)) || fail "$what: exit status $rc, expected $status; output: $out"
    [[ "$out" == *"$text"* ]] || fail "$what: output lacks '$text': $out"
}

# Waits up to $1 seconds for the fixed string $2 in file $3.
wait_for_text() {
    local seconds=$1 text=$2 file=$3
    local deadline=$((SECONDS + seconds))
    until grep -qF -- "$text" "$file" 2>/dev/null; do
        ((SECONDS < deadline)) || fail "timed out after ${seconds} s waiting for '$text' in $file"
        sleep 0.1
    done
}

# Starts hpod with the study, IPC endpoints unless given, and the options
# in "$@"; waits until it listens.
hpod_pid=
start_hpod() {
    rm -f "$tmp/ready"
    "$hpod" --db "$tmp/study.db" --study "$study" --ready-file "$tmp/ready" \
        --control "ipc://$tmp/control" "$@" >>"$tmp/hpod.log" 2>&1 &
    hpod_pid=$!
    pids+=("$hpod_pid")
    local deadline=$((SECONDS + 30))
    while [[ ! -f "$tmp/ready" ]]; do
        kill -0 "$hpod_pid" 2>/dev/null || fail "hpod exited before listening"
        ((SECONDS < deadline)) || fail "hpod did not start listening within 30 s"
        sleep 0.05
    done
    workers_endpoint=$(sed -n 's/^workers=//p' "$tmp/ready")
}

wait_hpod() {
    local expected=$1 status=0
    wait "$hpod_pid" || status=$?
    ((status == expected)) || fail "hpod exited with $status, expected $expected"
}

# hpoctl against the running hpod; "$1" names a key pair in $tmp or "none".
ctl() {
    local key=$1
    shift
    local args=(--connect "ipc://$tmp/control" --timeout 10000)
    if [[ "$key" != none ]]; then
        args+=(--curve-secret "$tmp/$key.key" --server-key "$tmp/server.pub")
    fi
    "$hpoctl" "${args[@]}" "$@"
}

public_key() {
    cat "$tmp/$1.pub"
}

# Key pairs for the server and each kind of client, and hpod's
# authorized-keys file. "stranger" is not listed.
make_keys() {
    local name
    for name in server other-server worker reader admin stranger; do
        "$hpoctl" keygen --out "$tmp/$name" >/dev/null
    done
    {
        echo "# clients of the test study"
        echo "$(public_key worker) worker  # the study's worker"
        echo "$(public_key reader) read    # a read-only client"
        echo "$(public_key admin) admin"
    } >"$tmp/authorized_keys"
    curve=(--curve-secret "$tmp/server.key" --authorized-keys "$tmp/authorized_keys")
}

check_keygen() {
    capture "$hpoctl" keygen --out "$tmp/k"
    expect 0 "wrote $tmp/k.key (secret key, mode 0600) and $tmp/k.pub" "keygen"
    [[ "$(stat -c %a "$tmp/k.key")" == 600 ]] || fail "k.key has mode $(stat -c %a "$tmp/k.key")"
    [[ "$(stat -c %a "$tmp/k.pub")" == 644 ]] || fail "k.pub has mode $(stat -c %a "$tmp/k.pub")"
    local key
    key=$(cat "$tmp/k.pub")
    ((${#key} == 40)) || fail "k.pub holds '$key', expected a 40-character key"
    [[ "$out" == *"public key: $key"* ]] || fail "keygen printed another public key: $out"
    grep -qxF "public-key $key" "$tmp/k.key" || fail "k.key lacks the public key"
    grep -q '^secret-key .\{40\}$' "$tmp/k.key" || fail "k.key lacks a secret key"

    local before
    before=$(cat "$tmp/k.key")
    capture "$hpoctl" keygen --out "$tmp/k"
    expect 1 "exists already; remove it or choose another --out prefix" \
        "keygen over existing files"
    [[ "$(cat "$tmp/k.key")" == "$before" ]] || fail "keygen overwrote k.key"
    capture "$hpoctl" keygen
    expect 2 "--out PREFIX is missing" "keygen without --out"
    echo "cli: keygen writes 0600 and 0644 files and never overwrites them"
}

# Without CURVE, hpod listens beyond this host only with --insecure.
check_exposure() {
    local db=$tmp/refused.db endpoint
    for endpoint in tcp://0.0.0.0:5999 'tcp://*:5999' tcp://10.1.2.3:5999; do
        capture "$hpod" --db "$db" --study "$study" --workers "$endpoint" \
            --control "ipc://$tmp/control"
        expect 2 "--workers $endpoint is reachable from other hosts, and CURVE is off" \
            "hpod --workers $endpoint"
        [[ "$out" == *"--insecure"* && "$out" == *"--curve-secret FILE"* ]] ||
            fail "the refusal does not name the fixes: $out"
    done
    capture "$hpod" --db "$db" --study "$study" --workers "ipc://$tmp/workers" \
        --control tcp://0.0.0.0:5998
    expect 2 "--control tcp://0.0.0.0:5998 is reachable from other hosts" "hpod --control"
    [[ ! -e "$db" ]] || fail "a refused hpod created its database"

    capture "$hpod" --db "$db" --study "$study" --curve-secret "$tmp/server.key"
    expect 2 "--authorized-keys is missing" "hpod --curve-secret alone"

    # --insecure: hpod starts on all interfaces (port chosen by the kernel,
    # nothing connects to it) and warns.
    start_hpod --workers tcp://0.0.0.0:0 --insecure --linger
    grep -q "WARN listening on tcp://0.0.0.0:0 without CURVE (--insecure)" "$tmp/hpod.log" ||
        fail "hpod --insecure did not warn"
    [[ "$workers_endpoint" == tcp://0.0.0.0:* ]] || fail "workers endpoint $workers_endpoint"
    capture ctl none stop
    expect 0 "hpod is stopping" "hpoctl stop of an hpod without CURVE"
    wait_hpod 0
    rm -f "$tmp/study.db"

    # With CURVE, a non-loopback address needs no --insecure.
    mv "$tmp/hpod.log" "$tmp/hpod-insecure.log"
    start_hpod --workers tcp://0.0.0.0:0 "${curve[@]}" --linger
    capture ctl admin stop
    expect 0 "hpod is stopping" "hpoctl stop with an admin key"
    wait_hpod 0
    ! grep -q -- "--insecure" "$tmp/hpod.log" || fail "hpod with CURVE mentions --insecure"
    rm -f "$tmp/study.db"
    echo "cli: hpod refuses tcp://0.0.0.0 and tcp://* without CURVE, starts with" \
         "--insecure and a warning, or with CURVE"
}

# Secret key files that others may read are rejected by all three programs.
check_key_modes() {
    chmod 0644 "$tmp/server.key" "$tmp/admin.key"
    capture "$hpod" --db "$tmp/modes.db" --study "$study" --workers "ipc://$tmp/w" \
        --control "ipc://$tmp/c" "${curve[@]}"
    expect 1 "secret key file $tmp/server.key has mode 0644" "hpod with a 0644 key"
    [[ "$out" == *"chmod 600 $tmp/server.key"* ]] || fail "no chmod hint: $out"

    capture ctl admin status
    expect 1 "secret key file $tmp/admin.key has mode 0644" "hpoctl with a 0644 key"
    capture "$worker" --connect "ipc://$tmp/w" --curve-secret "$tmp/admin.key" \
        --server-key "$tmp/server.pub"
    expect 2 "secret key file $tmp/admin.key has mode 0644" "hpo-worker with a 0644 key"
    chmod 0600 "$tmp/server.key" "$tmp/admin.key"
    echo "cli: hpod, hpoctl and hpo-worker reject a secret key file with mode 0644"
}

# hpoctl against a CURVE hpod: a client without a listed key gets no reply,
# a read key queries but cannot stop, and an admin key stops.
check_control() {
    start_hpod --workers "ipc://$tmp/workers" "${curve[@]}" --linger

    capture ctl none status
    expect 1 "requires CURVE" "hpoctl without keys"
    capture ctl stranger status
    expect 1 "the server rejected this key (ZAP status 400)" "hpoctl with an unlisted key"
    wait_for_text 10 "rejected key $(public_key stranger) from" "$tmp/hpod.log"
    capture ctl worker status
    expect 1 "the server rejected this key" "hpoctl with a worker key"
    wait_for_text 10 "role worker may not connect there" "$tmp/hpod.log"
    capture "$hpoctl" --connect "ipc://$tmp/control" --timeout 10000 \
        --curve-secret "$tmp/admin.key" --server-key "$tmp/other-server.pub" status
    expect 1 "check that the server's public key is the right one" \
        "hpoctl with another server's key"
    [[ "$out" != *"Study tiny"* ]] || fail "a rejected client got an answer: $out"

    capture ctl reader status
    expect 0 "Study tiny: running (answered by hpod" "hpoctl status with a read key"
    capture ctl reader space
    expect 0 "filters" "hpoctl space with a read key"
    capture ctl reader stop
    expect 1 "hpod returned error permission_denied: stop changes the study and needs a key with the admin role" \
        "hpoctl stop with a read key"
    sleep 0.5
    kill -0 "$hpod_pid" 2>/dev/null || fail "hpod exited after a read key's stop"
    capture ctl reader status
    expect 0 "Study tiny: running" "hpoctl status after the rejected stop"
    grep -q 'query rejected: stop changes the study' "$tmp/hpod.log" ||
        fail "hpod did not log the rejected stop"

    capture ctl admin stop
    expect 0 "hpod is stopping; study state: stopped" "hpoctl stop with an admin key"
    wait_hpod 0
    capture "$hpoctl" --db "$tmp/study.db" status
    expect 0 "Study tiny: stopped" "the study after the admin's stop"
    rm -f "$tmp/study.db"
    echo "cli: no key, an unlisted key, a worker key and a wrong server key get no" \
         "answer; a read key queries but cannot stop; an admin key stops"
}

start_worker() {
    local name=$1
    shift
    "$worker" --connect "$workers_endpoint" --data "$data" --threads 1 --name "$name" \
        "$@" >>"$tmp/$name.log" 2>&1 &
    pids+=("$!")
    eval "${name//-/_}_pid=$!"
}

keys_of() {
    echo --curve-secret "$tmp/$1.key" --server-key "$tmp/server.pub"
}

# Workers without a listed worker key get no trial; a listed one completes
# the study.
check_study() {
    start_hpod --workers "ipc://$tmp/workers" "${curve[@]}" --max-trials 2 --linger

    # shellcheck disable=SC2046 # keys_of prints separate options
    {
        start_worker no-key
        start_worker stranger $(keys_of stranger)
        start_worker reader $(keys_of reader)
        start_worker wrong-server --curve-secret "$tmp/worker.key" \
            --server-key "$tmp/other-server.pub"
    }
    wait_for_text 30 "rejected key $(public_key stranger) from" "$tmp/hpod.log"
    wait_for_text 30 "role read may not connect there" "$tmp/hpod.log"
    wait_for_text 30 "requires CURVE" "$tmp/no-key.log"
    wait_for_text 30 "the server rejected this key (ZAP status 400)" "$tmp/stranger.log"
    wait_for_text 30 "the server rejected this key (ZAP status 400)" "$tmp/reader.log"
    wait_for_text 30 "check that the server's public key is the right one" \
        "$tmp/wrong-server.log"
    grep -q "handshake on the workers endpoint" "$tmp/hpod.log" ||
        fail "hpod logged no failed handshake for the worker without keys"
    # Give them a few more reconnects, then nothing may have reached hpod.
    sleep 2
    capture ctl reader status
    expect 0 "Trials: 0 of 2 counted; 0 queued, 0 running, 0 ok, 0 failed" \
        "trials with only rejected workers"
    expect 0 "Workers: 0 connected" "workers with only rejected workers"
    ! grep -q "registered: " "$tmp/hpod.log" || fail "a rejected worker registered"
    local bad
    for bad in no-key stranger reader wrong-server; do
        ! grep -q "registered with" "$tmp/$bad.log" || fail "worker $bad registered"
    done
    kill -TERM "$no_key_pid" "$stranger_pid" "$reader_pid" "$wrong_server_pid"
    echo "study: workers without a key, with an unlisted key, with a read key and" \
         "with another server's key got no trial"

    # shellcheck disable=SC2046
    start_worker listed $(keys_of worker)
    local deadline=$((SECONDS + 240))
    until ctl reader status 2>/dev/null | grep -q '^Study tiny: complete'; do
        ((SECONDS < deadline)) || fail "the study did not complete within 240 s"
        sleep 1
    done
    grep -qF "admitted key $(public_key worker) (role worker)" "$tmp/hpod.log" ||
        fail "hpod did not log the admitted worker key"
    capture ctl reader status
    expect 0 "Trials: 2 of 2 counted" "trials after the study"
    capture ctl reader best --json
    expect 0 '"val_accuracy"' "hpoctl best with a read key"

    capture ctl reader stop
    expect 1 "permission_denied" "hpoctl stop with a read key after the study"
    capture ctl admin stop
    expect 0 "hpod is stopping" "hpoctl stop with an admin key"
    wait_hpod 0
    echo "study: the worker with a listed key completed 2 trials"
}

make_keys
case "$mode" in
    cli)
        check_keygen
        check_exposure
        check_key_modes
        check_control
        ;;
    study)
        data=${HPO_CIFAR10_DIR:-${HPO_TEST_CIFAR10_DIR:-}}
        if [[ -z "$data" || ! -f "$data/data_batch_1.bin" ]]; then
            echo "SKIP: CIFAR-10 not found in '${data}'; set HPO_CIFAR10_DIR to the" \
                 "folder with data_batch_1.bin" >&2
            exit 77
        fi
        check_study
        ;;
    *) fail "unknown mode '$mode'; use cli or study" ;;
esac
