#!/bin/bash
# The GPU study in one command: the gpu ladder (experiments/ladder/gpu.yaml) through `dvc repro`
# on one GPU, from a copy of this tree, the world rendered there. In order:
#   0. on a bare machine (WHEELS=<folder of the wheels benchmarks/gpu_study_wheels.txt lists>),
#      install them, offline (fourds itself runs from the tree: no install);
#   1. a smoke study (ladder gpu_smoke, a 12-video corpus, the stages of one scale that touch
#      the device) in its own repository: a CUDA-only failure ends the script here, in about a
#      minute;
#   2. benchmarks/world_rate.py at the largest scale: render, step and render+step clips/s;
#      from them benchmarks/study_steps.py fits the pretraining steps into the time left
#      (DEADLINE_S after the start, less RESERVE_S for the study's other stages): at most the
#      ladder's, fewer when the device is slower than that (params.yaml pins what ran);
#   3. the study: a new git repository holding this tree (no DVC remote, no runs/), params
#      composed for the ladder, the corpus rendered on the device (`fourds synth --renderer
#      batched`, tracked by `dvc add world`), `dvc repro`, then `fourds ship` of the results;
#   4. OUT gets at most 8 files: summary.json (device, commit, wall time of every part and
#      stage, clips/s, checkpoint digests), the study as gpu-study.tar.gz (params, lock,
#      world.dvc, runs/ and the shipped results; weights left out, their md5s in the lock),
#      world_rate.json and the logs (benchmarks/study_summary.py; the fanned-out stages' in
#      parallel-logs.tar.gz).
#
#   bash benchmarks/gpu_study.sh [OUT]        (OUT: default benchmarks/results/gpu-study)
#
# PARTS=sweep (alone, or with smoke) runs the ladder's learning-rate sweep instead of the study:
# SWEEP_SCALES (gpu_s,gpu_l), SWEEP_STEPS (200; warm-up SWEEP_WARMUP, 20; held-out every
# SWEEP_HELDOUT_EVERY, 50), SWEEP_LRS (1e-4,3e-4,1e-3,3e-3), with OVERRIDES; see the part below.
#
# PARTS="smoke rate" and then PARTS=study split it over two commands on the same machine (each
# at most 10 minutes where a lease limits one command); the second reads world_rate.json from
# OUT. WORK=<folder> keeps the studies there instead of in a temporary folder: a second command
# with the same WORK and PARTS=study goes on with a study the first cut short at its deadline
# (its params kept, no steps fitted again; DVC runs what is left).
#
# Environment: REHEARSE=1 (all of it on the CPU at smoke size, OUT benchmarks/results/quick/
# gpu-study: tests/test_gpu_study.py), PYTHON (python3), DEVICE (cuda), LADDER (gpu), OVERRIDES
# (extra Hydra overrides of both studies), SYNTH_ARGS (`fourds synth` options of the study; by
# default the corpus's 384/64/48 videos of 32 frames at 64 px), STAGES (the study's `dvc repro
# --glob` targets, "curate,pretrain readout fidelity,*" by default: groups split by commas run
# one after another, so that a study cut short by its deadline has the first groups whole;
# "curate,pretrain readout fidelity" leaves the report, whose wheels do not travel, to a CPU),
# JOBS (8: the second group's stages run JOBS at a time, each as soon as the stages it needs
# have run, by `fourds repro-parallel` in copies of the study's repository, until 45 s
# before the deadline; then its own `dvc repro` takes those that ran from DVC's run cache; 1:
# one at a time), WORLD_RATE_ARGS, SMOKE_LIMIT_S (120; 400 in the rehearsal, whose CPU may be
# shared), DEADLINE_S (575: the whole script's seconds), RESERVE_S (320: the study's seconds
# beside the pretraining steps), PARTS, BENCHMARK_GIT_COMMIT and BENCHMARK_GIT_DIRTY (the
# commit a copied tree came from).
set -euo pipefail
if [ "${REHEARSE:-0}" = 1 ]; then  # the CPU rehearsal: every step, at smoke size
    : "${LADDER:=gpu_smoke}" "${DEVICE:=cpu}" "${PYTHON:=python}"
    : "${OVERRIDES:=runtime.device=cpu pretrain.precision=fp32 pretrain.compile=false}"
    : "${SYNTH_ARGS:=--videos pretrain=4 readout-train=4 readout-test=4 --size 32}"
    : "${WORLD_RATE_ARGS:=--ladder gpu_smoke --scale gpu_s --steps 1}"
    : "${DEADLINE_S:=1100}" "${SMOKE_LIMIT_S:=400}" "${JOBS:=2}"
    : "${SWEEP_SCALES:=gpu_s,gpu_b}" "${SWEEP_STEPS:=4}" "${SWEEP_WARMUP:=1}"
    : "${SWEEP_HELDOUT_EVERY:=2}" "${SWEEP_LRS:=1e-3,3e-3}"
    set -- "${1:-benchmarks/results/quick/gpu-study}"
