#!/bin/sh
# What the official emqx/emqx image's entrypoint does that the lab relies on: a node name from the
# host name when none is given. Everything else is EMQX's own handling of EMQX_* variables.
set -e
if [ -z "${EMQX_NODE__NAME:-}" ]; then
  export EMQX_NODE__NAME="emqx@$(hostname -f)"
fi
exec "$@"
