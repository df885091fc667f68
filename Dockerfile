# One image for ingest, processor and projector; the command picks the service.
FROM python:3.11-slim AS base
ENV PYTHONUNBUFFERED=1 UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
RUN pip install --no-cache-dir uv==0.13.8
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-default-groups --no-install-project
COPY schemas ./schemas
COPY services ./services
RUN uv sync --frozen --no-default-groups
ENV PATH="/app/.venv/bin:$PATH"
RUN useradd --create-home jobledger && mkdir -p /app/var && chown jobledger /app/var
USER jobledger
CMD ["python", "-m", "services.ingest"]
