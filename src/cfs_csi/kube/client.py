"""One way to build an API client, so that every component finds its cluster the same way."""

from __future__ import annotations

import os

from kubernetes import client as k8s
from kubernetes import config as k8s_config

DEFAULT_KUBECONFIG = "~/.kube/config"


def api_client(kubeconfig: str | None = None) -> k8s.ApiClient:
    """A client for the cluster named by ``kubeconfig``, else ``$KUBECONFIG``, else the pod's service account,
    else ``~/.kube/config``.

    An explicit file (flag or environment) wins over the service account so that a developer can point a pod
    or a laptop at another cluster; the service account wins over ``~/.kube/config`` because in a pod that is
    the identity RBAC was written for. Each call returns a client with its own
    :class:`~kubernetes.client.Configuration`, so nothing global is changed, and a refreshed token is never
    written back into the user's kubeconfig. ``$KUBECONFIG`` may list several files (``:``-separated).
    """
    path = kubeconfig or os.environ.get("KUBECONFIG") or None
    if path is None:
        configuration = k8s.Configuration()
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except k8s_config.ConfigException:
            path = os.path.expanduser(DEFAULT_KUBECONFIG)
        else:
            return k8s.ApiClient(configuration)
    configuration = k8s.Configuration()
    k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=path, client_configuration=configuration, persist_config=False
    )
    return k8s.ApiClient(configuration)
