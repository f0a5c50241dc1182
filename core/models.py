"""Classifier architectures used by the classification studies."""

import torch
from torch import nn


def mlp(sizes: list[int]) -> nn.Sequential:
    """A ReLU MLP, e.g. `mlp([784, 256, 256, 10])`.

    Args:
        sizes (list[int]):
            Input width, hidden widths, number of classes.

    Returns:
        nn.Sequential: flattens its input, then Linear-ReLU blocks and a final Linear.
    """
    if len(sizes) < 2:
        raise ValueError(f"an MLP needs an input and an output size, got {sizes}")
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convolutions with batch norm and an identity or 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def resnet18_cifar(num_classes: int, width: int = 64) -> nn.Sequential:
    """ResNet-18, CIFAR variant: a 3x3 stem without max-pooling, four stages of two blocks, 32x32 inputs.

    Args:
        num_classes (int):
            Output classes.
        width (int):
            Channels of the first stage (64 in the paper; tests use less).

    Returns:
        nn.Sequential: the network, `[B, 3, 32, 32] -> [B, num_classes]`.
    """
    layers: list[nn.Module] = [nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    c = width
    for stage, stride in enumerate([1, 2, 2, 2]):
        c_out = width * 2**stage
        layers += [BasicBlock(c, c_out, stride), BasicBlock(c_out, c_out, 1)]
        c = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes)]
    return nn.Sequential(*layers)
