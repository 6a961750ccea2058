"""Regularizers from other packages (sslbench.regularizers._plugins): a real entry point (a dist-info folder on
sys.path, which is all importlib.metadata needs), ``module:Class`` specs of modules written to tmp_path, plain
``torch.nn.Module`` losses behind the adapter, broken plugins, provenance and the listing command."""

from __future__ import annotations

import re
import subprocess
import textwrap

import pytest
import torch

from sslbench import cli, regularizers
from sslbench.regularizers import Regularizer, RegularizerOutput, RegularizerSpecError, _plugins

PLAIN = '''
import torch


class CosLoss(torch.nn.Module):
    """A loss written for nobody's registry: forward(z1, z2) -> (loss, terms)."""

    def __init__(self, scale: float = 1.0, learn: bool = False):
        super().__init__()
        if scale <= 0:
            raise ValueError(f"scale={scale!r} must be > 0")
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.w = torch.nn.Parameter(torch.ones(())) if learn else None

    def forward(self, z1, z2):
        loss = -torch.nn.functional.cosine_similarity(z1, z2).mean() * self.scale
        return loss, {"cosine": -loss.detach()}


class Bare(torch.nn.Module):
    def forward(self, z1, z2):
        return (z1 - z2).pow(2).mean()


class Needs(torch.nn.Module):
    def __init__(self, temperature):
        super().__init__()
        self.temperature = temperature

    def forward(self, z1, z2):
        return (z1 * z2).sum() / self.temperature


class Vector(torch.nn.Module):
    def forward(self, z1, z2):
        return (z1 - z2).pow(2).mean(0)


def not_a_class():
    return 1
'''

SUBCLASS = '''
from sslbench.regularizers import Regularizer, RegularizerOutput


class MSE(Regularizer):
    def __init__(self, *, coeff: float = 1.0, multiview: str = "pairs"):
        super().__init__(multiview=multiview)
        self.coeff = coeff

    def pair(self, za, zb):
        loss = self.coeff * (za - zb).pow(2).mean()
        return RegularizerOutput(loss, {"mse": loss})
'''


