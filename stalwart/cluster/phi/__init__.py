"""
Phi accrual failure detection (Hayashibara et al., "The phi accrual failure
detector", 2004): a bounded window of heartbeat inter-arrival times and the
suspicion level phi computed from it.  Pure: time is always a parameter.
"""

__all__ = ["history", "detector"]
