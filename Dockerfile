# syntax=docker/dockerfile:1
# One image for every role: `migrate` (one-shot), `api` and `worker`; see compose.yaml.
#   docker build -t jobrunner .
#   docker run --rm -e JOBRUNNER_DATABASE_URL=... jobrunner migrate
ARG PYTHON_VERSION=3.12

# ----- build: a virtualenv with jobrunner and its dependencies -------------------------------
FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, in their own layer: editing code does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
    && pip install -r requirements.txt

# The package itself. Migrations ship inside it (jobrunner.migrations, see pyproject.toml),
# so `jobrunner migrate` needs nothing but the installed package. No `embedded` extra: in a
# container the database is always JOBRUNNER_DATABASE_URL.
COPY README.md ./
COPY jobrunner ./jobrunner
COPY migrations ./migrations
# The check runs from / : in /src the source tree's jobrunner/ (which holds no migrations/)
# would shadow the installed package, since `python -c` puts the current directory first.
RUN pip install --no-deps . \
    && cd / \
    && python -c "from jobrunner.db.migrate import discover; assert discover(), 'no migrations'"

# ----- runtime: the virtualenv on a clean slim base, as an unprivileged user ----------------
FROM python:${PYTHON_VERSION}-slim AS runtime
LABEL org.opencontainers.image.title="jobrunner" \
      org.opencontainers.image.description="A background job runner whose only queue is PostgreSQL"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    JOBRUNNER_HOST=0.0.0.0 \
    JOBRUNNER_PORT=8000 \
    JOBRUNNER_LOG_FORMAT=json \
    JOBRUNNER_DATA_DIR=/tmp/jobrunner
RUN groupadd --system --gid 10001 jobrunner \
    && useradd --system --uid 10001 --gid jobrunner --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin jobrunner
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
USER 10001:10001
EXPOSE 8000

# The API is healthy when it is ready: it answers, its database is reachable and migrated
# (/readyz; /healthz says only that the process answers). With the Python already in the
# image (no curl). A worker or migrate container has no HTTP server: compose.yaml disables
# this check for them.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:%s/readyz' % os.environ.get('JOBRUNNER_PORT', '8000'); sys.exit(0 if urllib.request.urlopen(url, timeout=2).status == 200 else 1)"]

# Exec form, so SIGTERM reaches jobrunner itself (not a shell): a worker then drains running
# jobs for up to JOBRUNNER_DRAIN_TIMEOUT seconds and exits 0.
ENTRYPOINT ["jobrunner"]
CMD ["api"]
