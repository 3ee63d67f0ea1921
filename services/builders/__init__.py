"""Pure functions: a custom resource (and settings) in, the desired child objects out. No I/O."""
