"""What EVERY registered regularizer must do, parametrised over ``regularizers.available()``: its module imports
(a missing one fails, never skips), hyper-parameter validation and the ``hparam_defaults`` round trip, sslbench's
own input messages, and every row of the regularizer contract that ``sslbench check`` runs on a user's class
(:mod:`sslbench.execution.contract`: the dtype policy and autocast, V = 3 views, inputs left unchanged, gradcheck,
the same result for the same seed, the state dict, bad input, and the distributed contract with 2 real gloo
processes). One contract: the rows are the contract module's checks, run here with the built-ins' VARIANTS. A new
regularizer is covered by adding its registry line; ``VARIANTS`` may list hyper-parameters that select its other
code paths, and ``BAD_HPARAMS`` its own boundary values. Formula references and module-specific behaviour stay in
the per-regularizer test files."""

import math

import pytest
import torch

from sslbench import regularizers
from sslbench.execution import contract
from sslbench.regularizers import Regularizer

NAMES = regularizers.available()

# hyper-parameters that select other code paths; a name not listed runs with its defaults
VARIANTS = {
    "barlow_twins": [dict(algorithm=a, multiview=m, lambd=0.05)
                     for a in ("cross_correlation", "gram", "auto") for m in ("pairs", "mean")],
    "vicreg": [dict(algorithm=a, multiview=m, std_coeff=10.0)
               for a in ("cross_correlation", "gram", "auto") for m in ("pairs", "mean")],
    "barlow_twins_fft": [dict(block_size=3), dict(block_size=3, power=1, multiview="mean"), dict(block_size=4)],
    "vicreg_fft": [dict(block_size=3), dict(block_size=4, power=1, multiview="mean")],
    "sfrik": [dict(sim_coeff=3.0, weights=(1.0, 2.0, 3.0, 0.5)), dict(sim_coeff=3.0, multiview="mean")],
    "uniformity": [dict(sim_coeff=3.0, t=2.0), dict(sim_coeff=3.0, multiview="mean")],
    "simclr": [dict(temperature=0.3), dict(temperature=0.3, multiview="mean")],
    "directpred": [dict(tau=0.6), dict(tau=0.6, variance_coeff=4.0)],
    "isoloss": [dict(tau=0.6, dim=7, eps=0.1)],
}
# the variance add-on (sslbench.regularizers.variance) on a few regularizers of each kind
ADD_ON = [("barlow_twins", dict(lambd=0.2, variance_coeff=4.0)), ("sfrik", dict(variance_coeff=4.0)),
          ("byol", dict(variance_coeff=4.0))]
CASES = [(name, hp) for name in NAMES for hp in VARIANTS.get(name, [{}])] + ADD_ON
CASE_IDS = [f"{name}-{i}" for i, (name, _) in enumerate(CASES)]
# terms that are global-batch quantities: every rank must hold the single-process value (the others are
# per-rank means whose mean over ranks is the single-process value)
GLOBAL_TERMS = {"on_diagonal", "off_diagonal", "variance", "covariance", "variance_addon"}
GLOBAL_TERM_NAMES = {"barlow_twins", "vicreg"}
N, D = contract.N, contract.D


def make_inputs(name, views, n, d, seed):
    """The arguments of one float64 call: ``(Z,)`` with Z (V, N, D) for a symmetric regularizer, ``(online,
    target)`` for an asymmetric one (the contract's correlated views)."""
    count = 1 if regularizers.get_class(name).symmetric else 2
    return tuple(contract.correlated_views(views, n, d, seed + k) for k in range(count))


def state_of(reg):
    return {k: v.clone() for k, v in reg.state_dict().items()}


def assert_states_equal(a, b, msg=""):
    assert set(a) == set(b), msg
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=f"{msg} {k}")


def call(reg, views):
    """Call with a list of views: ``reg(*views)``, or for an asymmetric one ``reg(views, clean targets)``."""
    if reg.symmetric:
        return reg(*views)
    return reg(views, [torch.randn(6, 5) for _ in views])


