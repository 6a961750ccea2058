"""``sslbench train``'s options are TrainConfig's fields: one option per field, generated from the field (flag,
default, type, choices, help), so that the two cannot drift apart."""

import argparse
import dataclasses
import functools

import pytest

from sslbench.training import config as C
from sslbench.training import train as T

#: every flag ``sslbench train`` had before its parser was generated from the fields (plus the new ones below):
#: scripts and docs use them, so none may disappear or change its meaning
FLAGS_BEFORE = {
    "--regularizer", "--hp", "--dataset", "--data-root", "--data-option", "--fraction", "--pretrain-split",
    "--backbone", "--projector", "--dim", "--predictor-hidden", "--views", "--augment", "--augment-backend",
    "--epochs", "--batch-size", "--optimizer", "--lr", "--weight-decay", "--momentum", "--grad-clip",
    "--warmup-epochs", "--final-lr-ratio", "--max-steps", "--ema-tau", "--seed", "--device", "--amp", "--compile",
    "--no-compile-cuda", "--no-eval", "--no-eval-init", "--eval-every", "--knn-k", "--probe-epochs", "--probe-lr",
    "--eval-batch-size", "--out", "--log-dir", "--log-every", "--checkpoint-dir", "--checkpoint-every", "--resume",
    "--progress", "--no-progress", "--quiet",
}
#: added with the generated parser: the field that had no flag, and the alias of bench/sweep's spelling
FLAGS_ADDED = {"--knn-temperature", "--hparam"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    T.add_arguments(p)
    return p


def _actions() -> list[argparse.Action]:
    return [a for a in _parser()._actions if not isinstance(a, argparse._HelpAction)]


def test_every_field_has_exactly_one_option_and_every_option_is_a_field():
    by_dest: dict[str, list] = {}
    for a in _actions():
        by_dest.setdefault(a.dest, []).append(a)
    fields = [f.name for f in dataclasses.fields(C.TrainConfig)]
    assert sorted(by_dest) == sorted(fields)
    assert {d: len(a) for d, a in by_dest.items() if len(a) != 1} == {}


def test_the_flags_are_the_old_ones_plus_the_added():
    flags = {o for a in _actions() for o in a.option_strings}
    assert flags == FLAGS_BEFORE | FLAGS_ADDED


def test_parser_defaults_types_and_choices_are_the_fields():
    hints = {"optimizer": C.OPTIMIZERS, "amp": C.AMP_MODES}
    from sslbench.training.augment import BACKENDS

    hints["augment_backend"] = BACKENDS
    actions = {a.dest: a for a in _actions()}
    for f in dataclasses.fields(C.TrainConfig):
        a = actions[f.name]
        if f.default_factory is not dataclasses.MISSING:  # dict fields: repeatable NAME=VALUE options
            assert f.default_factory() == {} and a.default == [] and isinstance(a, argparse._AppendAction)
            continue
        assert a.default == f.default, f.name
        assert a.choices == hints.get(f.name), f.name  # the regularizer is checked by TrainConfig, not argparse
        if isinstance(f.default, bool) or f.name == "progress":
            continue
        expected = {"int": int, "float": float}.get(str(f.type).split(" ")[0])
        if expected is not None:
            assert a.type is expected, f.name
    # nothing on the command line is exactly the config's defaults
    assert T.config_from_args(_parser().parse_args([])) == C.TrainConfig()


def test_help_comes_from_the_field_metadata():
    text = _parser().format_help()
    for f in dataclasses.fields(C.TrainConfig):
        help_text = f.metadata["help"]
        if callable(help_text):
            help_text = help_text()
        if help_text:
            assert " ".join(help_text.split()[:4]) in " ".join(text.split()), f.name


@pytest.mark.parametrize("flag", ["--hp", "--hparam"])
def test_hp_and_its_alias_hparam(flag):
    cfg = T.config_from_args(_parser().parse_args([flag, "lambd=1/128", flag, "scale=2"]))
    assert cfg.hparams == {"lambd": 1 / 128, "scale": 2}


def test_flags_keep_their_meaning():
    p = _parser()
    c = T.config_from_args(p.parse_args(["--progress", "--quiet", "--no-eval", "--no-compile-cuda", "--amp",
                                         "--resume", "--out", "none", "--knn-temperature", "0.5", "--lr", "0.1"]))
    assert (c.progress, c.verbose, c.eval, c.compile_cuda, c.amp, c.resume, c.out) == \
        (True, False, False, False, "bf16", "auto", None)
    assert (c.knn_temperature, c.lr) == (0.5, 0.1)
    c = T.config_from_args(p.parse_args(["--no-progress", "--amp", "off", "--resume", "ck.pt", "--log-dir", "off"]))
    assert (c.progress, c.amp, c.resume, c.log_dir, c.eval, c.verbose) == (False, "off", "ck.pt", None, True, True)


def test_regularizer_is_not_limited_to_the_built_ins_by_the_parser():
    """Specs of other packages (``package.module:Class``) reach TrainConfig's check: argparse has no choices."""
    args = _parser().parse_args(["--regularizer", "no_such_package.module:Loss"])
    assert args.regularizer == "no_such_package.module:Loss"
    args = _parser().parse_args(["--regularizer", "nope"])
    assert T.run(args) == 2  # one line, not an argparse usage error


def test_unknown_regularizer_is_one_line(capsys):
    assert T.run(_parser().parse_args(["--regularizer", "nope", "--out", "none"])) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0] and "barlow_twins" in err[0]


