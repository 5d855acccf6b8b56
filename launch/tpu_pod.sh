#!/usr/bin/env bash
# Train on every worker of a Cloud TPU VM pod, one process per host.
#
#   launch/tpu_pod.sh --tpu=NAME --zone=ZONE --config=configs/eeds.py \
#       --workdir=gs://BUCKET/workdirs/eeds --data_dir=gs://BUCKET/jaxsr_data [-- --config.x=y ...]
#   launch/tpu_pod.sh ... --dry_run --num_workers=4     # print each worker's command, run nothing
#
# Every host needs this checkout at ~/$JAXSR_REMOTE_DIR (default ~/jaxsr; copy
# it with `gcloud compute tpus tpu-vm scp --worker=all` or clone it). Each host
# installs it with the `tpu` extra (jax[tpu] and gcsfs, so `gs://` workdirs and
# data work) and runs jaxsr.main with --multihost: jax.distributed finds its
# peers from the TPU metadata. The workdir and the data must be storage that
# all hosts share (a gs:// bucket): Orbax writes one checkpoint from all hosts
# together and process 0 writes the metrics. --data_dir is required, so that no
# host silently trains on the embedded photos, and every host reads the same
# tfds datasets there (--config.data.source=tfds). Prepare them once, from any
# machine holding the image folders (t91/, bsd200/, set5/, ...) under PNG_ROOT:
#
#   python -m jaxsr.prepare --sets=t91,bsd200,set5,set14,b100 --scales=2,3,4 \
#       --manual_dir=PNG_ROOT --data_dir=gs://BUCKET/tfds
#
# and pass --data_dir=gs://BUCKET/tfds here.
set -euo pipefail

source "$(dirname "$0")/flags.sh"

TPU="" ZONE="" CONFIG="" WORKDIR="" DATA_DIR="" DRY_RUN=0 NUM_WORKERS=""
REMOTE_DIR=${JAXSR_REMOTE_DIR:-jaxsr}
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tpu=*) TPU=${1#*=} ;;
    --zone=*) ZONE=${1#*=} ;;
    --config=*) CONFIG=${1#*=} ;;
    --workdir=*) WORKDIR=${1#*=} ;;
    --data_dir=*) DATA_DIR=${1#*=} ;;
    --num_workers=*) NUM_WORKERS=${1#*=} ;;
    --dry_run) DRY_RUN=1 ;;
    --help|-h) usage 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) unknown_argument "$1" ;;
  esac
  shift
done
require "--tpu:$TPU" "--zone:$ZONE" "--config:$CONFIG" "--workdir:$WORKDIR" "--data_dir:$DATA_DIR"

train=(python -m jaxsr.main "--config=$CONFIG" "--workdir=$WORKDIR" "--data_dir=$DATA_DIR" --config.data.source=tfds --multihost "${EXTRA[@]}")
remote="set -e; cd ~/$REMOTE_DIR && pip install -q -e '.[tpu]' && $(shell_join "${train[@]}")"

if [ "$DRY_RUN" = 1 ]; then
  if [ -z "$NUM_WORKERS" ]; then
    NUM_WORKERS=$(gcloud compute tpus tpu-vm describe "$TPU" --zone="$ZONE" \
        --format='value(networkEndpoints.len())' 2>/dev/null || true)
    if [ -z "$NUM_WORKERS" ]; then
      echo "error: --dry_run could not ask gcloud for the worker count of $TPU: pass --num_workers=N" >&2
      exit 2
    fi
  fi
  for ((i = 0; i < NUM_WORKERS; i++)); do
    printf 'worker %d: %s\n' "$i" "$(shell_join gcloud compute tpus tpu-vm ssh "$TPU" \
        "--zone=$ZONE" "--worker=$i" "--command=$remote")"
  done
  exit 0
fi
exec gcloud compute tpus tpu-vm ssh "$TPU" --zone="$ZONE" --worker=all --command="$remote"
