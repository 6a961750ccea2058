"""Rank functions for tests/test_train.py (module level so that ``spawn`` can pickle them)."""

import torch

from sslbench.training import train as T

#: a tiny run on synthetic data (48 images of 1x12x12, 3 steps per epoch): the loop's tests train this
TINY = dict(dataset="synthetic", data_options={"num_samples": 48, "channels": 1, "height": 12, "width": 12,
                                               "num_classes": 4},
            backbone="convnet", projector="32", dim=16, batch_size=16, epochs=2, optimizer="lars", lr=0.5,
            warmup_epochs=0.5, device="cpu", log_every=1, knn_k=5, probe_epochs=3, eval_batch_size=64,
            progress=False, verbose=False, augment="none")


def tiny_config(tmp_path, **kw):
    """The TrainConfig of TINY writing under ``tmp_path`` (store, logs, checkpoints), with ``kw`` on top."""
    base = dict(TINY, out=str(tmp_path / "train.jsonl"), log_dir=str(tmp_path / "runs"),
                checkpoint_dir=str(tmp_path / "ckpt"))
    base.update(kw)
    return T.TrainConfig(**base)


def deterministic_views(images, views):
    """Views that depend on each image alone (no RNG), so that every rank and a single process see the same ones:
    view v is the image shifted by v pixels along the width (circularly) and scaled by 1 + 0.1·v."""
    x = images.float() / 255.0
    return torch.stack([torch.roll(x, shifts=v, dims=-1) * (1.0 + 0.1 * v) - 0.5 for v in range(views)])


def global_batchnorm(rank, world_size, x_full, weight, bias):
    """GlobalBatchNorm on this rank's rows of x_full; the loss is the mean over local rows, so that the mean of
    the ranks' losses is the single-process loss."""
    n = x_full.shape[0] // world_size
    x = x_full[rank * n:(rank + 1) * n].clone().requires_grad_(True)
    bn = T.GlobalBatchNorm(x_full.shape[1], dtype=x_full.dtype)
    with torch.no_grad():
        bn.weight.copy_(weight)
        bn.bias.copy_(bias)
    y = bn(x)
    loss = (y.sin() * torch.arange(1, y.shape[1] + 1, dtype=y.dtype).view(1, -1, *[1] * (y.dim() - 2))).mean()
    loss.backward()
    return {"y": y.detach(), "loss": loss.detach(), "grad_x": x.grad, "grad_w": bn.weight.grad,
            "grad_b": bn.bias.grad, "running_mean": bn.running_mean, "running_var": bn.running_var}


def train_run(rank, world_size, cfg_kwargs):
    """One training run inside an initialised process group; returns the record and, on rank 0, the log lines."""
    import json

    cfg = T.TrainConfig(**cfg_kwargs)
    record = T.train(cfg, make_views=deterministic_views)
    lines = None
    if rank == 0 and record["extra"]["log"]:
        with open(record["extra"]["log"]) as f:
            lines = [json.loads(line) for line in f]
    return {"record": record, "log": lines}
