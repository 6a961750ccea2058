"""Tests of sslbench.training.evaluate against references written here from the formulas (naive loops, numpy, sklearn)."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from sslbench.training import evaluate as E


# --------------------------------------------------------------------------------------------------------------
# References
# --------------------------------------------------------------------------------------------------------------
def ref_knn_predict(train_x, train_y, test_x, k, temperature, num_classes):
    """InstDisc weighted kNN with explicit loops: cosine similarity, top k, weights exp(s/T), class vote."""
    train_x, test_x = train_x.tolist(), test_x.tolist()
    train_y = train_y.tolist()

    def cos(a, b):
        dot = sum(x * y for x, y in zip(a, b))
        na = math.sqrt(sum(x * x for x in a))
        nb = math.sqrt(sum(y * y for y in b))
        return dot / (na * nb)

    k = min(k, len(train_x))
    preds = []
    for q in test_x:
        sims = sorted(((cos(q, t), j) for j, t in enumerate(train_x)), key=lambda p: -p[0])[:k]
        votes = [0.0] * num_classes
        for s, j in sims:
            votes[train_y[j]] += math.exp(s / temperature)
        best = max(range(num_classes), key=lambda c: (votes[c], -c))  # ties: lowest class
        preds.append(best)
    return preds


def ref_entropy_rank(values, eps=0.0):
    values = [float(v) for v in values]
    total = sum(values)
    h = 0.0
    for v in values:
        p = v / total + eps
        if p > 0:
            h -= p * math.log(p)
    return math.exp(h)


def ref_rankme(z, eps=1e-7):
    s = np.linalg.svd(np.asarray(z, dtype=np.float64), compute_uv=False)
    return ref_entropy_rank(s, eps)


def ref_cov_effective_rank(z):
    z = np.asarray(z, dtype=np.float64)
    cov = np.cov(z, rowvar=False)  # (D, D), divides by N - 1
    eig = np.clip(np.linalg.eigvalsh(cov), 0, None)
    return ref_entropy_rank(eig)


def ref_std_normalized(z):
    z = np.asarray(z, dtype=np.float64)
    rows = [r / np.sqrt((r * r).sum()) for r in z]
    zn = np.stack(rows)
    return float(np.mean([np.std(zn[:, j], ddof=1) for j in range(zn.shape[1])]))


def clusters(n, d, k, seed, spread=0.3):
    """k well-separated Gaussian clusters (means 6·e_c) in d dimensions, labels 0..k-1."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, k, (n,), generator=g)
    means = torch.zeros(k, d)
    means[torch.arange(k), torch.arange(k)] = 6.0
    return means[y] + spread * torch.randn(n, d, generator=g), y


# --------------------------------------------------------------------------------------------------------------
# kNN
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k,temperature", [(1, 0.1), (5, 0.1), (7, 0.5), (200, 0.1), (4, 0.01)])
def test_knn_matches_naive_reference(k, temperature):
    g = torch.Generator().manual_seed(k)
    train_x = torch.randn(23, 5, generator=g, dtype=torch.float64)
    train_y = torch.randint(0, 3, (23,), generator=g)
    test_x = torch.randn(11, 5, generator=g, dtype=torch.float64)
    test_y = torch.randint(0, 3, (11,), generator=g)
    expected = ref_knn_predict(train_x, train_y, test_x, k, temperature, 3)
    for chunk in (None, 1, 4):
        pred = E.knn_predict(train_x, train_y, test_x, k=k, temperature=temperature, num_classes=3, chunk_size=chunk)
        assert pred.tolist() == expected
    acc = E.knn_accuracy(train_x, train_y, test_x, test_y, k=k, temperature=temperature)
    assert acc == pytest.approx(100.0 * sum(p == t for p, t in zip(expected, test_y.tolist())) / 11)


def test_knn_float32_and_scale_invariance():
    g = torch.Generator().manual_seed(0)
    train_x, train_y = torch.randn(40, 7, generator=g), torch.randint(0, 4, (40,), generator=g)
    test_x = torch.randn(9, 7, generator=g)
    expected = ref_knn_predict(train_x.double(), train_y, test_x.double(), 6, 0.1, 4)
    assert E.knn_predict(train_x, train_y, test_x, k=6).tolist() == expected
    # cosine similarity: scaling the rows changes nothing
    scale = torch.rand(40, 1, generator=g) * 10 + 0.1
    assert E.knn_predict(train_x * scale, train_y, test_x, k=6).tolist() == expected


