"""Placement: choose nodes and devices for a job, as a chain feasibility -> rank -> select.

- ``feasibility``: can a node hold some tasks now; could the cluster ever hold the job.
- ``rank``: the order nodes are offered in (best fit; most room first for a gang's bulk).
- ``select``: the greedy choice for every task of a job on one flavor, all or nothing.
- ``diagnose``: explanations for jobs that do not fit.
"""

from allot.core.placement.select import choose_placement

__all__ = ["choose_placement"]
