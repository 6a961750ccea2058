"""Tests of sslbench.training.models: backbones, projector/predictor heads and the EMA target.

References (parameter counts, the MLP forward, the EMA recurrence and BYOL's schedule) are written here from the
architecture descriptions and formulas, not taken from the module.
"""

import math

import pytest
import torch
from torch import nn

from distributed_harness import run_ranks
from sslbench.training import models
from sslbench.training.models import EMATarget, Predictor, Projector, build_backbone, parse_widths


# --------------------------------------------------------------------------------------------------------------
# Reference parameter counts written from the architectures
# --------------------------------------------------------------------------------------------------------------
def _conv(cin, cout, k):
    return cin * cout * k * k  # no bias


def _bn(c):
    return 2 * c  # weight + bias (running statistics are buffers)


def ref_resnet18_params(in_channels, stem_kernel):
    n = _conv(in_channels, 64, stem_kernel) + _bn(64)
    cin = 64
    for stage, width in enumerate((64, 128, 256, 512)):
        for block in range(2):
            stride = 2 if (stage > 0 and block == 0) else 1
            n += _conv(cin, width, 3) + _bn(width) + _conv(width, width, 3) + _bn(width)
            if stride != 1 or cin != width:
                n += _conv(cin, width, 1) + _bn(width)
            cin = width
    return n


def ref_convnet_params(in_channels, widths=(32, 64, 128)):
    n, c = 0, in_channels
    for w in widths:
        n += _conv(c, w, 3) + _bn(w)
        c = w
    return n


# --------------------------------------------------------------------------------------------------------------
# Backbones
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("channels,size,name,dim", [
    (1, 8, "convnet", 128),
    (1, 28, "convnet", 128),
    (3, 32, "resnet18_cifar", 512),
    (3, 96, "resnet18", 512),
])
def test_auto_backbone_output_shapes(channels, size, name, dim):
    torch.manual_seed(0)
    net = build_backbone("auto", channels, size)
    assert net.name == name and net.out_dim == dim
    x = torch.randn(2, channels, size, size)
    y = net(x)
    assert y.shape == (2, dim) and torch.isfinite(y).all()
    net.eval()
    assert net(x[:1]).shape == (1, dim)


@pytest.mark.parametrize("size,expected", [(8, "convnet"), (31, "convnet"), (32, "resnet18_cifar"),
                                           (64, "resnet18_cifar"), (95, "resnet18_cifar"), (96, "resnet18"),
                                           (224, "resnet18"), ((28, 40), "convnet"), ((96, 120), "resnet18")])
def test_auto_picks_by_image_size(size, expected):
    assert models.auto_backbone(size) == expected


def test_explicit_backbones_on_other_sizes_and_channels():
    torch.manual_seed(0)
    net = build_backbone("resnet18_cifar", 1, 28)
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 512)
    net = build_backbone("convnet", 3, 32)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 128)
    net = build_backbone("convnet", 1, (28, 20))
    assert net(torch.randn(2, 1, 28, 20)).shape == (2, 128)
    net = build_backbone("convnet", 1, 28, widths=(8, 16, 24))
    assert net.out_dim == 24 and net(torch.randn(2, 1, 28, 28)).shape == (2, 24)


def test_resnet18_parameter_counts():
    cifar = build_backbone("resnet18_cifar", 3, 32)
    imagenet = build_backbone("resnet18", 3, 224)
    assert models.count_parameters(cifar) == ref_resnet18_params(3, 3)
    assert models.count_parameters(imagenet) == ref_resnet18_params(3, 7)
    # torchvision's resnet18 has 11,689,512 parameters, of which fc (512·1000 + 1000) is 513,000
    assert models.count_parameters(imagenet) == 11_689_512 - 513_000
    assert abs(models.count_parameters(cifar) - 11.17e6) < 0.01e6
    assert models.count_parameters(build_backbone("resnet18_cifar", 1, 32)) == ref_resnet18_params(1, 3)
    assert not any(isinstance(m, nn.Linear) for m in cifar.modules())  # no classifier


