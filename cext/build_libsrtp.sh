#!/usr/bin/env bash
# Build libsrtp2 from Debian's source package as a static, position-independent library on
# OpenSSL's crypto, into PREFIX (default: build/libsrtp).
#
# Why not Debian's libsrtp2 binary package: it is built on NSS, whose per-packet context set-up
# makes protect/unprotect about 3.5 times slower than libsrtp on OpenSSL (see docs/benchmarks.md).
# The source is the same release; only the crypto backend differs.
set -euo pipefail

prefix=${1:-build/libsrtp}
prefix=$(mkdir -p "$prefix" && cd "$prefix" && pwd)
work=$(mkdir -p build/libsrtp-src && cd build/libsrtp-src && pwd)
cd "$work"

have_source() { ls libsrtp2_*.orig.tar.gz >/dev/null 2>&1; }

if ! have_source; then
    if ! apt-get source --download-only libsrtp2 >/dev/null 2>&1; then
        # No source index configured: add deb-src entries mirroring the binary ones.
        list=/etc/apt/sources.list.d/mediasrv-deb-src.sources
        if [ -f /etc/apt/sources.list.d/debian.sources ]; then
            sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > "$list"
        elif [ -f /etc/apt/sources.list ]; then
            grep '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' \
                > /etc/apt/sources.list.d/mediasrv-deb-src.list
        fi
        apt-get update >/dev/null
        apt-get source --download-only libsrtp2 >/dev/null
    fi
fi
have_source || { echo "could not download Debian's libsrtp2 source" >&2; exit 1; }

tarball=$(ls libsrtp2_*.orig.tar.gz | head -n 1)
rm -rf src && mkdir src
tar xzf "$tarball" -C src --strip-components=1
cd src
./configure --enable-openssl --prefix="$prefix" CFLAGS="-O2 -fPIC" >configure.log
make -j"$(nproc)" libsrtp2.a >make.log 2>&1
make install >>make.log 2>&1
echo "libsrtp2 $(basename "$tarball" .orig.tar.gz | cut -d_ -f2) (OpenSSL crypto) in $prefix"
