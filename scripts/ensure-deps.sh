#!/usr/bin/env bash
# Installs what `make test` and `make check` need beyond Go, when it is missing:
# redis-server, redis-sentinel (Redis HA tests) and prometheus (its promtool checks
# the alert rules; the server is scraped in an integration test).
# As root it uses apt-get; otherwise it stops and says how to install it.
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || need+=(redis-server)
command -v redis-sentinel >/dev/null 2>&1 || [ -x /usr/bin/redis-sentinel ] || need+=(redis-sentinel)
{ command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; } || need+=(prometheus)

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
for svc in redis-sentinel prometheus prometheus-node-exporter; do
	if command -v systemctl >/dev/null 2>&1; then systemctl stop "$svc" >/dev/null 2>&1 || true; fi
	service "$svc" stop >/dev/null 2>&1 || true
done