def test_knn_recovers_clusters():
    x, y = clusters(300, 6, 4, seed=0)
    xt, yt = clusters(100, 6, 4, seed=1)
    assert E.knn_accuracy(x, y, xt, yt) == 100.0


def test_knn_small_temperature_does_not_overflow():
    x, y = clusters(50, 4, 2, seed=2)
    xt, yt = clusters(20, 4, 2, seed=3)
    assert E.knn_accuracy(x, y, xt, yt, k=10, temperature=1e-3) == 100.0


# --------------------------------------------------------------------------------------------------------------
# Linear probe
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["lbfgs", "adam"])
def test_probe_separable_data_is_perfect(method):
    x, y = clusters(600, 9, 5, seed=0)
    xt, yt = clusters(300, 9, 5, seed=1)
    assert E.linear_probe(x, y, xt, yt, method=method, epochs=30) == 100.0


def test_probe_separable_by_a_hyperplane():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(13, generator=g)

    def make(n):
        x = torch.randn(n, 13, generator=g)
        margin = x @ w
        keep = margin.abs() > 0.5  # a margin around the separating hyperplane
        return x[keep], (margin[keep] > 0).long()

    x, y = make(1500)
    xt, yt = make(600)
    assert E.linear_probe(x, y, xt, yt) >= 99.5


def test_probe_random_labels_is_chance():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(1500, 16, generator=g), torch.randint(0, 10, (1500,), generator=g)
    xt, yt = torch.randn(2000, 16, generator=g), torch.randint(0, 10, (2000,), generator=g)
    acc = E.linear_probe(x, y, xt, yt)
    assert 5.0 <= acc <= 15.0  # chance is 10 %; 3 sigma for 2000 test samples is about 2 %


def test_probe_is_deterministic():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(400, 11, generator=g)
    y = (x[:, :3] + torch.randn(400, 3, generator=g)).argmax(1)
    xt = torch.randn(200, 11, generator=g)
    yt = (xt[:, :3] + torch.randn(200, 3, generator=g)).argmax(1)
    a = E.linear_probe(x, y, xt, yt, epochs=20)
    assert a == E.linear_probe(x, y, xt, yt, epochs=20) == E.linear_probe(x, y, xt, yt, epochs=20, seed=9)
    b = E.linear_probe(x, y, xt, yt, method="adam", epochs=5, seed=3)
    assert b == E.linear_probe(x, y, xt, yt, method="adam", epochs=5, seed=3)


def test_probe_matches_sklearn_logistic_regression():
    """The L-BFGS probe reaches the optimum of mean CE + wd/2·‖W‖² on standardised features, which is sklearn's
    multinomial logistic regression with C = 1/(wd·N)."""
    sklearn = pytest.importorskip("sklearn.linear_model")
    g = torch.Generator().manual_seed(1)
    n, d, wd = 500, 8, 1e-2
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * torch.linspace(0.5, 3, d, dtype=torch.float64) + 2
    y = (x[:, :3] + 1.5 * torch.randn(n, 3, generator=g, dtype=torch.float64)).argmax(1)
    xt = torch.randn(400, d, generator=g, dtype=torch.float64) * torch.linspace(0.5, 3, d, dtype=torch.float64) + 2
    yt = (xt[:, :3] + 1.5 * torch.randn(400, 3, generator=g, dtype=torch.float64)).argmax(1)
    acc = E.linear_probe(x, y, xt, yt, weight_decay=wd, epochs=200)

    xn, yn, xtn = x.numpy(), y.numpy(), xt.numpy()
    mean, std = xn.mean(0), xn.std(0)
    clf = sklearn.LogisticRegression(C=1.0 / (wd * n), tol=1e-10, max_iter=10_000)
    clf.fit((xn - mean) / std, yn)
    ref = 100.0 * float((clf.predict((xtn - mean) / std) == yt.numpy()).mean())
    assert acc == pytest.approx(ref, abs=0.5)  # at most two of 400 borderline test points differ


