"""What the garbage left open: for tests that close a server and check nothing of it lingers."""

from __future__ import annotations

import gc
import warnings


def unclosed_after_collection() -> list[str]:
    """Collect the garbage now and return the ResourceWarnings its finalizers raise (an unclosed
    socket or transport), which pytest would otherwise report in whichever test ran next."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
