# sorawatch: one image for every role (watcher, worker, web); the command picks the role.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SORAWATCH_DATA_DIR=/data

WORKDIR /src

# Dependencies in their own layer: it is rebuilt only when pyproject.toml changes.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then the source, installed without touching the dependencies again. watcher/, workers/
# and templates/ are installed inside the package sorawatch (pyproject.toml), so the
# checkout's layout must not stay on the path: /src goes once installed, and the
# processes run from /data, where a `python -m sorawatch.cli` (what `sorawatch run`
# starts) finds only the installed package.
COPY README.md ./
COPY sorawatch ./sorawatch
COPY watcher ./watcher
COPY workers ./workers
COPY templates ./templates
RUN pip install --no-cache-dir --no-deps . \
    && rm -rf /src \
    && groupadd --system --gid 10001 sorawatch \
    && useradd --system --no-log-init --uid 10001 --gid 10001 --home-dir /data sorawatch \
    && mkdir -p /data \
    && chown 10001:10001 /data
WORKDIR /data

# Numeric, so the host and Kubernetes can tell it is not root.
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8000

# Meaningful for the web role; compose turns it off for the watcher and the workers.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SORAWATCH_WEB_PORT', '8000'), timeout=4)"]

ENTRYPOINT ["sorawatch"]
CMD ["web", "--host", "0.0.0.0"]
