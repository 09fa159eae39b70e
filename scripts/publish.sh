#!/usr/bin/env bash
# Pushes every image this site can build to a registry, with an SBOM each, and writes the
# ClusterImageCatalog of pinned digests (out/catalog.yaml) and a run report
# (out/publish-report.json): `image-rebuilder rebuild` with the static binary from out/bin.
#
#   CNPG_RS_REGISTRY           HOST[:PORT]/PREFIX to push to (required)
#   CNPG_RS_REGISTRY_AUTH      a docker config.json with its credentials, or
#   CNPG_RS_REGISTRY_USER and CNPG_RS_REGISTRY_PASSWORD (the password goes through a private
#                              file, never the command line)
#   CNPG_RS_REGISTRY_CA        PEM file of a private CA the registry's certificate chains to
#   CNPG_RS_SITE               a site file (default: this machine's apt sources)
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

: "${CNPG_RS_REGISTRY:?set CNPG_RS_REGISTRY to HOST[:PORT]/PREFIX}"
rebuilder=out/bin/image-rebuilder
[ -x "$rebuilder" ] || die "$rebuilder is missing: run scripts/build-release.sh first"
site=${CNPG_RS_SITE:-host-apt}
args=(--site "$site" --skip-unavailable --binaries out/bin --cache-dir "$CACHE/image-cache"
    --registry "$CNPG_RS_REGISTRY" --catalog-out out/catalog.yaml --report out/publish-report.json)
[ "$site" = host-apt ] && args+=(--allow-expired debian:sid)
[ -n "${CNPG_RS_REGISTRY_CA:-}" ] && args+=(--ca-file "$CNPG_RS_REGISTRY_CA")
if [ -n "${CNPG_RS_REGISTRY_AUTH:-}" ]; then
    args+=(--auth-file "$CNPG_RS_REGISTRY_AUTH")
elif [ -n "${CNPG_RS_REGISTRY_USER:-}" ]; then
    secret=$(mktemp -d)
    trap 'rm -rf "$secret"' EXIT
    (umask 077 && printf '%s' "${CNPG_RS_REGISTRY_PASSWORD:?CNPG_RS_REGISTRY_PASSWORD is required with CNPG_RS_REGISTRY_USER}" > "$secret/password")
    args+=(--username "$CNPG_RS_REGISTRY_USER" --password-file "$secret/password")
fi
mkdir -p out
step "push, attach SBOMs, publish catalogs" "$rebuilder" rebuild "${args[@]}" "$@"
