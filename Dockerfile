# The chatrelay image (docker-compose.yml builds it). tests/unit/test_container.py checks the
# properties below; tests/integration/test_container_process.py runs its command line.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
# Installed as root (the code stays read-only to the server); run as a user with no login, whose
# only writable place is /app (an SQLite database when DATABASE_URL is left at its default).
RUN pip install . \
    && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin chatrelay \
    && chown chatrelay:chatrelay /app
USER chatrelay
EXPOSE 8000
# `exec`: the server replaces the shell as PID 1, so it receives SIGTERM itself (a shell as PID 1
# ignores it, the kernel never applies the default action to an init process, and `docker stop`
# ends in SIGKILL with turns unsaved). Keep it the last command of the line.
CMD ["sh", "-c", "chatrelay migrate && exec chatrelay serve --host 0.0.0.0 --port 8000"]
