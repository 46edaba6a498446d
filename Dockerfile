# syntax=docker/dockerfile:1
# One image for every cfs-csi component: CSI controller and node plugin, operator, sub-directory provisioner.
#   docker build -t <registry>/cfs-csi:0.1.0 .
# Reproducible: a pinned base image, and Python packages only from requirements.lock and requirements-build.lock
# (setuptools, to build our package) by hash, never resolved at build time. tests/image/ runs the build stage.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY requirements.lock requirements-build.lock ./
RUN ["python", "-m", "venv", "/opt/cfs-csi"]
RUN ["/opt/cfs-csi/bin/pip", "install", "--require-hashes", "--no-deps", "--only-binary=:all:", "-r", "requirements.lock"]
RUN ["/opt/cfs-csi/bin/pip", "install", "--require-hashes", "--no-deps", "--only-binary=:all:", "-r", "requirements-build.lock"]
COPY pyproject.toml README.md ./
COPY src ./src
RUN ["/opt/cfs-csi/bin/pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "."]

FROM ${PYTHON_IMAGE}
# nfs-common brings mount.nfs, which the node plugin's mount(8) calls for nfs mounts; mount brings mount/umount.
RUN apt-get update \
 && apt-get install -y --no-install-recommends nfs-common mount \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/cfs-csi /opt/cfs-csi
ENV PATH=/opt/cfs-csi/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN ["useradd", "--uid", "10001", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", "cfs-csi"]
# Unprivileged by default (controller, operator); the node plugin and the sub-directory provisioner are given
# root by their pod specs, as mounting and managing the share's directories need it.
USER 10001
ENTRYPOINT ["cfs-csi"]
