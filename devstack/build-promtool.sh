#!/usr/bin/env bash
# Builds Prometheus' promtool (the chart tests run `promtool check rules` and `promtool test rules`
# on the PrometheusRule) from the Go module proxy into a cache outside the repo, keyed by version.
# Does nothing when it is already there. Prints the directory on stdout; `--print-dir` only prints
# it, without building.
set -euo pipefail

PROMETHEUS_VERSION=${PROMETHEUS_VERSION:-v0.316.0}
CACHE_ROOT=${RESTATE_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/restate-operator}
OUT=${PROMTOOL_DIR:-$CACHE_ROOT/promtool-$PROMETHEUS_VERSION}

if [ "${1:-}" = "--print-dir" ]; then echo "$OUT"; exit 0; fi
if [ -x "$OUT/promtool" ]; then echo "$OUT"; exit 0; fi

export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/promtool.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
start=$(date +%s)
log() { echo "[build-promtool +$(( $(date +%s) - start ))s] $*" >&2; }

# Prometheus release 3.<m>.<p> is Go module version v0.3<mm>.<p> (v0.316.0 is 3.16.0); the version
# package is what `promtool --version` prints.
V=github.com/prometheus/common/version
log "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION"
GOBIN="$STAGE/bin" go install -trimpath -ldflags "-s -w -X $V.Version=${PROMETHEUS_VERSION#v} -X $V.Branch=module-proxy" \
  "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION"
log "built promtool"

mkdir -p "$(dirname "$OUT")"
rm -rf "$OUT.partial"; cp -r "$STAGE/bin" "$OUT.partial"; rm -rf "$OUT"; mv "$OUT.partial" "$OUT"
log "done: $OUT"
echo "$OUT"
