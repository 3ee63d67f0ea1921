"""The local stack every test run and `make dev` stand on.

A real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
kwok), a real restate-server and the pod runner, all as plain processes on loopback. Nothing here
is product code: it exists so that tests and newcomers never need Docker or a remote cluster.

It is a developer tool, so it is a package of its own (as controller-runtime ships `envtest`), not
a corner of `tests/`: `python -m devstack up|down` runs it, the test session fixtures start it, and
neither the image (`.dockerignore`) nor the distribution (`packages.find`) carries it.
"""
