"""A minimal Restate Python SDK service, used by the docs and the end-to-end tests.

Its container image (see `devstack/images.py`) is run by the pod runner as `python -m examples.hello`.
"""