def _write_dist(site, name, version, entry_points: dict[str, str]):
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = ["[sslbench.regularizers]"] + [f"{k} = {v}" for k, v in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on sys.path holding the package ``toyplug`` (losses.py, sub.py) and its distribution
    ``toyplug 1.2.0`` declaring three entry points, one of them broken."""
    site = tmp_path / "site"
    pkg = site / "toyplug"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "losses.py").write_text(PLAIN)
    (pkg / "sub.py").write_text(SUBCLASS)
    _write_dist(site, "toyplug", "1.2.0", {"cos": "toyplug.losses:CosLoss", "mse": "toyplug.sub:MSE",
                                            "broken": "toyplug_missing.losses:Gone",
                                            "vicreg": "toyplug.losses:Bare"})
    monkeypatch.syspath_prepend(str(site))
    yield site
    for mod in [m for m in list(__import__("sys").modules) if m.startswith("toyplug")]:
        __import__("sys").modules.pop(mod)
    regularizers._source.cache_clear()
    _plugins.git_state.cache_clear()


def test_entry_point_found_by_name_and_created(site):
    assert regularizers.available() == list(regularizers._REGISTRY)  # the built-ins alone, as before
    assert {"cos", "mse", "broken"} <= set(regularizers.available(plugins=True))
    assert "vicreg" not in regularizers.available(plugins=True)[len(regularizers._REGISTRY):]  # shadowed
    reg = regularizers.create("cos", scale=2.0)
    assert isinstance(reg, Regularizer) and reg.symmetric
    assert reg.hparams() == {"scale": 2.0, "learn": False}
    assert regularizers.hparam_names("cos") == ["scale", "learn"]
    assert regularizers.hparam_defaults("cos") == {"scale": 1.0, "learn": False}
    z1, z2 = torch.randn(8, 4, requires_grad=True), torch.randn(8, 4)
    out = reg(z1, z2)
    assert isinstance(out, RegularizerOutput) and out.loss.dim() == 0
    ref = -2.0 * torch.nn.functional.cosine_similarity(z1, z2).mean()
    torch.testing.assert_close(out.loss, ref)
    torch.testing.assert_close(out.terms["cosine"], -ref.detach())
    out.loss.backward()
    assert z1.grad is not None and torch.isfinite(z1.grad).all()
    # a (V, N, D) tensor is split into its views, as the built-ins accept it
    torch.testing.assert_close(reg(torch.stack([z1.detach(), z2])).loss, ref.detach())


def test_builtin_wins_over_an_entry_point_of_the_same_name(site):
    assert regularizers.get_class("vicreg").__module__ == "sslbench.regularizers.vicreg"


def test_module_class_spec_and_regularizer_subclass(site):
    cls = regularizers.get_class("toyplug.sub:MSE")
    from toyplug.sub import MSE

    assert cls is MSE  # a Regularizer subclass is used as it is
    reg = regularizers.create("toyplug.sub:MSE", coeff=3.0)
    assert reg.hparams() == {"coeff": 3.0, "multiview": "pairs"}
    assert "variance_coeff" not in regularizers.hparam_names("toyplug.sub:MSE")  # the add-on is for built-ins
    z1, z2 = torch.randn(5, 3), torch.randn(5, 3)
    torch.testing.assert_close(reg(z1, z2).loss, 3.0 * (z1 - z2).pow(2).mean())
    # the same class by entry point and by module:Class
    assert regularizers.get_class("mse") is cls
    assert regularizers.get_class("toyplug.losses:CosLoss") is regularizers.get_class("cos")


def test_a_module_in_the_working_directory_is_found_like_python_m(tmp_path, monkeypatch):
    (tmp_path / "cwdloss_x.py").write_text(PLAIN)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", [p for p in __import__("sys").path if p not in ("", ".", str(tmp_path))])
    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    try:
        assert regularizers.create("cwdloss_x:Bare")(torch.ones(3, 2), torch.zeros(3, 2)).loss.item() == 1.0
    finally:
        __import__("sys").modules.pop("cwdloss_x", None)
    assert __import__("os").environ["PYTHONPATH"].split(__import__("os").pathsep) == ["/somewhere", str(tmp_path)]
    child = subprocess.run([__import__("sys").executable, "-c", "import cwdloss_x"], cwd="/", capture_output=True)
    assert child.returncode == 0, child.stderr  # a child started elsewhere finds it too


def test_hyper_parameters_validated_like_a_builtin(site):
    with pytest.raises(ValueError, match=r"cos got unknown hyper-parameter\(s\) scal; accepted: scale, learn"):
        regularizers.create("cos", scal=1.0)
    with pytest.raises(ValueError, match="scale=-1.0 must be > 0"):
        regularizers.create("cos", scale=-1.0)
    with pytest.raises(ValueError, match=r"needs hyper-parameter\(s\) temperature \(no default\)"):
        regularizers.create("toyplug.losses:Needs")
    assert regularizers.hparam_names("toyplug.losses:Needs") == ["temperature"]
    assert regularizers.create("toyplug.losses:Needs", temperature=0.5).hparams() == {"temperature": 0.5}
    assert regularizers.hparam_names("toyplug.losses:Bare") == []


def test_adapter_state_dict_keeps_the_modules_own_keys(site):
    plain = __import__("toyplug.losses", fromlist=["CosLoss"]).CosLoss(scale=2.0, learn=True)
    reg = regularizers.create("cos", scale=2.0, learn=True)
    assert set(reg.state_dict()) == set(plain.state_dict()) == {"scale", "w"}
    with torch.no_grad():
        plain.w.fill_(5.0)
    reg.load_state_dict(plain.state_dict())  # a checkpoint of the plain module loads into the adapter
    assert reg.module.w.item() == 5.0
    parent = torch.nn.ModuleDict({"reg": reg})
    assert set(parent.state_dict()) == {"reg.scale", "reg.w"}
    other = torch.nn.ModuleDict({"reg": regularizers.create("cos", learn=True)})
    other.load_state_dict(parent.state_dict())
    assert other["reg"].module.w.item() == 5.0 and other["reg"].module.scale.item() == 2.0


def test_a_forward_that_returns_no_scalar_is_a_clear_error(site):
    with pytest.raises(TypeError, match=r"Vector.forward returned a tensor of shape \(3,\); a regularizer returns"):
        regularizers.create("toyplug.losses:Vector")(torch.randn(4, 3), torch.randn(4, 3))


@pytest.mark.parametrize("spec, match", [
    ("broken", r"^regularizer plugin broken \(entry point toyplug_missing.losses:Gone of toyplug 1.2.0\) failed to "
               r"import: ModuleNotFoundError: No module named 'toyplug_missing'$"),
    ("toyplug.losses:Nope", r"^regularizer plugin toyplug.losses:Nope failed to import: AttributeError: .*Nope"),
    ("toyplug.losses:not_a_class", r"is a function, not a torch.nn.Module subclass"),
    ("no_such_name", r"^unknown regularizer 'no_such_name'; available: barlow_twins, .*; plugins: (.*, )?cos, mse, broken"),
])
def test_bad_specs_are_one_line_and_hide_nothing(site, spec, match):
    with pytest.raises(RegularizerSpecError, match=match) as info:
        regularizers.create(spec)
    assert "\n" not in str(info.value)
    # the built-ins and the other plugins still load
    assert regularizers.create("barlow_twins") is not None and regularizers.create("cos") is not None


def test_plugins_and_the_listing_command(site, capsys):
    rows = {r["name"]: r for r in regularizers.plugins()}
    assert rows["cos"]["distribution"] == "toyplug" and rows["cos"]["version"] == "1.2.0"
    assert rows["cos"]["class"] == "toyplug.losses:CosLoss" and rows["cos"]["adapted"] is True
    assert rows["mse"]["adapted"] is False and rows["mse"]["error"] is None
    assert "No module named 'toyplug_missing'" in rows["broken"]["error"]
    assert rows["vicreg"]["shadowed"] is True
    assert cli.main(["regularizers"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "built-in" in lines["barlow_twins"] and "sslbench.regularizers.barlow_twins:BarlowTwins" in lines[
        "barlow_twins"]
    assert "entry point" in lines["cos"] and "toyplug 1.2.0" in lines["cos"] and "(plain nn.Module, adapted)" in \
        lines["cos"]
    assert "BROKEN: regularizer plugin broken" in lines["broken"]
    # other plugins installed in this environment (examples/plugin in CI) add to the counts
    found = re.search(r"(\d+) built-in, (\d+) from entry points \(sslbench.regularizers\), (\d+) broken", out)
    assert found and int(found[1]) == len(regularizers.available()) and int(found[2]) >= 4 and int(found[3]) >= 1


def _git(cwd, *args):
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=cwd, check=True,
                   capture_output=True)


def test_provenance_names_distribution_and_git_commit(site):
    _git(site, "init", "-q")
    _git(site, "add", "toyplug")
    _git(site, "commit", "-q", "-m", "toy")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=site, capture_output=True, text=True).stdout.strip()
    src = regularizers.provenance("cos")
    assert src == {"spec": "cos", "label": "cos", "kind": "entry_point", "class": "toyplug.losses:CosLoss",
                   "adapted": True, "distribution": "toyplug", "version": "1.2.0", "git_commit": head,
                   "git_dirty": False}
    assert regularizers.provenance("toyplug.sub:MSE")["kind"] == "module"
    (site / "toyplug" / "losses.py").write_text(PLAIN + "\n# edited\n")
    regularizers._source.cache_clear()
    _plugins.git_state.cache_clear()
    assert regularizers.provenance("cos")["git_dirty"] is True
    builtin = regularizers.provenance("barlow_twins")
    assert builtin["kind"] == "builtin" and builtin["git_commit"] is None  # the record's env has sslbench's


def test_provenance_outside_a_git_tree(tmp_path, monkeypatch):
    (tmp_path / "plain_nogit_x.py").write_text(textwrap.dedent(PLAIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    try:
        src = regularizers.provenance("plain_nogit_x:Bare")
    finally:
        __import__("sys").modules.pop("plain_nogit_x", None)
        regularizers._source.cache_clear()
    assert src["git_commit"] is None and src["git_dirty"] is None and src["distribution"] is None
