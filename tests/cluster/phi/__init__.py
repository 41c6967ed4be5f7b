"""Tests of the phi accrual detector."""
