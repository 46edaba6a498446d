"""Talking to the Kubernetes API, shared by the shared-mode operator and the sub-directory provisioner.

- :mod:`.rest`: a lean asyncio client on http.client (JSON dicts, no model classes) found from a kubeconfig,
  ``$KUBECONFIG``, the pod's service account or ``~/.kube/config``, in that order;
  :mod:`.informer` (list, watch, resync), :mod:`.events` (Events posted in the background, repeats
  aggregated on request), :mod:`.leading` (work only while holding the Lease, stopped on SIGTERM),
  :mod:`.classes` (StorageClasses as seen, and the claims that arrived before their class).
- :mod:`.lease`: leader election on a ``coordination.k8s.io/v1`` Lease, so that only one replica acts at a
  time; the decision is a pure function, the I/O a small asyncio class over :mod:`.rest`.

The operator and the sub-directory provisioner use only these: neither loads kopf nor the official client.

Nothing is imported here, so importing the package costs nothing until a submodule is used.
"""
