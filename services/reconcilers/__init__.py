"""One Restate VirtualObject per kind, keyed per resource, all run by `engine`.

`engine` (the pass), `steps` (journaled side effects), `failures` (errors to Restate's and back),
`finalizers`; per kind `cluster`, `deployment` (with `replicaset_mode`, `knative_mode` and what they
share, `versions`), `cloud`; the rollout's pure parts `phases` and `rollout`.
"""