# --------------------------------------------------------------------------------------------------------------
# The registry: every registered module imports; a missing one fails
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_registered_module_imports(name):
    cls = regularizers.get_class(name)  # an ImportError here fails the test: it is never turned into a skip
    assert issubclass(cls, Regularizer)
    assert isinstance(regularizers.create(name), Regularizer)


def test_a_registered_module_that_is_missing_fails(monkeypatch):
    monkeypatch.setitem(regularizers._REGISTRY, "ghost", "no_such_module:Ghost")
    assert "ghost" in regularizers.available()
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        test_registered_module_imports("ghost")
    with pytest.raises(ModuleNotFoundError):
        regularizers.hparam_defaults("ghost")


# --------------------------------------------------------------------------------------------------------------
# The contract's local rows (sslbench check), every case
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("check", list(contract.LOCAL_CHECKS))
@pytest.mark.parametrize("name, hp", CASES, ids=CASE_IDS)
def test_contract(name, hp, check):
    """The dtype policy (float32 loss for half inputs, float64 kept, equal to the loss of the rounded inputs), the
    same under autocast, V = 3 with gradients to every view, inputs unchanged, gradcheck, seeds, the state dict
    round trip and bad input: every row passes."""
    row = contract.run_check(contract.LOCAL_CHECKS[check], contract.Subject(name, hp), check)
    assert row.status == contract.PASS, str(row)


# --------------------------------------------------------------------------------------------------------------
# Bad input: ValueError / TypeError with a one-line message naming the problem
# --------------------------------------------------------------------------------------------------------------
BAD_INPUTS = {
    "one view": (lambda: [torch.randn(1, 6, 5)], ValueError, "at least 2 views"),
    "mismatched shapes": (lambda: [torch.randn(6, 5), torch.randn(6, 4)], ValueError, "same shape"),
    "N < 2": (lambda: [torch.randn(1, 5)] * 2, ValueError, "N >= 2"),
    "D < 2": (lambda: [torch.randn(6, 1)] * 2, ValueError, "D >= 2"),
    "integer": (lambda: [torch.ones(6, 5, dtype=torch.long)] * 2, TypeError, "floating point"),
    "not a tensor": (lambda: ["a", "b"], TypeError, "torch.Tensor"),
    "3-d view": (lambda: [torch.randn(6, 5, 2)] * 2, ValueError, r"shape \(N, D\)"),
}


def assert_one_line(excinfo):
    message = str(excinfo.value)
    assert message and "\n" not in message


@pytest.mark.parametrize("case", list(BAD_INPUTS))
@pytest.mark.parametrize("name", NAMES)
def test_bad_input_raises_a_clear_error(name, case):
    make, exc, match = BAD_INPUTS[case]
    with pytest.raises(exc, match=match) as excinfo:
        call(regularizers.create(name), make())
    assert_one_line(excinfo)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("where", [0, -1])
@pytest.mark.parametrize("name", NAMES)
def test_nonfinite_input_raises_with_check_finite_and_leaves_the_state(name, where, value):
    """check_finite=True: NaN/Inf in any input (the last one is the target of an asymmetric regularizer) raises
    before any state changes; without it the call goes through."""
    inputs = list(make_inputs(name, 2, N, D, seed=2))
    inputs[where][where, 3, 2] = value  # view 0 of the first input or the last view of the last one
    reg = regularizers.create(name, check_finite=True).double()
    reg(*make_inputs(name, 2, N, D, seed=3))  # a good call first, so that stateful ones have a state
    before = state_of(reg)
    with pytest.raises(ValueError, match="NaN or Inf") as excinfo:
        reg(*inputs)
    assert_one_line(excinfo)
    assert_states_equal(state_of(reg), before)
    regularizers.create(name).double()(*inputs)  # no check by default


