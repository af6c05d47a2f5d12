"""The ``/v1`` routes, one module per resource family: ``jobs``, ``cluster`` and ``profile``."""
