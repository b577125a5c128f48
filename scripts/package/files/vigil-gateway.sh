#!/bin/sh
# vigil-gateway: the Vigil edge gateway (man vigil-gateway).
# The packaged gateway keeps its directory where the service does, unless told otherwise.
: "${VIGIL_GATEWAY_DIR:=/var/lib/vigil-gateway}"
export VIGIL_GATEWAY_DIR
exec /usr/bin/node /usr/lib/vigil-gateway/dist/gateway/cli.js "$@"
