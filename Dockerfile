# One image for the migrations, the web server, the workers, the sweeper and Flower (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# requirements.txt includes requirements-worker.txt and adds TensorFlow (training) and the web server.
# A smaller image for workers only: docker build --build-arg REQUIREMENTS=requirements-worker.txt .
ARG REQUIREMENTS=requirements.txt
COPY requirements.txt requirements-worker.txt ./
RUN pip install --no-cache-dir -r ${REQUIREMENTS}
COPY . .
RUN useradd --system --home /app digits && chown -R digits /app
USER digits

EXPOSE 8000
ENV HOST=0.0.0.0
CMD ["python", "-m", "digitsite.stack", "web"]
