#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests (tests/browser), unless one is already there.
# Playwright drives this system Chromium; it does not download browsers of its own.
set -euo pipefail
if [ -x /usr/bin/chromium ] || [ -n "${CHROMIUM:-}" ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "Run as root (or install the 'chromium' package yourself) to get the browser tests." >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
