#!/usr/bin/env bash
# Installs what the portal's browser tests need, when it is missing:
# Debian's chromium (apt-get, as root) and playwright-core in
# services/standalone/portal_e2e (npm ci, from the committed lock file).
# Called by `make test`; services/standalone/portal_browser_test.go fails
# with a pointer here when either is missing. Downloads no browser from npm.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
e2e="$root/services/standalone/portal_e2e"
chromium="${PULSEHOOKS_CHROMIUM:-/usr/bin/chromium}"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "missing: node and npm (node 20 or later), needed by the portal browser tests; install them with your package manager" >&2
	exit 1
fi

if [ ! -x "$chromium" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing: $chromium. Install with: sudo apt-get install -y chromium (or set PULSEHOOKS_CHROMIUM)" >&2
		exit 1
	fi
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "missing: $chromium, and no apt-get here: install chromium with your package manager" >&2
		exit 1
	fi
	echo "installing chromium with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq chromium >/dev/null
fi

if [ ! -d "$e2e/node_modules/playwright-core" ]; then
	echo "installing playwright-core in $e2e (npm ci)"
	(cd "$e2e" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
fi
