#!/usr/bin/env bash
# Train on every worker of a Cloud TPU VM pod (one process per host).
#
#   launch/tpu_pod.sh TPU_NAME ZONE configs/eeds.py gs://BUCKET/workdirs/eeds [--config.x=y ...]
#
# The workdir must be storage all hosts share (a gs:// bucket): Orbax writes
# one checkpoint from all hosts together, process 0 writes the metrics. Each
# host installs this checkout (copied with `gcloud ... scp` beforehand, or
# cloned) and runs jaxsr.main with --multihost, so jax.distributed finds its
# peers from the TPU metadata. The global batch is split across all chips.
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: $0 TPU_NAME ZONE CONFIG WORKDIR [extra jaxsr.main flags]" >&2
  exit 2
fi
TPU_NAME=$1 ZONE=$2 CONFIG=$3 WORKDIR=$4
shift 4
REPO_DIR=${JAXSR_REMOTE_DIR:-jaxsr}
EXTRA=$(printf ' %q' "$@")
gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --worker=all --command="
  set -e
  cd ~/$REPO_DIR
  pip install -q -e . 'jax[tpu]' 
  python -m jaxsr.main --config=$CONFIG --workdir=$WORKDIR --multihost $EXTRA
"
