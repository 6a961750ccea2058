"""A toy sslbench plugin: :class:`~sslbench_toy.losses.ToyDecorrelation` (correct under DDP) and
:class:`~sslbench_toy.losses.PlainGatherDecorrelation` (the plain-``all_gather`` bug of lightly #1977)."""

from .losses import PlainGatherDecorrelation, ToyDecorrelation

__all__ = ["ToyDecorrelation", "PlainGatherDecorrelation"]
