#!/usr/bin/env bash
# Installs what `make test` needs beyond Go, when it is missing: redis-server.
# As root it uses apt-get; otherwise it stops and says how to install it.
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || need+=(redis-server)

if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "missing: ${need[*]}. Install with: sudo apt-get install -y ${need[*]} (or set REDIS_SERVER to a redis-server binary)" >&2
	exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "missing: ${need[*]}, and no apt-get here: install them with your package manager" >&2
	exit 1
fi
echo "installing ${need[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian's package starts a system redis on 6379; the tests start their own on free ports.
if command -v systemctl >/dev/null 2>&1; then systemctl stop redis-server >/dev/null 2>&1 || true; fi
service redis-server stop >/dev/null 2>&1 || true
