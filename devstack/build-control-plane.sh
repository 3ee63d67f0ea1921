#!/usr/bin/env bash
# Builds the Kubernetes test control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok, helm) from Go modules into a cache outside the repo, keyed by
# version. Does nothing when the cache is already complete. Prints the directory on stdout;
# `--print-dir` only prints it, without building.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.35.4}
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
HELM_VERSION=${HELM_VERSION:-v3.22.0}
CACHE_ROOT=${RESTATE_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/restate-operator}
OUT=${K8S_BIN_DIR:-$CACHE_ROOT/k8s-test-bins/$K8S_VERSION-kwok$KWOK_VERSION-helm$HELM_VERSION}
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok helm)

complete() {
  for b in "${BINARIES[@]}"; do [ -x "$OUT/$b" ] || return 1; done
  [ -f "$OUT/kwok-stages.yaml" ]
}

if [ "${1:-}" = "--print-dir" ]; then echo "$OUT"; exit 0; fi
if complete; then echo "$OUT"; exit 0; fi

export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/k8s-bins.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bin" "$STAGE/mod"
start=$(date +%s)
log() { echo "[build-control-plane +$(( $(date +%s) - start ))s] $*" >&2; }

cd "$STAGE/mod"
go mod init k8s-test-bins >/dev/null 2>&1
# k8s.io/kubernetes requires its staging modules at v0.0.0; replace each with its published tag.
STAGING="v0.${K8S_VERSION#v1.}"
KGOMOD=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
for m in $(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$KGOMOD" | sort -u); do
  go mod edit -replace="$m=$m@$STAGING"
done
ETCD_VERSION=$(awk '$1 == "go.etcd.io/etcd/server/v3" {print $2}' "$KGOMOD")
log "k8s $K8S_VERSION, staging $STAGING, etcd $ETCD_VERSION"
go get -tool \
  "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" \
  "k8s.io/kubernetes/cmd/kube-controller-manager@$K8S_VERSION" \
  "k8s.io/kubernetes/cmd/kube-scheduler@$K8S_VERSION" \
  "k8s.io/kubernetes/cmd/kubectl@$K8S_VERSION" \
  "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
go mod tidy >&2
log "modules resolved"

MINOR=$(echo "$K8S_VERSION" | cut -d. -f2)
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LDF="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LDF+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$MINOR"
  LDF+=" -X $p.gitTreeState=clean -X $p.buildDate=$NOW"
done
for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  go build -trimpath -ldflags "$LDF" -o "$STAGE/bin/$c" "k8s.io/kubernetes/cmd/$c"
  log "built $c"
done
go build -trimpath -ldflags "-s -w" -o "$STAGE/bin/etcd" go.etcd.io/etcd/server/v3
log "built etcd"

GOBIN="$STAGE/bin" go install -trimpath -ldflags "-s -w" \
  "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
log "built kwok"
GOBIN="$STAGE/bin" go install -trimpath -ldflags "-s -w \
  -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$MINOR \
  -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$MINOR" \
  "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
log "built helm"

# kwok v0.8 needs explicit stages: fast node init + lease heartbeat, pods ready/complete/delete.
S=$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize/stage
{ cat "$S/node/fast/node-initialize.yaml"; echo ---
  cat "$S/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml"; echo ---
  cat "$S/pod/fast/pod-ready.yaml"; echo ---
  cat "$S/pod/fast/pod-complete.yaml"; echo ---
  cat "$S/pod/fast/pod-delete.yaml"; } > "$STAGE/bin/kwok-stages.yaml"

mkdir -p "$(dirname "$OUT")"
rm -rf "$OUT.partial"; cp -r "$STAGE/bin" "$OUT.partial"; rm -rf "$OUT"; mv "$OUT.partial" "$OUT"
log "done: $OUT"
echo "$OUT"
