# The loyverse-sync image: the CLI, the worker and the emulator (one image, several commands).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY loyverse_sync ./loyverse_sync
COPY loyverse_emulator ./loyverse_emulator
COPY cli ./cli
COPY worker ./worker
COPY migrations ./migrations
COPY sql ./sql
RUN pip install --no-cache-dir . && useradd --create-home loyverse && mkdir -p /data && chown loyverse /data
USER loyverse
ENTRYPOINT ["loyverse-sync"]
CMD ["--help"]
