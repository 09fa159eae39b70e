#!/usr/bin/env bash
# The static-analysis gate: formatting, clippy with the workspace lint set (warnings are
# errors), the dependency audit, and shellcheck on our scripts. Any finding fails it, exactly
# like a failing test. Run scripts/setup.sh first (scripts/test.sh does).
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

deny() {
    local offline=() manifest
    # With the snapshot loaded by setup.sh the audit needs no network.
    [ -d "$CACHE/advisory-dbs/advisory-db-3157b0e258782691/.git" ] && offline=(--offline)
    # The workspace, and the fuzz crate with its own lock file.
    for manifest in Cargo.toml fuzz/Cargo.toml; do
        cargo fetch --locked --quiet --manifest-path "$manifest" || return 1
        CNPG_RS_ADVISORY_DBS=$CACHE/advisory-dbs cargo deny "${offline[@]}" --manifest-path "$manifest" \
            --all-features check || return 1
    done
}

step "rustfmt" cargo fmt --all --check
step "clippy (workspace lint set, -D warnings)" \
    cargo clippy --workspace --all-targets --locked -- -D warnings
step "dependency audit (cargo-deny: advisories, bans, licenses, sources)" deny
step "shellcheck" shellcheck -x scripts/*.sh scripts/lib/*.sh .ci/run
