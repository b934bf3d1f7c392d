"""Vision models (models/mlp.py, models/cnn.py, models/resnet.py): output shapes, parameter
counts of the reference architectures, width scaling, norm options, yaml schemas."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import models
from datasets.base import Data
from models import cnn, mlp, resnet

REPO = Path(__file__).resolve().parents[1]


def conf(name: str, **overrides) -> dict:
    cfg = yaml.safe_load((REPO / "conf" / "model" / f"{name}.yaml").read_text())
    cfg.update(overrides)
    return cfg


def stub(shape=(1, 28, 28), classes=10, n=4) -> Data:
    x = torch.randn(n, *shape)
    return Data(x_train=x, y_train=torch.randint(0, classes, (n,)), num_classes=classes,
                input_shape=tuple(shape), input_dim=int(torch.tensor(shape).prod()))


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


MNIST, CIFAR = stub((1, 28, 28)), stub((3, 32, 32))


def test_mlp_default_is_784_512_256_10():
    m = models.build(conf("mlp"), MNIST)
    assert m(MNIST.x_train).shape == (4, 10)
    assert n_params(m) == 784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10
    m2 = models.build(conf("mlp", width=2.0), MNIST)
    assert n_params(m2) == 784 * 1024 + 1024 + 1024 * 512 + 512 + 512 * 10 + 10
    m3 = models.build(conf("mlp", hidden_sizes=[7], activation="tanh", width=0.5), CIFAR)
    assert m3(CIFAR.x_train).shape == (4, 10) and n_params(m3) == 3072 * 4 + 4 + 4 * 10 + 10  # round(3.5) = 4


def test_mlp_regression_and_flat_inputs():
    d = Data(x_train=torch.randn(5, 6), y_train=torch.randn(5), task="regression", input_dim=6)
    assert models.build(conf("mlp", hidden_sizes=[3]), d)(d.x_train).shape == (5,)
    d2 = Data(x_train=torch.randn(5, 6), y_train=torch.randn(5, 2), task="regression", input_dim=6)
    assert models.build(conf("mlp", hidden_sizes=[]), d2)(d2.x_train).shape == (5, 2)


def test_lenet5_pads_mnist_and_has_the_classic_size():
    m = models.build(conf("lenet5"), MNIST)
    assert m(MNIST.x_train).shape == (4, 10)
    # conv 1->6, 6->16, 16->120 (5x5), FC 120->84->10: the classic 61,706 parameters
    assert n_params(m) == 61706
    assert isinstance(m.features[1], torch.nn.Tanh) and isinstance(m.features[2], torch.nn.AvgPool2d)
    c = models.build(conf("lenet5"), CIFAR)
    assert c(CIFAR.x_train).shape == (4, 10) and n_params(c) == 61706 + 2 * 6 * 25
    wide = models.build(conf("lenet5", width=2.0), MNIST)
    assert wide(MNIST.x_train).shape == (4, 10) and n_params(wide) > 3 * n_params(m)


def test_simple_cnn_matches_simple_mnist_cnn():
    m = models.build(conf("simple_cnn"), MNIST)
    assert m(MNIST.x_train).shape == (4, 10)
    assert m.fc.in_features == 4900
    assert n_params(m) == (1 * 32 * 25 + 32) + (32 * 100 * 25 + 100) + (4900 * 10 + 10)
    big = models.build(conf("simple_cnn"), stub((1, 28, 28), classes=10250))
    assert big.fc.weight.numel() == 4900 * 10250  # ~50.2M weights with all barcoded classes
    c = models.build(conf("simple_cnn", width=0.5), CIFAR)
    assert c(CIFAR.x_train).shape == (4, 10) and c.fc.in_features == 50 * 8 * 8
    assert c.features[0].in_channels == 3 and c.features[0].out_channels == 16


def test_resnet_parameter_counts():
    # the standard CIFAR ResNet-18/34 (3x3 stem, no max-pool, BatchNorm) sizes for 10 classes
    assert n_params(models.build(conf("resnet18"), CIFAR)) == 11173962
    assert n_params(models.build(conf("resnet34"), CIFAR)) == 21282122
    r100 = models.build(conf("resnet18"), stub((3, 32, 32), classes=100))
    assert r100.fc.out_features == 100


@pytest.mark.parametrize("norm", ["batch", "group", "none"])
def test_resnet_forward_backward_and_width(norm):
    torch.manual_seed(0)
    m = models.build(conf("resnet18", width=0.125, norm=norm, gn_groups=4), CIFAR)
    out = m(CIFAR.x_train)
    assert out.shape == (4, 10)
    out.logsumexp(1).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    kinds = {type(x) for x in m.modules()}
    expect = {"batch": torch.nn.BatchNorm2d, "group": torch.nn.GroupNorm, "none": torch.nn.Identity}[norm]
    assert expect in kinds
    if norm == "none":
        assert not ({torch.nn.BatchNorm2d, torch.nn.GroupNorm} & kinds)
    small = n_params(models.build(conf("resnet18", width=0.25, norm=norm), CIFAR))
    large = n_params(models.build(conf("resnet18", width=0.5, norm=norm), CIFAR))
    assert 3.5 < large / small < 4.1  # conv weights scale with width^2
    gray = models.build(conf("resnet34", width=0.125, norm=norm), MNIST)
    assert gray(MNIST.x_train).shape == (4, 10)


def test_resnet_options():
    m = models.build(conf("resnet18", width=0.125, norm="group", gn_groups=1, zero_init_residual=True), CIFAR)
    gns = [x for x in m.modules() if isinstance(x, torch.nn.GroupNorm)]
    assert gns and all(g.num_groups == 1 for g in gns)
    assert all(b.n2.weight.abs().sum() == 0 for b in m.modules() if isinstance(b, resnet.BasicBlock))
    g = resnet.make_norm("group", 24, 32)
    assert g.num_groups == 24  # largest divisor of 24 not above 32
    with pytest.raises(ValueError, match="valid: batch, group, none"):
        models.build(conf("resnet18", norm="layer"), CIFAR)


def test_yaml_keys_match_builders():
    assert set(conf("mlp")) - {"name"} == set(mlp.KEYS)
    assert set(conf("lenet5")) - {"name"} == {"width", "pad_to"}
    assert set(conf("simple_cnn")) - {"name"} == {"width"}
    assert set(conf("resnet18")) - {"name"} == set(resnet.KEYS) == set(conf("resnet34")) - {"name"}
    for n in ("mlp", "lenet5", "simple_cnn", "resnet18", "resnet34"):
        assert list(conf(n))[0] == "name" and conf(n)["name"] == n and n in models.BUILDERS
    with pytest.raises(ValueError, match="unknown model key"):
        models.build(conf("mlp", widht=2.0), MNIST)
    with pytest.raises(ValueError, match="input_shape"):
        cnn.build_simple_cnn(conf("simple_cnn"), Data(x_train=torch.zeros(1, 5), y_train=torch.zeros(1), num_classes=2, input_dim=5))