def test_resnet18_matches_torchvision_when_available():
    """Same state-dict names and shapes as torchvision's resnet18 (less fc), and the same outputs."""
    try:
        torchvision = pytest.importorskip("torchvision")
    except Exception as exc:  # noqa: BLE001 - a torchvision built for another torch raises other errors on import
        pytest.skip(f"torchvision does not import here: {exc}")
    torch.manual_seed(0)
    tv = torchvision.models.resnet18()
    tv.fc = nn.Identity()
    mine = build_backbone("resnet18", 3, 64)
    mine.load_state_dict(tv.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    tv.eval(), mine.eval()
    with torch.no_grad():
        torch.testing.assert_close(mine(x), tv(x), rtol=1e-4, atol=1e-5)


def test_convnet_parameter_count_and_structure():
    net = build_backbone("convnet", 1, 28)
    assert models.count_parameters(net) == ref_convnet_params(1)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128]
    assert all(c.bias is None and c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 3


def _ref_pooled_convnet(in_channels, widths=(32, 64, 128)):
    """The classic small MNIST convnet, written out: conv3×3 (stride 1)-BN-ReLU, 2×2 max-pool, twice, then a third
    conv-BN-ReLU and global average pooling."""
    layers, c = [], in_channels
    for i, w in enumerate(widths):
        layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
        layers += [nn.MaxPool2d(2, 2)] if i < 2 else [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        c = w
    return nn.Sequential(*layers)


@pytest.mark.parametrize("size", [8, 28])
def test_convnet_pool_matches_the_written_out_network(size):
    torch.manual_seed(0)
    net = build_backbone("convnet_pool", 1, size)
    assert net.name == "convnet_pool" and net.out_dim == 128
    assert models.count_parameters(net) == ref_convnet_params(1)  # the same weights as convnet, other strides
    ref = _ref_pooled_convnet(1)
    # the same layers at the same positions: the state dict loads strictly
    ref.load_state_dict({k.removeprefix("features."): v for k, v in net.state_dict().items()}, strict=True)
    x = torch.randn(4, 1, size, size)
    net.eval(), ref.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref(x), rtol=1e-4, atol=1e-5)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.stride for c in convs] == [(1, 1)] * 3
    assert build_backbone("convnet", 1, size).features[0].stride == (2, 2)  # convnet itself is unchanged