# --------------------------------------------------------------------------------------------------------------
# Hyper-parameters
# --------------------------------------------------------------------------------------------------------------
def generic_bad_values(default):
    """Values that no hyper-parameter with this default accepts: wrong types, NaN, negative numbers."""
    if isinstance(default, bool):
        return ["yes", 1]
    if isinstance(default, (int, float)):
        return [float("nan"), -1.0, "1"]
    if isinstance(default, str):
        return ["no-such-choice", 3]
    if isinstance(default, tuple):
        return [("x",), (1.0, -2.0)]
    return ["no-such-value"]  # None: an optional object or size


GENERIC_BAD = [(name, {key: bad}, key) for name in NAMES
               for key, default in regularizers.hparam_defaults(name).items() for bad in generic_bad_values(default)]

# the boundary values of each regularizer's ranges (from the spec and the official code)
BAD_HPARAMS = [
    ("barlow_twins", dict(lambd=-0.1), "lambd"), ("barlow_twins", dict(eps=0.0), "eps"),
    ("barlow_twins", dict(eps=-1e-5), "eps"), ("barlow_twins", dict(scale=0.0), "scale"),
    ("barlow_twins", dict(lambd=float("inf")), "lambd"),
    ("vicreg", dict(cov_coeff=-0.5), "cov_coeff"), ("vicreg", dict(eps=0.0), "eps"),
    ("vicreg", dict(sim_coeff=float("inf")), "sim_coeff"), ("vicreg", dict(algorithm="fft"), "algorithm"),
    *[(name, kw, next(iter(kw))) for name in ("barlow_twins_fft", "vicreg_fft") for kw in (
        dict(block_size=0), dict(block_size=-3), dict(block_size=2.5), dict(block_size=True), dict(power=3),
        dict(power=0),
        dict(power=True), dict(power="2"), dict(generator=42), dict(eps=0.0))],
    ("barlow_twins_fft", dict(scale=0.0), "scale"), ("vicreg_fft", dict(cov_coeff=float("nan")), "cov_coeff"),
    ("sfrik", dict(weights=()), "weights"), ("sfrik", dict(weights=(1.0, -2.0)), r"weights\[1\]"),
    ("sfrik", dict(weights=(1.0, float("inf"))), r"weights\[1\]"), ("sfrik", dict(weights=(True, 1.0)),
                                                                      r"weights\[0\]"),
    ("sfrik", dict(weights=None), "weights"), ("sfrik", dict(weights=3.0), "weights"),
    ("sfrik", dict(weights="1-x-40"), "weights"),
    ("uniformity", dict(t=0.0), "t="), ("uniformity", dict(t="2.5"), "t="),
    ("simclr", dict(temperature=0.0), "temperature"), ("simclr", dict(temperature=float("inf")), "temperature"),
    ("simclr", dict(temperature=True), "temperature"),
    *[(name, kw, next(iter(kw))) for name in ("directpred", "isoloss") for kw in (
        dict(tau=1.5), dict(tau=1.0), dict(tau=-0.1), dict(eps=-0.5), dict(dim=1), dict(dim=2.5))],
    ("barlow_twins", dict(variance_coeff=-1.0), "variance_coeff=-1.0 must be >= 0"),
    ("barlow_twins", dict(variance_coeff=1.0, variance_eps=0.0), "variance_eps=0.0 must be > 0"),
    ("byol", dict(variance_coeff=float("nan")), "variance_coeff=nan must be a finite real number"),
]


@pytest.mark.parametrize("name, hp, match", GENERIC_BAD + BAD_HPARAMS,
                         ids=[f"{n}-" + ",".join(f"{k}={v!r}" for k, v in hp.items()) for n, hp, _ in
                              GENERIC_BAD + BAD_HPARAMS])
