#!/usr/bin/env bash
# Train on a multi-node GPU cluster under Slurm, one process per node.
#
#   launch/slurm.sh --nodes=2 --gpus_per_node=8 --config=configs/eeds.py \
#       --workdir=/shared/workdirs/eeds --data_dir=/shared/jaxsr_data [--partition=P --time=24:00:00] [-- --config.x=y ...]
#   launch/slurm.sh ... --dry_run      # print the batch script and each node's command, submit nothing
#
# Submits a batch job (sbatch) whose one srun step starts jaxsr.main with
# --multihost on every node: jax.distributed reads the coordinator, the process
# count and this process's index from Slurm's environment. Each process drives
# its node's GPUs; the global batch is split over all of them. The workdir and
# the data must be on storage every node sees (a shared filesystem or gs://);
# every process reads the tfds datasets `python -m jaxsr.prepare` wrote there
# (--config.data.source=tfds; launch/tpu_pod.sh shows the command).
# Slurm sends SIGTERM two minutes before a preemption or the time limit
# (--signal), jaxsr saves a checkpoint on all hosts, and the requeued job
# resumes from the workdir.
set -euo pipefail

source "$(dirname "$0")/flags.sh"

NODES="" GPUS="" CONFIG="" WORKDIR="" DATA_DIR="" PARTITION="" TIME="" DRY_RUN=0
REPO=$(cd "$(dirname "$0")/.." && pwd)
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes=*) NODES=${1#*=} ;;
    --gpus_per_node=*) GPUS=${1#*=} ;;
    --config=*) CONFIG=${1#*=} ;;
    --workdir=*) WORKDIR=${1#*=} ;;
    --data_dir=*) DATA_DIR=${1#*=} ;;
    --partition=*) PARTITION=${1#*=} ;;
    --time=*) TIME=${1#*=} ;;
    --dry_run) DRY_RUN=1 ;;
    --help|-h) usage 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) unknown_argument "$1" ;;
  esac
  shift
done
require "--nodes:$NODES" "--gpus_per_node:$GPUS" "--config:$CONFIG" "--workdir:$WORKDIR" "--data_dir:$DATA_DIR"
for pair in "--nodes:$NODES" "--gpus_per_node:$GPUS"; do
  if ! [[ "${pair#*:}" =~ ^[1-9][0-9]*$ ]]; then
    echo "error: ${pair%%:*}=${pair#*:}: expected a positive whole number" >&2
    exit 2
  fi
done

train=(python -m jaxsr.main "--config=$CONFIG" "--workdir=$WORKDIR" "--data_dir=$DATA_DIR" --config.data.source=tfds --multihost "${EXTRA[@]}")
script="#!/usr/bin/env bash
#SBATCH --job-name=jaxsr
#SBATCH --nodes=$NODES
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=$GPUS
#SBATCH --signal=TERM@120
#SBATCH --requeue
${PARTITION:+#SBATCH --partition=$PARTITION
}${TIME:+#SBATCH --time=$TIME
}set -euo pipefail
cd $(shell_join "$REPO")
srun --kill-on-bad-exit=1 $(shell_join "${train[@]}")"

if [ "$DRY_RUN" = 1 ]; then
  printf '%s\n' "$script"
  for ((i = 0; i < NODES; i++)); do
    printf 'node %d: SLURM_PROCID=%d SLURM_NTASKS=%d %s\n' "$i" "$i" "$NODES" "$(shell_join "${train[@]}")"
  done
  exit 0
fi
printf '%s\n' "$script" | sbatch
