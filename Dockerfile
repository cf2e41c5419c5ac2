# syntax=docker/dockerfile:1
# Images of the platform, built from the same pinned lock file as `make setup` (nothing is pip-installed when a
# container starts).
#
#   docker build --target training -t mlplatform-training:<tag> .     # the GPU training image (MLP_TRAINING_IMAGE)
#   docker build --target platform -t mlplatform:<tag> .              # Airflow, MLflow server, Spark (compose, Helm)
#
# The training image runs `python -m jobs.ml.train ...`, the exact command of the local backend; the Kubernetes pod
# (include/pod_templates/training.yaml) supplies the arguments. PyPI's torch wheels bundle their CUDA runtime, so a
# CUDA *base* only has to provide the driver-facing pieces (NVIDIA container toolkit mounts the driver).

FROM nvidia/cuda:12.9.1-cudnn-runtime-ubuntu24.04 AS training
ARG UV_VERSION=0.13.9
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    UV_PYTHON_INSTALL_DIR=/opt/python \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    MLP_HOME=/work
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && curl -LsSf "https://astral.sh/uv/${UV_VERSION}/install.sh" | env UV_INSTALL_DIR=/usr/local/bin sh \
 && uv python install 3.11 \
 && uv venv --python 3.11 /opt/venv
WORKDIR /opt/mlplatform
COPY requirements.lock ./
RUN uv pip install --python /opt/venv/bin/python --no-cache -r requirements.lock
COPY pyproject.toml ./
COPY jobs ./jobs
COPY include ./include
RUN uv pip install --python /opt/venv/bin/python --no-deps --no-cache . \
 && useradd --uid 10001 --create-home trainer && mkdir -p /work && chown trainer /work
USER 10001
ENTRYPOINT ["python", "-m", "jobs.ml.train"]
CMD ["--help"]

# The platform image: every Airflow component, the MLflow server, the Spark master and worker (docker-compose.yaml)
# and the Airflow image of deploy/helm/airflow-values.yaml. The same lock as `make setup` plus the service drivers
# (deploy/requirements-services.lock: PostgreSQL, S3), all installed here; a container only starts processes.
# Spark is the pyspark wheel's own (bin/ and jars/), so cluster and client are the same 4.2.0 and executors have the
# driver's Python, packages and jobs/ code. The code lives at /opt/mlplatform (the repository layout, on PYTHONPATH,
# so jobs.settings.REPO_ROOT finds include/); compose mounts the working tree over it.
FROM python:3.11.14-slim-bookworm AS platform
ARG UV_VERSION=0.13.9
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/opt/mlplatform \
    SPARK_HOME=/opt/venv/lib/python3.11/site-packages/pyspark \
    PYSPARK_PYTHON=/opt/venv/bin/python \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/mlplatform/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/mlplatform/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    MLP_HOME=/platform
# Java 17 for Spark; curl for health checks; tini reaps the JVMs' and task processes' children.
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps curl tini \
 && rm -rf /var/lib/apt/lists/* \
 && python -m pip install --no-cache-dir "uv==${UV_VERSION}" \
 && uv venv --python /usr/local/bin/python3.11 /opt/venv
WORKDIR /opt/mlplatform
COPY requirements.lock deploy/requirements-services.lock ./
RUN uv pip install --python /opt/venv/bin/python --no-cache -r requirements.lock -r requirements-services.lock
COPY pyproject.toml ./
COPY jobs ./jobs
COPY include ./include
COPY dags ./dags
COPY plugins ./plugins
# uid 50000, gid 0: what the official Airflow chart runs as; the volumes' mount points belong to it.
RUN useradd --uid 50000 --gid 0 --home-dir /opt/airflow --create-home airflow \
 && mkdir -p /platform /opt/airflow/logs /opt/airflow/auth \
 && chown -R 50000:0 /platform /opt/airflow \
 && chmod -R g=u /platform /opt/airflow
USER 50000
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["airflow", "version"]
