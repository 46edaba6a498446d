"""Talking to the Kubernetes API, shared by the shared-mode operator and the sub-directory provisioner.

- :mod:`.client`: one :class:`kubernetes.client.ApiClient` from a kubeconfig, ``$KUBECONFIG``, the pod's
  service account or ``~/.kube/config``, in that order.
- :mod:`.lease`: leader election on a ``coordination.k8s.io/v1`` Lease, so that only one replica acts at a
  time; the decision is a pure function, the I/O a small asyncio class over the official sync client.

Both use the official synchronous client, called from asyncio through :func:`asyncio.to_thread`. Nothing is
imported here, so importing the package costs nothing until a submodule is used.
"""
