#!/usr/bin/env bash
# The paper-scale study on one GPU, measured, in parts that each fit a short GPU session; resumable: a second
# call continues where the first stopped. From anywhere, on a machine with an NVIDIA GPU:
#
#     bash benchmarks/gpu_study.sh                     # every part: 977 videos, 224 px, 30 epochs, seed 0
#     PART=toy bash benchmarks/gpu_study.sh            # one part: toy, throughput, study or summary
#     PART=study BUDGET=480 bash benchmarks/gpu_study.sh   # starts no run that would end past 480 s
#     VIDEOS=24 SIZE=32 EPOCHS=1 DEVICE=cpu bash benchmarks/gpu_study.sh   # the same steps, tiny, on a CPU
#
# Settings by environment variable (the flags of benchmarks/gpu_study.py, which does the work and whose
# --help says what each part does): PART, VIDEOS, SIZE, EPOCHS, SEEDS ("0 1 2" for three), DEVICE, PRECISION,
# OUT (default runs-gpu), BUDGET (seconds), SCRIPTS and BACKBONES (a shorter study). Extra arguments are passed on.
set -euo pipefail
# shellcheck disable=SC2086  # SEEDS, SCRIPTS and BACKBONES are lists: split on purpose
exec python "$(dirname "$0")/gpu_study.py" --part "${PART:-all}" --videos "${VIDEOS:-977}" --size "${SIZE:-224}" \
    --epochs "${EPOCHS:-30}" --seeds ${SEEDS:-0} --device "${DEVICE:-cuda}" --precision "${PRECISION:-auto}" \
    --out "${OUT:-runs-gpu}" --budget "${BUDGET:-0}" --scripts ${SCRIPTS:-sound_only visual_only fc_agg tt_agg} \
    --backbones ${BACKBONES:-resnet vgg} "$@"
