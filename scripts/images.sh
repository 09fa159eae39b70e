#!/usr/bin/env bash
# Builds every image this site's repositories can provide into out/oci (report in
# out/report.json, locks in out/locks) with the static image-rebuilder from out/bin, then
# scans the layout. Extra arguments go to `image-rebuilder build` (e.g. --only NAME).
#
# The site is this machine's apt sources unless CNPG_RS_SITE names a site file. With the
# host's sources, an expired Valid-Until is accepted for Debian unstable only: this kind of
# machine reaches a frozen unstable mirror (the report records the exception).
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

rebuilder=out/bin/image-rebuilder
[ -x "$rebuilder" ] || die "$rebuilder is missing: run scripts/build-release.sh first"
site=${CNPG_RS_SITE:-host-apt}
extra=()
[ "$site" = host-apt ] && extra+=(--allow-expired debian:sid)

step "build images" "$rebuilder" build --site "$site" "${extra[@]}" --skip-unavailable \
    --binaries out/bin --cache-dir "$CACHE/image-cache" \
    --out oci:out/oci --report out/report.json --write-locks out/locks "$@"
step "scan the layout" "$rebuilder" scan oci:out/oci
