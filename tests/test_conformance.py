"""What EVERY registered regularizer must do, parametrised over ``regularizers.available()``: its module imports
(a missing one fails, never skips), the dtype policy and autocast, bad input, hyper-parameter validation and the
``hparam_defaults`` round trip, the state dict, finite gradients, and the distributed contract with 2 real gloo
processes. A new regularizer is covered by adding its registry line; ``VARIANTS`` may list hyper-parameters that
select its other code paths, and ``BAD_HPARAMS`` its own boundary values. Formula references, gradchecks and
module-specific behaviour stay in the per-regularizer test files."""

import io
import math

import pytest
import torch

from dist_common_cases import build, conformance_rank, make_inputs
from distributed_harness import run_ranks
from sslbench import regularizers
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
N, D = 8, 7
DTYPES = [(torch.float16, torch.float32), (torch.bfloat16, torch.float32), (torch.float32, torch.float32),
          (torch.float64, torch.float64)]


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
# Dtype policy and autocast
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype, expected", DTYPES)
@pytest.mark.parametrize("name, hp", CASES, ids=CASE_IDS)
def test_dtype_policy(name, hp, dtype, expected):
    """Half and float32 inputs give a float32 loss and terms, float64 stays float64; the value is the loss of the
    rounded inputs in the compute dtype; gradients reach the input in its own dtype, finite; buffers created at the
    first call are in the compute dtype."""
    inputs = [x.to(dtype) for x in make_inputs(name, 2, 12, D, seed=1, dtype=torch.float32)]
    inputs[0].requires_grad_(True)
    reg = build(name, hp)
    before = set(reg.state_dict())
    out = reg(*inputs)
    assert out.loss.dtype == expected and out.loss.dim() == 0
    assert all(t.dtype == expected for t in out.terms.values())
    out.loss.backward()
    assert inputs[0].grad.dtype == dtype and bool(torch.isfinite(inputs[0].grad).all())
    ref = build(name, hp)(*[x.detach().to(expected) for x in inputs])
    torch.testing.assert_close(out.loss, ref.loss)
    for key, value in reg.state_dict().items():
        if key not in before and value.is_floating_point():
            assert value.dtype == expected, key


