"""Downstream evaluation of frozen features: linear probe, weighted kNN, and collapse diagnostics.

Which protocol the papers report
--------------------------------
* **Linear probe**: Barlow Twins (Zbontar et al. 2021), VICReg (Bardes et al. 2022) and SFRIK (Zheng et al.
  2022) report top-1 accuracy of a linear classifier trained on frozen ImageNet features (SGD/LARS for 100
  epochs on augmented images); solo-learn reports the same protocol on CIFAR. Here, to be fast and deterministic
  on the CPU, the probe is a multinomial logistic regression on *pre-extracted, non-augmented* features,
  standardised with the training set's mean and std, fitted full-batch with L-BFGS (strong-Wolfe line search)
  from zero weights with an L2 penalty ``weight_decay/2·‖W‖²`` (bias not penalised). The optimum of this convex
  objective does not depend on a seed; accuracy is usually a little below the papers' augmented protocol.
  ``method="adam"`` fits the same objective with mini-batch Adam (shuffled with ``seed``), for data too large
  for full-batch steps.
* **Weighted kNN** (Wu et al. 2018, InstDisc, "Unsupervised feature learning via non-parametric instance
  discrimination", §3.4): ℓ2-normalise the features, take the k training samples with the largest cosine
  similarity s_i, give each the weight exp(s_i/T) and predict the class with the largest summed weight. InstDisc's
  code (zhirongw/lemniscate.pytorch) uses k = 200 and its NCE temperature as T: 0.07 in ``main.py`` (ImageNet),
  0.1 in ``cifar.py``; lightly's benchmarks use
  k = 200, T = 0.1, the defaults here; solo-learn's ``WeightedKNNClassifier`` defaults to k = 20, T = 0.07 (and
  its kNN script sweeps k and T). The weights are computed as exp((s_i − max_j s_j)/T), the same ranking without
  overflow for small T; ties go to the lowest class index; k larger than the training set is clamped to it
  (as solo-learn).

Collapse diagnostics (:func:`collapse_metrics`)
-----------------------------------------------
* ``std_normalized``: mean over dimensions of the (unbiased) per-dimension std of the ℓ2-normalised embeddings
  (SimSiam, Chen & He 2021, §4.1). About 1/√D for embeddings spread over the sphere, 0 when they collapse to a
  point.
* ``rankme``: RankMe (Garrido et al. 2023, eq. 1-2) of the embedding matrix Z (N × D, not centred): with the
  singular values σ_k, p_k = σ_k/‖σ‖₁ + ε (ε = 1e-7), RankMe = exp(−Σ_k p_k log p_k).
* ``effective_rank``: the effective rank of Roy & Vetterli (2007) of the embeddings' covariance matrix
  C = Z_cᵀZ_c/(N − 1) (Z_c centred): p_k = λ_k/Σλ with λ_k the eigenvalues (= singular values) of C,
  erank = exp(−Σ_k p_k log p_k) with 0·log 0 = 0. Between 1 (one direction of variance) and min(N − 1, D);
  dimensional collapse (Jing et al. 2022) shows up here as a value far below D.

All spectra are computed in float64. Non-finite embeddings give NaN collapse metrics; the probe and kNN refuse
non-finite features with a ``ValueError``.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "extract_features",
    "linear_probe",
    "knn_accuracy",
    "knn_predict",
    "collapse_metrics",
    "std_normalized",
    "rankme",
    "effective_rank",
    "spectral_entropy_rank",
    "evaluate_backbone",
    "RANKME_EPS",
    "PROBE_METHODS",
]

RANKME_EPS = 1e-7
PROBE_METHODS = ("lbfgs", "adam")
#: default learning rates of the probe's optimisers
PROBE_LR = {"lbfgs": 1.0, "adam": 3e-2}


# --------------------------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------------------------
def _check_pos_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive integer")
    return value


def _check_pos_real(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}={value!r} must be a finite number > 0")
    return float(value)


def _check_features(name: str, x) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, D), got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape (N, D); got shape {tuple(x.shape)} (flatten the features first)")
    if not x.is_floating_point():
        raise TypeError(f"{name} has dtype {x.dtype}; features must be floating point (cast with .float())")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or Inf; the network's features are not finite (did training "
                         "diverge?), so they cannot be evaluated")
    return x


def _check_labels(name: str, y, n: int) -> Tensor:
    if not isinstance(y, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of integer class labels, got {type(y).__name__}")
    if y.dim() != 1 or y.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) to match its features; got shape {tuple(y.shape)}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"{name} has dtype {y.dtype}; labels must be integers (cast with .long())")
    if n and int(y.min()) < 0:
        raise ValueError(f"{name} contains negative labels; classes must be numbered 0, 1, ..., K-1")
    return y.long()


def _check_pair(train_x, train_y, test_x, test_y) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    train_x = _check_features("train_x", train_x)
    test_x = _check_features("test_x", test_x)
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"train_x has {train_x.shape[1]} features but test_x has {test_x.shape[1]}; extract both "
                         "with the same network")
    train_y = _check_labels("train_y", train_y, train_x.shape[0])
    test_y = _check_labels("test_y", test_y, test_x.shape[0])
    num_classes = int(max(int(train_y.max()), int(test_y.max()))) + 1
    dtype = torch.float64 if torch.float64 in (train_x.dtype, test_x.dtype) else torch.float32
    device = train_x.device
    return (train_x.to(device, dtype), train_y.to(device), test_x.to(device, dtype), test_y.to(device),
            num_classes)


# --------------------------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------------------------
@torch.no_grad()
def extract_features(model: nn.Module, images: Tensor, batch_size: int, device,
                     normalize_fn: Callable[[Tensor], Tensor] | None = None, *, out_device="cpu") -> Tensor:
    """Features of ``images`` (N, C, H, W) from ``model`` in eval mode: (N, D) float32 on ``out_device`` (the CPU
    by default; the model's device keeps them there for a kNN and probe on the device).

    The model must already be on ``device``. Batches of ``batch_size`` images are moved to ``device`` (so the
    images may stay in host memory) and passed through ``normalize_fn`` (e.g.
    ``ViewAugment.normalize``; ``None``: uint8 images are divided by 255, float images used as they are) and
    the model. The model's train/eval mode is restored afterwards. Outputs with more than two dimensions are
    flattened.
    """
    if not isinstance(model, nn.Module) and not callable(model):
        raise TypeError(f"model must be an nn.Module (or a callable), got {type(model).__name__}")
    if not isinstance(images, Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor of shape (N, C, H, W); got {shape}")
    _check_pos_int("batch_size", batch_size)
    device = torch.device(device) if device is not None else torch.device("cpu")
    was_training = model.training if isinstance(model, nn.Module) else None
    if isinstance(model, nn.Module):
        model.eval()
    out = []
    try:
        for i in range(0, images.shape[0], batch_size):
            x = images[i:i + batch_size].to(device, non_blocking=True)
            if normalize_fn is not None:
                x = normalize_fn(x)
            elif x.dtype == torch.uint8:
                x = x.float().div_(255.0)
            elif not x.is_floating_point():
                x = x.float()
            f = model(x)
            out.append(f.reshape(f.shape[0], -1).float().to(out_device))
    finally:
        if was_training is not None:
            model.train(was_training)
    if not out:
        raise ValueError("images is empty (N = 0); there is nothing to extract")
    return torch.cat(out)


@torch.no_grad()
def _map_features(module: nn.Module, features: Tensor, batch_size: int, device) -> Tensor:
    """``module`` (in eval mode, restored afterwards) applied to (N, D) features in batches → float32, on the
    features' device."""
    was = module.training
    module.eval()
    try:
        return torch.cat([module(features[i:i + batch_size].to(device)).float().to(features.device)
                          for i in range(0, features.shape[0], batch_size)])
    finally:
        module.train(was)


# --------------------------------------------------------------------------------------------------------------
# Linear probe
# --------------------------------------------------------------------------------------------------------------
def _standardize(train_x: Tensor, test_x: Tensor) -> tuple[Tensor, Tensor]:
    mean = train_x.mean(dim=0)
    std = train_x.std(dim=0, unbiased=False)
    scale = float(std.max()) if std.numel() else 0.0
    std = torch.where(std > 1e-8 * max(scale, 1e-30), std, torch.ones_like(std))  # constant features stay 0
    return (train_x - mean) / std, (test_x - mean) / std


def linear_probe(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, *, epochs: int = 100,
                 lr: float | None = None, weight_decay: float = 1e-4, seed: int = 0, method: str = "lbfgs",
                 batch_size: int = 256) -> float:
    """Top-1 accuracy (%) on ``test_x`` of a logistic regression trained on ``train_x`` (see the module doc).

    Objective: mean cross-entropy + ``weight_decay``/2·‖W‖² on standardised features, W and b from zero.
    ``method="lbfgs"`` (default): full batch, at most ``epochs`` L-BFGS iterations (each one or a few passes over
    the data; it stops early once converged), ``lr`` the L-BFGS step (default 1.0); deterministic, ``seed``
    unused. ``method="adam"``: ``epochs`` passes of mini-batches of ``batch_size`` shuffled with ``seed``, Adam
    with ``lr`` (default 3e-2) decayed by a cosine to 0. The classes are 0 … max label.
    """
    train_x, train_y, test_x, test_y, num_classes = _check_pair(train_x, train_y, test_x, test_y)
    _check_pos_int("epochs", epochs)
    if method not in PROBE_METHODS:
        raise ValueError(f"method={method!r} is not allowed; choose one of {', '.join(map(repr, PROBE_METHODS))}")
    lr = PROBE_LR[method] if lr is None else _check_pos_real("lr", lr)
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) \
            or not math.isfinite(weight_decay) or weight_decay < 0:
        raise ValueError(f"weight_decay={weight_decay!r} must be a finite number >= 0")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed={seed!r} must be an integer")
    _check_pos_int("batch_size", batch_size)

    x, xt = _standardize(train_x, test_x)
    d = x.shape[1]
    w = torch.zeros(d, num_classes, dtype=x.dtype, device=x.device, requires_grad=True)
    b = torch.zeros(num_classes, dtype=x.dtype, device=x.device, requires_grad=True)

    def objective(xb: Tensor, yb: Tensor) -> Tensor:
        return F.cross_entropy(xb @ w + b, yb) + 0.5 * weight_decay * w.square().sum()

    with torch.enable_grad():
        if method == "lbfgs":
            opt = torch.optim.LBFGS([w, b], lr=lr, max_iter=epochs, max_eval=epochs * 5 // 4 + 1, history_size=20,
                                    tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe")

            def closure():
                opt.zero_grad()
                loss = objective(x, train_y)
                loss.backward()
                return loss

            opt.step(closure)
        else:
            gen = torch.Generator(device="cpu").manual_seed(seed)
            opt = torch.optim.Adam([w, b], lr=lr)
            n = x.shape[0]
            steps_per_epoch = math.ceil(n / batch_size)
            total = epochs * steps_per_epoch
            step = 0
            for _ in range(epochs):
                perm = torch.randperm(n, generator=gen).to(x.device)
                for i in range(0, n, batch_size):
                    idx = perm[i:i + batch_size]
                    for g in opt.param_groups:
                        g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / total))
                    opt.zero_grad()
                    objective(x[idx], train_y[idx]).backward()
                    opt.step()
                    step += 1
    with torch.no_grad():
        pred = (xt @ w + b).argmax(dim=1)
        return float((pred == test_y).double().mean()) * 100.0


