# The operator's image. The same image runs the operator and the migration/seed Jobs it starts
# (`raycesctl migrate --to REV --output json`), so `raycesctl` and its revision scripts are
# installed from the project's wheel, not from the source tree.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md alembic.ini ./
COPY operator ./operator
COPY alembic ./alembic
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin rayces
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
ENTRYPOINT ["raycesctl"]
CMD ["--help"]
