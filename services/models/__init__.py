"""Pydantic models of the operator's custom resources: the single source of the CRD schemas.

`crdgen` turns them into `crd/*.yaml`; reconcilers parse live objects with them.
"""
