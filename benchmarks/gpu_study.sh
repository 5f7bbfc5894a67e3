#!/usr/bin/env bash
# The paper-scale study on one GPU, measured: run once on a machine with an NVIDIA GPU, from the project folder.
#
#     bash benchmarks/gpu_study.sh                  # 977 videos, 224 px, 30 epochs, seed 0: the paper's scale
#     VIDEOS=24 SIZE=32 EPOCHS=1 DEVICE=cpu bash benchmarks/gpu_study.sh   # the same steps, tiny, on a CPU
#
# 1. builds the paper-shaped toy dataset (977 videos, 586/147/244, 224x224 frames and spectrograms);
# 2. runs benchmarks/throughput.py on it: each script's training rate beside its model-only step;
# 3. runs the whole study (10 training runs of 30 epochs and retrieve) with study/run.py, timing every run;
# 4. writes everything it printed, with the machine's description, to one results file,
#    $OUT/gpu_study.txt (default runs-gpu/gpu_study.txt), which BENCHMARKS.md's GPU section is made from.
# Settings by environment variable: VIDEOS, SIZE, EPOCHS, SEEDS ("0 1 2" for three), DEVICE, PRECISION, OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
VIDEOS=${VIDEOS:-977} SIZE=${SIZE:-224} EPOCHS=${EPOCHS:-30} SEEDS=${SEEDS:-0}
DEVICE=${DEVICE:-cuda} PRECISION=${PRECISION:-auto} OUT=${OUT:-runs-gpu}
DATA=data/toy-v${VIDEOS}-s${SIZE}-seed0.pt
RESULTS=$OUT/gpu_study.txt
mkdir -p "$OUT"
exec > >(tee "$RESULTS") 2>&1  # everything below goes to the screen and into the results file
say() { echo; echo "[$(date +%H:%M:%S)] $*"; }
start=$(date +%s)

say "0/3 the machine"
date -u +"%Y-%m-%d %H:%M UTC"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
python -c "import torch; print('torch', torch.__version__, '| CUDA', torch.version.cuda, '|',
torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA GPU visible')"
echo "VIDEOS=$VIDEOS SIZE=$SIZE EPOCHS=$EPOCHS SEEDS=$SEEDS DEVICE=$DEVICE PRECISION=$PRECISION"

say "1/3 building the toy dataset $DATA (skipped when it exists)"
tick=$(date +%s)
[ -f "$DATA" ] || python data.py toy --videos "$VIDEOS" --size "$SIZE" | head -3
echo "toy dataset ready in $(( $(date +%s) - tick )) s"

say "2/3 throughput: each script (2 timed epochs) beside its model-only step"
tick=$(date +%s)
python benchmarks/throughput.py --data "$DATA" --device "$DEVICE" --precision "$PRECISION" --epochs 3
echo "throughput benchmark took $(( $(date +%s) - tick )) s"

say "3/3 the study: 10 training runs and retrieve per seed (seeds: $SEEDS)"
tick=$(date +%s)
# shellcheck disable=SC2086
python study/run.py --seeds $SEEDS --epochs "$EPOCHS" --data "$DATA" --device "$DEVICE" --out "$OUT" \
    --precision "$PRECISION"
python - "$OUT" <<'EOF'
import glob, json, sys
print(f"\nper run: wall time (s) from study_times.json, peak GPU memory (MiB) from each run's metrics.json")
for r in json.load(open(f"{sys.argv[1]}/study_times.json"))["runs"]:
    print(f"  {r['wall_s']:7.1f} s  {r['command']}")
for path in sorted(glob.glob(f"{sys.argv[1]}/*/metrics.json")):
    m = json.load(open(path))
    print(f"  {path.split('/')[-2]:<36} peak {m.get('peak_memory_mb', '?')} MiB")
EOF
echo "study took $(( $(date +%s) - tick )) s"
say "done in $(( $(date +%s) - start )) s; results in $RESULTS"
