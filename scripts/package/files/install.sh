#!/bin/sh
# Installs the Vigil device agent from this tarball on a Linux without dpkg (a Debian-family
# system should install vigil-agent_*.deb instead). Run as root from the unpacked directory:
#
#   ./install.sh [--prefix /usr/local] [--node /path/to/node]
#
# It installs the agent under PREFIX/lib/vigil-agent and a vigil-agent command in PREFIX/bin,
# the systemd unit, tmpfiles.d entries and udev rule under /etc, creates the vigil-agent user in
# the tss group, and enables the unit, which starts once `vigil-agent init` has written
# /var/lib/vigil-agent/agent.json. With DESTDIR set, files go under DESTDIR and nothing is done
# to the running system (no user, no systemctl): for packagers and tests.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
prefix=/usr/local
node=$(command -v node || true)
while [ $# -gt 0 ]; do
	case "$1" in
	--prefix) prefix=$2; shift 2 ;;
	--node) node=$2; shift 2 ;;
	*) echo "install.sh: unknown option $1 (known: --prefix DIR, --node PATH)" >&2; exit 2 ;;
	esac
done
dest=${DESTDIR:-}

if [ -z "$node" ] || [ ! -x "$node" ]; then
	echo "install.sh: no Node.js found; install Node 18.19 or later, or pass --node PATH" >&2
	exit 1
fi
# The bundle targets Node 18.19 (Debian 12's Node is 18.20).
if ! "$node" -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>18||(a===18&&b>=19)?0:1)'; then
	echo "install.sh: $node is Node $("$node" --version); the agent needs 18.19 or later" >&2
	exit 1
fi
if [ -z "$dest" ] && [ "$(id -u)" -ne 0 ]; then
	echo "install.sh: run as root (it creates a system user and installs a systemd unit)" >&2
	exit 1
fi

lib=$prefix/lib/vigil-agent
mkdir -p "$dest$lib" "$dest$prefix/bin" "$dest/etc/systemd/system" "$dest/etc/tmpfiles.d" \
	"$dest/etc/udev/rules.d" "$dest$prefix/share/man/man1"
# The agent directory holds exactly what the manifest covers: replace it whole.
rm -rf "$dest$lib"
cp -R "$here/lib/vigil-agent" "$dest$lib"
printf '#!/bin/sh\nexec %s %s/vigil-agent.mjs "$@"\n' "$node" "$lib" >"$dest$prefix/bin/vigil-agent"
chmod 0755 "$dest$prefix/bin/vigil-agent"
sed -e "s#/usr/bin/node #$node #" -e "s#/usr/lib/vigil-agent/#$lib/#" \
	"$here/systemd/vigil-agent.service" >"$dest/etc/systemd/system/vigil-agent.service"
cp "$here/tmpfiles.d/vigil-agent.conf" "$dest/etc/tmpfiles.d/vigil-agent.conf"
sed -e "s#/bin/systemd-tmpfiles#$(command -v systemd-tmpfiles || echo /usr/bin/systemd-tmpfiles)#" \
	"$here/udev/60-vigil-agent.rules" >"$dest/etc/udev/rules.d/60-vigil-agent.rules"
cp "$here/man/vigil-agent.1" "$dest$prefix/share/man/man1/vigil-agent.1"

if [ -n "$dest" ]; then
	echo "vigil-agent installed under $dest (DESTDIR: no user created, systemd untouched)"
	exit 0
fi

getent group tss >/dev/null || groupadd --system tss
if ! getent passwd vigil-agent >/dev/null; then
	useradd --system --user-group --home-dir /var/lib/vigil-agent --no-create-home \
		--shell /usr/sbin/nologin --comment 'Vigil device agent' vigil-agent
fi
usermod -a -G tss vigil-agent
systemd-tmpfiles --create vigil-agent.conf || true
udevadm control --reload-rules 2>/dev/null || true
systemctl daemon-reload
systemctl enable vigil-agent.service
echo "vigil-agent installed in $lib. Next: vigil-agent init (see the man page), then systemctl start vigil-agent."
