# stream-moe service image: CPU torch (pinned like the Makefile), then the package.
FROM python:3.11-slim
WORKDIR /app
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY stream_moe stream_moe
COPY connectors connectors
RUN pip install --no-cache-dir .
COPY deploy/service.yaml /etc/stream-moe/service.yaml
# Checkpoints live here; mount a volume shared by all replicas.
VOLUME /var/lib/stream-moe
EXPOSE 9108
ENTRYPOINT ["stream-moe"]
CMD ["serve", "--config", "/etc/stream-moe/service.yaml"]
