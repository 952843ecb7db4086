# Source this to build with cargo directly: `source scripts/env.sh && cargo test`.
# Points torch-sys at the cached torch venv made by scripts/setup.sh.
venv=$(bash "$(dirname "${BASH_SOURCE[0]}")/setup.sh" | tail -n 1)
export VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" LIBTORCH_USE_PYTORCH=1 TXFM_PYTHON="$venv/bin/python"
