#!/usr/bin/env bash
# Fuzzes every parser of outside input: the targets in crates/fuzzing, built by cargo-fuzz
# (nightly, AddressSanitizer) from fuzz/, seeded with fuzz/corpus/, fuzz/regressions/ and real
# data from this machine (its apt metadata, Debian's keyring, the project's keys, packages
# built here).
#
#   scripts/fuzz.sh [TARGET]... [--seconds N] [--bench]
#
# Default: every target for 30 seconds (the short pass CI runs). --bench: every target for
# 10 million executions or 30 minutes, whichever comes first, then the OpenPGP differential
# test against gpgv at 100,000 cases; its last line sums both up:
#   fuzz targets=<n> execs=<total> crashes=0 ooms=0; openpgp differential cases=<n> accepted-but-gpgv-rejected=0
# Every input may allocate at most 512 MiB at once and 2 GiB in all; a crash, an
# out-of-memory or a hang is saved under $CNPG_RS_CACHE/fuzz-artifacts/<target>/ and fails
# the run, naming the file and how to replay it.
# The bench takes hours on two cores, so it resumes: a target that finished its bench clean is
# recorded in $CNPG_RS_CACHE/fuzz-bench/<target> with the SHA-256 of its binary, and a later
# --bench reuses that result while the binary is byte-identical (and runs it again otherwise).
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

SECONDS_PER_TARGET=30
BENCH=false
TARGETS=()
while [ $# -gt 0 ]; do
    case $1 in
        --seconds) SECONDS_PER_TARGET=${2:?--seconds needs a number}; shift 2 ;;
        --bench) BENCH=true; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) TARGETS+=("$1"); shift ;;
    esac
done
if $BENCH; then SECONDS_PER_TARGET=1800; fi
RUNS_LIMIT=$($BENCH && echo 10000000 || echo -1)

FUZZ_TARGET_DIR=$CACHE/fuzz-target
CORPUS=$CACHE/fuzz-corpus
ARTIFACTS=$CACHE/fuzz-artifacts
LOGS=$CACHE/fuzz-logs
RESULTS=$CACHE/fuzz-bench
BIN=$FUZZ_TARGET_DIR/$RELEASE_TARGET/release

mapfile -t ALL < <(sed -n 's/^name = "\([a-z0-9_]*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^cnpg-fuzz$')
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL[@]}")
for t in "${TARGETS[@]}"; do
    printf '%s\n' "${ALL[@]}" | grep -qx "$t" || die "no fuzz target $t (targets: ${ALL[*]})"
done

cargo +nightly --version >/dev/null 2>&1 || die "the nightly toolchain is missing (cargo-fuzz needs it): rustup toolchain install nightly"
cargo fuzz --version >/dev/null 2>&1 || die "cargo-fuzz is missing: scripts/setup.sh installs it"