# --------------------------------------------------------------------------------------------------------------
# Weighted kNN
# --------------------------------------------------------------------------------------------------------------
@torch.no_grad()
def knn_predict(train_x: Tensor, train_y: Tensor, test_x: Tensor, *, k: int = 200, temperature: float = 0.1,
                num_classes: int | None = None, chunk_size: int | None = None) -> Tensor:
    """Weighted-kNN class predictions (M,) for ``test_x`` (M, D) from ``train_x`` (N, D), ``train_y`` (N,)."""
    train_x = _check_features("train_x", train_x)
    test_x = _check_features("test_x", test_x)
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"train_x has {train_x.shape[1]} features but test_x has {test_x.shape[1]}; extract both "
                         "with the same network")
    train_y = _check_labels("train_y", train_y, train_x.shape[0]).to(train_x.device)
    _check_pos_int("k", k)
    temperature = _check_pos_real("temperature", temperature)
    if num_classes is None:
        num_classes = int(train_y.max()) + 1
    _check_pos_int("num_classes", num_classes)
    if int(train_y.max()) >= num_classes:
        raise ValueError(f"train_y has label {int(train_y.max())} but num_classes={num_classes}")
    n = train_x.shape[0]
    k = min(k, n)
    if chunk_size is None:
        chunk_size = max(1, 2**24 // n)  # about 64 MB of float32 similarities per chunk
    _check_pos_int("chunk_size", chunk_size)
    dtype = torch.float64 if torch.float64 in (train_x.dtype, test_x.dtype) else torch.float32
    bank = F.normalize(train_x.to(dtype), dim=1)
    preds = []
    for i in range(0, test_x.shape[0], chunk_size):
        q = F.normalize(test_x[i:i + chunk_size].to(bank.device, dtype), dim=1)
        sim, idx = (q @ bank.T).topk(k, dim=1)
        weight = ((sim - sim[:, :1]) / temperature).exp()  # exp(s/T) up to a per-row factor: same argmax
        scores = torch.zeros(q.shape[0], num_classes, dtype=dtype, device=q.device)
        scores.scatter_add_(1, train_y[idx], weight)
        preds.append(scores.argmax(dim=1))
    return torch.cat(preds)


def knn_accuracy(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, *, k: int = 200,
                 temperature: float = 0.1, chunk_size: int | None = None) -> float:
    """Top-1 accuracy (%) of the weighted kNN classifier (cosine similarity, weights exp(s/T); InstDisc)."""
    train_x, train_y, test_x, test_y, num_classes = _check_pair(train_x, train_y, test_x, test_y)
    pred = knn_predict(train_x, train_y, test_x, k=k, temperature=temperature, num_classes=num_classes,
                       chunk_size=chunk_size)
    return float((pred == test_y).double().mean()) * 100.0


# --------------------------------------------------------------------------------------------------------------
# Collapse diagnostics
# --------------------------------------------------------------------------------------------------------------
def spectral_entropy_rank(values: Tensor, eps: float = 0.0) -> float:
    """exp(−Σ p_k log p_k) with p_k = v_k/Σv + eps for non-negative ``values`` (0·log 0 = 0); 0 if all are 0."""
    v = values.detach().to(torch.float64).flatten()
    if v.numel() == 0:
        raise ValueError("values is empty; pass the singular values or eigenvalues of a non-empty matrix")
    if not bool(torch.isfinite(v).all()):
        return float("nan")
    if bool((v < 0).any()):
        raise ValueError("values must be non-negative (singular values or eigenvalues of a PSD matrix)")
    total = v.sum()
    if float(total) == 0.0:
        return 0.0
    p = v / total + eps
    entropy = -torch.special.xlogy(p, p).sum()
    return float(entropy.exp())


def _as_matrix(name: str, z) -> Tensor:
    if not isinstance(z, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, D), got {type(z).__name__}")
    if z.dim() != 2:
        raise ValueError(f"{name} must have shape (N, D); got shape {tuple(z.shape)}")
    if z.is_complex():
        raise TypeError(f"{name} is complex; pass real embeddings")
    if z.shape[0] < 1 or z.shape[1] < 1:
        raise ValueError(f"{name} is empty: shape {tuple(z.shape)}")
    return z.detach().to(torch.float64)


def effective_rank(x: Tensor) -> float:
    """Roy & Vetterli (2007) effective rank of the matrix ``x``: exp of the entropy of its normalised singular
    values. ≈ r for r equal non-zero singular values, 1 for a rank-1 matrix, 0 for the zero matrix."""
    x = _as_matrix("x", x)
    if not bool(torch.isfinite(x).all()):
        return float("nan")
    return spectral_entropy_rank(torch.linalg.svdvals(x))


def rankme(z: Tensor, eps: float = RANKME_EPS) -> float:
    """RankMe (Garrido et al. 2023) of the embedding matrix ``z`` (N, D): p_k = σ_k/‖σ‖₁ + eps, exp(H(p))."""
    z = _as_matrix("z", z)
    if not bool(torch.isfinite(z).all()):
        return float("nan")
    return spectral_entropy_rank(torch.linalg.svdvals(z), eps)


def std_normalized(z: Tensor) -> float:
    """Mean over dimensions of the per-dimension std (unbiased) of the ℓ2-normalised rows of ``z`` (N ≥ 2)."""
    z = _as_matrix("z", z)
    if z.shape[0] < 2:
        raise ValueError(f"z needs N >= 2 rows for a standard deviation, got N={z.shape[0]}")
    if not bool(torch.isfinite(z).all()):
        return float("nan")
    return float(F.normalize(z, dim=1).std(dim=0).mean())


def collapse_metrics(z: Tensor) -> dict:
    """``std_normalized``, ``rankme`` (of Z) and ``effective_rank`` (of Z's covariance) of embeddings ``z`` (N, D).

    Ideal values for embeddings spread isotropically: std_normalized ≈ 1/√D, rankme and effective_rank ≈
    min(N, D). Non-finite embeddings give NaN for every metric.
    """
    z = _as_matrix("z", z)
    if z.shape[0] < 2:
        raise ValueError(f"z needs N >= 2 rows for collapse metrics, got N={z.shape[0]}")
    if not bool(torch.isfinite(z).all()):
        nan = float("nan")
        return {"std_normalized": nan, "rankme": nan, "effective_rank": nan}
    zc = z - z.mean(dim=0)
    cov_eig = torch.linalg.svdvals(zc).square() / (z.shape[0] - 1)  # the eigenvalues of the covariance
    return {
        "std_normalized": std_normalized(z),
        "rankme": rankme(z),
        "effective_rank": spectral_entropy_rank(cov_eig),
    }


# --------------------------------------------------------------------------------------------------------------
# Everything at once
# --------------------------------------------------------------------------------------------------------------
def evaluate_backbone(backbone: nn.Module, train_ds_images: Tensor, train_labels: Tensor, test_images: Tensor,
                      test_labels: Tensor, normalize_fn: Callable[[Tensor], Tensor] | None, device,
                      batch_size: int = 512, *, projector: nn.Module | None = None, knn_k: int = 200,
                      knn_temperature: float = 0.1, probe: dict | None = None) -> dict:
    """Linear probe and kNN of the frozen ``backbone``'s features, and collapse diagnostics.

    Returns ``linear_top1``, ``knn_top1`` (%) and the :func:`collapse_metrics` of the test features. With a
    ``projector``, the unprefixed collapse metrics are those of the projector's outputs on the test features
    (the space the regularizer acts on) and the backbone's are added with the prefix ``backbone_`` (the keys
    ``sslbench.training.train`` records). ``probe`` holds keyword arguments of :func:`linear_probe`.

    The features are extracted once per split and stay on ``device``: the kNN (matrix products) and the probe
    (full-batch L-BFGS on the cached features) run there too.
    """
    f_train, f_test = (extract_features(backbone, x, batch_size, device, normalize_fn, out_device=device or "cpu")
                       for x in (train_ds_images, test_images))
    y_train, y_test = train_labels.to(f_train.device), test_labels.to(f_train.device)
    out = {
        "linear_top1": linear_probe(f_train, y_train, f_test, y_test, **(probe or {})),
        "knn_top1": knn_accuracy(f_train, y_train, f_test, y_test, k=knn_k, temperature=knn_temperature),
    }
    if projector is None:
        out.update(collapse_metrics(f_test))
        return out
    z = _map_features(projector, f_test, batch_size, device)
    out.update(collapse_metrics(z))
    out.update({f"backbone_{k}": v for k, v in collapse_metrics(f_test).items()})
    return out
