"""Pydantic models of the operator's custom resources: the single source of the CRD schemas.

`services.crdgen` turns them into `crd/*.yaml`, `services.kinds` derives each kind's identity from them,
and the reconcilers parse live specs with them (the one source of every default).
"""
