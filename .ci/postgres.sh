#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the tests and print its URL (postgresql://…) on stdout.
#
#   TRUEUP_TEST_POSTGRES_URL="$(bash .ci/postgres.sh)"
#
# - Installs Debian's `postgresql` package with apt-get, only when no server binaries are found.
# - Runs initdb/pg_ctl as a non-root user (the package's `postgres` user when run as root) in a
#   fresh temp dir, listening on 127.0.0.1 only, on a free port, with a random password.
# - Creates the database `trueup_test`; the role is a superuser so tests can create and drop
#   one database per test.
# - Durability is switched off (fsync, synchronous_commit): it is a throwaway test server.
# Everything but the URL goes to stderr. Stop it with: pg_ctl -D <dir>/data stop (the dir is logged).
set -euo pipefail

log() { echo "postgres.sh: $*" >&2; }

find_bin() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then echo "$dir"; return 0; fi
  done
  return 1
}

BIN="$(find_bin || true)"
if [ -z "$BIN" ]; then
  log "no PostgreSQL server found: installing Debian's postgresql package"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >&2
  $SUDO apt-get install -y -qq --no-install-recommends postgresql >&2
  BIN="$(find_bin)" || { log "PostgreSQL binaries still missing after apt-get install"; exit 1; }
fi
PSQL="$BIN/psql"
[ -x "$PSQL" ] || PSQL="$(command -v psql)"

# The server refuses to run as root: use an unprivileged account.
if [ "$(id -u)" = 0 ]; then
  RUN_AS="${TRUEUP_PG_USER:-postgres}"
  if ! id "$RUN_AS" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$RUN_AS" >&2
  fi
  as_user() {
    if command -v runuser >/dev/null 2>&1; then runuser -u "$RUN_AS" -- "$@"
    else su -s /bin/sh "$RUN_AS" -c "$(printf '%q ' "$@")"; fi
  }
else
  RUN_AS="$(id -un)"
  as_user() { "$@"; }
fi

DIR="$(mktemp -d "${TMPDIR:-/tmp}/trueup-pg.XXXXXX")"
chmod 700 "$DIR"
if [ "$(id -u)" = 0 ]; then chown "$RUN_AS" "$DIR"; fi

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
PASSWORD="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
ROLE=trueup
DB=trueup_test

as_user sh -c "umask 077; printf '%s\n' '$PASSWORD' > '$DIR/pwfile'"
as_user "$BIN/initdb" -D "$DIR/data" -U "$ROLE" --pwfile="$DIR/pwfile" --auth-local=trust \
  --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 \
  || as_user "$BIN/initdb" -D "$DIR/data" -U "$ROLE" --pwfile="$DIR/pwfile" --auth-local=trust \
       --auth-host=scram-sha-256 --encoding=UTF8 --locale=C >"$DIR/initdb.log" 2>&1 \
  || { cat "$DIR/initdb.log" >&2; exit 1; }
rm -f "$DIR/pwfile"

as_user "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
  -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
  start >&2 || { cat "$DIR/server.log" >&2; exit 1; }

PGPASSWORD="$PASSWORD" "$PSQL" -X -q -h 127.0.0.1 -p "$PORT" -U "$ROLE" -d postgres \
  -c "CREATE DATABASE $DB" >&2

log "PostgreSQL $("$BIN/pg_ctl" --version | awk '{print $3}') on 127.0.0.1:$PORT, data in $DIR (run as $RUN_AS)"
log "stop it with: $( [ "$(id -u)" = 0 ] && echo "runuser -u $RUN_AS -- " )$BIN/pg_ctl -D $DIR/data stop"
echo "postgresql://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DB"
