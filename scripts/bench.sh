#!/usr/bin/env bash
# Benchmarks (criterion), by group: `scripts/bench.sh [GROUP...]`, all groups when none given.
# A group is a cargo bench target; a run with no benchmarks defined yet says so and succeeds.
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

mapfile -t available < <(cargo metadata --format-version 1 --no-deps --locked \
    | python3 -c 'import json,sys; [print(t["name"]) for p in json.load(sys.stdin)["packages"] for t in p["targets"] if "bench" in t["kind"]]')
wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=("${available[@]}")
if [ ${#wanted[@]} -eq 0 ]; then
    log "no benchmarks defined yet"
    exit 0
fi
for group in "${wanted[@]}"; do
    printf '%s\n' "${available[@]}" | grep -qx "$group" || die "unknown benchmark group '$group' (have: ${available[*]:-none})"
    step "bench $group" cargo bench --locked --bench "$group"
done
