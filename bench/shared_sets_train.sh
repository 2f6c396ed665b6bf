#!/usr/bin/env bash
# Fine-tune e5-small on the four shared sets, then domain-adapt it on
# SaudiNewsNet and fine-tune again: the runs behind the "shared sets" table of
# bench/journal/RESULTS-2026-11.md and docs/benchmarks.md. Needs ../shared/data and the converted encoder:
#
#   S=../shared/data; naba encoder import-e5 -o runs/encoders/e5-bench \
#       $(for f in ant/train ant/dev ant/test asnd/train asnd/dev asnd/test ans/train ans/dev \
#                  ans/test arabicstancex/train arabicstancex/test; do echo --trim-vocab $S/$f.jsonl; done) \
#       --trim-vocab $S/unlabeled/saudinewsnet/corpus_000.txt.gz
#   bash bench/shared_sets_train.sh            # both columns (about 2 hours on 2 CPU cores)
#   bash bench/shared_sets_train.sh e5         # only the fine-tuned e5 column
#   bash bench/shared_sets_train.sh dapt ant   # domain adaptation, then only ANT
#   bash bench/shared_sets_train.sh long       # e5 again, with epochs enough to converge (about 2.5 hours)
#   python bench/shared_sets.py --manifest ant=runs/bench-e5/ant ...   # the table
#   NAME=bench-rel-off EXTRA="tasks.stance.unrelated=false" bash bench/shared_sets_train.sh e5 ans arabicstancex
#                                       # the e5 column under another name, with extra settings
#
# The budgets are what 2 CPU cores afford: fixed step counts (a fraction of an
# epoch on the larger sets), short windows fitted to each set's token lengths.
# Wall-clock seconds of every command go to runs/bench-times.tsv. THREADS=N caps
# torch's threads (THREADS=1 when other jobs share the cores).
set -euo pipefail
cd "$(dirname "$0")/.."
NABA=${NABA:-.venv/bin/naba}
COLUMNS_TO_RUN=${1:-all}
TIMES=runs/bench-times.tsv
mkdir -p runs/logs

timed() {  # timed NAME COMMAND...: run, log, and record the wall-clock seconds
    local name=$1; shift
    local start=$SECONDS
    "$@" > "runs/logs/$name.log" 2>&1
    printf '%s\t%s\n' "$name" "$((SECONDS - start))" >> "$TIMES"
}

LR=(--set train.learning_rate=1e-4 --set train.head_learning_rate=2e-3 --set train.warmup_ratio=0.06
    --set train.early_stopping_patience=null --set train.checkpoint_every=null --no-progress --overwrite
    ${THREADS:+--set train.torch_threads=$THREADS})

# Per set: its config, its windows (fitted to its token lengths), and the budgets
# of the short columns (e5, dapt) and of the long one.
declare -A CONFIG=([ans]=configs/ans.yaml [asnd]=configs/aljazeera-posts.yaml [arabicstancex]=configs/stancex.yaml
                   [ant]=configs/ant.yaml)
declare -A WINDOW=([ans]="model.window.length=64"
                   [asnd]="model.window.length=64 model.window.stride=16 model.window.max_windows=1"
                   [arabicstancex]="model.window.length=96"
                   [ant]="model.window.length=128 model.window.stride=32 model.window.max_windows=1")
declare -A SHORT=([ans]="train.epochs=2 train.batch_size=32 train.eval_every=epoch"
                  [asnd]="train.epochs=1 train.batch_size=32 train.eval_every=84"
                  [arabicstancex]="train.max_steps=100 train.batch_size=32 train.eval_every=50"
                  [ant]="train.max_steps=300 train.batch_size=16 train.eval_every=150")
declare -A LONG=([ans]="train.epochs=3 train.batch_size=32 train.eval_every=epoch"
                 [asnd]="train.epochs=3 train.batch_size=32 train.eval_every=83 train.group_by_length=true"
                 [arabicstancex]="train.epochs=1.5 train.batch_size=32 train.eval_every=162 train.group_by_length=true"
                 [ant]="train.epochs=2 train.batch_size=16 train.eval_every=250")

run_set() {  # run_set ENCODER COLUMN SET short|long
    local base=$1 column=$2 set=$3 budget=$4 options=() setting
    [[ -n ${CONFIG[$set]:-} ]] || { echo "unknown set: $set" >&2; return 2; }
    if [[ $budget == long ]]; then budget=${LONG[$set]}; else budget=${SHORT[$set]}; fi
    for setting in ${WINDOW[$set]} $budget ${EXTRA:-}; do options+=(--set "$setting"); done
    timed "$column-${set/arabicstancex/stancex}" "$NABA" train "${CONFIG[$set]}" -o "runs/$column/$set" \
        --set model.base="$base" "${LR[@]}" "${options[@]}"
}

SETS=("${@:2}")
[[ ${#SETS[@]} -gt 0 ]] || SETS=(ans asnd arabicstancex ant)

if [[ $COLUMNS_TO_RUN == all || $COLUMNS_TO_RUN == e5 ]]; then
    for set in "${SETS[@]}"; do run_set runs/encoders/e5-bench "${NAME:-bench-e5}" "$set" short; done
fi
if [[ $COLUMNS_TO_RUN == all || $COLUMNS_TO_RUN == dapt ]]; then
    timed dapt-snn "$NABA" pretrain configs/pretrain-saudi-news.yaml --set model.base=runs/encoders/e5-bench \
        --set output_dir=runs/encoders/e5-bench-snn --set train.max_steps=150 --set train.eval_every=50 --set train.checkpoint_every=null \
        --set train.head_learning_rate=1e-3 --no-progress --overwrite ${THREADS:+--set train.torch_threads=$THREADS}
    for set in "${SETS[@]}"; do run_set runs/encoders/e5-bench-snn bench-e5-snn "$set" short; done
fi
if [[ $COLUMNS_TO_RUN == long ]]; then
    for set in "${SETS[@]}"; do run_set runs/encoders/e5-bench bench-e5-long "$set" long; done
fi
