#!/usr/bin/env bash
# Benchmarks by group: `scripts/bench.sh [GROUP...]`, every group when none is given. A group
# is a criterion bench target of the cnpg-benches crate, plus scripts/lib/bench-GROUP.sh for
# whole-command measurements when it exists. Succeeds with a note when none are defined.
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
    if [ "$group" = instance ] || [ "$group" = backup ]; then
        # Measured as shipped: the static release binary.
        step "release binaries" scripts/build-release.sh
    fi
    step "criterion: $group" cargo bench --locked -p cnpg-benches --bench "$group"
    if [ -x "scripts/lib/bench-$group.sh" ]; then
        step "whole commands: $group" "scripts/lib/bench-$group.sh"
    fi
done
