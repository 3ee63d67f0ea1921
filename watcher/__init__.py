"""The watcher: notices Kubernetes changes and forwards them to the reconcilers through Restate's ingress."""
