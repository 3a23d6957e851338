# thumbor-py: a small image, run as a non-root user.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml setup.cfg README.md ./
COPY thumbor_py ./thumbor_py
COPY loaders ./loaders
COPY result_storages ./result_storages
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN useradd --create-home --uid 10001 thumbor
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY samples /app/samples
COPY deploy/config.docker.yaml /app/config.yaml
WORKDIR /app
USER thumbor
EXPOSE 8888
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8888/healthcheck', timeout=2).status != 200)"
STOPSIGNAL SIGTERM
CMD ["thumbor-py", "serve", "--config", "/app/config.yaml"]