# ----------------------------------------------------------------------------------------------------------------
# The regularizer is built once per run (it was built three times before step 0: to check --hp, to check the
# hyper-parameters against dim, and for the run)
# ----------------------------------------------------------------------------------------------------------------
TINY_ARGV = ["--dataset", "synthetic", "--data-option", "num_samples=32", "--data-option", "channels=1",
             "--data-option", "height=12", "--data-option", "width=12", "--data-option", "num_classes=4",
             "--backbone", "convnet", "--projector", "16", "--dim", "8", "--batch-size", "16", "--epochs", "1",
             "--max-steps", "1", "--augment", "none", "--device", "cpu", "--no-eval", "--no-eval-init",
             "--no-progress", "--quiet"]


@pytest.mark.parametrize("name", ["barlow_twins", "directpred"])
def test_sslbench_train_builds_the_regularizer_once(tmp_path, monkeypatch, name):
    from sslbench import regularizers

    cls = regularizers.get_class(name)
    built = []
    original = cls.__init__

    @functools.wraps(original)  # the same signature: the registry reads the hyper-parameters from it
    def counting_init(self, *a, **kw):
        built.append(self)
        original(self, *a, **kw)

    monkeypatch.setattr(cls, "__init__", counting_init)
    steps = []
    monkeypatch.setattr(T, "train_steps", lambda run, state, log, on_step: steps.append(run.reg))
    args = _parser().parse_args([*TINY_ARGV, "--regularizer", name, "--out", str(tmp_path / "t.jsonl"),
                                 "--log-dir", str(tmp_path / "runs"), "--checkpoint-dir", "none"])
    assert T.run(args) in (0, 1)
    assert len(built) == 1 and steps == built  # the one built is the one the steps use


def test_the_check_on_meta_tensors_leaves_the_runs_regularizer_untouched():
    """DirectPred creates its correlation matrix on its first call: the check's call (on meta tensors) must not
    leave the run's instance with a matrix on the meta device."""
    cfg, reg = C.TrainConfig(regularizer="directpred", ema_tau=0.9, dataset="digits", dim=8).resolved_with_regularizer()
    assert reg.F is None and int(reg.num_updates) == 0 and reg.num_updates.device.type == "cpu"
    assert cfg == C.TrainConfig(regularizer="directpred", ema_tau=0.9, dataset="digits", dim=8).resolved()


def test_a_regularizer_that_cannot_be_copied_skips_the_meta_check_without_a_wrong_message(monkeypatch):
    """The meta-tensor check calls a copy; a module that cannot be copied (a plugin holding a lock) is not blamed
    for it: the check is left to the run, and the instance built is still the one handed on."""
    import copy as copy_module

    def refuse(obj, memo=None):
        raise TypeError("cannot pickle '_thread.lock' object")

    monkeypatch.setattr(copy_module, "deepcopy", refuse)
    cfg, reg = C.TrainConfig(dataset="digits", dim=8).resolved_with_regularizer()
    assert type(reg).__name__ == "BarlowTwins" and cfg.hparams == {"lambd": 1 / 8}