log "building ${#TARGETS[@]} fuzz targets (nightly, AddressSanitizer)"
build_log=$(mktemp)
build() {
    if ! cargo +nightly fuzz build --fuzz-dir fuzz -O --target-dir "$FUZZ_TARGET_DIR" "$@" > "$build_log" 2>&1; then
        tail -n 40 "$build_log" >&2
        die "the fuzz targets do not build"
    fi
}
if [ ${#TARGETS[@]} -eq ${#ALL[@]} ]; then build; else for t in "${TARGETS[@]}"; do build "$t"; done; fi
rm -f "$build_log"

# Seeds from this machine, added to each target's working corpus: real signed metadata and
# keys, packages and archives made with Debian's own tools.
machine_seeds() {
    local t=$1 dir=$2 f work
    case $t in
        openpgp_cleartext)
            for f in /var/lib/apt/lists/*_InRelease; do [ -f "$f" ] && cp "$f" "$dir/apt-$(basename "$f" | sed 's/.*_dists_//')"; done ;;
        debian_release)
            for f in /var/lib/apt/lists/*_InRelease; do
                # The signed text, its first 400 lines (a seed, not the whole suite).
                [ -f "$f" ] && awk 'f && /^-----BEGIN PGP SIGNATURE/{exit} f{print; if (++n >= 400) exit} /^$/{f=1}' "$f" \
                    > "$dir/apt-$(basename "$f" | sed 's/.*_dists_//')"
            done ;;
        debian_packages)
            for f in /var/lib/apt/lists/*_Packages.lz4; do
                [ -f "$f" ] && /usr/lib/apt/apt-helper cat-file "$f" | awk 'BEGIN{RS=""; ORS="\n\n"} NR<=40' \
                    > "$dir/apt-$(basename "$f" | sed 's/.*_dists_//')"
            done ;;
        openpgp_keyring)
            cp images/keys/*.asc "$dir/"
            [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] && cp /usr/share/keyrings/debian-archive-keyring.gpg "$dir/" ;;
        deb)
            work=$(mktemp -d)
            mkdir -p "$work/p/DEBIAN" "$work/p/usr/bin"
            printf 'Package: seed\nVersion: 1\nArchitecture: amd64\nMaintainer: m <m@localhost>\nDescription: seed\n' > "$work/p/DEBIAN/control"
            cp /usr/bin/true "$work/p/usr/bin/seed"
            ln -s seed "$work/p/usr/bin/seed2"
            ln "$work/p/usr/bin/seed" "$work/p/usr/bin/seed3"
            for z in gzip xz zstd none; do
                dpkg-deb -Z"$z" --root-owner-group --build "$work/p" "$dir/machine-$z.deb" >/dev/null
            done
            rm -rf "$work" ;;
        tar)
            tar --blocking-factor=1 -cf "$dir/machine.tar" -C / usr/bin/true etc/hostname 2>/dev/null || true ;;
        elf)
            cp /usr/bin/true "$dir/true" ;;
    esac
}

rm -rf "$ARTIFACTS" "$LOGS"
mkdir -p "$ARTIFACTS" "$LOGS" "$RESULTS"
for t in "${TARGETS[@]}"; do
    mkdir -p "$CORPUS/$t" "$ARTIFACTS/$t"
    cp fuzz/corpus/"$t"/* "$CORPUS/$t/" 2>/dev/null || true
    cp fuzz/regressions/"$t"/* "$CORPUS/$t/" 2>/dev/null || true
    machine_seeds "$t" "$CORPUS/$t"
done

# The executions a clean bench of target $1 recorded with this exact binary, if any.
recorded() {
    local t=$1 sum execs
    $BENCH && [ -f "$RESULTS/$t" ] || return 1
    read -r sum execs < "$RESULTS/$t" || return 1
    [ "$sum" = "$(sha256sum "$BIN/$t" | cut -d' ' -f1)" ] || return 1
    printf '%s\n' "$execs"
}

run_target() {
    local t=$1
    "$BIN/$t" -max_total_time="$SECONDS_PER_TARGET" -runs="$RUNS_LIMIT" \
        -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$ARTIFACTS/$t/" "$CORPUS/$t" > "$LOGS/$t.log" 2>&1 || true
    # A clean bench is recorded as soon as it ends, so an interrupted run keeps it.
    if $BENCH && [ -z "$(ls -A "$ARTIFACTS/$t")" ]; then
        local execs
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$LOGS/$t.log" | tail -1)
        [ -n "$execs" ] && printf '%s %s\n' "$(sha256sum "$BIN/$t" | cut -d' ' -f1)" "$execs" > "$RESULTS/$t"
    fi
}

jobs_max=$(nproc)
log "fuzzing ${#TARGETS[@]} targets, $jobs_max at a time, $($BENCH && echo "10M runs or ")${SECONDS_PER_TARGET}s each"
for t in "${TARGETS[@]}"; do
    recorded "$t" >/dev/null && continue
    while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
    run_target "$t" &
done
wait

total=0 crashes=0 ooms=0 failed=()
for t in "${TARGETS[@]}"; do
    if execs=$(recorded "$t") && [ ! -f "$LOGS/$t.log" ]; then
        printf '  %-22s execs=%-10s crashes=0 ooms=0 (recorded by an earlier --bench of this binary)\n' "$t" "$execs" >&2
        total=$((total + execs))
        continue
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$LOGS/$t.log" | tail -1)
    c=$(find "$ARTIFACTS/$t" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)
    o=$(find "$ARTIFACTS/$t" -type f -name 'oom-*' | wc -l)
    if [ -z "$execs" ]; then
        # No final stats: the target died before finishing (it printed why).
        c=$((c > 0 ? c : 1))
        execs=0
    fi
    printf '  %-22s execs=%-10s crashes=%s ooms=%s\n' "$t" "$execs" "$c" "$o" >&2
    total=$((total + execs)); crashes=$((crashes + c)); ooms=$((ooms + o))
    [ $((c + o)) -eq 0 ] || failed+=("$t")
done
summary="fuzz targets=${#TARGETS[@]} execs=$total crashes=$crashes ooms=$ooms"

for t in "${failed[@]}"; do
    printf '\n%s failed; its log ends:\n' "$t" >&2
    tail -n 30 "$LOGS/$t.log" >&2
    for a in "$ARTIFACTS/$t"/*; do
        [ -f "$a" ] && printf 'replay: %s %s\nminimize, then add it to fuzz/regressions/%s/ with the fix: cargo +nightly fuzz tmin --fuzz-dir fuzz %s %s\n' \
            "$BIN/$t" "$a" "$t" "$t" "$a" >&2
    done
done

if $BENCH; then
    log "OpenPGP differential test against gpgv, 100,000 cases"
    result=$(mktemp)
    CNPG_PGP_DIFFERENTIAL_CASES=100000 CNPG_PGP_DIFFERENTIAL_SUMMARY=$result \
        cargo test --locked --quiet -p cnpg-imaging --test pgp_differential >&2 || true
    differential=$(cat "$result")
    rm -f "$result"
    [ -n "$differential" ] || die "the differential test did not finish"
    summary="$summary; $differential"
fi

printf '%s\n' "$summary"
[ ${#failed[@]} -eq 0 ] || exit 1
if $BENCH && [[ $summary != *" accepted-but-gpgv-rejected=0" ]]; then exit 1; fi
