"""What a RestateCluster creates, in a namespace named after it: one module per concern."""
