# syntax=docker/dockerfile:1
# One image for every cfs-csi component: CSI controller and node plugin, operator, sub-directory provisioner.
#   docker build -t <registry>/cfs-csi:0.1.0 .
# The base is Debian 12 with Debian's own python3 (3.11, the project's version): the interpreter, the NFS client
# and the C libraries then all get Debian's security updates on a rebuild. Python packages come only from
# requirements.lock and requirements-build.lock (setuptools, to build our package), by hash, never resolved at
# build time. tests/image/ builds this file for real (`cfs-csi dev-cluster image`) from a base made by mmdebstrap,
# passed as BASE_IMAGE, and runs the build stage's steps without a container engine too.
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
WORKDIR /src
COPY requirements.lock requirements-build.lock ./
RUN ["python3", "-m", "venv", "/opt/cfs-csi"]
RUN ["/opt/cfs-csi/bin/pip", "install", "--require-hashes", "--no-deps", "--only-binary=:all:", "-r", "requirements.lock"]
RUN ["/opt/cfs-csi/bin/pip", "install", "--require-hashes", "--no-deps", "--only-binary=:all:", "-r", "requirements-build.lock"]
COPY pyproject.toml README.md ./
COPY src ./src
RUN ["/opt/cfs-csi/bin/pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "."]

FROM ${BASE_IMAGE}
# python3 runs the venv (its bin/python links to /usr/bin/python3, the same interpreter the build stage used);
# nfs-common brings mount.nfs, which the node plugin's mount(8) calls for nfs mounts; mount brings mount/umount.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 nfs-common mount \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
COPY --from=build /opt/cfs-csi /opt/cfs-csi
ENV PATH=/opt/cfs-csi/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN ["useradd", "--uid", "10001", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", "cfs-csi"]
# Unprivileged by default (controller, operator); the node plugin and the sub-directory provisioner are given
# root by their pod specs, as mounting and managing the share's directories need it.
USER 10001
ENTRYPOINT ["cfs-csi"]
