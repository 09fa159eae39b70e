# shellcheck shell=bash
# Shared by every script: strict mode, paths, the warm cache and small helpers.
# Source it; do not run it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Every script works from the repository root.
cd "$ROOT" || exit 1
# Everything slow to rebuild lives outside the clone, so a fresh clone on a machine that has
# run us before starts warm: cargo target directory, installed tools, advisory database.
CACHE=${CNPG_RS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cnpg-rs}
export CNPG_RS_CACHE=$CACHE
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE/target}
TOOLS=$CACHE/tools
export PATH="$TOOLS/bin:$HOME/.cargo/bin:$PATH"
# The triple the release binaries are built for (static glibc, see build-release.sh).
export RELEASE_TARGET=x86_64-unknown-linux-gnu

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# step NAME CMD...: runs CMD, and on failure says which step failed before passing the
# failure on, so a red CI run names its cause in its last lines.
step() {
    local name=$1 start=$SECONDS
    shift
    log "$name"
    if ! "$@"; then
        printf '\nFAILED: %s\n' "$name" >&2
        return 1
    fi
    log "$name: ok ($((SECONDS - start)) s)"
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}
