#!/usr/bin/env bash
# The fast path's checks on one CUDA device (about 5 minutes on an H100/H200, torch.compile included): the GPU
# tests of the loop, the augmentation and the evaluation (no host synchronisation between log steps, compile,
# evaluation on the device), the augmentation backends' speed and the step's phases of ResNet-18 (CIFAR stem,
# 3x32x32, batch 256, V = 2, LARS) eager vs compiled (and "before" when kornia is installed there).
#
#   bash benchmarks/gpu_fastpath.sh [OUTPUT_DIR]        # default results/gpu/fastpath
#
# DEVICE, CASE, PRESETS, REPEATS, STEPS and SKIP override the device (cuda), the profiled case (resnet18), the
# augmentation presets (cifar,mnist,digits,stl10), the timed calls (30) and the profiled / warm-up steps (20 / 5):
# the tests run it on the CPU with a tiny case so that it cannot rot.
#
# Offline: it reads no data set (synthetic images) and installs nothing. Each part's output goes to a text file
# in OUTPUT_DIR; a failing part is reported and the next one still runs; the exit status is the number of parts
# that failed.
set -u
out="${1:-results/gpu/fastpath}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
py="${PYTHON:-python3}"
device="${DEVICE:-cuda}"
failed=0
part() {  # part NAME COMMAND...: run, tee into OUTPUT_DIR/NAME.txt, count a failure
  local name="$1"; shift
  echo "== $name: $*" | tee "$out/$name.txt"
  "$@" 2>&1 | tee -a "$out/$name.txt"
  local rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || { echo "== $name failed (exit $rc)" | tee -a "$out/$name.txt"; failed=$((failed + 1)); }
}
"$py" -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0) if '$device' != 'cpu' else 'cpu')" \
  | tee "$out/device.txt"
part pytest-gpu "$py" -m pytest -q -p no:cacheprovider -m gpu tests/test_train.py tests/test_augment.py \
  tests/test_fastaug.py tests/test_evaluate.py tests/test_models.py
part augment-speed "$py" benchmarks/augment_speed.py --device "$device" --presets "${PRESETS:-cifar,mnist,digits,stl10}" \
  --repeats "${REPEATS:-30}"
variants=eager,after
"$py" -c "import kornia" 2>/dev/null && variants=before,eager,after
part profile "$py" benchmarks/profile_step.py --case "${CASE:-resnet18}" --device "$device" --variants "$variants" \
  --steps "${STEPS:-20}" --skip "${SKIP:-5}"
exit "$failed"
