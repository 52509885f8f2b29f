#!/usr/bin/env bash
# Fetch the wheels of the locked `ray` and `env-wheels` dependency groups (ray, grpcio and what
# they need, the versions in uv.lock, hashes checked) into a find-links folder. The tests install this exact ray into the
# envs they run on Ray, without a package index: set-up downloads, tests stay hermetic.
#
#   scripts/fetch_ray_wheels.sh <uv> <pip> <dest>
set -euo pipefail
uv=$1 pip=$2 dest=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$uv" export --frozen --only-group ray --only-group env-wheels --no-emit-project --no-header --quiet -o "$tmp/requirements.txt"
"$pip" download --quiet --disable-pip-version-check --no-deps --only-binary=:all: --require-hashes \
    -r "$tmp/requirements.txt" -d "$tmp/wheels" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
mv "$tmp/wheels" "$dest"
