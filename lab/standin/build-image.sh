#!/usr/bin/env bash
# Builds the CI stand-in image offline-friendly: Debian bookworm (debootstrap) with nats-server
# (clustered MQTT with JetStream-replicated sessions), haproxy (the LB) and nftables (faults).
# No registry is needed: `docker import` of a debootstrapped tree. About a minute.
set -euo pipefail
IMAGE=${1:-mqtt-ha-twin/standin:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "image $IMAGE exists"; exit 0
fi
root=$(mktemp -d /tmp/standin-root.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=nats-server,haproxy,nftables,iproute2,procps,curl \
  bookworm "$root" "$MIRROR" >/tmp/standin-debootstrap.log 2>&1 \
  || { tail -20 /tmp/standin-debootstrap.log; exit 1; }
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"   # no service starts in the chroot
chmod +x "$root/usr/sbin/policy-rc.d"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import -c 'CMD ["/bin/sh"]' - "$IMAGE" >/dev/null
echo "built $IMAGE"
