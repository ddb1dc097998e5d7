"""Orchestration: the scheduler and the Run."""

from .scheduler import Scheduler, schedule

__all__ = ["schedule", "Scheduler"]
