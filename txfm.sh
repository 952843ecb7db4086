#!/usr/bin/env bash
# The two commands a fresh machine needs (see README):
#   ./txfm.sh quickstart [ARGS]  set up, build, run `txfm quickstart` on the embedded default
#   ./txfm.sh test               set up, build, run the whole test suite (Rust, then the Python package)
# Other words are passed to the built binary: ./txfm.sh corpus stats DIR
# Set-up (Debian packages, the cached torch venv) is idempotent and takes a second when done.
set -euo pipefail
cd "$(dirname "$0")"

# torch-sys locates libtorch through the venv's Python; the built binaries carry an rpath to it,
# so nothing needs exporting at run time.
source scripts/env.sh

cmd=${1:-quickstart}
case "$cmd" in
  test)
    shift
    cargo test --workspace "$@"
    # The Python package (installed by scripts/setup.sh) against the CLI just built.
    TXFM_BIN="$PWD/target/debug/txfm" python -m pytest -q crates/txfm-py/tests
    ;;
  *)
    cargo build --release -q -p txfm-cli
    exec target/release/txfm "$@"
    ;;
esac
