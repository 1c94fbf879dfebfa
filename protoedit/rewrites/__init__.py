"""Rewrites: functions that edit a :class:`~protoedit.document.Document` in place.

Each keeps comments and untouched text (only changed nodes are re-rendered), returns a
:class:`RewriteReport` of what it did, dropped or flagged, and refuses with a located error
rather than guessing.  They know nothing of the command line.
"""

from protoedit.rewrites.add_loss import HEAD_PREFIX, LOSS_TOP, LossHead, add_loss
from protoedit.rewrites.aux import aux
from protoedit.rewrites.basic import filter_net, force_backward, net_state
from protoedit.rewrites.report import RewriteReport
from protoedit.rewrites.to_deploy import to_deploy
from protoedit.rewrites.truncate import truncate
from protoedit.rewrites.upgrade import needs_upgrade, upgrade

__all__ = [
    "HEAD_PREFIX",
    "LOSS_TOP",
    "LossHead",
    "RewriteReport",
    "add_loss",
    "aux",
    "filter_net",
    "force_backward",
    "needs_upgrade",
    "net_state",
    "to_deploy",
    "truncate",
    "upgrade",
]
