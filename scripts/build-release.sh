#!/usr/bin/env bash
# Builds the four release binaries fully static (glibc crt-static, OpenSSL vendored), proves
# each one is static (no program interpreter, no shared-library dependency) and prints its size.
# The binaries are copied to out/bin/.
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

BINS=(operator instance-manager pgbouncer-sidecar image-rebuilder)

# Only target crates get crt-static: build scripts and proc-macros are host crates and must
# stay dynamic, which is why the target triple is explicit.
# The crate sources' absolute paths (panic locations) are written as /cargo/...: the binaries
# name no directory of the machine that built them (checked below).
CARGO_HOME_DIR=$(cd "${CARGO_HOME:-$HOME/.cargo}" && pwd -P)
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static --remap-path-prefix=$CARGO_HOME_DIR=/cargo"
packages=()
for b in "${BINS[@]}"; do packages+=(-p "cnpg-$b"); done
# With crt-static on, the cc crate adds `-static` to every C build, and OpenSSL's Configure
# reads `-static` as "no-pic no-threads": a vendored OpenSSL whose locks and atomics are
# no-ops, which corrupts the heap of any multi-threaded program (seen as double frees and
# failed handshakes in the instance manager). So cc adds none of its default flags and
# CFLAGS gives back the ones we want; the check after the build proves OpenSSL has threads.
export CRATE_CC_NO_DEFAULTS=1
export "CFLAGS_${RELEASE_TARGET//-/_}=-O2 -ffunction-sections -fdata-sections -fPIC -m64"

# OpenSSL is vendored (built from source, linked statically) for release builds only.
messages=$(mktemp)
trap 'rm -f "$messages"' EXIT
cargo build --release --locked --target "$RELEASE_TARGET" "${packages[@]}" \
    --features cnpg-image-rebuilder/vendored-openssl --message-format=json-render-diagnostics >"$messages"
openssl_out=$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") == "build-script-executed" and "openssl-sys" in m["package_id"]:
        print(m["out_dir"])
' "$messages" | tail -n 1)
configuration=$openssl_out/openssl-build/install/include/openssl/configuration.h
[ -f "$configuration" ] || die "cannot find the vendored OpenSSL's configuration.h (looked in '$openssl_out')"
grep -q '^# *define OPENSSL_THREADS' "$configuration" ||
    die "the vendored OpenSSL was built without thread support ($configuration): it would corrupt the heap of our multi-threaded binaries"
log "vendored OpenSSL $(sed -n 's/^# *define OPENSSL_VERSION_STR "\(.*\)"/\1/p' "$openssl_out/openssl-build/install/include/openssl/opensslv.h") built with thread support"

mkdir -p out/bin
failed=0
printf '%-20s %12s  %s\n' binary bytes linkage
for b in "${BINS[@]}"; do
    bin=$CARGO_TARGET_DIR/$RELEASE_TARGET/release/$b
    linkage=static
    if readelf -lW "$bin" | grep -q 'Requesting program interpreter'; then linkage="DYNAMIC (has an interpreter)"; failed=1; fi
    if readelf -dW "$bin" | grep -q '(NEEDED)'; then
        linkage="DYNAMIC (needs $(readelf -dW "$bin" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | paste -sd, -))"
        failed=1
    fi
    if grep -qaF "$CARGO_HOME_DIR/" "$bin"; then linkage="$linkage, names $CARGO_HOME_DIR"; failed=1; fi
    printf '%-20s %12s  %s\n' "$b" "$(stat -c %s "$bin")" "$linkage"
    install -m 0755 "$bin" "out/bin/$b"
done
[ "$failed" -eq 0 ] || die "a release binary is not static or names a build directory (see the table above)"
