"""The Restate side of the operator: reconcilers as durable virtual objects, their clients and builders."""
