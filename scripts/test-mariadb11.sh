#!/usr/bin/env bash
# The test suite against MariaDB 11.4 (the embedded server from Maven Central) beside the machine's own
# server: own port, own state folder, then `npm test` with SLUICE_TEST_DATABASE_URL pointing at it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${SLUICE_MARIADB11_PORT:-3407}"
export SLUICE_SERVICES_DIR="${SLUICE_MARIADB11_DIR:-$ROOT/.services-mariadb11}"
SLUICE_EMBEDDED_MARIADB=1 SLUICE_MYSQL_PORT="$PORT" bash "$ROOT/scripts/services.sh" up
unset SLUICE_SERVICES_DIR
cd "$ROOT"
SLUICE_TEST_DATABASE_URL="mysql://root@127.0.0.1:$PORT/mysql" npm test
