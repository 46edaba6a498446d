"""A real Kubernetes control plane on loopback, for tests and for humans (``cfs-csi dev-cluster``).

- :mod:`.gomod`: pure go.mod rewriting that lets a module with local ``replace`` lines be built by name.
- :mod:`.tools`: builds and caches the ecosystem's Go programs (etcd, kube-apiserver,
  kube-controller-manager, kube-scheduler, kubelet, csi-provisioner, csi-sanity, helm) from the Go module proxy.
- :mod:`.pki`: certificates and the service-account key.
- :mod:`.cluster`: starts etcd, kube-apiserver and kube-controller-manager, waits for readiness, writes a
  kubeconfig, and tears everything down.
- :mod:`.node`: a real node (private containerd, the kubelet, kube-scheduler) in a mount namespace of its own;
  :mod:`.ociimage` writes the busybox and pause images it needs without a registry.
- :mod:`.images`: builds our image (and csi-provisioner's) with podman on an mmdebstrap base, for containerd.

Nothing here is imported by the driver itself.
"""
