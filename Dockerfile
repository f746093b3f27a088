# The image every Airflow service of docker-compose.yaml runs: the official Apache Airflow image
# at the version this package is pinned to, plus this package and its locked dependencies, so
# nothing is installed when a container starts. Build context: this checkout.
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}
ARG AIRFLOW_VERSION

COPY --chown=airflow:0 requirements/lock.txt pyproject.toml README.md /opt/prospect-to-cash/
COPY --chown=airflow:0 src /opt/prospect-to-cash/src
# The local emulators, for the compose file's "offline" profile only (never imported by the product).
COPY --chown=airflow:0 emulators /opt/prospect-to-cash/emulators

# The lock first (the versions the tests ran with), then the package without re-resolving;
# "apache-airflow==" pins Airflow itself so neither step can up- or downgrade the image's Airflow.
# The lock pins the Celery provider too (the version the Celery stack test in tests/e2e ran with).
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" \
        -r /opt/prospect-to-cash/requirements/lock.txt \
    && pip install --no-cache-dir --no-deps /opt/prospect-to-cash

WORKDIR /opt/airflow
