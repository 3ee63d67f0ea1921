#!/usr/bin/env bash
# Builds the local stack's Knative Serving controller (devstack/knative/main.go, against the
# knative.dev/serving version its go.mod pins) into a cache outside the repo, keyed by that version,
# and extracts next to it the CRDs and ConfigMaps it needs from the same Go modules (they are not
# committed: they come from exactly the modules the binary is built from). Does nothing when the
# cache is complete and was built from the current source. Prints the directory on stdout;
# `--print-dir` only prints it, without building; `--check` prints it and fails (rc 3) when it is
# missing, incomplete or built from other source.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/knative" && pwd)
SERVING_VERSION=$(awk '$1 == "knative.dev/serving" {print $2}' "$SRC/go.mod")
CACHE_ROOT=${RESTATE_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/restate-operator}
OUT=${KNATIVE_DIR:-$CACHE_ROOT/knative-serving-$SERVING_VERSION}
# The serving CRDs, then the networking and caching ones (in GitHub these are symlinks into
# vendor/, which module zips drop, so they come from the modules serving's go.mod pins).
SERVING_CRDS=(configuration revision route service domain-mapping podautoscaler metric)
NETWORKING_CRDS=(ingress serverlessservice certificate domain-claim)
CACHING_CRDS=(image)
CRD_COUNT=$((${#SERVING_CRDS[@]} + ${#NETWORKING_CRDS[@]} + ${#CACHING_CRDS[@]}))
# A change to our main.go or its pins rebuilds, even under the same serving version.
SOURCE_SUM=$(cat "$SRC/main.go" "$SRC/go.mod" "$SRC/go.sum" | sha256sum | cut -d' ' -f1)

complete() {
  [ -x "$OUT/controller" ] && [ -f "$OUT/config/config-network.yaml" ] && [ -f "$OUT/config/100-namespace.yaml" ] || return 1
  [ "$(find "$OUT/crds" -name '*.yaml' 2>/dev/null | wc -l)" -eq "$CRD_COUNT" ] || return 1
  [ "$(cat "$OUT/source.sha256" 2>/dev/null)" = "$SOURCE_SUM" ]
}

if [ "${1:-}" = "--print-dir" ]; then echo "$OUT"; exit 0; fi
if [ "${1:-}" = "--check" ]; then echo "$OUT"; complete || exit 3; exit 0; fi
if complete; then echo "$OUT"; exit 0; fi

export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/knative-serving.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/out/crds" "$STAGE/out/config" "$STAGE/src"
start=$(date +%s)
log() { echo "[build-knative +$(( $(date +%s) - start ))s] $*" >&2; }

# Built from a copy, so -mod=mod can never rewrite the committed go.mod/go.sum.
cp "$SRC/main.go" "$SRC/go.mod" "$SRC/go.sum" "$STAGE/src/"
cd "$STAGE/src"
log "knative.dev/serving $SERVING_VERSION"
go build -trimpath -ldflags "-s -w" -o "$STAGE/out/controller" .
log "built controller"

dir_of() { go list -m -f '{{.Dir}}' "$1"; }
S=$(dir_of knative.dev/serving) N=$(dir_of knative.dev/networking) C=$(dir_of knative.dev/caching)
for f in "${SERVING_CRDS[@]}"; do cp "$S/config/core/300-resources/$f.yaml" "$STAGE/out/crds/serving-$f.yaml"; done
for f in "${NETWORKING_CRDS[@]}"; do cp "$N/config/$f.yaml" "$STAGE/out/crds/networking-$f.yaml"; done
for f in "${CACHING_CRDS[@]}"; do cp "$C/config/$f.yaml" "$STAGE/out/crds/caching-$f.yaml"; done
# The namespace, every ConfigMap of config/core (the reconcilers' stores watch them) and
# config-network (main() dies without it). Their data are examples; devstack/knative.py sets what matters.
cp "$S/config/core/100-namespace.yaml" "$STAGE/out/config/"
for f in "$S"/config/core/configmaps/*.yaml; do cp "$f" "$STAGE/out/config/config-$(basename "$f")"; done
cp "$N/config/config-network.yaml" "$STAGE/out/config/"
chmod -R u+w "$STAGE/out"  # the module cache is read-only; the cache should be removable
echo "$SOURCE_SUM" > "$STAGE/out/source.sha256"
log "extracted $CRD_COUNT CRDs and $(find "$STAGE/out/config" -name 'config-*.yaml' | wc -l) ConfigMaps"

mkdir -p "$(dirname "$OUT")"
rm -rf "$OUT.partial"; cp -r "$STAGE/out" "$OUT.partial"; rm -rf "$OUT"; mv "$OUT.partial" "$OUT"
log "done: $OUT"
echo "$OUT"
