#!/usr/bin/env bash
# Builds the four release binaries fully static (glibc crt-static, OpenSSL vendored), proves
# each one is static (no program interpreter, no shared-library dependency) and prints its size.
# The binaries are copied to out/bin/.
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

BINS=(operator instance-manager pgbouncer-sidecar image-rebuilder)

# Only target crates get crt-static: build scripts and proc-macros are host crates and must
# stay dynamic, which is why the target triple is explicit.
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static"
packages=()
for b in "${BINS[@]}"; do packages+=(-p "cnpg-$b"); done
# OpenSSL is vendored (built from source, linked statically) for release builds only.
cargo build --release --locked --target "$RELEASE_TARGET" "${packages[@]}" \
    --features cnpg-image-rebuilder/vendored-openssl

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
    printf '%-20s %12s  %s\n' "$b" "$(stat -c %s "$bin")" "$linkage"
    install -m 0755 "$bin" "out/bin/$b"
done
[ "$failed" -eq 0 ] || die "a release binary is not static (see the table above)"
