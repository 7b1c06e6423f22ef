"""Core-hours a NEB job spent: the one place that computes them.

core-hours = allocated nodes x cores per node x wall time (hours). The allocation is what the
scheduler gave the job (``SLURM_JOB_NUM_NODES``/``SLURM_CPUS_ON_NODE``, PBS's node file), else what
the job asked for; the wall time runs from the job's start to its exit marker, or, for a job killed
without one (walltime, node failure, scancel), to the last write into its run directory. A queued
job that never started spent nothing. Backends hand a :class:`JobCost` to the store, which keeps
one per attempt (``alem status`` and the report sum them per stage and per hop).
"""

from __future__ import annotations

from pydantic import BaseModel, Field


def core_hours(nodes: int, cores_per_node: int, wall_s: float) -> float:
    """Allocated nodes x cores per node x wall time, in core-hours."""
    return nodes * cores_per_node * max(wall_s, 0.0) / 3600.0


class JobCost(BaseModel):
    """What one job (one attempt) held and for how long."""

    nodes: int = Field(ge=1)
    cores_per_node: int = Field(ge=1)
    wall_s: float = Field(ge=0.0)
    source: str = Field(description='where the numbers come from, e.g. "slurm allocation, run directory times"')

    @property
    def core_hours(self) -> float:
        return core_hours(self.nodes, self.cores_per_node, self.wall_s)

    def describe(self) -> str:
        return (f"{self.core_hours:.3g} core-hours ({self.nodes} node(s) x {self.cores_per_node} cores x "
                f"{self.wall_s / 3600:.3g} h; {self.source})")
