# Production image for web (gunicorn), worker and beat (Celery); see docker-compose.yml.
# Static files are collected when the web container starts (production settings refuse to load
# without the real environment), not at build time.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=spark.settings.production \
    SPARK_VAR_DIR=/app/var \
    SPARK_MEDIA_ROOT=/app/var/media \
    SPARK_STATIC_ROOT=/app/staticfiles

WORKDIR /app

# PyVRP, psycopg2-binary, Pillow and the rest ship manylinux wheels: no compiler needed.
COPY requirements.lock ./
RUN pip install -r requirements.lock

# The project only: never .env, .venv, .git or var/ (named folders, not the whole context);
# .dockerignore also keeps every tests/ package, conftest.py and bench/ out of the image.
# A new Django app needs a line here.
COPY manage.py pyproject.toml ./
COPY spark ./spark
COPY outbox ./outbox
COPY accounts ./accounts
COPY stores ./stores
COPY orders ./orders
COPY drivers ./drivers
COPY payments ./payments
COPY dispatch ./dispatch
# surfaces
COPY driver_app ./driver_app
COPY dashboard ./dashboard
COPY tracking ./tracking
COPY store_api ./store_api
COPY ops_admin ./ops_admin
COPY webhooks ./webhooks
COPY templates ./templates
COPY static ./static

RUN useradd --system --uid 1000 --no-create-home --home-dir /app spark \
    && mkdir -p /app/var/media /app/staticfiles \
    && chown -R spark:spark /app/var /app/staticfiles
USER spark

EXPOSE 8000
CMD ["gunicorn", "spark.wsgi:application", "--bind", "0.0.0.0:8000", "--access-logfile", "-"]
