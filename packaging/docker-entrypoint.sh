#!/bin/sh
# Entry point of the apimon image: runs the command (apimond by default) as user
# apimon. Started as root (`--user 0`), it first hands DATA_DIR to apimon: the Go
# api_monitor image kept its data owned by root (in /app/data), so a volume moved over
# from it needs this once. Started as apimon (the default), it only checks that it
# can write DATA_DIR and says how to fix it when it cannot.
set -eu

data="${DATA_DIR:-/data}"

if [ "$(id -u)" = 0 ]; then
    owner="$(stat -c %u "$data")"
    if [ "$owner" != "$(id -u apimon)" ]; then
        echo "apimon-entrypoint: handing $data (owned by uid $owner) to user apimon" >&2
        chown -R apimon:apimon "$data"
        chmod 0700 "$data"
    fi
    exec setpriv --reuid=apimon --regid=apimon --init-groups --no-new-privs -- "$@"
fi

if [ ! -w "$data" ]; then
    echo "apimon-entrypoint: $data is not writable by uid $(id -u) (it belongs to uid $(stat -c %u "$data"))." >&2
    echo "Hand it over once, e.g.: docker compose run --rm --user 0 apimon true" >&2
    exit 1
fi
exec "$@"