def test_probe_ignores_constant_features_and_unseen_test_classes():
    x, y = clusters(200, 5, 3, seed=0)
    xt, yt = clusters(100, 5, 3, seed=1)
    x = torch.cat([x, torch.full((200, 2), 3.0)], dim=1)
    xt = torch.cat([xt, torch.full((100, 2), 3.0)], dim=1)
    assert E.linear_probe(x, y, xt, yt) == 100.0
    yt_unseen = yt.clone()
    yt_unseen[:10] = 4  # a class absent from training is never predicted
    assert E.linear_probe(x, y, xt, yt_unseen) == pytest.approx(90.0)


# --------------------------------------------------------------------------------------------------------------
# Bad inputs of the probe and kNN
# --------------------------------------------------------------------------------------------------------------
def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(20, 4, generator=g), torch.randint(0, 3, (20,), generator=g), \
        torch.randn(10, 4, generator=g), torch.randint(0, 3, (10,), generator=g)


@pytest.mark.parametrize("fn", [E.linear_probe, E.knn_accuracy])
def test_bad_feature_and_label_inputs(fn):
    x, y, xt, yt = _data()
    with pytest.raises(ValueError, match="features"):
        fn(x, y, torch.randn(10, 5), yt)
    with pytest.raises(ValueError, match="shape"):
        fn(x, y[:-1], xt, yt)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        fn(x[:, :, None], y, xt, yt)
    with pytest.raises(TypeError, match="integers"):
        fn(x, y.float(), xt, yt)
    with pytest.raises(TypeError, match="floating point"):
        fn(x.long(), y, xt, yt)
    with pytest.raises(ValueError, match="negative"):
        fn(x, y - 5, xt, yt)
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        fn(bad, y, xt, yt)
    with pytest.raises(TypeError):
        fn(x.numpy(), y, xt, yt)


def test_bad_hyperparameters():
    x, y, xt, yt = _data()
    with pytest.raises(ValueError, match="k="):
        E.knn_accuracy(x, y, xt, yt, k=0)
    with pytest.raises(ValueError, match="temperature"):
        E.knn_accuracy(x, y, xt, yt, temperature=0.0)
    with pytest.raises(ValueError, match="epochs"):
        E.linear_probe(x, y, xt, yt, epochs=0)
    with pytest.raises(ValueError, match="lr"):
        E.linear_probe(x, y, xt, yt, lr=-1.0)
    with pytest.raises(ValueError, match="weight_decay"):
        E.linear_probe(x, y, xt, yt, weight_decay=-1e-3)
    with pytest.raises(ValueError, match="method"):
        E.linear_probe(x, y, xt, yt, method="sgd")


# --------------------------------------------------------------------------------------------------------------
# Collapse metrics
# --------------------------------------------------------------------------------------------------------------
def test_effective_rank_of_identity_like_and_rank_one():
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(9, 9, generator=g, dtype=torch.float64))
    for r in (1, 3, 6):
        m = 2.5 * q[:, :r] @ q[:, :r].T  # r singular values equal to 2.5, the others 0
        assert E.effective_rank(m) == pytest.approx(r, abs=1e-9)
    assert E.effective_rank(torch.eye(7)) == pytest.approx(7, abs=1e-6)
    u, v = torch.randn(12, 1, generator=g), torch.randn(1, 5, generator=g)
    assert E.effective_rank(u @ v) == pytest.approx(1.0, abs=1e-5)
    assert E.effective_rank(torch.zeros(4, 3)) == 0.0
    a = torch.randn(10, 6, generator=g, dtype=torch.float64)
    ref = ref_entropy_rank(np.linalg.svd(a.numpy(), compute_uv=False))
    assert E.effective_rank(a) == pytest.approx(ref, rel=1e-10)
    assert E.effective_rank(7.0 * a) == pytest.approx(ref, rel=1e-10)  # scale invariant
    assert 1.0 < ref < 6.0


@pytest.mark.parametrize("shape", [(30, 7), (5, 11), (64, 16)])
def test_rankme_matches_naive_reference(shape):
    g = torch.Generator().manual_seed(shape[0])
    z = torch.randn(*shape, generator=g) @ torch.diag(torch.linspace(0.1, 2.0, shape[1]))
    assert E.rankme(z) == pytest.approx(ref_rankme(z.numpy()), rel=1e-6)
    assert E.rankme(z, eps=1e-3) == pytest.approx(ref_rankme(z.numpy(), 1e-3), rel=1e-6)


