#!/usr/bin/env bash
# Builds the four release binaries fully static (glibc crt-static, OpenSSL built here), proves
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
# OpenSSL for the release binaries, built here from the sources of the openssl-src crate that
# Cargo.lock pins (cargo verified their checksum) and configured by us, not by openssl-src:
# - with threads: openssl-src passes the `-static` that crt-static makes the cc crate add, and
#   OpenSSL's Configure reads `-static` as "no-pic no-threads", an OpenSSL whose locks and
#   reference counts are no-ops, which corrupted the heap of our multi-threaded binaries
#   (double frees, failed handshakes); the check below proves OPENSSL_THREADS;
# - installed under a fixed prefix, so the directories OpenSSL compiles in (OPENSSLDIR,
#   ENGINESDIR, MODULESDIR) are the same on every machine and name none of its build paths.
openssl_source() {
    cargo metadata --format-version 1 --locked --all-features | python3 -c '
import json, os, sys
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == "openssl-src":
        print(p["version"], os.path.join(os.path.dirname(p["manifest_path"]), "openssl"))
'
}
read -r openssl_version openssl_src < <(openssl_source) || die "Cargo.lock pins no openssl-src"
openssl_root=$CACHE/openssl/$openssl_version
if [ ! -f "$openssl_root/built" ]; then
    log "building OpenSSL from openssl-src $openssl_version (once per version; a few minutes)"
    work=$(mktemp -d)
    cp -R "$openssl_src/." "$work/"
    (
        cd "$work"
        ./Configure linux-x86_64 --prefix=/usr/local --openssldir=/usr/local/ssl --libdir=lib \
            no-shared no-module no-tests no-comp no-zlib no-ssl3 no-md2 no-rc5 no-weak-ssl-ciphers \
            no-camellia no-idea no-seed -O2 -ffunction-sections -fdata-sections
        make -j"$(nproc)" build_libs
        rm -rf "$openssl_root.tmp"
        make install_dev DESTDIR="$openssl_root.tmp"
    ) >"$work.log" 2>&1 || { tail -n 40 "$work.log" >&2; rm -rf "$work" "$work.log"; die "building OpenSSL $openssl_version failed"; }
    rm -rf "$work" "$work.log" "$openssl_root"
    mv "$openssl_root.tmp" "$openssl_root"
    touch "$openssl_root/built"
fi
configuration=$openssl_root/usr/local/include/openssl/configuration.h
grep -q '^# *define OPENSSL_THREADS' "$configuration" || {
    rm -rf "$openssl_root"
    die "OpenSSL $openssl_version was built without thread support: it would corrupt the heap of our multi-threaded binaries"
}
log "OpenSSL from openssl-src $openssl_version (static, with thread support) in $openssl_root"
export OPENSSL_DIR=$openssl_root/usr/local OPENSSL_STATIC=1 OPENSSL_NO_VENDOR=1

cargo build --release --locked --target "$RELEASE_TARGET" "${packages[@]}"

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
    for dir in "$CARGO_HOME_DIR" "$CACHE" "$ROOT"; do
        if grep -qaF "$dir/" "$bin"; then linkage="$linkage, names $dir"; failed=1; fi
    done
    printf '%-20s %12s  %s\n' "$b" "$(stat -c %s "$bin")" "$linkage"
    install -m 0755 "$bin" "out/bin/$b"
done
[ "$failed" -eq 0 ] || die "a release binary is not static or names a build directory (see the table above)"
