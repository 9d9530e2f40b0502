"""A Kubernetes control plane for the test suite: real where it can be, emulated where it must.

Real: etcd, kube-apiserver and kube-controller-manager, built from their upstream Go modules
by `build.sh` (or taken from `KUBEBUILDER_ASSETS`) and started by `harness.py` with TLS, RBAC
and service-account tokens, so schemas, status subresources, finalizers, conflicts, RBAC, the
Job controller and the garbage collector behave as in a cluster.

Real too, on request: a node (`realnode.py`) — containerd, kubelet and kube-scheduler — that
runs Pods as containers of the project's image, for the namespaces given to it.

Emulated: the node everywhere else. `node.py` registers a Node, binds Pods to it and runs each
Pod's first container as a local process, reporting its exit code and termination message in
the Pod status the way a kubelet would.
"""
