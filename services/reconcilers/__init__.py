"""One Restate VirtualObject per kind, keyed per resource, all run by `engine`.

`engine` (the pass), `steps` (journaled side effects), `failures` (errors to Restate's and back),
`finalizers`; per kind `cluster`, `deployment`, `cloud`; the rollout's pure parts `phases` and `rollout`.
"""
