"""Kill and revive one process the operator depends on, as the kill matrix and the soak do.

`kill_and_revive(operator, target)` hands back two callables: SIGKILL of `target` (the services
process, the watchers, the bootstrap restate-server, or a control-plane process by its name) and
its start again with the same data (etcd keeps its data dir, restate-server its base dir).
"""

from __future__ import annotations

from collections.abc import Callable

from devstack.operator import Operator

TARGETS = ("services", "watcher", "restate-server", "kube-apiserver", "etcd")


def kill_and_revive(operator: Operator, target: str) -> tuple[Callable[[], None], Callable[[], None]]:
    stack = operator.stack
    if target == "services":
        return (lambda: operator.services.kill() if operator.services else None), operator.start_services
    if target == "watcher":

        def kill_watcher() -> None:
            for watcher in operator.watchers:
                watcher.kill()
            operator.watchers.clear()
            operator.watcher_probe_ports.clear()

        def revive_watcher() -> None:
            operator.start_watcher()

        return kill_watcher, revive_watcher
    if target == "restate-server":
        return stack.restate.kill, stack.restate.start
    return (lambda: stack.control_plane.kill(target)), (lambda: stack.control_plane.revive(target))
