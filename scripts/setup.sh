#!/usr/bin/env bash
# Installs what building and testing need, idempotently: Debian packages that are missing,
# the pinned cargo tools, and the offline RustSec advisory database. Safe to run every time.
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

# Debian packages, by purpose.
DEBS=(
    build-essential pkg-config libssl-dev   # system OpenSSL for test builds; cc for openssl-src
    perl make                               # OpenSSL's Configure and make (release builds)
    binutils                                # readelf: proves release binaries are static
    git ca-certificates curl
    shellcheck                              # the gate lints our scripts too
    gnupg gpgv dpkg                         # tests sign and build their own package repositories;
                                            # gpgv judges our OpenPGP verifier (differential test)
    debian-archive-keyring                  # the keyring apt trusts, beside the mirror's InRelease files
    xz-utils zstd                           # fuzz seeds: packages and archives in every compression
    openssl                                 # tests check our certificates with an independent verifier
    skopeo umoci                            # tests read our OCI layouts with independent tools
    docker-registry apache2-utils           # tests push to a real registry (TLS, htpasswd)
    python3-venv                            # checkov and kubernetes-validate check deploy/
    postgresql-15 postgresql-client-15      # real PostgreSQL for the instance tests
    barman-cli-cloud                        # barman's own tools read and write what our archiver does
)
CARGO_DENY_VERSION=0.20.2
CARGO_NEXTEST_VERSION=0.9.143
CARGO_FUZZ_VERSION=0.13.2

missing_debs() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || printf '%s\n' "$p"
    done
}

install_debs() {
    local missing
    mapfile -t missing < <(missing_debs "$@")
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing Debian packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# cargo_tool BIN-SUBCOMMAND CRATE VERSION: installs CRATE@VERSION under $TOOLS unless a
# binary answering `cargo SUBCOMMAND --version` with that version is already on PATH.
cargo_tool() {
    local sub=$1 crate=$2 version=$3
    if cargo "$sub" --version 2>/dev/null | grep -qF "$version"; then return 0; fi
    if [ "$sub" = nextest ] && cargo nextest --version >/dev/null 2>&1; then return 0; fi
    log "installing $crate $version (once per machine; several minutes on 2 cores)"
    cargo install --locked --quiet "$crate" --version "$version" --root "$TOOLS" \
        --target-dir "$CACHE/tools-target"
}

# The RustSec snapshot shipped beside the project, if any, becomes the git repository
# cargo-deny reads with --offline (it must be a git repository: cargo-deny dates it by HEAD).
advisory_db() {
    local snapshot=${CNPG_RS_ADVISORY_SNAPSHOT:-$ROOT/../shared/advisory-db}
    local db=$CACHE/advisory-dbs/advisory-db-3157b0e258782691
    [ -d "$snapshot" ] || { log "no advisory snapshot at $snapshot: cargo-deny will fetch the database"; return 0; }
    if [ -f "$db/SNAPSHOT" ] && cmp -s "$snapshot/SNAPSHOT" "$db/SNAPSHOT"; then return 0; fi
    log "loading the RustSec advisory snapshot ($(cut -c1-12 "$snapshot/SNAPSHOT"))"
    rm -rf "$db" && mkdir -p "$db"
    cp -R "$snapshot/." "$db/"
    chmod -R u+w "$db"
    git -C "$db" init -q
    git -C "$db" add -A
    git -C "$db" -c user.name=cnpg-rs -c user.email=ci@localhost commit -qm "snapshot $(cut -c1-40 "$snapshot/SNAPSHOT")"
}

# The differential OpenPGP test reads the signed metadata this machine's apt fetched from its
# mirror; a machine that never ran `apt-get update` has none yet.
apt_metadata() {
    compgen -G '/var/lib/apt/lists/*_InRelease' >/dev/null && return 0
    log "fetching this machine's apt metadata (the differential OpenPGP test reads it)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
}

# A virtual environment under the cache holding the pins of scripts/lib/NAME.txt, reinstalled
# only when they change; BIN is the program that proves it installed.
python_venv() {
    local name=$1 bin=$2 venv=$CACHE/$3
    local pins=$ROOT/scripts/lib/$name.txt
    if [ -x "$venv/bin/$bin" ] && cmp -s "$pins" "$venv/pins.txt"; then return 0; fi
    log "installing $(grep -v '^#' "$pins" | tr '\n' ' ')(once per machine, about a minute)"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$pins"
    cp "$pins" "$venv/pins.txt"
}

main() {
    command -v cargo >/dev/null || die "cargo not found: install Rust (rustup) first"
    cargo fmt --version >/dev/null 2>&1 || die "the Rust component rustfmt is missing: rustup component add rustfmt"
    cargo clippy --version >/dev/null 2>&1 || die "the Rust component clippy is missing: rustup component add clippy"
    install_debs "${DEBS[@]}" "$@"
    # Tests run our images in Docker; install the engine only where no docker CLI exists, so a
    # machine's own Docker installation is never replaced.
    command -v docker >/dev/null || install_debs docker.io
    cargo_tool nextest cargo-nextest "$CARGO_NEXTEST_VERSION"
    cargo_tool deny cargo-deny "$CARGO_DENY_VERSION"
    # The fuzz targets build with nightly (sanitizers); the machine provides that toolchain.
    cargo +nightly --version >/dev/null 2>&1 || die "the nightly toolchain is missing (cargo-fuzz needs it): rustup toolchain install nightly"
    cargo_tool fuzz cargo-fuzz "$CARGO_FUZZ_VERSION"
    apt_metadata
    advisory_db
    python_venv python-tools checkov python
    python_venv s3-server moto_server s3-server
}

main "$@"
