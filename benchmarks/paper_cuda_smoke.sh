#!/usr/bin/env bash
# The paper-scale smoke path (fixture datasets in the real formats, randomly initialised
# models of the real architectures, tiny F-label encoders) once on CUDA: every paper test
# module with EMMS_TEST_DEVICE=cuda, then the same modules' durations.
#
# On a GPU machine with torch, timm, transformers and the project's other dependencies
# (missing ones carried as wheels, see docs/paper-scale.md, "GPU"):
#     bash benchmarks/paper_cuda_smoke.sh "$OUT"
# Writes OUT/paper_cuda_smoke.log (pytest's output) and OUT/paper_cuda_smoke.env (card,
# driver, package versions).
set -uo pipefail
out=${1:-.}
mkdir -p "$out"
export EMMS_TEST_DEVICE=cuda HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
{
  date -u +"date %Y-%m-%dT%H:%M:%SZ"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 - <<'PY'
import platform, torch, transformers, timm, open_clip
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda,
      "transformers", transformers.__version__, "timm", timm.__version__,
      "open_clip", open_clip.__version__, "cuda available", torch.cuda.is_available())
PY
  nproc | sed 's/^/cpu cores /'
} > "$out/paper_cuda_smoke.env" 2>&1
cat "$out/paper_cuda_smoke.env"
python3 -m pytest -q -p no:cacheprovider --durations=12 \
  tests/test_paper_pipeline.py tests/test_paper_captioning.py tests/test_paper_vqa.py \
  tests/test_paper_referring.py tests/test_paper_textqa.py \
  tests/test_paper_textqa_finetune.py tests/test_paper_vqa_finetune.py \
  tests/test_paper_referring_finetune.py tests/test_paper_recognition_families.py \
  tests/test_paper_textqa_families.py tests/test_paper_captioning_families.py \
  2>&1 | tee "$out/paper_cuda_smoke.log"
