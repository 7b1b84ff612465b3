#!/bin/bash
# Data-parallel gliomaseg training on a SLURM cluster: one torchrun launcher per node, one
# process per GPU. Submit with `sbatch scripts/slurm_train.sh`; adjust the #SBATCH lines,
# the paths and the config to your cluster. train.batch_size in the config is the global
# batch, shared by all nnodes x gpus processes (a multiple of their number).
#SBATCH --job-name=gliomaseg
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=32
#SBATCH --time=24:00:00
#SBATCH --signal=B:TERM@120
set -euo pipefail

DATA=${DATA:-$HOME/data/BraTS2021}          # BraTS case folders
SPLIT=${SPLIT:-splits/brats2021.json}       # from `gliomaseg split`
CONFIG=${CONFIG:-configs/brats_unet3d.yaml}
RUN=${RUN:-runs/brats_unet3d}
GPUS=${SLURM_GPUS_PER_NODE:-4}

MASTER=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
RESUME=()
[ -f "$RUN/state.safetensors" ] && RESUME=(--resume)   # a requeued job continues its run

srun torchrun \
    --nnodes="$SLURM_NNODES" --nproc-per-node="$GPUS" \
    --rdzv-id="$SLURM_JOB_ID" --rdzv-backend=c10d --rdzv-endpoint="$MASTER:29500" \
    -m gliomaseg train "$DATA" --split "$SPLIT" -c "$CONFIG" -o "$RUN" \
    --device cuda --set train.bank=disk "${RESUME[@]}"
