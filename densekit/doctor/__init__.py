"""The dataset doctor behind ``densekit check-data``: every problem of a dataset at once.

:func:`check_data` builds the config's dataset with its own class, reads every file in worker
processes and returns a :class:`Report` of :class:`Finding` objects (error / warning, code,
file, message with the fix) plus statistics tables. See :mod:`densekit.doctor.check`.
"""
from densekit.doctor.check import SPLITS, check_data
from densekit.doctor.report import Finding, Report, format_finding

__all__ = ['check_data', 'Finding', 'Report', 'format_finding', 'SPLITS']
