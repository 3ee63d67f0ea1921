"""A Restate Python SDK service with versions, for rollout demos and the end-to-end tests.

`python -m examples.versioned --version v1` serves `Versioned` whose handlers answer with their
version; `hold` keeps an invocation open with a durable sleep, so a test can watch it drain.
`--version breaking` turns `Versioned` into a virtual object: Restate refuses that change (META0006).
"""
