"""Thin async clients: the only code that talks to the network (Kubernetes, Restate admin API)."""
