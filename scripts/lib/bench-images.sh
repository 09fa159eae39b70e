#!/usr/bin/env bash
# Whole-command image builds with the static image-rebuilder, on this machine's mirror:
# cold (empty download cache) and warm builds of one major, a rebuild with nothing changed,
# and a warm build of every image; then the PostgreSQL 18 image size against its target (half of the upstream minimal image).
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

scripts/build-release.sh >/dev/null
rebuilder=out/bin/image-rebuilder
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
flags=(--site host-apt --allow-expired debian:sid --log-level warning)
one=postgresql-18-minimal

timed() { # timed LABEL CMD...: runs CMD, prints its wall time
    local label=$1 start end
    shift
    start=$(date +%s.%N)
    "$@" >/dev/null
    end=$(date +%s.%N)
    printf "%-44s %8.2f s\n" "$label" "$(awk "BEGIN { print $end - $start }")"
}

timed "cold build, $one (empty cache)" "$rebuilder" build "${flags[@]}" --only "$one" \
    --cache-dir "$work/cold-cache" --out "oci:$work/cold" --write-locks "$work/locks"
timed "warm build, $one (fresh output)" "$rebuilder" build "${flags[@]}" --only "$one" \
    --cache-dir "$CACHE/image-cache" --out "oci:$work/warm"
timed "no-change rebuild, $one (from the lock)" "$rebuilder" build "${flags[@]}" --only "$one" \
    --cache-dir "$CACHE/image-cache" --out "oci:$work/warm" --locks "$work/locks"
timed "warm build, every image" "$rebuilder" build "${flags[@]}" --skip-unavailable --binaries out/bin \
    --cache-dir "$CACHE/image-cache" --out "oci:$work/all" --report "$work/report.json"

python3 - "$work/report.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
print(f"\n{'image':<26} {'os':<9} {'compressed':>12} {'uncompressed':>13} {'pkgs':>5}")
for i in report["images"]:
    print(f"{i['image']:<26} {i['distribution']:<9} {i['compressed_bytes']/1e6:>10.1f} MB {i['uncompressed_bytes']/1e6:>11.1f} MB {i['packages']:>5}")
pg18 = next((i for i in report["images"] if i["image"] == "postgresql-18-minimal"), None)
if pg18:
    ratio = pg18["uncompressed_bytes"] / 232e6
    print(f"\npostgresql-18-minimal: {pg18['uncompressed_bytes']/1e6:.1f} MB uncompressed = {ratio:.2f}x the 232 MB upstream CloudNativePG minimal image (target <= 0.50x)")
PY

# Publishing: a first push of every image to a local registry (TLS, htpasswd), then a rebuild
# with nothing changed; wall time and what was uploaded, from the run reports.
reg=$work/registry
mkdir -p "$reg/data"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=bench \
    -addext "subjectAltName=IP:127.0.0.1" -keyout "$reg/key.pem" -out "$reg/cert.pem" 2>/dev/null
htpasswd -Bbn bench bench-password > "$reg/htpasswd"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$reg/config.yml" <<YAML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $reg/data}}
http: {addr: 127.0.0.1:$port, secret: bench, tls: {certificate: $reg/cert.pem, key: $reg/key.pem}}
auth: {htpasswd: {realm: bench, path: $reg/htpasswd}}
YAML
docker-registry serve "$reg/config.yml" >/dev/null 2>&1 &
registry_pid=$!
trap 'kill $registry_pid 2>/dev/null; rm -rf "$work"' EXIT
deadline=$((SECONDS + 20))
until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || die "the benchmark registry did not start"
    sleep 0.1
done
printf 'bench-password' > "$reg/password"
publish=(rebuild "${flags[@]}" --skip-unavailable --binaries out/bin --cache-dir "$CACHE/image-cache"
    --registry "127.0.0.1:$port/bench" --ca-file "$reg/cert.pem" --username bench --password-file "$reg/password"
    --catalog-out "$work/catalog.yaml")
timed "first push, every image" "$rebuilder" "${publish[@]}" --report "$work/push1.json"
timed "no-change rebuild, every image" "$rebuilder" "${publish[@]}" --report "$work/push2.json"
python3 - "$work/push1.json" "$work/push2.json" <<'PY'
import json, sys
for label, path in (("first push", sys.argv[1]), ("no-change rebuild", sys.argv[2])):
    r = json.load(open(path))
    print(f"{label:<20} {r['blobs_uploaded']:>5} blobs {r['bytes_uploaded']/1e6:>9.1f} MB uploaded, catalog {'updated' if r['catalog_changed'] else 'unchanged'}")
PY