@pytest.mark.parametrize("size", [8, 28, 32])
def test_convnet_pool_2x2_is_convnet_pool_with_quadrant_means(size):
    """The same weights as ``convnet_pool``; its features are the means of the last map's four quadrants, written
    out here with plain slicing (for odd sides adaptive pooling's cells overlap by one row/column: cell i spans
    floor(i·n/2) .. ceil((i+1)·n/2))."""
    torch.manual_seed(0)
    net = build_backbone("convnet_pool_2x2", 1, size)
    assert net.name == "convnet_pool_2x2" and net.out_dim == 512
    torch.manual_seed(0)
    base = build_backbone("convnet_pool", 1, size)
    for a, b in zip(net.state_dict().values(), base.state_dict().values()):
        assert torch.equal(a, b)  # same layers, same initialisation
    x = torch.randn(4, 1, size, size)
    net.eval()
    with torch.no_grad():
        maps = net.features(x.contiguous(memory_format=torch.channels_last))
        n = maps.shape[-1]
        spans = [(0, -(-n // 2)), (n // 2, n)]
        cells = [maps[:, :, r0:r1, c0:c1].mean(dim=(2, 3)) for r0, r1 in spans for c0, c1 in spans]
        expected = torch.stack(cells, dim=2).reshape(4, -1)  # channel-major: the 4 cells of channel 0 first
        torch.testing.assert_close(net(x), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="out_pool=0 must be a positive integer"):
        models.ConvNet(1, downsample="maxpool", out_pool=0)


def test_convnet_rejects_an_unknown_downsampling():
    with pytest.raises(ValueError, match="downsample='avg'.*'stride' or 'maxpool'"):
        models.ConvNet(1, downsample="avg")


def _spatial_after_layer4(net, size, channels=3):
    seen = {}

    def hook(module, inputs, output):
        seen["shape"] = output.shape

    net.layer4.register_forward_hook(hook)
    net.eval()
    net(torch.randn(1, channels, size, size))
    return seen["shape"][-2:]


def test_resnet_stems():
    cifar = build_backbone("resnet18_cifar", 3, 32)
    assert cifar.conv1.kernel_size == (3, 3) and cifar.conv1.stride == (1, 1)
    assert isinstance(cifar.maxpool, nn.Identity)
    assert tuple(_spatial_after_layer4(cifar, 32)) == (4, 4)  # total down-sampling 8
    imagenet = build_backbone("resnet18", 3, 64)
    assert imagenet.conv1.kernel_size == (7, 7) and imagenet.conv1.stride == (2, 2)
    assert isinstance(imagenet.maxpool, nn.MaxPool2d)
    assert tuple(_spatial_after_layer4(imagenet, 64)) == (2, 2)  # total down-sampling 32


@pytest.mark.parametrize("name,channels,size", [("convnet", 1, 28), ("convnet_pool", 1, 28),
                                                ("convnet_pool_2x2", 1, 28), ("resnet18_cifar", 3, 16)])
def test_channels_last_gives_the_same_outputs_and_gradients(name, channels, size):
    torch.manual_seed(0)
    a = build_backbone(name, channels, size, channels_last=True)
    b = build_backbone(name, channels, size, channels_last=False)
    b.load_state_dict(a.state_dict())
    x = torch.randn(3, channels, size, size)
    ya, yb = a(x), b(x)
    torch.testing.assert_close(ya, yb, rtol=1e-4, atol=1e-5)
    ya.square().sum().backward()
    yb.square().sum().backward()
    for (n, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert float((pa.grad - pb.grad).abs().max()) <= 1e-4 * float(pb.grad.abs().max()), n


def test_zero_init_residual():
    net = build_backbone("resnet18_cifar", 3, 32, zero_init_residual=True)
    blocks = [m for m in net.modules() if isinstance(m, models.BasicBlock)]
    assert len(blocks) == 8 and all(float(b.bn2.weight.detach().abs().sum()) == 0 for b in blocks)


@pytest.mark.parametrize("kwargs,match", [
    (dict(name="resnet50", in_channels=3, image_size=32), "unknown"),
    (dict(name="resnet18", in_channels=3, image_size=28), "at least 32"),
    (dict(name="resnet18_cifar", in_channels=1, image_size=8), "at least 16"),
    (dict(name="auto", in_channels=1, image_size=4), "at least 8"),
    (dict(name="convnet", in_channels=0, image_size=28), "in_channels"),
    (dict(name="convnet", in_channels=1, image_size=0), "image_size"),
    (dict(name="convnet", in_channels=1, image_size=True), "image_size"),
    (dict(name="convnet", in_channels=1, image_size=(28, 28, 3)), "image_size"),
])
def test_backbone_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_backbone(**kwargs)


def test_too_small_error_names_a_fix():
    with pytest.raises(ValueError, match="convnet"):
        build_backbone("resnet18", 1, 28)


# --------------------------------------------------------------------------------------------------------------
# Projector and predictor
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec,widths", [
    ("2048-2048-2048", (2048, 2048, 2048)), (" 512 - 128 ", (512, 128)), ("7", (7,)), ("", ()), ("none", ()),
    ("None", ()), (None, ()), (128, (128,)), ([64, 32], (64, 32)),
])
def test_parse_widths(spec, widths):
    assert parse_widths(spec) == widths


@pytest.mark.parametrize("spec", ["2048--2048", "abc", "0-128", "-5", "12.5", "2048-", "128-x", True, 1.5,
                                  [64, 0]])
def test_bad_projector_specs(spec):
    with pytest.raises(ValueError, match="projector spec"):
        Projector(16, spec)


def test_projector_structure():
    p = Projector(10, "64-32-16")
    kinds = [type(m) for m in p]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    linears = [m for m in p if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(10, 64), (64, 32), (32, 16)]
    assert all(m.bias is None for m in linears)
    assert p.in_dim == 10 and p.out_dim == 16 and p.widths == (64, 32, 16)

    single = Projector(10, "8")
    assert [type(m) for m in single] == [nn.Linear] and single.out_dim == 8

    flagged = Projector(10, "6-4", last_bn=True, last_bias=True)
    assert [type(m) for m in flagged] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear, nn.BatchNorm1d]
    assert flagged[3].bias is not None and not flagged[4].affine


@pytest.mark.parametrize("spec", ["", "none"])
def test_identity_projector(spec):
    p = Projector(12, spec)
    x = torch.randn(3, 12)
    assert p.out_dim == 12 and len(p) == 0
    assert torch.equal(p(x), x)


def test_projector_forward_matches_reference():
    torch.manual_seed(0)
    p = Projector(5, "7-6-3").double()
    with torch.no_grad():
        for m in p:
            if isinstance(m, nn.BatchNorm1d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    x = torch.randn(9, 5, dtype=torch.float64)
    lin = [m for m in p if isinstance(m, nn.Linear)]
    bns = [m for m in p if isinstance(m, nn.BatchNorm1d)]
    h = x
    for i, layer in enumerate(lin):
        h = h @ layer.weight.T
        if i < len(bns):  # train-mode BN: biased batch variance, eps 1e-5, then the affine map and ReLU
            mean = h.mean(0)
            var = ((h - mean) ** 2).mean(0)
            h = (h - mean) / torch.sqrt(var + 1e-5) * bns[i].weight + bns[i].bias
            h = torch.clamp(h, min=0)
    torch.testing.assert_close(p(x), h)


def test_heads_gradcheck():
    torch.manual_seed(0)
    p = Projector(4, "5-3").double()
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(p, (x,))
    q = Predictor(3, 5).double()
    y = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(q, (y,))


def test_predictor_structure():
    q = Predictor(16, 32)
    kinds = [type(m) for m in q]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert (q[0].in_features, q[0].out_features, q[3].in_features, q[3].out_features) == (16, 32, 32, 16)
    assert q.out_dim == 16 and q(torch.randn(4, 16)).shape == (4, 16)
    for bad in (dict(dim=0, hidden=4), dict(dim=4, hidden=-1), dict(dim=4.0, hidden=8)):
        with pytest.raises(ValueError):
            Predictor(**bad)


def test_projector_bad_in_dim():
    with pytest.raises(ValueError, match="in_dim"):
        Projector(0, "8")


# --------------------------------------------------------------------------------------------------------------
# EMA target
# --------------------------------------------------------------------------------------------------------------
def ref_tau(k, total, base, final=1.0):
    """BYOL §3.2: τ = 1 − (1 − τ_base)(cos(πk/K) + 1)/2 (generalised to a final value)."""
    return final - (final - base) * (math.cos(math.pi * k / total) + 1) / 2


def _small_net():
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))


