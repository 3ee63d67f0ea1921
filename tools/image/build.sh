#!/usr/bin/env bash
# Build the operator image (what `make image` and the image tests run):
#   restate-operator.local/restate-operator:<version from pyproject.toml>  and  :dev
# It first makes sure there is an engine (docker.sh ensure) and the local base (base-image.sh),
# then prints the image's reference, id and size.
#
# Every build step uses the host network: the engine has no bridge here. The classic builder is
# used (no BuildKit on these machines). The builder stage trusts the host's CA bundle, handed in as
# a one-file image, because TLS to PyPI may be intercepted by a proxy that only the host trusts.
set -euo pipefail
here=$(dirname "$0")
cd "$here/../.."

REPO=${IMAGE_REPO:-restate-operator.local/restate-operator}
BASE=${BASE_IMAGE:-restate-operator.local/base/python:3.11-bookworm}
CA_BUNDLE=${BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
CA_IMAGE=restate-operator.local/build/host-ca:latest

"$here/docker.sh" ensure
BASE_IMAGE=$BASE "$here/base-image.sh"

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n1)
[ -n "$version" ] || { echo "build.sh: no version in pyproject.toml" >&2; exit 1; }
source_url=$(git remote get-url origin 2>/dev/null || true)

# Re-import the CA image only when the host's bundle changed (its label carries the bundle's hash).
ca_sum=$(sha256sum "$CA_BUNDLE" | cut -c1-16)
if [ "$(docker image inspect -f '{{index .Config.Labels "ca-sha256"}}' "$CA_IMAGE" 2>/dev/null)" != "$ca_sum" ]; then
  tar -ch --transform 's,.*,etc/ssl/certs/ca-certificates.crt,' -C "$(dirname "$CA_BUNDLE")" "$(basename "$CA_BUNDLE")" \
    | docker import --change "LABEL ca-sha256=$ca_sum" - "$CA_IMAGE" >/dev/null
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
build() {
  DOCKER_BUILDKIT=0 docker build --network host --force-rm \
    --build-arg BASE_IMAGE="$BASE" --build-arg BUILD_CA_IMAGE="$CA_IMAGE" \
    --build-arg VERSION="$version" --build-arg SOURCE="$source_url" "$@" . >"$log" 2>&1 || {
    cat "$log" >&2
    echo "build.sh: docker build failed" >&2
    exit 1
  }
}
# The builder stage gets a tag of its own so that its layers (the pip install above all) stay as the
# cache of the next build while everything superseded is pruned: with vfs storage every layer is a
# full copy, and a few untagged generations fill the disk.
build --target builder --tag "$REPO:builder-cache"
build --tag "$REPO:$version" --tag "$REPO:dev"
docker image prune --force --filter "label=dev.restate-operator.base-key" >/dev/null
docker image ls --format '{{.Repository}}:{{.Tag}}  {{.ID}}  {{.Size}}' "$REPO:$version"
