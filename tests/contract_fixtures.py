"""Losses that break one property of the regularizer contract each, for tests/test_check.py (imported by the
contract's child processes from their ``module:Class`` spec). They derive from the example plugin's correct loss
(examples/plugin/src, put on sys.path by the tests)."""

from sslbench_toy.losses import ToyDecorrelation


class NoChecks(ToyDecorrelation):
    """The correct loss without input validation: bad input returns a number."""

    @staticmethod
    def check(views) -> None:
        return None


class NoGather(ToyDecorrelation):
    """Global-batch statistics of the local rows only: under DDP each rank's loss is the loss of its own rows."""

    def gather(self, z):
        return z


NotALoss = "a string, not a class"


class FailsUnderDDP(ToyDecorrelation):
    """Raises on rank 1 only: rank 0 then waits in its gather until the other process is gone."""

    def gather(self, z):
        import torch.distributed as dist

        if dist.is_initialized() and dist.get_rank() == 1:
            raise RuntimeError("this loss does not support torch.distributed")
        return super().gather(z)


class TwoViews(ToyDecorrelation):
    """``forward(z1, z2)``: two views only (the V = 3 row does not apply)."""

    def forward(self, z1, z2):
        return super().forward(z1, z2)


class Float32Only(ToyDecorrelation):
    """Computes in float32 whatever the input (float64 included)."""

    def forward(self, *views):
        return super().forward(*[z.float() for z in views])
