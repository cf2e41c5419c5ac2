# syntax=docker/dockerfile:1
# Images of the platform, built from the same pinned lock file as `make setup` (nothing is pip-installed when a
# container starts).
#
#   docker build --target training -t mlplatform-training:<tag> .     # the GPU training image (MLP_TRAINING_IMAGE)
#
# The training image runs `python -m jobs.train ...`, the exact command of the local backend; the Kubernetes pod
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
ENTRYPOINT ["python", "-m", "jobs.train"]
CMD ["--help"]
