#!/bin/sh

# Hold the app back until Postgres listens: compose's depends_on only orders the starts.
if [ "$DATABASE" = "postgres" ]; then
    echo "Waiting for PostgreSQL on $SQL_HOST:$SQL_PORT..."
    while ! nc -z "$SQL_HOST" "$SQL_PORT"; do
        sleep 0.1
    done
    echo "PostgreSQL is up"
fi

exec "$@"
