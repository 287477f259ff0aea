#!/usr/bin/env bash
# Builds the lab's images offline (no registry): debootstrap + `docker import`, then `docker build`
# FROM that local base.
#   mqtt-ha-twin/base:bookworm      Debian bookworm with haproxy (the LB), nftables (faults), curl,
#                                   nats-server (the stand-in broker) and EMQX's runtime libraries
#   mqtt-ha-twin/emqx:5.8.9-local   only with a TARBALL: the base + an official EMQX release tarball
#                                   (Debian 12, amd64) in /opt/emqx, run like the official image
#   mqtt-ha-twin/prometheus:local   the base + this host's Debian prometheus binary (monitoring
#                                   profile; built when /usr/bin/prometheus exists)
# usage: build.sh [EMQX_TARBALL_OR_DIR]   (a dir's emqx-*.tar.gz is used; none: no EMQX image,
# which is what CI does: it runs the lab on the NATS stand-in. With Docker Hub, `--broker emqx`
# pulls emqx/emqx:5.8.9 instead.)
# About 1 minute for the base, 20 s for EMQX; an image that exists is kept (delete it to rebuild).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BASE=${BASE_IMAGE:-mqtt-ha-twin/base:bookworm}
EMQX=${EMQX_LOCAL_IMAGE:-mqtt-ha-twin/emqx:5.8.9-local}
PROM=${PROMETHEUS_LOCAL_IMAGE:-mqtt-ha-twin/prometheus:local}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
src=${1:-}

if docker image inspect "$BASE" >/dev/null 2>&1; then
  echo "image $BASE exists"
else
  root=$(mktemp -d /tmp/twin-base-root.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  libs=libc6,libgcc-s1,libstdc++6,libssl3,libtinfo6,zlib1g,libsasl2-2,libkrb5-3,libk5crypto3,libkrb5support0,libcom-err2,libkeyutils1
  debootstrap --variant=minbase --include="nats-server,haproxy,nftables,iproute2,procps,curl,$libs" \
    bookworm "$root" "$MIRROR" >/tmp/twin-base-debootstrap.log 2>&1 \
    || { tail -20 /tmp/twin-base-debootstrap.log; exit 1; }
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"   # no service starts in the chroot
  chmod +x "$root/usr/sbin/policy-rc.d"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import -c 'CMD ["/bin/sh"]' - "$BASE" >/dev/null
  rm -rf "$root"; trap - EXIT
  echo "built $BASE"
fi

if [ -x /usr/bin/prometheus ] && ! docker image inspect "$PROM" >/dev/null 2>&1; then
  pctx=$(mktemp -d /tmp/twin-prom-ctx.XXXXXX)
  cp /usr/bin/prometheus "$pctx/"
  printf 'FROM %s\nCOPY prometheus /bin/prometheus\nENTRYPOINT ["/bin/prometheus"]\n' "$BASE" >"$pctx/Dockerfile"
  docker build -q -t "$PROM" "$pctx" >/dev/null && echo "built $PROM"
  rm -rf "$pctx"
fi

if docker image inspect "$EMQX" >/dev/null 2>&1; then
  echo "image $EMQX exists"; exit 0
fi
if [ -z "$src" ]; then
  echo "no EMQX tarball given: $EMQX not built (the stand-in lab is ready; build.sh TARBALL packs a release)"
  exit 0
fi
tarball=$src
if [ -d "$src" ]; then tarball=$(ls "$src"/emqx-*.tar.gz 2>/dev/null | head -n 1 || true); fi
if [ -z "$tarball" ] || [ ! -f "$tarball" ]; then
  echo "no EMQX release tarball at $src (give the path: build.sh PATH/emqx-*.tar.gz); $BASE is built, $EMQX is not" >&2
  exit 3
fi
if [ -f "$tarball.sha256" ]; then (cd "$(dirname "$tarball")" && sha256sum -c --quiet "$(basename "$tarball").sha256"); fi
ctx=$(mktemp -d /tmp/twin-emqx-ctx.XXXXXX)
trap 'rm -rf "$ctx"' EXIT
cp "$tarball" "$ctx/emqx.tar.gz"
cp "$here/emqx-entrypoint.sh" "$ctx/"
cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $BASE
ADD emqx.tar.gz /opt/emqx/
COPY emqx-entrypoint.sh /usr/local/bin/
ENV PATH=/opt/emqx/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
WORKDIR /opt/emqx
EXPOSE 1883 8083 8084 8883 18083 4370 5369
ENTRYPOINT ["/usr/local/bin/emqx-entrypoint.sh"]
CMD ["/opt/emqx/bin/emqx", "foreground"]
DOCKERFILE
docker build -q -t "$EMQX" --label "org.opencontainers.image.source=$(basename "$tarball")" "$ctx" >/dev/null
echo "built $EMQX from $(basename "$tarball")"
