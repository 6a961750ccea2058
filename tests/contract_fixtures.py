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
