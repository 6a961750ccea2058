"""SimCLR's NT-Xent (normalised temperature-scaled cross-entropy) contrastive loss.

Chen, Kornblith, Norouzi, Hinton, *A simple framework for contrastive learning of visual representations*,
ICML 2020 (arXiv:2002.05709); official code ``google-research/simclr``. The SFRIK comparison re-implements it
in ``valeoai/sfrik`` (``src/sfrik/ssl.py``, ``SimCLR`` + ``multiview_nce_loss``) with the same definition.

Formula (two views)
-------------------
Stack the 2N spherical embeddings u = [sphere(Z_a); sphere(Z_b)] and let s_ik = ⟨u_i, u_k⟩ / τ (cosine
similarity over the temperature). For every anchor i its positive p(i) is the other view of the same sample;
the other 2N − 2 embeddings are its negatives:

    ℓ_i    = −log( exp(s_{i,p(i)}) / Σ_{k≠i} exp(s_ik) )
    nt_xent = mean over the 2N anchors of ℓ_i,    loss = nt_xent.

Shapes: every view (N, D), V ≥ 2. Cost O(N²·D) time, O(N²) memory.

Temperature: the default ``temperature=0.15`` is the value of the SFRIK paper's SimCLR baseline; the SimCLR paper
uses 0.5 in its CIFAR-10 experiments and 0.1 for large batches on ImageNet.

Distributed (global negatives): each rank's anchors are its local rows of every view; its negatives are the rows
of all ranks (``gather_rows``), as in the usual multi-GPU NT-Xent. A rank's loss is the mean of ℓ_i over its
own anchors, so the mean over ranks is the global-batch loss and the gradient that reaches each rank's rows
(through its own anchors and, via the gather's backward, through the other ranks' keys) is world_size × the
single-process gradient: the contract of ``_common``.

Multiple views
--------------
``"pairs"`` (default): NT-Xent of every pair of views (2N embeddings each) averaged over the V·(V−1)/2 pairs.
``"mean"``: the multi-positive form of SupCon's L_out (Khosla et al., *Supervised contrastive learning*,
NeurIPS 2020) with the sample identity as the label: over all V·N embeddings, anchor (v, i) has the V − 1
positives (w, i), w ≠ v, and the denominator runs over all V·N − 1 other embeddings:

    ℓ_{v,i} = −1/(V−1) · Σ_{w≠v} log( exp(s_{vi,wi}) / Σ_{(x,j)≠(v,i)} exp(s_{vi,xj}) ),
    nt_xent = mean over the V·N anchors.

At V = 2 both modes are the two-view NT-Xent.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._common import Regularizer, RegularizerOutput, check_positive, gather_rows, rank, sphere

__all__ = ["SimCLR", "multi_positive_nt_xent"]


def multi_positive_nt_xent(zs: list[Tensor], temperature: float) -> Tensor:
    """Mean over the local anchors of every view of the multi-positive NT-Xent (global keys).

    With two views this is SimCLR's NT-Xent; with V views, SupCon's L_out with the sample index as the label.
    """
    v = len(zs)
    n_local = zs[0].shape[0]
    es = [sphere(z) for z in zs]
    keys = torch.cat([gather_rows(e) for e in es], dim=0)  # (V·N, D), view-major
    n = keys.shape[0] // v
    anchors = torch.cat(es, dim=0)  # (V·n_local, D), view-major
    logits = anchors @ keys.T / temperature  # (V·n_local, V·N)

    # global column of anchor (view a, local row i) is a·N + rank·n_local + i; its positives share the sample
    local = torch.arange(n_local, device=logits.device) + rank() * n_local
    view = torch.arange(v, device=logits.device)
    sample_col = (view[None, :] * n + local[:, None])  # (n_local, V): column of sample i in view w
    rows = torch.arange(v * n_local, device=logits.device)
    self_col = (view[:, None] * n + local[None, :]).flatten()  # (V·n_local,) view-major like the anchors
    same = torch.zeros_like(logits, dtype=torch.bool)
    same[rows[:, None], sample_col.repeat(v, 1)] = True  # every view of the anchor's sample (itself included)
    is_self = torch.zeros_like(same)
    is_self[rows, self_col] = True
    positive = same & ~is_self

    log_denominator = torch.logsumexp(logits.masked_fill(is_self, float("-inf")), dim=1)
    log_prob = logits - log_denominator[:, None]
    per_anchor = -(log_prob * positive).sum(dim=1) / (v - 1)
    return per_anchor.mean()


class SimCLR(Regularizer):
    """NT-Xent (see the module docstring); term ``nt_xent`` (equal to the loss).

    Args:
        temperature: τ > 0 dividing the cosine similarities (0.15: the SFRIK comparison's value).
        multiview: ``"pairs"`` or ``"mean"`` (multi-positive, SupCon-style).
        check_finite: raise ``ValueError`` on NaN/Inf inputs.
    """

    def __init__(self, *, temperature: float = 0.15, multiview: str = "pairs", check_finite: bool = False):
        super().__init__(multiview=multiview, check_finite=check_finite)
        self.temperature = float(check_positive("temperature", temperature))

    def pair(self, za: Tensor, zb: Tensor) -> RegularizerOutput:
        loss = multi_positive_nt_xent([za, zb], self.temperature)
        return RegularizerOutput(loss, {"nt_xent": loss})

    def mean_views(self, zs: list[Tensor]) -> RegularizerOutput:
        loss = multi_positive_nt_xent(zs, self.temperature)
        return RegularizerOutput(loss, {"nt_xent": loss})
