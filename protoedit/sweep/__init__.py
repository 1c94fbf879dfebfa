"""``protoedit sweep``: activation maximisation of every unit of a model's layers, in
parallel, resumable, with a contact sheet.

:mod:`~protoedit.sweep.plan` (what to do), :mod:`~protoedit.sweep.store` (what is done),
:mod:`~protoedit.sweep.compute` (one worker's side), :mod:`~protoedit.sweep.engines` (local
threads or Ray actors), :mod:`~protoedit.sweep.run` (the loop), :mod:`~protoedit.sweep.report`
(the HTML sheet).
"""

from protoedit.sweep.engines import RayUnavailableError
from protoedit.sweep.plan import Model, Plan, Target, make_model, read_plan
from protoedit.sweep.report import write_report
from protoedit.sweep.run import Summary, SweepInterrupted, run_sweep
from protoedit.sweep.store import Store, open_store

__all__ = [
    "Model",
    "Plan",
    "RayUnavailableError",
    "Store",
    "Summary",
    "SweepInterrupted",
    "Target",
    "make_model",
    "open_store",
    "read_plan",
    "run_sweep",
    "write_report",
]