def test_out_of_range_hyper_parameter_is_named(name, hp, match):
    with pytest.raises(ValueError, match=match) as excinfo:
        regularizers.create(name, **hp)
    assert_one_line(excinfo)
    own = set(regularizers.hparam_names(name)) - {"variance_coeff", "variance_eps"}
    if set(hp) <= own:  # the class itself validates too
        with pytest.raises(ValueError, match=match):
            regularizers.get_class(name)(**hp)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_hyper_parameter_is_named_with_the_accepted_ones(name):
    with pytest.raises(ValueError, match=r"unknown hyper-parameter\(s\) lamda.*accepted: ") as excinfo:
        regularizers.create(name, lamda=0.1)
    assert_one_line(excinfo)
    for accepted in regularizers.hparam_names(name):
        assert accepted in str(excinfo.value)


@pytest.mark.parametrize("name", NAMES)
def test_hparam_defaults_round_trip_through_create(name):
    defaults = regularizers.hparam_defaults(name)
    assert list(defaults) == regularizers.hparam_names(name)
    reg = regularizers.create(name, **defaults)
    assert type(reg) is regularizers.get_class(name)  # variance_coeff=0: no add-on
    assert reg.hparams() == regularizers.create(name).hparams()
    assert all(defaults[k] == v for k, v in reg.hparams().items())
    assert regularizers.create(name, **reg.hparams()).hparams() == reg.hparams()


@pytest.mark.parametrize("name, hp", CASES, ids=CASE_IDS)
def test_create_records_every_hyper_parameter(name, hp):
    reg = regularizers.create(name, **hp)
    own = {k: v for k, v in regularizers.hparam_defaults(name).items() if k not in ("variance_coeff", "variance_eps")}
    extra = {"variance_coeff": hp["variance_coeff"], "variance_eps": 1e-4} if "variance_coeff" in hp else {}
    assert reg.hparams() == {**own, **hp, **extra}
    assert regularizers.create(name, **reg.hparams()).hparams() == reg.hparams()


# --------------------------------------------------------------------------------------------------------------
# The contract's distributed row (2 real gloo processes, every case on one pair)
# --------------------------------------------------------------------------------------------------------------
# embeddings large enough for the overflow guards to rescale (differently on each rank but for the all-reduce)
EXTREME_SCALE_CASES = [contract.DistributedCase(name, (("algorithm", a),), 2, 90, N, D, scale)
                       for a in ("cross_correlation", "gram")
                       for name, scale in (("barlow_twins", 1e30), ("vicreg", 1e8))] + [
    contract.DistributedCase("sfrik", (), 2, 91, N, D, 1e30),
    contract.DistributedCase("barlow_twins_fft", (("block_size", 3),), 2, 92, N, D, 1e30)]


@pytest.mark.slow
@pytest.mark.distributed
def test_distributed_contract():
    """The contract's distributed row for every case, V = 2 and 3: the mean over ranks of the losses (and terms) is
    the single-process loss on the concatenated batch; each rank's gradient w.r.t. its rows is world_size × the
    single-process one; every buffer (DirectPred's F) equals the single-process one on every rank; a random draw
    (FFT permutation, the ranks' generators seeded differently) follows rank 0. Beyond the contract: global-batch
    terms hold the single-process value on every rank."""
    cases = [contract.DistributedCase(name, tuple(hp.items()), views, 20 + i, N, D, 1.0)
             for i, (name, hp) in enumerate(CASES) for views in (2, 3)] + EXTREME_SCALE_CASES
    results = contract.run_distributed(cases)
    for case, ranks in zip(cases, results):
        row = contract.distributed_row(case, ranks)
        assert row.status == contract.PASS, f"{case}: {row}"
        subject = case.subject()
        full = subject.args(case.views, case.n, case.d, case.seed, scale=case.scale)
        single = subject.build(case.gen_seeds[0]).double().train()(*full)
        for k, v in single.terms.items():
            if k in GLOBAL_TERMS and (case.spec in GLOBAL_TERM_NAMES or k == "variance_addon"):
                for r in ranks:
                    torch.testing.assert_close(r["terms"][k], v.detach(), msg=f"{case} {k} on every rank")
    assert not math.isnan(sum(float(r["loss"]) for ranks in results for r in ranks))
