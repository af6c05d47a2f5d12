"""allot: a compute platform for teams that share GPUs.

Layering (dependencies point inward):
- ``allot.core``: pure scheduling decisions, standard library only; ``schedule() -> Plan``.
- ``allot.sim``: drives the core with a virtual clock over traces and measures the outcome.
- ``allot.cli``: the ``allot`` command.
"""

__version__ = "0.1.0"
