"""`python -m spark.checkservices`: are PostgreSQL and Redis answering? Says what to start if not.

Run by `make test` before pytest: tests never fall back to SQLite.
"""

import os
import sys

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/spark"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def main() -> int:
    import environ
    import psycopg2
    import redis

    problems = []
    db = environ.Env.db_url_config(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    if db["ENGINE"] != "django.db.backends.postgresql":
        problems.append(f"DATABASE_URL must point at PostgreSQL for tests (got {db['ENGINE']}).")
    else:
        try:
            psycopg2.connect(
                dbname="postgres",
                user=db.get("USER") or None,
                password=db.get("PASSWORD") or None,
                host=db.get("HOST") or None,
                port=db.get("PORT") or None,
                connect_timeout=3,
            ).close()
        except psycopg2.Error as exc:
            problems.append(
                f"PostgreSQL is not answering at {db.get('HOST')}:{db.get('PORT')} ({str(exc).strip()}).\n"
                "  Start it, e.g.: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
            )
    url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        problems.append(
            f"Redis is not answering at {url} ({exc}).\n"
            '  Start it, e.g.: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'
        )
    for p in problems:
        print(f"make test: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
