#!/usr/bin/env bash
# The main job on a fresh machine: installs what it needs, then builds the four release
# binaries fully static into out/bin/ and prints their sizes.
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

step "setup" scripts/setup.sh
step "static release binaries" scripts/build-release.sh
