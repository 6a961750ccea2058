"""The contract every regularizer meets, runnable on any class: the built-ins, a ``package.module:Class`` spec, an
entry-point name, a ``Regularizer`` subclass or a plain ``torch.nn.Module`` loss.

``sslbench check SPEC...`` prints these rows; a user's pytest suite calls :func:`assert_contract`; the project's
own conformance test (``tests/test_conformance.py``) runs the same checks over ``regularizers.available()``.

>>> from sslbench.execution.contract import assert_contract, contract_rows
>>> assert_contract("mypkg.losses:MyLoss", lambd=0.01)        # doctest: +SKIP
>>> for row in contract_rows("barlow_twins"): print(row)       # doctest: +SKIP

The properties (one :class:`Row` each: pass, fail or warn, and one line why):

* **dtypes** — float32, bfloat16, float16 and float64 inputs give a 0-dim finite loss and finite gradients. A
  *pass* also needs sslbench's dtype policy: the loss is float32 (float64 for float64 inputs) and equals the loss
  of the rounded inputs computed in that dtype; a finite loss computed in a lower precision is a *warn*.
* **autocast** — called under ``torch.autocast("cpu", bfloat16)`` the loss, terms and gradients equal those
  computed without it (a *warn* when they only are finite), and bfloat16 embeddings made under autocast give a
  finite float32 loss.
* **V = 3 views** — where ``forward`` takes more than two views: a finite loss whose gradient reaches every view.
* **inputs unchanged** — the call and its backward leave every input bit-for-bit as it was.
* **gradcheck** — ``torch.autograd.gradcheck`` in float64 at V = 2, N = 6, D = 7 (a module with buffers is first
  called once in training mode, then checked in ``eval()`` so that its statistics are frozen). A class whose
  gradient is by design not the derivative of its value (IsoLoss) says so with ``surrogate_gradient = True``.
* **same seed** — two modules built and called with the same seeds give bitwise the same losses and gradients.
* **state_dict** — the state dict holds tensors only (``torch.load(weights_only=True)``), and a fresh module that
  loads it continues exactly like the original.
* **bad input** — mismatched shapes, N < 2 and NaN (with ``check_finite=True`` where the class has that option)
  raise ``ValueError``/``TypeError`` with a one-line message, and leave the state unchanged. A call that returns a
  number is a *warn* (the class has no such check); another exception (from deep in torch) is a *warn* too.
* **distributed** — on 2 real gloo processes, each holding its rows of the batch: the mean over ranks of the loss
  (and of every term) equals the single-process loss on the concatenated batch, each rank's gradient w.r.t. its
  own rows equals ``world_size`` × the single-process gradient (DDP averages the ranks' gradients, so this is what
  makes the averaged gradient the single-process one), and every buffer equals the single-process buffer. A loss
  gathered with a plain ``torch.distributed.all_gather`` gets 1/world_size of that gradient (lightly #1977): the
  row names the measured ratio and the fix.

The children of the distributed row import the class from its spec (nothing is pickled but the spec and the
hyper-parameters) with the parent's ``sys.path`` on their ``PYTHONPATH``.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from sslbench import regularizers

__all__ = ["PASS", "FAIL", "WARN", "Row", "Subject", "SpecError", "local_rows", "distributed_rows", "contract_rows",
           "assert_contract", "format_table", "make_subject", "DistributedCase", "run_distributed", "LOCAL_CHECKS"]

PASS, FAIL, WARN = "pass", "fail", "warn"
WORLD_SIZE = 2
#: the batch of the local rows: views of N samples with D features (D ≥ 4 for the FFT block sizes)
N, D = 8, 7


class SpecError(ValueError):
    """A spec that does not name a usable regularizer (unknown name, import error, bad hyper-parameter)."""


@dataclass(frozen=True)
class Row:
    """One property of the contract: its name, ``pass``/``fail``/``warn`` and one line why."""

    property: str
    status: str
    why: str

    def __str__(self) -> str:
        return f"{self.property} | {self.status.upper()} | {self.why}"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:200]}"


# --------------------------------------------------------------------------------------------------------------
# The subject: how to build and call one spec with its hyper-parameters
# --------------------------------------------------------------------------------------------------------------
def _create(spec: str, hparams: dict):
    """``regularizers.create(spec, **hparams)``; any failure (unknown name, broken plugin, bad value) is a
    :class:`SpecError` with one line."""
    try:
        module = regularizers.create(spec, **hparams)
    except ValueError as exc:  # unknown name, broken plugin (RegularizerSpecError), bad hyper-parameter
        text = " ".join(str(exc).split())
        raise SpecError(text if spec in text else f"{spec}: {text}") from None
    except Exception as exc:  # noqa: BLE001 - a plugin's __init__ may raise anything: one line naming it
        raise SpecError(f"{spec}: {_one_line(exc)}") from None
    if not isinstance(module, torch.nn.Module):
        raise SpecError(f"{spec}: create() returned a {type(module).__name__}, not a torch.nn.Module")
    return module


def _inner(module):
    """The plain module inside the adapter of :mod:`sslbench.regularizers` (``.module``), else ``module``."""
    inner = getattr(module, "module", None)
    return inner if isinstance(inner, torch.nn.Module) else module


@dataclass
class Subject:
    """One spec and its hyper-parameters. ``build(seed)`` creates a fresh module (a ``generator`` hyper-parameter,
    where the class has one, is seeded with ``seed``; the global RNG is seeded too); ``args`` makes the arguments
    of one call and ``call`` returns ``(loss, terms)`` whatever the module returns (a ``RegularizerOutput``, a
    0-dim tensor, or ``(loss, terms)``)."""

    spec: str
    hparams: dict = field(default_factory=dict)

    def __post_init__(self):
        self.hparams = dict(self.hparams)
        module = _create(self.spec, self.hparams)
        # a plugin's class, resolved once: create() looks its entry point up in the metadata on every call, and the
        # checks build hundreds of modules (gradcheck builds one per evaluation)
        self._cls = None if regularizers.is_builtin(self.spec) else type(module)
        self.symmetric = bool(getattr(module, "symmetric", True))
        self.accepted = _accepted_hparams(self.spec, module)
        self.max_views = None if not self.symmetric else _max_views(module)

    def __str__(self) -> str:
        hp = ", ".join(f"{k}={v!r}" for k, v in self.hparams.items())
        return f"{self.spec}({hp})" if hp else self.spec

    def build(self, seed: int = 0, **extra) -> torch.nn.Module:
        torch.manual_seed(seed)
        hp = {**self.hparams, **extra}
        if "generator" in self.accepted and "generator" not in self.hparams:
            hp["generator"] = torch.Generator().manual_seed(seed)
        return _create(self.spec, hp) if self._cls is None else self._cls(**hp)

    def accepts_views(self, views: int) -> bool:
        return self.max_views is None or views <= self.max_views

    def args(self, views: int, n: int, d: int, seed: int, dtype=torch.float64, scale: float = 1.0,
             grad: bool = False) -> list[torch.Tensor]:
        """``views`` tensors (N, D) for a symmetric loss; ``[online, target]`` (each (V, N, D)) for an asymmetric
        one. Correlated views with per-feature scales and offsets (:func:`correlated_views`)."""
        stacks = [correlated_views(views, n, d, seed + k, dtype) * scale for k in range(1 if self.symmetric else 2)]
        out = [z.clone() for z in stacks[0].unbind(0)] if self.symmetric else stacks
        for i, t in enumerate(out):
            t.requires_grad_(grad and (self.symmetric or i == 0))
        return out

    def differentiable(self, args: list[torch.Tensor]) -> list[torch.Tensor]:
        return args if self.symmetric else args[:1]

    def grad(self, args: list[torch.Tensor]) -> torch.Tensor | None:
        """The gradient w.r.t. the differentiable inputs, as one (V, N, D) tensor (None when none reached them)."""
        grads = [t.grad for t in self.differentiable(args)]
        if any(g is None for g in grads):
            return None
        return torch.stack(grads) if self.symmetric else grads[0]

    def rows(self, args: list[torch.Tensor], rows: slice) -> list[torch.Tensor]:
        """This rank's rows of every input (leaves, the differentiable ones requiring grad)."""
        out = [(t[rows] if self.symmetric else t[:, rows]).detach().clone() for t in args]
        for t in self.differentiable(out):
            t.requires_grad_(True)
        return out

    def call(self, module, args) -> tuple[torch.Tensor, dict]:
        return _loss_and_terms(module(*args))


