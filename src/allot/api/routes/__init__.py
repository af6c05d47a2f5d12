"""The ``/v1`` routes, one module per resource family: ``jobs`` and ``cluster``."""
