"""Thin async clients: the only code that talks to the network (Kubernetes, Restate admin API).

Importing this package makes kubernetes-asyncio's heavy packages lazy (`_lazy_package`): its
`client` package imports every API class and ~900 models (~70 MB per process) that we never use,
since `clients.kube` speaks plain JSON through `ApiClient`. The packages load only the submodules
asked for; any other attribute (`client.CoreV1Api`, `models.V1Pod`) loads the whole package as
before, so code that wants the generated API (the dev stack's pod runner) still gets it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any


def _lazy_package(name: str, classes: dict[str, str] | None = None) -> None:
    """Stand in for package `name` without running its `__init__` until an attribute needs it.

    `classes` maps a class name to the submodule that defines it, loaded alone."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None or spec.submodule_search_locations is None:
        return
    module = types.ModuleType(name)
    module.__spec__, module.__file__, module.__package__ = spec, spec.origin, name
    module.__path__ = list(spec.submodule_search_locations)
    origin = spec.origin

    def __getattr__(attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        if classes and attr in classes:
            return getattr(importlib.import_module(f"{name}.{classes[attr]}"), attr)
        if importlib.util.find_spec(f"{name}.{attr}") is not None:
            return importlib.import_module(f"{name}.{attr}")
        del module.__dict__["__getattr__"]  # from now on the real package
        with open(origin, encoding="utf-8") as source:
            exec(compile(source.read(), origin, "exec"), module.__dict__)  # the package's own __init__
        return getattr(module, attr)

    module.__dict__["__getattr__"] = __getattr__
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent in sys.modules:
        setattr(sys.modules[parent], child, module)  # as an import of the submodule would


if "kubernetes_asyncio" not in sys.modules:  # already imported whole: nothing to save
    _lazy_package("kubernetes_asyncio")
    _lazy_package("kubernetes_asyncio.client", {"ApiClient": "api_client", "Configuration": "configuration"})
    _lazy_package("kubernetes_asyncio.client.api")
    _lazy_package("kubernetes_asyncio.client.models")
