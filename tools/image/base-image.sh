#!/usr/bin/env bash
# Ensure the local base image restate-operator.local/base/python:3.11-bookworm exists in the engine.
#
# No image registry is reachable here, so the base is made from Debian packages: debootstrap a
# minimal bookworm with python3 (3.11, what the project targets), python3-venv and ca-certificates,
# slim it to a runtime base, tar it and `docker import` it. The tarball is cached outside the repo,
# keyed by the Debian point release it was made from and a hash of this recipe, and only rebuilt
# when that file is missing. The imported image carries the key as a label, so a stale image in the
# engine is re-imported when the key changes.
#
# Elsewhere the Dockerfile's default BASE_IMAGE (python:3.11-slim) is used instead of all this.
set -euo pipefail

IMAGE=${BASE_IMAGE:-restate-operator.local/base/python:3.11-bookworm}
CACHE=${RESTATE_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/restate-operator}/base-images
SUITE=bookworm
INCLUDE=python3,python3-venv,ca-certificates
# The runtime never installs packages, logs anyone in, mounts disks or boots: these go (about 45 MB,
# a third of the minbase). dpkg stays, with an accurate database of what is left (`dpkg -l`), and
# so do sh (dash), coreutils and tar, for `kubectl exec` and `kubectl cp`.
DROP="apt libapt-pkg6.0 gpgv debian-archive-keyring libgnutls30 libp11-kit0 libtasn1-6 libnettle8 libhogweed6
  libgmp10 libidn2-0 libunistring2 libgcrypt20 libgpg-error0 libseccomp2 libxxhash0 libzstd1 liblz4-1 libsystemd0
  libudev1 perl-base debconf libdebconfclient0 login passwd adduser libpam0g libpam-modules libpam-modules-bin
  libpam-runtime libsemanage2 libsemanage-common libsepol2 libaudit1 libaudit-common libcap-ng0 libcap2 util-linux
  util-linux-extra mount libmount1 libsmartcols1 libblkid1 e2fsprogs libext2fs2 libss2 logsave bsdutils
  sysvinit-utils init-system-helpers hostname ncurses-bin bash"
# What the image starts with, as `docker import --change` lines (an imported image has no config).
CHANGES=("ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" "ENV LANG=C.UTF-8" 'CMD ["python3"]')
LABEL=dev.restate-operator.base-key

die() { echo "base-image.sh: $*" >&2; exit 1; }

# The Debian mirror the host's apt uses (deb822 .sources or one-line .list), e.g. http://deb.debian.org/debian.
mirror() {
  local m
  m=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$m" ] || m=$(awk '$1 == "deb" && $0 ~ / '"$SUITE"' / {print $2; exit}' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
  echo "${m:-http://deb.debian.org/debian}"
}

# The point release (e.g. 12.11) the mirror serves: from apt's lists if present, else from the mirror.
point_release() {
  local lists version
  lists=/var/lib/apt/lists/$(echo "$1" | sed -E 's,^[a-z]+://,,; s,/+$,,; s,/,_,g')_dists_${SUITE}_InRelease
  version=$(sed -n 's/^Version: //p' "$lists" 2>/dev/null | head -n1)
  [ -n "$version" ] || version=$(curl -fsSL "$1/dists/$SUITE/Release" | sed -n 's/^Version: //p' | head -n1) || true
  [ -n "$version" ] || die "cannot tell which Debian $SUITE point release $1 serves"
  echo "$version"
}

build_tarball() {
  local tarball=$1 mirror=$2
  command -v debootstrap >/dev/null || {
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  } || die "cannot install debootstrap"
  root=$(mktemp -d /var/tmp/restate-base.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  chmod 755 "$root" # it becomes the image's /: mktemp's 0700 would lock every non-root user out
  echo "base-image.sh: debootstrap $SUITE from $mirror (a few minutes, once per point release)" >&2
  debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$root" "$mirror" >"$root.log" 2>&1 \
    || die "debootstrap failed; see $root.log"
  # shellcheck disable=SC2086  # DROP is a word list
  chroot "$root" dpkg --remove --force-remove-essential --force-depends $DROP >>"$root.log" 2>&1 \
    || die "removing the package-management and admin packages failed; see $root.log"
  # Like debian:*-slim, and more: no package caches or lists, docs (licences stay), man pages,
  # locales, or glibc's iconv modules (Python's codecs are its own); the engine provides /dev,
  # /proc and the network files.
  (
    cd "${root:?}"
    rm -rf var/cache/apt var/lib/apt var/cache/debconf var/log/* usr/share/man/* usr/share/info/* \
      usr/share/locale/* usr/lib/x86_64-linux-gnu/gconv dev/* proc/* etc/hostname etc/resolv.conf
    find usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete
  )
  chroot "$root" python3 -c 'import ssl, sqlite3, uuid, ctypes, lzma, bz2, zlib, venv' \
    || die "the slimmed base cannot run python3"
  mkdir -p "$(dirname "$tarball")"
  tar --numeric-owner -C "$root" -cf "$tarball.partial" . && mv "$tarball.partial" "$tarball"
  rm -f "$root.log"
}

main() {
  local mirror key tarball previous args=()
  mirror=$(mirror)
  # Anything that changes the contents changes the key: the point release and this recipe.
  key="debian-$SUITE-$(point_release "$mirror")-python3-$(printf '%s\n' "$SUITE" "$INCLUDE" "$DROP" "${CHANGES[@]}" \
    "$(sed -n '/^build_tarball()/,/^}/p' "$0")" | sha256sum | cut -c1-8)"
  if [ "$(docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$IMAGE" 2>/dev/null)" = "$key" ]; then
    return 0
  fi
  tarball=$CACHE/$key.tar
  if [ ! -f "$tarball" ]; then
    build_tarball "$tarball" "$mirror"
    find "$CACHE" -maxdepth 1 -name "debian-$SUITE-*.tar" -not -name "$key.tar" -delete # superseded recipes
  fi
  previous=$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
  for change in "${CHANGES[@]}" "LABEL $LABEL=$key"; do args+=(--change "$change"); done
  docker import "${args[@]}" "$tarball" "$IMAGE" >/dev/null || die "docker import of $tarball failed"
  # The superseded base, unless builds still use it as a parent (then it goes with them).
  [ -z "$previous" ] || docker image rm "$previous" >/dev/null 2>&1 || true
  echo "base-image.sh: imported $IMAGE from $tarball" >&2
}

main "$@"
