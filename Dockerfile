# fintoc-sync: `docker build -t fintoc-sync .`, then `docker run fintoc-sync --help`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# .dockerignore keeps .env, .venv, .git and the tests out of this context
COPY . /src
RUN pip install /src \
    && rm -rf /src \
    && useradd --system --uid 10001 --create-home --home-dir /home/fintoc fintoc

# never run as root: the process holds the API key and the token encryption key
USER fintoc
WORKDIR /home/fintoc

# /metrics and /healthz when started with --metrics-port 9108
EXPOSE 9108
ENTRYPOINT ["fintoc-sync"]
CMD ["--help"]