def _perturb(net, scale=0.5):
    with torch.no_grad():
        for p in net.parameters():
            p.add_(scale * torch.randn_like(p))
        net.train()
        net(torch.randn(8, 4))  # moves BN's running statistics and num_batches_tracked


def test_ema_one_update_matches_formula():
    torch.manual_seed(0)
    online = _small_net()
    ema = EMATarget(online, tau_base=0.9)
    before = {k: v.clone() for k, v in ema.target.state_dict().items()}
    _perturb(online)
    tau = ema.update(3, 10)
    assert tau == pytest.approx(ref_tau(3, 10, 0.9)) and ema.tau == tau
    after = ema.target.state_dict()
    for k, v in online.state_dict().items():
        if v.is_floating_point():
            torch.testing.assert_close(after[k], tau * before[k] + (1 - tau) * v, msg=k)
        else:
            assert torch.equal(after[k], v), k  # num_batches_tracked is copied
    assert online.state_dict()["1.num_batches_tracked"] > 0


def test_ema_several_updates_follow_the_recurrence():
    torch.manual_seed(1)
    online = _small_net()
    ema = EMATarget(online, tau_base=0.7, tau_final=0.95)
    ref = {k: v.clone().double() for k, v in online.state_dict().items()}
    total = 5
    for step in range(total):
        _perturb(online, 0.1)
        ema.update(step, total)
        tau = ref_tau(step, total, 0.7, 0.95)
        for k, v in online.state_dict().items():
            ref[k] = tau * ref[k] + (1 - tau) * v.double() if v.is_floating_point() else v.double()
    for k, v in ema.target.state_dict().items():
        torch.testing.assert_close(v.double(), ref[k], rtol=1e-5, atol=1e-6, msg=k)


def test_ema_schedule():
    ema = EMATarget(_small_net(), tau_base=0.99)
    assert ema.tau_at(0, 100) == pytest.approx(0.99)
    assert ema.tau_at(100, 100) == pytest.approx(1.0)
    assert ema.tau_at(50, 100) == pytest.approx(0.995)
    for k in (1, 17, 63, 99):
        assert ema.tau_at(k, 100) == pytest.approx(ref_tau(k, 100, 0.99))
    assert ema.tau_at(150, 100) == pytest.approx(1.0)  # held at the end
    taus = [ema.tau_at(k, 100) for k in range(101)]
    assert all(a <= b for a, b in zip(taus, taus[1:]))
    const = EMATarget(_small_net(), tau_base=0.996, schedule="constant")
    assert const.tau_at(0, 10) == const.tau_at(7, 10) == const.tau_at(3) == 0.996


