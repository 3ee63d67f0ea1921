#!/usr/bin/env bash
# A Docker engine for building and testing the operator image, on a machine that may have none.
#
#   tools/image/docker.sh ensure   install docker.io if dockerd is missing, start it if `docker info`
#                                  fails, wait until it answers; quiet and idempotent on success.
#
# The engine runs with vfs storage (works on any filesystem, nested or not) and without a bridge or
# iptables rules: the private addresses of a bridge must not carry traffic on these machines, so
# every build and container uses the host network (`--network host`). It exits non-zero with a
# message when the engine cannot be started: CI must fail loudly rather than skip the image tests.
set -euo pipefail

LOG=${DOCKERD_LOG:-/var/log/restate-operator-dockerd.log}
WAIT_SECONDS=${DOCKERD_WAIT_SECONDS:-60}

die() { echo "docker.sh: $*" >&2; exit 1; }

engine_up() { docker info >/dev/null 2>&1; }

install_engine() {
  local out
  command -v apt-get >/dev/null || die "dockerd is missing and apt-get is not available to install docker.io"
  [ "$(id -u)" = 0 ] || die "dockerd is missing and installing docker.io needs root"
  echo "docker.sh: installing docker.io (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  out=$(apt-get update -qq 2>&1) || die "apt-get update failed:
$out"
  out=$(apt-get install -y -qq --no-install-recommends docker.io 2>&1) || die "apt-get install docker.io failed:
$out"
}

start_engine() {
  local pid
  case "${DOCKER_HOST:-unix:///var/run/docker.sock}" in
    unix:///var/run/docker.sock) ;;
    *) die "the engine at DOCKER_HOST=$DOCKER_HOST does not answer (only the default local engine is started here)" ;;
  esac
  [ "$(id -u)" = 0 ] || die "dockerd is not running and starting it needs root"
  echo "docker.sh: starting dockerd (log: $LOG)" >&2
  # setsid: the engine outlives this script and the make/pytest that called it.
  setsid dockerd --storage-driver=vfs --bridge=none --iptables=false >>"$LOG" 2>&1 </dev/null &
  pid=$!
  for _ in $(seq "$WAIT_SECONDS"); do
    engine_up && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  die "dockerd did not come up (see $LOG); its last lines:
$(tail -n 20 "$LOG" 2>/dev/null)"
}

ensure() {
  engine_up && return 0
  command -v dockerd >/dev/null || install_engine
  command -v docker >/dev/null || die "docker CLI is missing after installing docker.io"
  engine_up || start_engine
}

case "${1:-}" in
  ensure) ensure ;;
  *) die "usage: $0 ensure" ;;
esac