def correlated_views(views: int, n: int, d: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    """(V, N, D): views = (base + 0.7·noise) · scale + offset with per-feature scales in [1, 2) and offsets, drawn in
    float64 from ``seed`` and cast to ``dtype``."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, d, generator=g, dtype=torch.float64)
    scale = 1 + torch.rand(d, generator=g, dtype=torch.float64)
    offset = 0.3 * torch.randn(d, generator=g, dtype=torch.float64)
    return torch.stack([(base + 0.7 * torch.randn(n, d, generator=g, dtype=torch.float64)) * scale + offset
                        for _ in range(views)]).to(dtype)


def _loss_and_terms(out) -> tuple[torch.Tensor, dict]:
    if isinstance(out, torch.Tensor):
        return out, {}
    if isinstance(out, (tuple, list)) and len(out) == 2 and isinstance(out[0], torch.Tensor):
        return out[0], dict(out[1] or {})
    loss = getattr(out, "loss", None)
    if isinstance(loss, torch.Tensor):
        return loss, dict(getattr(out, "terms", {}) or {})
    raise TypeError(f"forward returned {type(out).__name__}; return a 0-dim loss tensor or (loss, terms)")


def _accepted_hparams(spec: str, module) -> list[str]:
    try:
        return list(regularizers.hparam_names(spec))
    except Exception:  # noqa: BLE001 - the hyper-parameters of the class itself
        params = inspect.signature(type(_inner(module)).__init__).parameters.values()
        return [p.name for p in params if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _max_views(module) -> int | None:
    """How many views ``forward`` takes: None (any number) for ``*views``, else its positional parameters. An
    adapter around a plain module (``.module``) is looked through."""
    params = list(inspect.signature(_inner(module).forward).parameters.values())
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return None
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


def make_subject(spec: str, **hparams) -> Subject:
    return Subject(spec, hparams)


# --------------------------------------------------------------------------------------------------------------
# The local properties
# --------------------------------------------------------------------------------------------------------------
def _close(a: torch.Tensor, b: torch.Tensor, **tol) -> bool:
    try:
        torch.testing.assert_close(a, b, **tol)
        return True
    except AssertionError:
        return False


def _state(module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _states_differ(a: dict, b: dict) -> str | None:
    """The first buffer that differs between two state dicts (its name), or None."""
    if set(a) != set(b):
        return f"keys {sorted(set(a) ^ set(b))}"
    for k in a:
        if not isinstance(a[k], torch.Tensor):
            if a[k] != b[k]:
                return k
        elif a[k].shape != b[k].shape or not _close(a[k], b[k], equal_nan=True):
            return k
    return None


def _finite_0dim(loss) -> str | None:
    if not isinstance(loss, torch.Tensor):
        return f"the loss is a {type(loss).__name__}, not a tensor"
    if loss.dim() != 0:
        return f"the loss has shape {tuple(loss.shape)}; return a 0-dim tensor (reduce with .mean() or .sum())"
    if not loss.is_floating_point():
        return f"the loss has dtype {loss.dtype}"
    if not bool(torch.isfinite(loss)):
        return f"the loss is {float(loss)}"
    return None


def check_dtype(subject: Subject, dtype: torch.dtype) -> Row:
    name = f"dtype {str(dtype).removeprefix('torch.')}"
    expected = torch.float64 if dtype == torch.float64 else torch.float32
    args = [t.detach().to(dtype) for t in subject.args(2, 12, D, seed=1, dtype=torch.float32)]
    for t in subject.differentiable(args):
        t.requires_grad_(True)
    module = subject.build(0)
    before = set(module.state_dict())
    loss, terms = subject.call(module, args)
    problem = _finite_0dim(loss)
    if problem:
        return Row(name, FAIL, problem)
    loss.backward()
    grad = subject.grad(args)
    if grad is None:
        return Row(name, FAIL, "no gradient reaches the inputs")
    if grad.dtype != dtype or not bool(torch.isfinite(grad).all()):
        return Row(name, FAIL, f"the gradient is not finite (or not {dtype})")
    ref_loss, ref_terms = subject.call(subject.build(0), [t.detach().to(expected) for t in args])
    if loss.dtype != expected or any(t.dtype != expected for t in terms.values()):
        return Row(name, WARN, f"finite, but the loss is {loss.dtype} (sslbench's policy: {expected}, i.e. compute in "
                               "float32 at least; float64 stays float64)")
    if not _close(loss, ref_loss.detach()):
        return Row(name, WARN, f"finite, but {float(loss):.6g} differs from {float(ref_loss):.6g} computed in "
                               f"{expected}: part of it runs in {dtype}")
    for key, value in module.state_dict().items():
        if key not in before and value.is_floating_point() and value.dtype != expected:
            return Row(name, WARN, f"buffer {key} was created in {value.dtype}, not {expected}")
    kind = str(expected).removeprefix("torch.")
    return Row(name, PASS, f"0-dim finite {kind} loss, equal to the {kind} loss of the rounded inputs; finite "
                           "gradients")


def check_autocast(subject: Subject) -> Row:
    name = "autocast cpu bfloat16"
    inputs = subject.args(3 if subject.accepts_views(3) else 2, 20, D, seed=9, dtype=torch.float32)
    plain_in = [t.detach().clone() for t in inputs]
    ac_in = [t.detach().clone() for t in inputs]
    for t in subject.differentiable(plain_in) + subject.differentiable(ac_in):
        t.requires_grad_(True)
    expected, expected_terms = subject.call(subject.build(3), plain_in)
    expected.backward()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, got_terms = subject.call(subject.build(3), ac_in)
    problem = _finite_0dim(got)
    if problem:
        return Row(name, FAIL, problem + " under autocast")
    got.backward()  # outside the context, as torch.amp recommends
    grad, ref_grad = subject.grad(ac_in), subject.grad(plain_in)
    if grad is None or not bool(torch.isfinite(grad).all()):
        return Row(name, FAIL, "the gradient under autocast is missing or not finite")
    lin = torch.nn.Linear(D, D)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        emb = [lin(t.detach()) if subject.symmetric else torch.stack([lin(v) for v in t.detach()]) for t in inputs]
        res, _ = subject.call(subject.build(3), emb)
    problem = _finite_0dim(res)
    if problem:
        return Row(name, FAIL, problem + " for bfloat16 embeddings made under autocast")
    same = (got.dtype == expected.dtype and _close(got, expected) and _close(grad, ref_grad)
            and set(got_terms) == set(expected_terms)
            and all(_close(got_terms[k], expected_terms[k]) for k in expected_terms))
    if not same or res.dtype != torch.float32:
        return Row(name, WARN, f"finite, but it computes in bfloat16 under autocast ({float(got):.6g} vs "
                               f"{float(expected):.6g} without): wrap the loss in torch.autocast(..., enabled=False)")
    return Row(name, PASS, "loss, terms and gradients equal those computed without autocast; bfloat16 embeddings "
                           "give a finite float32 loss")


def check_views(subject: Subject) -> Row:
    name = "V=3 views"
    if not subject.accepts_views(3):
        return Row(name, PASS, f"not applicable: forward takes {subject.max_views} views")
    args = subject.args(3, N, D, seed=5, grad=True)
    loss, _ = subject.call(subject.build(0), args)
    problem = _finite_0dim(loss)
    if problem:
        return Row(name, FAIL, problem)
    loss.backward()
    grad = subject.grad(args)
    if grad is None or not bool(torch.isfinite(grad).all()):
        return Row(name, FAIL, "the gradient is missing or not finite")
    dead = [v for v in range(grad.shape[0]) if float(grad[v].abs().sum()) == 0]
    if dead:
        return Row(name, FAIL, f"view(s) {dead} get no gradient")
    return Row(name, PASS, "finite loss; the gradient reaches every view")


def check_inputs_unchanged(subject: Subject) -> Row:
    name = "inputs unchanged"
    module = subject.build(0)
    for seed in (4, 6):
        args = subject.args(2, N, D, seed=seed, grad=True)
        before = [t.detach().clone() for t in args]
        loss, _ = subject.call(module, args)
        loss.backward()
        for i, (t, b) in enumerate(zip(args, before)):
            if not torch.equal(t.detach(), b):
                return Row(name, FAIL, f"input {i} was changed in place (max change "
                                       f"{float((t.detach() - b).abs().max()):.3g}): compute on a copy")
    return Row(name, PASS, "the call and its backward leave every input bit-for-bit as it was")


def check_gradcheck(subject: Subject) -> Row:
    name = "gradcheck float64"
    if getattr(_inner(subject.build(0)), "surrogate_gradient", False):
        return Row(name, PASS, "not applicable: the class declares surrogate_gradient (by design its gradient is not "
                               "the derivative of its value)")
    warm = subject.build(0).double().train()
    probe, _ = subject.call(warm, subject.args(2, 6, D, seed=7))
    if probe.dtype != torch.float64:
        return Row(name, WARN, f"not run: float64 inputs give a {probe.dtype} loss (gradcheck needs float64; compute "
                               "in float64 for float64 inputs)")
    state = _state(warm)
    frozen = bool(state)

    def fn(*diff):
        module = subject.build(0).double()
        if frozen:
            module.load_state_dict(state)
            module.eval()
        args = list(diff) if subject.symmetric else [diff[0], fixed[1]]
        return subject.call(module, args)[0]

    fixed = subject.args(2, 6, D, seed=8, grad=True)
    try:
        ok = torch.autograd.gradcheck(fn, tuple(subject.differentiable(fixed)), eps=1e-6, atol=1e-5, rtol=1e-3,
                                      raise_exception=True)
    except Exception as exc:  # noqa: BLE001 - gradcheck's message (first line) names the mismatch
        return Row(name, FAIL, f"analytical and numerical gradients differ: {str(exc).strip().splitlines()[0][:160]}")
    mode = "in eval() after one training call (it has buffers)" if frozen else "in training mode"
    return Row(name, PASS if ok else FAIL, f"V=2, N=6, D={D}, {mode}")


def check_same_seed(subject: Subject) -> Row:
    name = "same seed, same result"
    runs = []
    for _ in range(2):
        module = subject.build(0).double().train()
        out = []
        for seed in (11, 12):
            args = subject.args(2, N, D, seed=seed, grad=True)
            torch.manual_seed(seed)
            loss, _ = subject.call(module, args)
            loss.backward()
            out.append((loss.detach(), subject.grad(args)))
        runs.append(out)
    for (la, ga), (lb, gb) in zip(*runs):
        if not torch.equal(la, lb) or (ga is None) != (gb is None) or (ga is not None and not torch.equal(ga, gb)):
            return Row(name, FAIL, f"two runs with the same seeds differ ({float(la):.17g} vs {float(lb):.17g}): "
                                   "draw random numbers from a seeded generator")
    return Row(name, PASS, "two modules built and called with the same seeds give bitwise equal losses and gradients")


def check_state_dict(subject: Subject) -> Row:
    name = "state_dict round trip"
    reg = subject.build(0).double().train()
    for seed in (10, 11):
        subject.call(reg, subject.args(2, N, D, seed))
    buffer = io.BytesIO()
    torch.save(reg.state_dict(), buffer)
    buffer.seek(0)
    try:
        loaded = torch.load(buffer, weights_only=True)
    except Exception as exc:  # noqa: BLE001
        return Row(name, FAIL, f"the state dict does not load with weights_only=True ({_one_line(exc)}): keep "
                               "only tensors in it")
    fresh = subject.build(0).double()
    fresh.load_state_dict(loaded)
    diff = _states_differ(_state(fresh), _state(reg))
    if diff:
        return Row(name, FAIL, f"{diff} is not restored by load_state_dict")
    nxt = subject.args(2, N, D, 12)
    for mode in ("train", "eval"):
        for module in (reg, fresh):
            getattr(module, mode)()
            if getattr(module, "generator", None) is not None:
                module.generator.manual_seed(5)
        torch.manual_seed(5)
        a = subject.call(fresh, nxt)[0]
        torch.manual_seed(5)
        b = subject.call(reg, nxt)[0]
        if not _close(a, b):
            return Row(name, FAIL, f"a module loaded from the state dict gives {float(a):.6g}, the original "
                                   f"{float(b):.6g} ({mode} mode): register every state as a buffer")
        diff = _states_differ(_state(fresh), _state(reg))
        if diff:
            return Row(name, FAIL, f"{diff} evolves differently after loading the state dict ({mode} mode)")
    keys = ", ".join(loaded) or "none"
    return Row(name, PASS, f"tensors only (weights_only=True); a loaded module continues like the original (state: "
                           f"{keys[:80]})")


def _bad_args(subject: Subject, kind: str) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(13)

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    if kind == "mismatched shapes":
        views = [r(6, 5), r(6, 4)]
        return views if subject.symmetric else [views, [r(6, 5), r(6, 5)]]
    if kind == "N < 2":
        return [r(1, 5), r(1, 5)] if subject.symmetric else [r(2, 1, 5), r(2, 1, 5)]
    args = subject.args(2, N, D, seed=14)
    args[0][0, 3] = float("nan")  # a NaN in the first view (symmetric) or the first online view (asymmetric)
    return args


def check_bad_input(subject: Subject, kind: str) -> Row:
    name = f"bad input: {kind}"
    extra = {"check_finite": True} if kind == "NaN" and "check_finite" in subject.accepted else {}
    module = subject.build(0, **extra).double().train()
    subject.call(module, subject.args(2, N, D, seed=3))  # a good call first, so that stateful ones have a state
    before = _state(module)
    try:
        loss, _ = subject.call(module, _bad_args(subject, kind))
    except (ValueError, TypeError) as exc:
        diff = _states_differ(_state(module), before)
        if diff:
            return Row(name, FAIL, f"raises, but only after changing {diff}: validate before updating the state")
        if "\n" in str(exc).strip():
            return Row(name, WARN, f"raises {type(exc).__name__}, but over several lines: keep the message to one")
        how = " (with check_finite=True)" if extra else ""
        return Row(name, PASS, f"raises{how} {_one_line(exc)}"[:150])
    except Exception as exc:  # noqa: BLE001 - an error from deep in torch: better than a number, not clear
        return Row(name, WARN, f"raises {_one_line(exc)[:90]} from inside the computation: check the input and "
                               "raise ValueError naming the problem")
    value = float(loss.detach()) if isinstance(loss, torch.Tensor) and loss.numel() == 1 else loss
    return Row(name, WARN, f"no check: returns {value!r} instead of raising; validate the input (raise ValueError)")


# name -> check: every local property, in the order of the table
LOCAL_CHECKS: dict[str, Callable[[Subject], Row]] = {
    **{f"dtype {str(dt).removeprefix('torch.')}": (lambda s, dt=dt: check_dtype(s, dt))
       for dt in (torch.float32, torch.bfloat16, torch.float16, torch.float64)},
    "autocast": check_autocast,
    "views": check_views,
    "inputs unchanged": check_inputs_unchanged,
    "gradcheck": check_gradcheck,
    "same seed": check_same_seed,
    "state_dict": check_state_dict,
    **{f"bad input: {kind}": (lambda s, kind=kind: check_bad_input(s, kind))
       for kind in ("mismatched shapes", "N < 2", "NaN")},
}


@contextlib.contextmanager
def _isolated():
    """torch on one thread, and the global RNG restored afterwards (the checks seed it; a user's test suite keeps
    its own stream). One thread: the checks use tiny tensors, where a busy machine's thread pool costs 40× the
    computation (torch.batch_norm at N=6: 80 ms on 2 busy cores, 2 ms on one thread)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        torch.set_num_threads(threads)


def run_check(check: Callable[[Subject], Row], subject: Subject, key: str) -> Row:
    """One local check, on one thread; an exception it did not expect is a FAIL row naming it."""
    try:
        with _isolated():
            return check(subject)
    except Exception as exc:  # noqa: BLE001 - the user's code raised where the contract expects a result
        return Row(key, FAIL, f"raised {_one_line(exc)}"[:160])


def local_rows(subject: Subject) -> list[Row]:
    return [run_check(check, subject, key) for key, check in LOCAL_CHECKS.items()]


# --------------------------------------------------------------------------------------------------------------
# The distributed property: 2 gloo processes that import the class from its spec
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DistributedCase:
    """One distributed call: ``spec(**hparams)`` on ``views`` views of N rows (``correlated_views(seed)`` ×
    ``scale``), split in equal blocks over the ranks. Rank r builds the module with ``gen_seeds[r]`` (a random
    draw must follow rank 0's: the single-process reference uses ``gen_seeds[0]``)."""

    spec: str
    hparams: tuple  # ((name, value), ...): hashable
    views: int = 2
    seed: int = 20
    n: int = N
    d: int = D
    scale: float = 1.0
    gen_seeds: tuple = (11, 99)

    def subject(self) -> Subject:
        return Subject(self.spec, dict(self.hparams))


def _rank_results(rank: int, world_size: int, cases: list[DistributedCase]) -> list[dict]:
    """What one rank computes for each case (float64, training mode, then backward): loss, terms, the gradient
    w.r.t. its rows, the state dict. After an error the rank stops (the ranks' collectives would be out of step)."""
    out = []
    subjects: dict = {}
    for case in cases:
        try:
            key = (case.spec, case.hparams)
            subject = subjects[key] = subjects.get(key) or case.subject()
            full = subject.args(case.views, case.n, case.d, case.seed, scale=case.scale)
            h = case.n // world_size
            local = subject.rows(full, slice(rank * h, (rank + 1) * h))
            module = subject.build(case.gen_seeds[rank]).double().train()
            torch.manual_seed(case.seed)
            loss, terms = subject.call(module, local)
            loss.backward()
            out.append({"loss": loss.detach(), "terms": {k: v.detach() for k, v in terms.items()},
                        "grad": subject.grad(local), "state": _state(module)})
        except Exception as exc:  # noqa: BLE001 - reported in the row
            out.append({"error": f"rank {rank}: {_one_line(exc)}"})
            break
    return out


def _child_main(argv: list[str]) -> None:
    """``python -m sslbench.execution.contract RANK WORLD_SIZE DIR``: one rank of :func:`run_distributed`."""
    import datetime

    import torch.distributed as dist

    rank, world_size, folder = int(argv[0]), int(argv[1]), argv[2]
    torch.set_num_threads(1)
    cases = torch.load(os.path.join(folder, "cases.pt"), weights_only=False)  # our own file, in our own folder
    dist.init_process_group("gloo", init_method=f"file://{os.path.join(folder, 'rendezvous')}", rank=rank,
                            world_size=world_size, timeout=datetime.timedelta(seconds=60))
    results = _rank_results(rank, world_size, cases)
    torch.save(results, os.path.join(folder, f"rank{rank}.pt"))
    sys.stdout.flush()
    sys.stderr.flush()
    # the result is on disk: leave without the interpreter's teardown, where gloo's threads intermittently abort
    # the process; a rank that stopped early does not wait for the other in destroy_process_group either
    os._exit(0)


def _child_env() -> dict:
    """The parent's environment with its ``sys.path`` (the working directory for '') on ``PYTHONPATH``, so that
    the children import the same modules, the user's class included."""
    env = dict(os.environ)
    paths = [p or os.getcwd() for p in sys.path]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def run_distributed(cases: list[DistributedCase], world_size: int = WORLD_SIZE,
                    timeout: float = 600.0) -> list[list[dict]]:
    """Run every case on one set of ``world_size`` gloo processes; returns, per case, each rank's result dict
    (``loss``, ``terms``, ``grad``, ``state``; or ``error``: one line)."""
    with tempfile.TemporaryDirectory(prefix="sslbench-check-") as folder:
        torch.save(list(cases), os.path.join(folder, "cases.pt"))
        procs, logs = [], []
        for rank in range(world_size):
            log = open(os.path.join(folder, f"rank{rank}.log"), "w+b")
            logs.append(log)
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "sslbench.execution.contract", str(rank), str(world_size), folder],
                env=_child_env(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + timeout
        try:
            for p in procs:
                p.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        finally:
            for p in procs:  # only the processes started here
                if p.poll() is None:
                    p.kill()
                    p.wait()
        per_rank = []
        for rank, log in enumerate(logs):
            path = os.path.join(folder, f"rank{rank}.pt")
            if os.path.exists(path):
                per_rank.append(torch.load(path, weights_only=True))
            else:
                log.seek(0)
                lines = [ln for ln in log.read().decode(errors="replace").splitlines() if ln.strip()]
                why = lines[-1].strip() if lines else f"exit status {procs[rank].returncode}"
                if procs[rank].returncode is not None and procs[rank].returncode < 0 and time.monotonic() >= deadline:
                    why = f"timed out after {timeout:.0f} s"
                per_rank.append([{"error": f"rank {rank}: {why}"[:200]}])
            log.close()
    return _per_case(per_rank, len(cases))


def _per_case(per_rank: list[list[dict]], count: int) -> list[list[dict]]:
    """Each case's results on every rank. The first case with an error (or a rank that stopped) keeps it; every
    later case is ``{"not_run": True}`` on every rank: after an error the ranks' collectives are out of step, so
    what they computed later cannot be trusted (:func:`distributed_rows` runs those cases again)."""
    out, failed = [], False
    for c in range(count):
        entries = [res[c] if c < len(res) else None for res in per_rank]
        if failed or all(e is None for e in entries):
            out.append([{"not_run": True} for _ in per_rank])
            continue
        # the cause first: the other rank's error is gloo's "connection reset" once the failing rank has left
        errors = sorted((e["error"] for e in entries if e is not None and "error" in e), key=lambda t: "gloo" in t)
        stopped = [r for r, e in enumerate(entries) if e is None]
        if errors or stopped:
            failed = True
            why = errors[0] if errors else f"rank {stopped[0]} stopped before this case"
            entries = [{"error": why} for _ in per_rank]
        out.append(entries)
    return out


def _ratio_text(ratio: float, world_size: int) -> str:
    for k in range(1, 9):
        if abs(ratio * k - 1) < 1e-3:
            return f"1/{k}"
    return f"{ratio:.3g}×"


def distributed_row(case: DistributedCase, ranks: list[dict], world_size: int = WORLD_SIZE) -> Row:
    """Compare the ranks' results with the single-process call on the concatenated batch."""
    name = "distributed (2 gloo ranks)" if world_size == 2 else f"distributed ({world_size} gloo ranks)"
    where = f"V={case.views}" + (f", scale {case.scale:g}" if case.scale != 1 else "")
    if any("not_run" in r for r in ranks):
        return Row(name, FAIL, f"{where}: not run (an earlier case failed on the same processes)")
    errors = [r["error"] for r in ranks if "error" in r]
    if errors:
        return Row(name, FAIL, f"{where}: {errors[0]}")
    subject = case.subject()
    full = subject.args(case.views, case.n, case.d, case.seed, scale=case.scale, grad=True)
    reg = subject.build(case.gen_seeds[0]).double().train()
    torch.manual_seed(case.seed)
    loss, terms = subject.call(reg, full)
    loss.backward()
    loss, single_grad = loss.detach(), subject.grad(full)
    mean = sum(r["loss"] for r in ranks) / world_size
    if not _close(mean.to(loss.dtype), loss):
        h = case.n // world_size
        local = []
        for r in range(world_size):  # the hypothesis "each rank computes the loss of its own rows only"
            sub = subject.rows(full, slice(r * h, (r + 1) * h))
            torch.manual_seed(case.seed)
            local.append(subject.call(subject.build(case.gen_seeds[r]).double().train(), sub)[0].detach())
        if all(_close(r["loss"], lo) for r, lo in zip(ranks, local)):
            return Row(name, FAIL, f"{where}: each rank's loss is the loss of its own rows only (mean "
                                   f"{float(mean):.6g}, single process {float(loss):.6g}): a global-batch loss must "
                                   "gather the other ranks' rows (torch.distributed.nn.functional.all_gather)")
        return Row(name, FAIL, f"{where}: the mean of the ranks' losses {float(mean):.6g} differs from the "
                               f"single-process loss {float(loss):.6g} on the concatenated batch")
    for k, v in terms.items():
        got = [r["terms"].get(k) for r in ranks]
        if any(g is None for g in got) or not _close(sum(got) / world_size, v.detach()):
            return Row(name, FAIL, f"{where}: the mean over ranks of term {k!r} differs from the single-process one")
    h = case.n // world_size
    if single_grad is None:
        return Row(name, FAIL, f"{where}: no gradient reaches the inputs in a single process")
    grads = [r["grad"] for r in ranks]
    if any(g is None for g in grads):
        return Row(name, FAIL, f"{where}: no gradient reaches a rank's own rows: gather with an autograd-aware "
                               "all_gather (torch.distributed.nn.functional.all_gather)")
    target = torch.cat([world_size * single_grad[:, r * h:(r + 1) * h] for r in range(world_size)], dim=1)
    got = torch.cat(grads, dim=1)
    # a loss computed in float32 from float64 inputs sums in another order across ranks: float32's tolerance
    tol = {} if loss.dtype == torch.float64 else dict(rtol=1e-4, atol=1e-6)
    if not _close(got, target, **tol):
        denom = float((target * target).sum())
        ratio = float((got * target).sum()) / denom if denom > 0 else float("nan")
        proportional = math.isfinite(ratio) and _close(got, ratio * target, rtol=1e-5, atol=1e-8)
        if proportional and abs(ratio * world_size - 1) < 1e-3:
            return Row(name, FAIL, f"{where}: gradient is 1/{world_size} of what DDP needs (measured ratio "
                                   f"{ratio:.3f} of world_size × the single-process gradient): gather with an "
                                   "autograd-aware all_gather, e.g. torch.distributed.nn.functional.all_gather")
        if proportional and abs(ratio) < 1e-6:
            return Row(name, FAIL, f"{where}: the gradient w.r.t. a rank's own rows is 0 (measured ratio "
                                   f"{ratio:.3f}): the gathered copy of the local rows carries no gradient; gather "
                                   "with torch.distributed.nn.functional.all_gather")
        if proportional:
            return Row(name, FAIL, f"{where}: gradient is {_ratio_text(ratio, world_size)} of what DDP needs "
                                   f"(measured ratio {ratio:.3f} of world_size × the single-process gradient)")
        err = float((got - target).abs().max())
        return Row(name, FAIL, f"{where}: the gradient differs from world_size × the single-process gradient "
                               f"(max abs error {err:.3g}, ratio of the projections {ratio:.3f})")
    single_state = _state(reg)
    for r, res in enumerate(ranks):
        diff = _states_differ(res["state"], single_state)
        if diff:
            return Row(name, FAIL, f"{where}: buffer {diff} on rank {r} differs from the single-process one: reduce "
                                   "its statistics over the ranks")
    return Row(name, PASS, f"{where}: mean of the ranks' losses = single-process loss; each rank's gradient = "
                           f"{world_size} × single-process gradient")


def distributed_cases(subject: Subject, seed: int = 20) -> list[DistributedCase]:
    """V = 2, and V = 3 where the class accepts it."""
    hp = tuple(subject.hparams.items())
    return [DistributedCase(subject.spec, hp, views=v, seed=seed + v) for v in (2, 3) if subject.accepts_views(v)]


def _results_of(subjects: list[Subject], world_size: int) -> list[list[list[dict]]]:
    """Per subject, its cases' results: every case on one pair of processes, then the subjects left out by another's
    error (``not_run``) once more on a fresh pair."""
    per_subject = [distributed_cases(s) for s in subjects]
    flat = iter(run_distributed([c for cases in per_subject for c in cases], world_size))
    results = [[next(flat) for _ in cases] for cases in per_subject]
    again = [i for i, res in enumerate(results)
             if any("not_run" in r[0] for r in res) and not any("error" in r[0] for r in res)]
    if again and len(again) < len(subjects):
        for i, res in zip(again, _results_of([subjects[i] for i in again], world_size)):
            results[i] = res
    return results


def distributed_rows(subjects: list[Subject], world_size: int = WORLD_SIZE) -> list[Row]:
    """One distributed row per subject (the worst of its cases), every case on one pair of processes (a
    subject left out by another's error runs again on a fresh pair)."""
    rows = []
    for subject, results in zip(subjects, _results_of(subjects, world_size)):
        cases = distributed_cases(subject)
        with _isolated():
            case_rows = [distributed_row(c, res, world_size) for c, res in zip(cases, results)]
        failed = [r for r in case_rows if r.status != PASS]
        if failed:
            rows.append(failed[0])
        else:
            rows.append(Row(case_rows[0].property, PASS, "V=" + ",".join(str(c.views) for c in cases) + ":"
                            + case_rows[0].why.split(":", 1)[1]))
    return rows


# --------------------------------------------------------------------------------------------------------------
# One call for a user's test suite, and the table
# --------------------------------------------------------------------------------------------------------------
def contract_rows(spec: str, distributed: bool = True, **hparams) -> list[Row]:
    """Every row of the contract for ``spec(**hparams)``. Raises :class:`SpecError` for a spec that cannot be
    built."""
    subject = Subject(spec, hparams)
    rows = local_rows(subject)
    if distributed:
        rows += distributed_rows([subject])
    return rows


def assert_contract(spec: str, distributed: bool = True, allow_warn: bool = True, **hparams) -> list[Row]:
    """``assert_contract("mypkg.losses:MyLoss", lambd=0.01)`` in a pytest test: raises ``AssertionError`` with the
    table when a row fails (or warns, with ``allow_warn=False``); returns the rows."""
    rows = contract_rows(spec, distributed=distributed, **hparams)
    bad = [r for r in rows if r.status == FAIL or (r.status == WARN and not allow_warn)]
    if bad:
        raise AssertionError(f"{spec} breaks the regularizer contract:\n" + format_table(rows))
    return rows


def format_table(rows: list[Row]) -> str:
    """property | result | why, one line each, columns aligned."""
    width = max([len("property")] + [len(r.property) for r in rows])
    lines = [f"{'property':<{width}} | result | why", f"{'-' * width}-+--------+-{'-' * 40}"]
    lines += [f"{r.property:<{width}} | {r.status.upper():<6} | {r.why}" for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":  # a rank of run_distributed
    _child_main(sys.argv[1:])
