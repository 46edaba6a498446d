"""A real Kubernetes control plane on loopback, for tests and for humans (``cfs-csi dev-cluster``).

- :mod:`.gomod`: pure go.mod rewriting that lets a module with local ``replace`` lines be built by name.
- :mod:`.tools`: builds and caches the ecosystem's Go programs (etcd, kube-apiserver,
  kube-controller-manager, csi-provisioner, csi-sanity) from the Go module proxy.
- :mod:`.pki`: certificates and the service-account key.
- :mod:`.cluster`: starts etcd, kube-apiserver and kube-controller-manager, waits for readiness, writes a
  kubeconfig, and tears everything down.

Nothing here is imported by the driver itself.
"""
