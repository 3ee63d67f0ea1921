"""The local stack every test run and `make dev` stand on.

A real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
kwok), a real restate-server and the pod runner, all as plain processes on loopback. Nothing here
is product code: it exists so that tests and newcomers never need Docker or a remote cluster.
"""