fi
python=${PYTHON:-python3}
device=${DEVICE:-cuda}
ladder=${LADDER:-gpu}
repo=$(pwd)
out=$(realpath -m "${1:-benchmarks/results/gpu-study}")
if [ -n "${WORK:-}" ]; then
    scratch=$(realpath -m "$WORK") && mkdir -p "$scratch"
else
    scratch=$(mktemp -d) && trap 'rm -rf "$scratch"' EXIT
fi
jobs=${JOBS:-8}
smoke_targets="curate,pretrain readout@gpu_s-frozen readout@gpu_s-initial fidelity@gpu_b"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
started=$(date +%s)

if [ -n "${WHEELS:-}" ]; then  # 0. a bare machine, no network
    "$python" -m pip install --quiet --no-index --find-links "$WHEELS" --no-deps --no-compile \
        -r benchmarks/gpu_study_wheels.txt
fi
# The stages run this tree's fourds, installed or not: `fourds` is `python -m fourds.cli` with
# the tree's src/ first on the path.
mkdir -p "$scratch/bin"
printf '#!/bin/sh\nexec %s -m fourds.cli "$@"\n' "$(command -v "$python")" > "$scratch/bin/fourds"
chmod +x "$scratch/bin/fourds"
export PATH="$scratch/bin:$PATH" PYTHONPATH="$repo/src${PYTHONPATH:+:$PYTHONPATH}"

# A new study in folder NAME of the scratch folder, its working directory from then on: its
# own git repository with this tree, params for ladder NAME (LADDER_OF_STUDY where set), a
# corpus rendered with `fourds synth` ARGS and tracked by `dvc add world`. One that exists is
# gone on with.
new_study() {
    local name=$1
    shift
    local work="$scratch/$name"
    if [ -d "$work" ]; then
        cd "$work"
        return
    fi
    mkdir -p "$work"
    tar -C "$repo" --exclude=./.git --exclude=./dvc-store --exclude=./runs \
        --exclude=./reports/out --exclude=./benchmarks/results --exclude='*.egg-info' \
        --exclude=__pycache__ --exclude=./.dvc/cache --exclude=./.dvc/tmp \
        --exclude="./${WHEELS:-wheels}" -cf - . | tar -C "$work" -xf -
    cd "$work"
    rm -f params.yaml dvc.lock
    git init -q && git add -A
    git -c user.name=fourds -c user.email=fourds@invalid commit -qm "the $name study"
    # shellcheck disable=SC2086
    fourds params "ladder=${LADDER_OF_STUDY:-$name}" ${OVERRIDES:-} --out params.yaml
    SECONDS=0
    fourds synth --renderer batched --device "$device" --out world "$@"
    echo "synth_seconds=$SECONDS" >> "$work.times"
    dvc add -q world
}

# A study (new_study NAME ARGS), `dvc repro --glob` of TARGETS (all when empty; comma-separated
# groups one after another) until the epoch second DEADLINE, the results shipped to
# reports/<NAME>-reference (a full run). A study of the smoke study's ladder (the CPU
# rehearsal's) goes on in the smoke study's repository: DVC runs only what is left.
study() {
    local name=$1 deadline=$2 targets=$3 group left
    shift 3
    local work="$scratch/$name"
    new_study "$name" "$@"
    SECONDS=0
    set -f  # the targets' globs are DVC's
    IFS=, read -ra groups <<< "${targets:-*}"
    for index in "${!groups[@]}"; do
        group=${groups[$index]}
        left=$(( deadline - $(date +%s) ))
        if [ "$left" -le 0 ]; then echo "gpu_study: no time left for $group" >&2; return 1; fi
        if [ "$index" = 1 ] && [ "$jobs" -gt 1 ]; then  # fanned out, then from the run cache
            # stages run until the deadline less 45 s, left to restore what ran (`ran`, in order)
            fanned=0
            # shellcheck disable=SC2086
            fourds repro-parallel --jobs "$jobs" \
                --deadline "$(( deadline - 45 ))" --logs "$work.parallel" \
                --keep 'runs/*/*/execution.yaml' \
                --keep 'runs/pretrain/*/live/plots/metrics/perf/*.tsv' $group || fanned=$?
            mapfile -t ran < "$work.parallel/ran"
            left=$(( deadline - $(date +%s) ))
            if [ "${#ran[@]}" -gt 0 ]; then timeout "$left" dvc repro "${ran[@]}"; fi
            if [ "$fanned" != 0 ]; then
                echo "gpu_study: not every stage of $group ran" >&2
                return 1
            fi
        else
            # shellcheck disable=SC2086
            timeout "$left" dvc repro --glob $group
        fi
    done
    set +f
    echo "repro_seconds=$SECONDS" >> "$work.times"
    if [ "$targets" != "$smoke_targets" ]; then fourds ship --out "reports/$name-reference"; fi
}

