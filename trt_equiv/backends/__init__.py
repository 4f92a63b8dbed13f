"""Backends: one runtime running one model at one precision, all behind ``Backend.infer``."""

from __future__ import annotations

from trt_equiv.backends.base import PRECISIONS, Backend, validate_batch

__all__ = ["PRECISIONS", "Backend", "validate_batch"]
