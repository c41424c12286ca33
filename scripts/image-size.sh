#!/usr/bin/env bash
# The size of each production image as `docker image inspect --format '{{.Size}}'` reports
# it (the bytes of every file in its layers), worked out without a Docker engine from what
# the Dockerfile puts in it:
#   - distroless/base-nossl-debian12: the files of the Debian packages it is made of
#     (base-files, netbase, tzdata, media-types, libc6) and the CA bundle distroless builds
#     from ca-certificates;
#   - the runtime-libraries stage: libgcc_s, and libssl3 when the binary links it, with
#     their copyright files;
#   - the stripped binary.
# The packages are this machine's Debian 12 versions (apt-get download), not necessarily
# those of the pinned digest: tzdata and the CA bundle drift by a few KB between point
# releases. Files of a few hundred bytes (passwd, group, os-release, package records) are
# left out.
#
# Usage: scripts/image-size.sh BINARY...   (release binaries as the Dockerfile builds them:
#        docs/benchmarks.md "Release binary sizes")
set -euo pipefail

(($#)) || { echo "usage: $0 BINARY..." >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
debs="$root/.local/image-size"
mkdir -p "$debs"
packages=(base-files netbase tzdata media-types libc6 ca-certificates libgcc-s1 gcc-12-base libssl3)
for p in "${packages[@]}"; do
  compgen -G "$debs/${p}_*.deb" >/dev/null || (cd "$debs" && apt-get download -q "$p" >/dev/null 2>&1) ||
    { echo "image-size: apt-get download $p failed (run apt-get update first?)" >&2; exit 1; }
done

# Bytes of the files in package $1 whose path matches the awk regex $2 (default: all).
bytes() {
  dpkg-deb --fsys-tarfile "$debs/$1"_*.deb | tar -tv | awk -v re="${2:-.}" '$1 !~ /^[dl]/ && $6 ~ re { s += $3 } END { print s + 0 }'
}

base=0
for p in base-files netbase tzdata media-types libc6; do base=$((base + $(bytes "$p"))); done
# distroless ships the concatenated bundle and the package's copyright, not the separate files.
base=$((base + $(bytes ca-certificates '[.]crt$') + $(bytes ca-certificates '/copyright$')))
gcc=$(($(bytes libgcc-s1 'libgcc_s[.]so[.]1$') + $(bytes gcc-12-base '/copyright$')))
ssl=$(($(bytes libssl3 '^[.]/usr/lib/') + $(bytes libssl3 '/copyright$')))

mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }
printf '%-14s %10s %10s %10s %10s\n' image base libraries binary "total MB"
for binary in "$@"; do
  libs=$gcc
  if readelf -d "$binary" | grep -q '(NEEDED).*\[libssl\.so\.3\]'; then libs=$((libs + ssl)); fi
  size=$(stat -c %s "$binary")
  total=$((base + libs + size))
  verdict=$([ "$total" -lt 40000000 ] && echo "under 40 MB" || echo "OVER 40 MB")
  printf '%-14s %10s %10s %10s %10s  %s\n' "$(basename "$binary")" "$(mb $base)" "$(mb $libs)" "$(mb "$size")" \
    "$(mb $total)" "$verdict"
done