def test_collapse_metrics_match_references():
    g = torch.Generator().manual_seed(3)
    z = torch.randn(50, 9, generator=g) @ torch.randn(9, 9, generator=g) + 1.0
    m = E.collapse_metrics(z)
    assert set(m) == {"std_normalized", "rankme", "effective_rank"}
    assert m["std_normalized"] == pytest.approx(ref_std_normalized(z.numpy()), rel=1e-6)
    assert m["rankme"] == pytest.approx(ref_rankme(z.numpy()), rel=1e-6)
    assert m["effective_rank"] == pytest.approx(ref_cov_effective_rank(z.numpy()), rel=1e-6)
    assert m["std_normalized"] == pytest.approx(E.std_normalized(z))


def test_collapse_metrics_isotropic_and_collapsed():
    g = torch.Generator().manual_seed(0)
    d = 16
    iso = E.collapse_metrics(torch.randn(4000, d, generator=g))
    assert iso["std_normalized"] == pytest.approx(1 / math.sqrt(d), rel=0.02)
    assert iso["effective_rank"] == pytest.approx(d, rel=0.02)
    assert iso["rankme"] == pytest.approx(d, rel=0.02)
    # complete collapse: every embedding the same point
    point = E.collapse_metrics(torch.randn(1, d, generator=g).repeat(100, 1))
    assert point["std_normalized"] == pytest.approx(0.0, abs=1e-7)
    assert point["rankme"] == pytest.approx(1.0, abs=1e-3)
    assert point["effective_rank"] == 0.0  # no variance at all
    # dimensional collapse: variance along one direction only
    line = torch.randn(200, 1, generator=g) @ torch.randn(1, d, generator=g) + torch.randn(1, d, generator=g)
    m = E.collapse_metrics(line)
    assert m["effective_rank"] == pytest.approx(1.0, abs=1e-4)
    assert m["rankme"] < 2.5


def test_collapse_metrics_non_finite_and_bad_inputs():
    z = torch.randn(10, 4)
    z[2, 2] = float("inf")
    m = E.collapse_metrics(z)
    assert all(math.isnan(v) for v in m.values())
    with pytest.raises(ValueError, match="N >= 2"):
        E.collapse_metrics(torch.randn(1, 4))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        E.collapse_metrics(torch.randn(3, 4, 5))
    with pytest.raises(TypeError):
        E.collapse_metrics([[1.0, 2.0]])
    with pytest.raises(ValueError, match="non-negative"):
        E.spectral_entropy_rank(torch.tensor([1.0, -0.5]))


# --------------------------------------------------------------------------------------------------------------
# Feature extraction and the whole evaluation
# --------------------------------------------------------------------------------------------------------------
class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        return self.bn(self.conv(x)).mean(dim=(2, 3))


def test_extract_features():
    torch.manual_seed(0)
    net = _Tiny()
    net.train()
    net(torch.randn(8, 1, 8, 8))  # non-trivial running statistics
    images = torch.randint(0, 256, (10, 1, 8, 8), dtype=torch.uint8)
    norm = lambda x: (x.float() / 255.0 - 0.5) / 0.25  # noqa: E731
    net.eval()
    with torch.no_grad():
        expected = net(norm(images))
    net.train()
    for bs in (1, 3, 64):
        f = E.extract_features(net, images, bs, "cpu", norm)
        assert f.dtype == torch.float32 and f.device.type == "cpu" and not f.requires_grad
        torch.testing.assert_close(f, expected)
    assert net.training  # mode restored
    f = E.extract_features(net, images, 4, torch.device("cpu"))  # default: uint8 / 255
    net.eval()
    torch.testing.assert_close(f, net(images.float() / 255).detach())
    with pytest.raises(ValueError, match="batch_size"):
        E.extract_features(net, images, 0, "cpu", norm)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        E.extract_features(net, images[0], 2, "cpu", norm)


