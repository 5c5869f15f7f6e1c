#!/usr/bin/env bash
# Puts a CUDA compiler where candle's `cuda` feature finds it, for machines
# without a CUDA toolkit (CI has no GPU and no toolkit). Source it:
#
#   . scripts/cuda-toolchain.sh    # sets PATH, CUDA_ROOT, CUDA_COMPUTE_CAP
#
# nvcc, its headers and NVVM come from PyPI (NVIDIA's wheels), pinned to CUDA
# 13.0: the GPU machines we measure on run driver 580 (CUDA 13.0), and PTX built
# by a newer nvcc would not JIT there. An installed toolkit (nvcc on PATH) wins.
# CUDA_COMPUTE_CAP defaults to 90 (H100/H200) since there may be no GPU to ask.

_voxpipe_cuda_main() {
  local root dir
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  if command -v nvcc >/dev/null 2>&1; then
    export CUDA_ROOT="${CUDA_ROOT:-$(dirname "$(dirname "$(command -v nvcc)")")}"
  else
    dir="$root/target/cuda-toolchain"
    if [ ! -x "$dir/nvidia/cu13/bin/nvcc" ]; then
      echo "cuda-toolchain: installing nvcc 13.0 from PyPI into $dir" >&2
      python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$dir" \
        nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 \
        nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 || return 1
    fi
    export PATH="$dir/nvidia/cu13/bin:$PATH"
    export CUDA_ROOT="$dir/nvidia/cu13"
  fi
  if [ -z "${CUDA_COMPUTE_CAP:-}" ]; then
    local cap=""
    if command -v nvidia-smi >/dev/null 2>&1; then
      cap="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '.')"
    fi
    export CUDA_COMPUTE_CAP="${cap:-90}"
  fi
  echo "cuda-toolchain: $(nvcc --version | tail -1) for sm_$CUDA_COMPUTE_CAP (CUDA_ROOT=$CUDA_ROOT)" >&2
}
_voxpipe_cuda_main
