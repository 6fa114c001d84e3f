# stream-moe service image: CPU torch (pinned like the Makefile), then the package, then its compiled kernels.
FROM python:3.11-slim
WORKDIR /app
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md LICENSE ./
COPY stream_moe stream_moe
COPY connectors connectors
COPY deploy deploy
RUN pip install --no-cache-dir .
# Compile the numba kernels into numba's cache now rather than on the first run (30-100 s). The cache is for the CPU
# of the machine that builds the image (as `docker compose up` does); on another CPU the first run compiles again.
RUN python -m stream_moe.compilation
COPY deploy/service.yaml /etc/stream-moe/service.yaml
# The directory store's checkpoints live here (a volume shared by all replicas); the Kafka store needs none.
VOLUME /var/lib/stream-moe
EXPOSE 9108
ENTRYPOINT ["stream-moe"]
CMD ["serve", "--config", "/etc/stream-moe/service.yaml"]
