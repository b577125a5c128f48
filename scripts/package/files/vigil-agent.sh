#!/bin/sh
# vigil-agent: the Vigil device agent (man vigil-agent), on the system's Node whatever else is
# first on PATH.
exec /usr/bin/node /usr/lib/vigil-agent/vigil-agent.mjs "$@"
