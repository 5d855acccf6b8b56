#!/bin/bash
# Issue 17's longer schedules on one lent GPU, in one call of the device tool.
# Its machine has JAX, Flax, Optax and Orbax but not ml_collections or
# tensorboardX, reaches no network, and gets only this checkout (64 MiB in
# all; ../shared stays behind), so the wheels and the data travel in .device/:
#
#   JAXSR_DATA_DIR=../shared/datasets bash launch/gpu_pretrained.sh bundle
#       here: .device/ (git-ignored) with the two wheels, T91 and Set5 (~11 MB)
#   bash launch/gpu_pretrained.sh run SECONDS      (there; carry .device)
#       SRCNN 9-5-5, FSRCNN and ESPCN x3, each continued from its shipped
#       weights for SECONDS of training (steps = its measured step rate x
#       SECONDS, so the cosine ends with the time), evaluated on Set5; each
#       workdir's best checkpoint, config and metrics come back as
#       $OUT/<name>_x3_gpu.tgz
#   bash launch/gpu_pretrained.sh export DIR
#       here: unpacks the .tgz files of DIR into workdirs/pretrained/ and ships
#       each by `train_pretrained.sh export` (Set5, Set14, B100, whole images;
#       the record's training.devices says the GPU)
#
# The runs train on T91, the papers' 91 images: the 291 set (60 MB) does not
# fit beside the checkout. The recipe is that of the shipped x3 phases (lr 3e-4
# cosine, the papers' scale augmentation).
set -euo pipefail
stage=${1:?usage: gpu_pretrained.sh bundle | run SECONDS | export DIR}
root=workdirs/pretrained
MODELS=("srcnn_955 configs/srcnn.py:variant=955,scale=3 32"
        "fsrcnn configs/fsrcnn.py:scale=3 32 --config.data.patch_size=24"
        "espcn configs/espcn.py:scale=3 16")

case $stage in
  bundle)
    : "${JAXSR_DATA_DIR:?point JAXSR_DATA_DIR at the folder holding t91 and set5}"
    rm -rf .device && mkdir -p .device/wheels .device/data
    python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp --platform manylinux2014_x86_64 -d .device/wheels \
      ml-collections tensorboardX
    cp -r "$JAXSR_DATA_DIR/t91" "$JAXSR_DATA_DIR/set5" .device/data/
    grep -qxF '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude
    du -sh .device ;;
  run)
    seconds=${2:?run SECONDS}
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/jaxsr_site \
      .device/wheels/*.whl
    export PYTHONPATH="/tmp/jaxsr_site:$PWD" JAXSR_DATA_DIR="$PWD/.device/data" PYTHONUNBUFFERED=1
    runs=/tmp/jaxsr_gpu_runs; out=${OUT:-/tmp/jaxsr_gpu_out}; mkdir -p "$runs" "$out"
    for spec in "${MODELS[@]}"; do
      set -- $spec; name=$1; config=$2; batch=$3; shift 3
      flags=(--config="$config" "$@" --config.data.train=t91 --config.train.batch_size="$batch"
             --config.train.init_from="${name}_x3" --config.optim.lr=3e-4
             --config.data.hr_downscales=0.9,0.8,0.7,0.6 --config.eval.max_shapes=0)
      python3 -m jaxsr.main "${flags[@]}" --config.train.steps=300 --config.eval.every=300 \
        --config.checkpoint.every=300 --workdir="$runs/${name}_rate"
      steps=$(python3 -c 'import json, sys
rate = max(r["train/steps_per_s"] for r in map(json.loads, open(sys.argv[1]))
           if "train/steps_per_s" in r)
print(max(100, int(rate * float(sys.argv[2])) // 100 * 100))' "$runs/${name}_rate/metrics.jsonl" "$seconds")
      echo "$name: $steps steps"
      python3 -m jaxsr.main "${flags[@]}" --config.train.steps="$steps" \
        --config.eval.every=$((steps / 10)) --config.checkpoint.every=$((steps / 10)) \
        --workdir="$runs/${name}_x3_gpu"
      tar czf "$out/${name}_x3_gpu.tgz" -C "$runs" "${name}_x3_gpu/best" \
        "${name}_x3_gpu/config.json" "${name}_x3_gpu/metrics.jsonl" "${name}_x3_gpu/init_from.json"
    done ;;
  export)
    dir=${2:?export DIR}
    mkdir -p "$root"
    for spec in "${MODELS[@]}"; do
      set -- $spec; name=$1
      tar xzf "$dir/${name}_x3_gpu.tgz" -C "$root"
      bash launch/train_pretrained.sh export "$name" "${name}_x3_gpu" "$root"
    done ;;
  *) echo "gpu_pretrained.sh: unknown stage '$stage'" >&2; exit 2 ;;
esac