def _striped_images(n, g):
    """Class 0: horizontal stripes, class 1: vertical stripes (8×8 uint8, noisy), labels (n,)."""
    y = torch.randint(0, 2, (n,), generator=g)
    stripes = (torch.arange(8) % 2).float() * 150
    horizontal = stripes[:, None].expand(8, 8)
    patterns = torch.stack([horizontal, horizontal.T])[y][:, None]
    x = patterns + 50 + torch.randint(0, 40, (n, 1, 8, 8), generator=g)
    return x.to(torch.uint8), y


def test_evaluate_backbone_on_separable_images():
    g = torch.Generator().manual_seed(0)
    (xi, yi), (xti, yti) = _striped_images(64, g), _striped_images(32, g)
    norm = lambda x: x.float() / 255.0  # noqa: E731
    out = E.evaluate_backbone(nn.Flatten(), xi, yi, xti, yti, norm, "cpu", 16, knn_k=10, probe={"epochs": 50})
    assert set(out) == {"linear_top1", "knn_top1", "std_normalized", "rankme", "effective_rank"}
    assert out["linear_top1"] == 100.0 and out["knn_top1"] == 100.0
    pixels = norm(xti).flatten(1)
    assert out["rankme"] == pytest.approx(E.rankme(pixels))
    assert out["effective_rank"] == pytest.approx(E.collapse_metrics(pixels)["effective_rank"])


def _convnet_case():
    """Striped images (train, test), a seeded convnet with a 16-8 projector, and the 0..1 normalisation."""
    from sslbench.training.models import Projector, build_backbone

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    train, test = _striped_images(64, g), _striped_images(32, g)
    backbone = build_backbone("convnet", 1, 8)
    return train, test, backbone, Projector(backbone.out_dim, "16-8"), lambda x: x.float() / 255.0


def test_evaluate_backbone_with_a_convnet_and_projector():
    (xi, yi), (xti, yti), backbone, proj, norm = _convnet_case()
    out = E.evaluate_backbone(backbone, xi, yi, xti, yti, norm, "cpu", 16, projector=proj, knn_k=10,
                              probe={"epochs": 50})
    assert set(out) == {"linear_top1", "knn_top1", "std_normalized", "rankme", "effective_rank",
                        "backbone_std_normalized", "backbone_rankme", "backbone_effective_rank"}
    f_train = E.extract_features(backbone, xi, 16, "cpu", norm)
    f_test = E.extract_features(backbone, xti, 16, "cpu", norm)
    assert out["knn_top1"] == E.knn_accuracy(f_train, yi, f_test, yti, k=10)
    assert out["linear_top1"] == E.linear_probe(f_train, yi, f_test, yti, epochs=50)
    assert out["linear_top1"] >= 90.0  # random convolutions tell stripe orientations apart
    assert out["backbone_rankme"] == pytest.approx(E.rankme(f_test))
    assert proj.training and backbone.training  # modes restored
    proj.eval()
    with torch.no_grad():
        assert out["rankme"] == pytest.approx(E.rankme(proj(f_test)), rel=1e-5)


def test_extract_features_out_device():
    net = _Tiny()
    images = torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8)
    f = E.extract_features(net, images, 4, "cpu", out_device="meta")
    assert f.device.type == "meta" and f.shape[0] == 6


@pytest.mark.gpu
def test_evaluate_backbone_on_cuda_keeps_features_there_and_agrees_with_the_cpu():
    (xi, yi), (xti, yti), backbone, proj, norm = _convnet_case()
    kw = dict(projector=proj, knn_k=10, probe={"epochs": 50})
    cpu = E.evaluate_backbone(backbone, xi, yi, xti, yti, norm, "cpu", 16, **kw)
    backbone.cuda(), proj.cuda()
    f = E.extract_features(backbone, xi, 16, "cuda", norm, out_device="cuda")
    assert f.device.type == "cuda"
    gpu = E.evaluate_backbone(backbone, xi.cuda(), yi.cuda(), xti.cuda(), yti.cuda(), norm, "cuda", 16, **kw)
    assert set(gpu) == set(cpu)
    for key in cpu:  # accuracies within one test image (3.125 %), the collapse metrics to float32 rounding
        tol = dict(abs=3.2) if key.endswith("_top1") else dict(rel=1e-3)
        assert gpu[key] == pytest.approx(cpu[key], **tol), key
