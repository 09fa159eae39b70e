#!/usr/bin/env bash
# Loads the PostgreSQL 17 image built by scripts/images.sh into Docker and runs initdb and
# postgres in it as uid 26 with a read-only root, no capabilities and no privilege gain
# (tmpfs only for data and sockets), then prints SELECT version().
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

site=${CNPG_RS_SITE:-host-apt}
archive=out/postgresql-17-minimal.tar
out/bin/image-rebuilder build --site "$site" --locks out/locks --only postgresql-17-minimal \
    --cache-dir "$CACHE/image-cache" --out "docker-archive:$archive" >/dev/null
image=$(docker load -i "$archive" | sed -n 's/^Loaded image: //p' | tail -n 1)
[ -n "$image" ] || die "docker load did not name an image"
name=cnpg-rs-smoke-$$
trap 'docker rm -f "$name" >/dev/null 2>&1 || true' EXIT
docker run -d --name "$name" --read-only --user 26:26 --cap-drop ALL \
    --security-opt no-new-privileges \
    --tmpfs /var/lib/postgresql:uid=26,gid=26,mode=0700 \
    --tmpfs /var/run/postgresql:uid=26,gid=26,mode=0775 \
    --entrypoint /usr/bin/sh "$image" \
    -c 'initdb -D "$PGDATA" --auth=trust >/dev/null && exec postgres -D "$PGDATA" -c listen_addresses=' >/dev/null
psql() { docker exec "$name" psql -h /var/run/postgresql -U postgres -Atc "$1"; }
deadline=$((SECONDS + 60))
until psql 'SELECT 1' >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || { docker logs "$name" >&2; die "postgres did not accept connections within 60 s"; }
    sleep 0.2
done
log "$image as $(docker inspect -f '{{.Config.User}}, read-only root: {{.HostConfig.ReadonlyRootfs}}' "$name")"
psql 'SELECT version()'
