"""Rewrites: functions that edit a :class:`~protoedit.document.Document` in place.

Each keeps comments and untouched text (only changed nodes are re-rendered), returns a
:class:`RewriteReport` of what it did, dropped or flagged, and refuses with a located error
rather than guessing.  They know nothing of the command line.
"""

from protoedit.rewrites.add_loss import HEAD_PREFIX, LOSS_TOP, LossHead, add_loss
from protoedit.rewrites.aux import aux
from protoedit.rewrites.basic import filter_net, force_backward, net_state
from protoedit.rewrites.carried import WeightsMismatchError, WeightsReport
from protoedit.rewrites.fold_bn import fold_bn
from protoedit.rewrites.fully_conv import fully_conv
from protoedit.rewrites.input_channels import input_channels
from protoedit.rewrites.rename import rename
from protoedit.rewrites.report import RewriteReport
from protoedit.rewrites.to_deploy import to_deploy
from protoedit.rewrites.truncate import truncate
from protoedit.rewrites.upgrade import needs_upgrade, upgrade
from protoedit.rewrites.used_weights import used_weights

__all__ = [
    "HEAD_PREFIX",
    "LOSS_TOP",
    "LossHead",
    "RewriteReport",
    "WeightsMismatchError",
    "WeightsReport",
    "add_loss",
    "aux",
    "filter_net",
    "fold_bn",
    "force_backward",
    "fully_conv",
    "input_channels",
    "needs_upgrade",
    "net_state",
    "rename",
    "to_deploy",
    "truncate",
    "upgrade",
    "used_weights",
]
