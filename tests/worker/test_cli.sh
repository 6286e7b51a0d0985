#!/usr/bin/env bash
# Tests of `hpo-worker train` as a user runs it: bad input gives the stated
# error and a non-zero exit; a good run prints the summary, epoch lines and
# the test accuracy, as text or JSON lines.
#
# usage: test_cli.sh HPO_WORKER SOURCE_DIR CIFAR10_DIR
set -u

worker=$1
source_dir=$2
data_dir=${HPO_CIFAR10_DIR:-$3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

# expect NAME STATUS TEXT -- COMMAND...: runs COMMAND, checks its exit status
# and that its output (stdout and stderr) contains TEXT.
expect() {
  local name=$1 status=$2 text=$3
  shift 4
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  if [[ $rc -ne $status ]]; then
    echo "FAIL $name: exit status $rc, expected $status; output:"; echo "$out" | tail -5
    failures=$((failures + 1))
  elif [[ "$out" != *"$text"* ]]; then
    echo "FAIL $name: output lacks \"$text\"; output:"; echo "$out" | tail -5
    failures=$((failures + 1))
  else
    echo "ok   $name"
  fi
}

small=$source_dir/examples/small-model.json

expect "no command" 2 "usage: hpo-worker" -- "$worker"
expect "unknown command" 2 "unknown command \"fly\"" -- "$worker" fly
expect "missing model" 2 "missing --model FILE" -- "$worker" train --data "$data_dir"
expect "model not found" 1 "/nonexistent.json: cannot open model spec" -- \
  "$worker" train --model /nonexistent.json
expect "bad train size" 2 "invalid --train-size \"ten\"" -- \
  "$worker" train --model "$small" --train-size ten
expect "zero epochs" 2 "invalid --epochs \"0\"" -- "$worker" train --model "$small" --epochs 0
expect "bad scaling" 2 "invalid --scaling \"minmax\"" -- \
  "$worker" train --model "$small" --scaling minmax
expect "bad precision" 2 "invalid --precision \"half\"" -- \
  "$worker" train --model "$small" --precision half
expect "bf16 on blas" 1 "precision bfloat16 needs the dnnl backend" -- \
  "$worker" train --model "$small" --precision bfloat16 --backend blas --data "$data_dir" \
    --train-size 64 --val-size 0 --test-size 0
expect "unknown option" 2 "usage: hpo-worker train" -- "$worker" train --model "$small" --fast

cat >"$tmp/too-deep.json" <<'JSON'
{"layers": [
  {"type": "conv2d", "filters": 8, "kernel_size": 5},
  {"type": "conv2d", "filters": 8, "kernel_size": 5},
  {"type": "maxpool2d", "pool_size": 8},
  {"type": "conv2d", "filters": 8, "kernel_size": 5},
  {"type": "flatten"},
  {"type": "dense", "units": 10, "activation": "softmax"}]}
JSON
expect "kernel larger than input" 1 "layers[3].kernel_size: 5 is larger than the 3x3 input" -- \
  "$worker" train --model "$tmp/too-deep.json"

printf '{"layers": [{"type": "flatten"}, {"type": "dense", "units": 10}]}' >"$tmp/no-head.json"
expect "missing softmax head" 1 "layers[1]: the last layer must be the classifier head" -- \
  "$worker" train --model "$tmp/no-head.json"

expect "data folder missing" 1 "CIFAR-10 folder /nonexistent-cifar not found" -- \
  "$worker" train --model "$small" --data /nonexistent-cifar

# A folder whose first batch is cut in the middle of record 5.
mkdir "$tmp/cut"
for f in data_batch_1 data_batch_2 data_batch_3 data_batch_4 data_batch_5 test_batch; do
  truncate -s 30730000 "$tmp/cut/$f.bin"
done
truncate -s 15465 "$tmp/cut/data_batch_1.bin"
expect "truncated batch" 1 "data_batch_1.bin" -- \
  "$worker" train --model "$small" --data "$tmp/cut" --train-size 100 --val-size 10
expect "truncated batch offset" 1 "offset 15365" -- \
  "$worker" train --model "$small" --data "$tmp/cut" --train-size 100 --val-size 10

if [[ -f "$data_dir/data_batch_1.bin" ]]; then
  expect "text run" 0 "Test loss: " -- \
    "$worker" train --model "$small" --data "$data_dir" --train-size 256 --val-size 64 \
      --test-size 128 --epochs 1 --threads 1
  expect "text summary" 0 "Total params: 315722" -- \
    "$worker" train --model "$small" --data "$data_dir" --train-size 64 --val-size 0 \
      --test-size 0 --epochs 1 --threads 1
  json=$("$worker" train --model "$small" --data "$data_dir" --train-size 256 --val-size 64 \
    --test-size 128 --epochs 2 --threads 1 --json 2>/dev/null)
  for want in '"event":"summary"' '"total_params":315722' '"event":"epoch","epoch":2' \
              '"val_accuracy":' '"images_per_second":' '"event":"result"' '"test_accuracy":'; do
    if [[ "$json" != *"$want"* ]]; then
      echo "FAIL json output lacks $want"; failures=$((failures + 1))
    fi
  done
  [[ $(grep -c '"event":"epoch"' <<<"$json") -eq 2 ]] || {
    echo "FAIL json output: expected 2 epoch lines"; failures=$((failures + 1)); }
  echo "ok   json lines"
else
  echo "skip runs on real data: CIFAR-10 not found at $data_dir (set HPO_CIFAR10_DIR)"
fi

[[ $failures -eq 0 ]] || { echo "$failures failure(s)"; exit 1; }
