#!/usr/bin/env bash
# Everything CI runs: installs what is missing, then the static-analysis gate, the static
# release build, and every test. Exits non-zero on the first failing stage and names it.
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
start=$SECONDS

step "setup (Debian packages, cargo tools, advisory database)" scripts/setup.sh
step "gate" scripts/lint.sh
# The release binaries come first: the image tests package them into the images they push.
step "static release binaries" scripts/build-release.sh
step "tests" cargo nextest run --workspace --locked --no-fail-fast
# Every parser of outside input under libFuzzer for a short, fixed time (scripts/fuzz.sh --bench
# runs the long pass).
step "fuzzing (short pass)" scripts/fuzz.sh --seconds "${CNPG_RS_FUZZ_SECONDS:-30}"

log "all green in $((SECONDS - start)) s"
