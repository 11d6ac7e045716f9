# Two images from one file:
#   docker build .                                  the app: migrations, the web server, the sweeper,
#                                                   Flower, training (see docker-compose.yml)
#   docker build --target worker -t digits-worker . a worker only: requirements-worker.txt, no TensorFlow
# (deploy/k8s runs workers from the second and everything else from the first).
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# A fixed UID, so that Kubernetes' runAsNonRoot can check it (it cannot check a user name).
RUN useradd --system --uid 10001 --home /app digits && chown digits /app

FROM base AS worker
COPY requirements-worker.txt ./
RUN pip install --no-cache-dir -r requirements-worker.txt
COPY --chown=10001 . .
USER 10001
# Exec form: the worker is PID 1 and gets SIGTERM itself (a warm shutdown: it finishes its batch).
CMD ["python", "-m", "digitsite.stack", "worker"]

# The default target, last: requirements.txt includes requirements-worker.txt and adds
# TensorFlow (training) and the web server.
FROM base AS app
COPY requirements.txt requirements-worker.txt ./
RUN pip install --no-cache-dir -r requirements.txt
COPY --chown=10001 . .
USER 10001

EXPOSE 8000
ENV HOST=0.0.0.0
CMD ["python", "-m", "digitsite.stack", "web"]
