"""Classifier architectures used by the classification studies."""

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "softplus": nn.Softplus, "gelu": nn.GELU, "tanh": nn.Tanh}


def _activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def mlp(sizes: list[int], activation: str = "relu") -> nn.Sequential:
    """An MLP, e.g. `mlp([784, 256, 256, 10])`.

    Args:
        sizes (list[int]):
            Input width, hidden widths, number of classes.
        activation (str):
            A key of `ACTIVATIONS`.

    Returns:
        nn.Sequential: flattens its input, then Linear-activation blocks and a final Linear.
    """
    if len(sizes) < 2:
        raise ValueError(f"an MLP needs an input and an output size, got {sizes}")
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(_activation(activation))
    return nn.Sequential(*layers)


@torch.no_grad()
def kaiming_init_(model: nn.Module) -> nn.Module:
    """Kaiming-normal weights (fan-in, ReLU gain) and zero biases for every linear and convolution layer.

    Args:
        model (nn.Module):
            The network, changed in place.

    Returns:
        nn.Module: the same network.
    """
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                m.bias.zero_()
    return model


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convolutions with batch norm and an identity or 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int, activation: str = "relu"):
        super().__init__()
        self.act = _activation(activation)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        return self.act(self.bn2(self.conv2(out)) + self.shortcut(x))


def resnet18_cifar(num_classes: int, width: int = 64, activation: str = "relu") -> nn.Sequential:
    """ResNet-18, CIFAR variant: a 3x3 stem without max-pooling, four stages of two blocks, 32x32 inputs.

    Args:
        num_classes (int):
            Output classes.
        width (int):
            Channels of the first stage (64 in the paper; tests use less).
        activation (str):
            A key of `ACTIVATIONS`.

    Returns:
        nn.Sequential: the network, `[B, 3, 32, 32] -> [B, num_classes]`.
    """
    layers: list[nn.Module] = [nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), _activation(activation)]
    c = width
    for stage, stride in enumerate([1, 2, 2, 2]):
        c_out = width * 2**stage
        layers += [BasicBlock(c, c_out, stride, activation), BasicBlock(c_out, c_out, 1, activation)]
        c = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes)]
    return nn.Sequential(*layers)


VGG11 = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


def vgg11_cifar(num_classes: int, width: int = 64, activation: str = "relu") -> nn.Sequential:
    """VGG-11 for 32x32 inputs without batch norm: the BN-free CNN of the learning-rate study.

    Args:
        num_classes (int):
            Output classes.
        width (int):
            Channels of the first convolution (64 in the paper); later layers scale with it.
        activation (str):
            A key of `ACTIVATIONS`.

    Returns:
        nn.Sequential: the network, `[B, 3, 32, 32] -> [B, num_classes]`.
    """
    layers: list[nn.Module] = []
    c = 3
    for v in VGG11:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            c_out = v * width // 64
            layers += [nn.Conv2d(c, c_out, 3, padding=1), _activation(activation)]
            c = c_out
    layers += [nn.Flatten(), nn.Linear(c, num_classes)]
    return nn.Sequential(*layers)
