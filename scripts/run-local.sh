#!/usr/bin/env bash
# The main job on a fresh machine: installs what it needs; builds the four release binaries
# fully static into out/bin/; builds, scans and reports every image this machine's package
# repositories can provide (out/oci, out/report.json, out/locks); and, where a Docker engine
# runs, starts PostgreSQL 17 from our image as a non-root, read-only container.
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

step "setup" scripts/setup.sh
step "static release binaries" scripts/build-release.sh
step "images" scripts/images.sh
if docker info >/dev/null 2>&1; then
    step "PostgreSQL 17 in Docker" scripts/lib/pg-smoke.sh
else
    log "no Docker engine here: the container run is left out"
fi
