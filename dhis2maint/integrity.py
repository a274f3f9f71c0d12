"""Data integrity: list checks, run them, read and stream results, compare runs.

(Being filled in.)
"""

__all__ = ["IntegrityMixin"]


class IntegrityMixin:
    """Data-integrity methods of :class:`dhis2maint.Session`."""