@pytest.mark.parametrize("name, hp", CASES, ids=CASE_IDS)
def test_autocast_computes_in_full_precision(name, hp):
    """A loss called under torch.autocast(bfloat16) gives the loss, terms and gradients computed without it, in
    float32;
    embeddings produced under autocast (bfloat16) give a finite float32 loss."""
    inputs = make_inputs(name, 3, 20, D, seed=9, dtype=torch.float32)
    plain_in = [x.clone().requires_grad_(i == 0) for i, x in enumerate(inputs)]
    expected = build(name, hp, seed=3)(*plain_in)
    expected.loss.backward()
    ac_in = [x.clone().requires_grad_(i == 0) for i, x in enumerate(inputs)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = build(name, hp, seed=3)(*ac_in)
    got.loss.backward()  # outside the context, as torch.amp recommends
    assert got.loss.dtype == torch.float32
    torch.testing.assert_close(got.loss, expected.loss)
    for k in expected.terms:
        torch.testing.assert_close(got.terms[k], expected.terms[k])
    torch.testing.assert_close(ac_in[0].grad, plain_in[0].grad)
    lin = torch.nn.Linear(D, D)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        emb = [lin(x) for x in inputs]
        assert emb[0].dtype == torch.bfloat16
        res = build(name, hp, seed=3)(*emb)
    assert res.loss.dtype == torch.float32 and bool(torch.isfinite(res.loss))


@pytest.mark.parametrize("name, hp", CASES, ids=CASE_IDS)
def test_gradients_are_finite_and_reach_every_view(name, hp):
    inputs = make_inputs(name, 3, N, D, seed=5)
    inputs[0].requires_grad_(True)
    build(name, hp)(*inputs).loss.backward()
    grad = inputs[0].grad
    assert bool(torch.isfinite(grad).all())
    assert all(float(g.abs().sum()) > 0 for g in grad)  # every view of the first input gets a gradient


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
# State dict
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, hp", CASES, ids=CASE_IDS)
def test_state_dict_round_trip(name, hp):
    """The state dict holds tensors only (it loads with weights_only=True) and restores the state: a fresh module
    loaded from it (lazily created buffers included) continues exactly like the original."""
    reg = build(name, hp).double().train()
    for seed in (10, 11):
        reg(*make_inputs(name, 2, N, D, seed))
    buffer = io.BytesIO()
    torch.save(reg.state_dict(), buffer)
    buffer.seek(0)
    fresh = build(name, hp).double()
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    assert_states_equal(state_of(fresh), state_of(reg))
    for module in (reg, fresh):
        if getattr(module, "generator", None) is not None:
            module.generator.manual_seed(5)
    nxt = make_inputs(name, 2, N, D, 12)
    torch.testing.assert_close(fresh(*nxt).loss, reg(*nxt).loss)
    assert_states_equal(state_of(fresh), state_of(reg))
    torch.testing.assert_close(fresh.eval()(*nxt).loss, reg.eval()(*nxt).loss)


# --------------------------------------------------------------------------------------------------------------
# Distributed contract (2 real gloo processes, every case in one spawn)
# --------------------------------------------------------------------------------------------------------------
# embeddings large enough for the overflow guards to rescale (differently on each rank but for the all-reduce)
EXTREME_SCALE_CASES = [(name, dict(algorithm=a), 2, 90, N, D, scale) for a in ("cross_correlation", "gram")
                       for name, scale in (("barlow_twins", 1e30), ("vicreg", 1e8))] + [
    ("sfrik", {}, 2, 91, N, D, 1e30), ("barlow_twins_fft", dict(block_size=3), 2, 92, N, D, 1e30)]


@pytest.mark.slow
@pytest.mark.distributed
def test_distributed_contract():
    """The mean over ranks of the losses (and terms) is the single-process loss on the concatenated batch; each
    rank's gradient w.r.t. its rows is world_size × the single-process one; global-batch terms and every buffer
    (DirectPred's F) are identical on every rank; a random draw (FFT permutation) follows rank 0."""
    world, gen_seeds = 2, (11, 99)
    cases = [(name, hp, views, 20 + i, N, D, 1.0) for i, (name, hp) in enumerate(CASES) for views in (2, 3)]
    cases += EXTREME_SCALE_CASES
    results = run_ranks(conformance_rank, world, cases, gen_seeds)
    h = N // world
    for c, (name, hp, views, seed, n, d, scale) in enumerate(cases):
        msg = f"{name} {hp} V={views} scale={scale}"
        inputs = [x * scale for x in make_inputs(name, views, n, d, seed)]
        inputs[0].requires_grad_(True)
        reg = build(name, hp, seed=gen_seeds[0]).double().train()
        single = reg(*inputs)
        single.loss.backward()
        ranks = [results[r][c] for r in range(world)]
        torch.testing.assert_close(sum(r["loss"] for r in ranks) / world, single.loss.detach(), msg=msg)
        for k, v in single.terms.items():
            torch.testing.assert_close(sum(r["terms"][k] for r in ranks) / world, v.detach(), msg=f"{msg} {k}")
            if k in GLOBAL_TERMS and (name in GLOBAL_TERM_NAMES or k == "variance_addon"):
                for r in ranks:
                    torch.testing.assert_close(r["terms"][k], v.detach(), msg=f"{msg} {k} on every rank")
        for r, res in enumerate(ranks):
            torch.testing.assert_close(res["grad"], world * inputs[0].grad[:, r * h:(r + 1) * h],
                                       msg=f"{msg} rank {r}")
            assert_states_equal(res["state"], state_of(reg), msg=f"{msg} rank {r} state")
    assert not math.isnan(sum(float(r["loss"]) for res in results for r in res))