# Run a study, logged to $1, in a subshell that stops at its first failing command (not in an
# `if`, where bash would ignore `set -e`); sets `status`.
run_study() {
    local log=$1
    shift
    set +e
    (set -eE; trap 'echo "gpu_study: failed: $BASH_COMMAND" >&2' ERR; study "$@") > "$log" 2>&1
    status=$?
    set -e
}

part() { [[ " ${PARTS:-smoke rate study} " == *" $1 "* ]]; }

# 1. every device path once: the world rendered and compiled, both pretrain stages, the
# smallest scale's readout stage of each regime (every task of readout.tasks), fidelity
if part smoke; then
    small=(--videos pretrain=4 readout-train=4 readout-test=4 --size 32)
    run_study "$out/smoke.log" gpu_smoke "$(( started + ${SMOKE_LIMIT_S:-120} ))" \
        "$smoke_targets" "${small[@]}"
    if [ "$status" != 0 ]; then
        echo "the smoke study failed: $out/smoke.log"; tail -20 "$out/smoke.log"; exit 1
    fi
    echo "smoke study passed in $(( $(date +%s) - started )) s"
fi

# 2. the world's rate beside the step's
if part rate; then
    # shellcheck disable=SC2086
    timeout 120 "$python" benchmarks/world_rate.py ${WORLD_RATE_ARGS:---ladder $ladder --steps 6} \
        --out "$out" ${OVERRIDES:-} > "$out/world_rate.log" 2>&1 \
        || echo "world_rate failed: $out/world_rate.log"
    echo "world rate measured at $(( $(date +%s) - started )) s"
fi
# The learning-rate sweep (PARTS=sweep; not in the default parts): SWEEP_SCALES of the ladder
# pretrained SWEEP_STEPS steps at every lr of SWEEP_LRS, seed 0, each point a DVC experiment in
# a study repository of its own (`fourds sweep`): OUT gets gpu_lr_sweep.json
# (every scale's held-out curve per point) and gpu_lr_sweep.png.
if part sweep; then
    sets=(--set "ladder=$ladder" --set "ladder.scales=[${SWEEP_SCALES:-gpu_s,gpu_l}]")
    sets+=(--set "pretrain.steps=${SWEEP_STEPS:-200}" --set "pretrain.warmup_steps=${SWEEP_WARMUP:-20}")
    sets+=(--set "pretrain.checkpoint_every=0" --set "pretrain.heldout_every=${SWEEP_HELDOUT_EVERY:-50}")
    for override in ${OVERRIDES:-}; do sets+=(--set "$override"); done
    (
        set -e
        # shellcheck disable=SC2086
        LADDER_OF_STUDY=$ladder new_study "$ladder-sweep" ${SYNTH_ARGS:-}
        git add -A && git -c user.name=fourds -c user.email=fourds@invalid commit -qm "its corpus"
        fourds sweep --repository "$scratch/$ladder-sweep" \
            --name gpu_lr_sweep "${sets[@]}" --grid "pretrain.lr=${SWEEP_LRS:-1e-4,3e-4,1e-3,3e-3}" \
            --grid pretrain.seed=0 --out "$out"
    ) > "$out/sweep.log" 2>&1 || echo "the sweep failed: $out/sweep.log"
    echo "sweep done at $(( $(date +%s) - started )) s"
fi
part study || exit 0

# 3. the pretraining steps that fit the time left (world_rate.json in OUT), then the study
deadline=$(( started + ${DEADLINE_S:-575} - 20 ))  # 20 s for the summary
if [ -f "$out/world_rate.json" ] && [ ! -d "$scratch/$ladder" ]; then
    pretraining=$(( deadline - $(date +%s) - ${RESERVE_S:-320} ))
    # shellcheck disable=SC2086
    fitted=$("$python" benchmarks/study_steps.py \
        --ladder "$ladder" --rate "$out/world_rate.json" --seconds "$pretraining" ${OVERRIDES:-})
    echo "pretraining fitted to $pretraining s: $fitted"
    OVERRIDES="${OVERRIDES:-} $fitted"
fi
# shellcheck disable=SC2086
run_study "$out/study.log" "$ladder" "$deadline" "${STAGES:-curate,pretrain readout fidelity,*}" \
    ${SYNTH_ARGS:-}
if [ "$status" != 0 ]; then
    echo "the study failed: $out/study.log"; tail -20 "$out/study.log"
fi
if [ -d "$scratch/$ladder.parallel" ]; then  # each fanned-out stage's output
    tar -czf "$out/parallel-logs.tar.gz" -C "$scratch" "$ladder.parallel"
fi
"$python" benchmarks/study_summary.py "$scratch/$ladder" "$scratch/$ladder.times" "$out" \
    --started "$started" --parallel "$scratch/$ladder.parallel/parallel_repro.json"
