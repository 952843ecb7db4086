#!/usr/bin/env bash
# Installs what a fresh machine lacks to build and run txfm; idempotent and quick when already done.
# - Debian: libhdf5-dev (h5ad I/O through the maintained `hdf5-metno` crate), pkg-config, and
#   Open MPI (openmpi-bin for `mpirun`, libopenmpi-dev for the headers): data-parallel training's
#   launcher and CPU collectives, which CI tests on loopback.
# - A Python venv with the pinned torch wheel (libtorch for the `tch` crate; it also carries CUDA,
#   cuDNN attention and NCCL, so one binary serves CPU and GPU) and anndata (test oracle).
# - The Python package `txfm` (crates/txfm-py, built with maturin against that torch) installed
#   into the venv, rebuilt when a source file is newer than the installed extension.
# The venv is cached outside the checkout so fresh clones (CI) reuse it.
set -euo pipefail

TORCH_VERSION="2.11.0"
: "${TXFM_VENV:=${XDG_CACHE_HOME:-$HOME/.cache}/txfm/venv-torch-${TORCH_VERSION}}"
PY_PKGS=("torch==${TORCH_VERSION}" "anndata==0.12.*" "scipy" "pandas" "pyarrow" "numpy" "scikit-learn" "maturin>=1.9,<2" "pytest" "tqdm")
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
# The Python package: `maturin develop` installs it editable (the Python files from the checkout,
# the extension built in release mode beside them). Skipped when nothing it is built from changed
# and the venv's txfm is this checkout's (the venv is shared by every checkout on the machine).
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
ext=$(ls "$repo"/crates/txfm-py/python/txfm/_txfm*.so 2>/dev/null | head -n 1 || true)
# What the extension is built from: the library, the binding, the workspace manifests.
sources=("$repo/crates/txfm/src" "$repo/crates/txfm/csrc" "$repo/crates/txfm/build.rs" "$repo/crates/txfm/Cargo.toml"
  "$repo/crates/txfm-py/src" "$repo/crates/txfm-py/build.rs" "$repo/crates/txfm-py/Cargo.toml"
  "$repo/crates/txfm-py/pyproject.toml" "$repo/Cargo.toml" "$repo/Cargo.lock")
if [ -z "$ext" ] || [ -n "$(find "${sources[@]}" -newer "$ext" -type f -print -quit 2>/dev/null)" ] \
    || ! "$TXFM_VENV/bin/python" -c "import importlib.util as u, os, sys; s = u.find_spec('txfm'); sys.exit(not (s and os.path.realpath(s.origin).startswith('$repo/')))" 2>/dev/null; then
  echo "setup: building the Python package txfm into $TXFM_VENV (maturin, release; a few minutes the first time)" >&2
  log=$(mktemp)
  if (cd "$repo" && VIRTUAL_ENV="$TXFM_VENV" PATH="$TXFM_VENV/bin:$PATH" LIBTORCH_USE_PYTORCH=1 \
      "$TXFM_VENV/bin/maturin" develop --release -q -m crates/txfm-py/Cargo.toml) >"$log" 2>&1; then
    touch "$repo"/crates/txfm-py/python/txfm/_txfm*.so
  else
    # Not fatal: a library that does not compile is what cargo then reports, and the rest of the
    # set-up (and `source scripts/env.sh`) must still work. The Python tests fail on their own.
    tail -n 40 "$log" >&2
    echo "setup: warning: building the Python package failed (log above); the Python package was not updated" >&2
  fi
  rm -f "$log"
fi
echo "$TXFM_VENV"
