#!/usr/bin/env bash
# Compile the TensorRT adapter and the runner's main against one or more TensorRT header trees, without
# linking and with every warning (deprecated TensorRT calls included) an error: proves the runner builds
# with TensorRT versions this machine does not have installed. See README.md, "Header compile check".
#
# usage: cpp/check_headers.sh DIR [DIR...]
#   DIR holds NvInferRuntime.h, or DIR/include does (e.g. an `include/` extracted from a TensorRT tag).
# env:   CXX (default g++), CUDA_INCLUDE (directory with cuda_runtime_api.h; found automatically otherwise)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cxx="${CXX:-g++}"

if [[ $# -eq 0 ]]; then
  echo "usage: $0 TENSORRT_INCLUDE_DIR [TENSORRT_INCLUDE_DIR...]" >&2
  exit 2
fi

find_cuda_include() {
  local nvcc candidates=("${CUDA_INCLUDE:-}" "${CUDA_HOME:+$CUDA_HOME/include}" "${CUDA_PATH:+$CUDA_PATH/include}"
                         /usr/local/cuda/include)
  # nvcc may be a wrapper script elsewhere on PATH; only a real nvcc's ../include is a candidate
  if nvcc="$(command -v nvcc 2>/dev/null)"; then
    candidates+=("$(dirname "$(readlink -f "$nvcc")")/../include")
  fi
  for dir in "${candidates[@]}"; do
    if [[ -n "$dir" && -f "$dir/cuda_runtime_api.h" ]]; then
      echo "$dir"
      return 0
    fi
  done
  return 1
}

if ! cuda_include="$(find_cuda_include)"; then
  echo "cuda_runtime_api.h not found; set CUDA_INCLUDE=<CUDA toolkit>/include" >&2
  exit 2
fi

version_of() {  # "8.6.1" from NvInferVersion.h (8.x defines the numbers directly, 10+ via TRT_*_ENTERPRISE)
  local header="$1/NvInferVersion.h" part value out=""
  for part in MAJOR MINOR PATCH; do
    value="$(sed -n -E "s/^#define (NV_TENSORRT_${part}|TRT_${part}_ENTERPRISE) ([0-9]+).*/\2/p" "$header" 2>/dev/null | head -n1)"
    out+="${out:+.}${value:-?}"
  done
  echo "$out"
}

status=0
for dir in "$@"; do
  inc="$dir"
  [[ -f "$inc/NvInferRuntime.h" ]] || inc="$dir/include"
  if [[ ! -f "$inc/NvInferRuntime.h" ]]; then
    echo "FAIL $dir: no NvInferRuntime.h in it or in its include/" >&2
    status=1
    continue
  fi
  # -isystem: TensorRT's own inline code uses its deprecated API; only uses in our code must fail.
  if "$cxx" -std=c++17 -fsyntax-only -Wall -Wextra -Wpedantic -Wshadow -Werror -Werror=deprecated-declarations \
      -I "$here/core/include" -isystem "$inc" -isystem "$cuda_include" \
      "$here/tensorrt/tensorrt_engine.cpp" "$here/tensorrt/main.cpp"; then
    echo "OK   TensorRT $(version_of "$inc") headers at $inc"
  else
    echo "FAIL TensorRT $(version_of "$inc") headers at $inc" >&2
    status=1
  fi
done
exit "$status"
