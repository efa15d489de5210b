#!/usr/bin/env bash
# What `npm test` needs beyond npm ci and the services: Debian's chromium for the dashboard's browser suite.
# Installed with apt-get when this user can; otherwise the run stops with the command that installs it, so a
# suite never goes missing without a word. SLUICE_SKIP_BROWSER=1 runs without it (its tests count as skipped).
set -euo pipefail

CHROMIUM=/usr/bin/chromium
[ -x "$CHROMIUM" ] && exit 0
if [ "${SLUICE_SKIP_BROWSER:-}" = "1" ]; then
  echo "npm test: $CHROMIUM is not installed; the dashboard's browser tests are skipped (SLUICE_SKIP_BROWSER=1)" >&2
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "npm test: installing chromium for the dashboard's browser tests (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q chromium >/dev/null 2>&1; then
    apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null || true
  fi
  [ -x "$CHROMIUM" ] && exit 0
fi
echo "npm test: the dashboard's browser tests need $CHROMIUM: run 'sudo apt-get install -y chromium'" \
  "(or set SLUICE_SKIP_BROWSER=1 to skip them)" >&2
exit 1
