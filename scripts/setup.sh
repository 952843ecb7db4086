#!/usr/bin/env bash
# Installs what a fresh machine lacks to build and run txfm; idempotent and quick when already done.
# - Debian: libhdf5-dev (h5ad I/O through the maintained `hdf5-metno` crate), pkg-config, and
#   Open MPI (openmpi-bin for `mpirun`, libopenmpi-dev for the headers): data-parallel training's
#   launcher and CPU collectives, which CI tests on loopback.
# - A Python venv with the pinned torch wheel (libtorch for the `tch` crate; it also carries CUDA,
#   cuDNN attention and NCCL, so one binary serves CPU and GPU) and anndata (test oracle).
# The venv is cached outside the checkout so fresh clones (CI) reuse it.
set -euo pipefail

TORCH_VERSION="2.11.0"
: "${TXFM_VENV:=${XDG_CACHE_HOME:-$HOME/.cache}/txfm/venv-torch-${TORCH_VERSION}}"
PY_PKGS=("torch==${TORCH_VERSION}" "anndata==0.12.*" "scipy" "pandas" "pyarrow" "numpy" "scikit-learn")
# Reference implementations the evaluation tests compare against. Installed without their
# dependencies: efaar_benchmarking pulls scvi-tools and geomloss for functions we do not call.
PY_NODEPS=("efaar_benchmarking==1.0")

need_apt=()
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
[ -f /usr/include/hdf5/serial/hdf5.h ] || need_apt+=(libhdf5-dev)
command -v mpirun >/dev/null 2>&1 || need_apt+=(openmpi-bin)
pkg-config --exists ompi-c 2>/dev/null || need_apt+=(libopenmpi-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

stamp="$TXFM_VENV/.txfm-ready"
want="${PY_PKGS[*]} ${PY_NODEPS[*]}"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: creating Python venv at $TXFM_VENV (torch ${TORCH_VERSION}; a few minutes, once)" >&2
  PY=$(command -v python3.11 || command -v python3)
  [ -x "$TXFM_VENV/bin/python" ] || "$PY" -m venv "$TXFM_VENV"
  "$TXFM_VENV/bin/pip" install -q --upgrade pip >/dev/null
  "$TXFM_VENV/bin/pip" install -q "${PY_PKGS[@]}"
  "$TXFM_VENV/bin/pip" install -q --no-deps "${PY_NODEPS[@]}"
  echo "$want" > "$stamp"
fi
echo "$TXFM_VENV"