def test_ema_tau_one_freezes_and_tau_zero_copies():
    torch.manual_seed(2)
    online = _small_net()
    frozen = EMATarget(online, tau_base=1.0, schedule="constant")
    copying = EMATarget(online, tau_base=0.0, schedule="constant")
    before = {k: v.clone() for k, v in frozen.target.state_dict().items()}
    _perturb(online)
    frozen.update()
    copying.update()
    for k, v in frozen.target.state_dict().items():
        if v.is_floating_point():
            assert torch.equal(v, before[k]), k
    for k, v in copying.target.state_dict().items():
        torch.testing.assert_close(v, online.state_dict()[k], msg=k)


def test_ema_target_is_a_frozen_copy_run_without_grad():
    torch.manual_seed(3)
    online = _small_net()
    ema = EMATarget(online)
    assert all(not p.requires_grad for p in ema.target.parameters())
    assert all(p.requires_grad for p in online.parameters())
    assert all(a.data_ptr() != b.data_ptr() for a, b in zip(ema.target.parameters(), online.parameters()))
    x = torch.randn(5, 4, requires_grad=True)
    y = ema(x)  # training mode (batch statistics), as the online network
    assert not y.requires_grad
    torch.testing.assert_close(y, online(x).detach())
    online.eval(), ema.eval()
    torch.testing.assert_close(ema(x), online(x).detach())
    _perturb(online)  # the target does not move until update()
    online.eval()
    assert not torch.allclose(ema(x), online(x))
    assert set(ema.state_dict()) == {f"target.{k}" for k in online.state_dict()}
    # a fresh EMATarget loads the state (resume)
    other = EMATarget(_small_net())
    other.load_state_dict(ema.state_dict())
    other.eval()
    torch.testing.assert_close(other(x), ema(x))


def test_ema_unwraps_wrappers_and_accepts_a_new_online():
    torch.manual_seed(4)
    inner = _small_net()
    ema = EMATarget(nn.DataParallel(inner), tau_base=0.5, schedule="constant")
    assert ema.online is inner
    assert set(ema.state_dict()) == {f"target.{k}" for k in inner.state_dict()}
    start = {k: v.clone() for k, v in ema.target.named_parameters()}
    replacement = _small_net()
    ema.update(online=nn.DataParallel(replacement))
    for k, v in ema.target.named_parameters():
        torch.testing.assert_close(v, 0.5 * start[k] + 0.5 * dict(replacement.named_parameters())[k], msg=k)
    with pytest.raises(ValueError, match="missing or has another shape"):
        ema.update(online=nn.Linear(4, 3))


@pytest.mark.parametrize("kwargs,match", [
    (dict(tau_base=1.5), "tau_base"), (dict(tau_base=-0.1), "tau_base"), (dict(tau_final=2.0), "tau_final"),
    (dict(tau_base=float("nan")), "tau_base"), (dict(schedule="linear"), "schedule"),
])
def test_ema_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EMATarget(_small_net(), **kwargs)


def test_ema_bad_steps():
    ema = EMATarget(_small_net())
    with pytest.raises(ValueError, match="total_steps"):
        ema.update(0, 0)
    with pytest.raises(ValueError, match="total_steps"):
        ema.update(0)
    with pytest.raises(ValueError, match="step"):
        ema.update(-1, 10)
    with pytest.raises(ValueError, match="nn.Module"):
        EMATarget(lambda x: x)


@pytest.mark.distributed
def test_ema_follows_a_ddp_wrapped_module():
    import dist_models_cases

    res = run_ranks(dist_models_cases.ema_under_ddp, 2)
    for r in res:
        assert r["keys_ok"]
        assert r["max_err"] < 1e-6
    # the online parameters (averaged gradients) and so the targets agree across ranks
    for a, b in zip(res[0]["target"], res[1]["target"]):
        torch.testing.assert_close(a, b)


@pytest.mark.gpu
def test_cuda_backbone_amp_and_ema():
    torch.manual_seed(0)
    dev = torch.device("cuda")
    net = build_backbone("resnet18_cifar", 3, 32).to(dev)
    ema = EMATarget(net, tau_base=0.9)
    x = torch.randn(8, 3, 32, 32, device=dev)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y = net(x)
        yt = ema(x)
    assert y.shape == yt.shape == (8, 512)
    y.float().square().mean().backward()
    before = [p.clone() for p in ema.target.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.01)
    ema.update(0, 10)
    for b, t, o in zip(before, ema.target.parameters(), net.parameters()):
        torch.testing.assert_close(t, 0.9 * b + 0.1 * o)
