"""Model zoo: small CNNs for digits and Fashion-MNIST, a residual CNN, FINN's
CNV and ResNet-18 (CIFAR and ImageNet stems). Plain PyTorch modules, built only
from layers that :func:`quant.nn.quantize_model` and the exporter support.
"""

from torch import nn

__all__ = ["MODELS", "build_model", "DigitsCNN", "FashionCNN", "ResidualCNN", "CNV", "ResNet18",
           "BasicBlock", "input_shape"]


def _conv_bn_relu(cin, cout, kernel=3, stride=1, padding=1):
    return [nn.Conv2d(cin, cout, kernel, stride, padding, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU()]


class DigitsCNN(nn.Sequential):
    """8x8x1 digits: conv16-conv32-pool-conv32-pool-fc10 (~14k weights)."""

    def __init__(self, classes=10, width=16, in_channels=1):
        super().__init__(
            *_conv_bn_relu(in_channels, width),
            *_conv_bn_relu(width, 2 * width), nn.MaxPool2d(2),
            *_conv_bn_relu(2 * width, 2 * width), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(2 * width * 4, classes))


class FashionCNN(nn.Sequential):
    """28x28x1: conv32-pool-conv64-pool-conv64-pool-fc128-fc10."""

    def __init__(self, classes=10, width=32, in_channels=1):
        super().__init__(
            *_conv_bn_relu(in_channels, width), nn.MaxPool2d(2),
            *_conv_bn_relu(width, 2 * width), nn.MaxPool2d(2),
            *_conv_bn_relu(2 * width, 2 * width), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(2 * width * 9, 128, bias=False), nn.BatchNorm1d(128), nn.ReLU(),
            nn.Linear(128, classes))


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs, identity or 1x1 projection shortcut."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU()
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu2(out + shortcut)


class ResidualCNN(nn.Module):
    """A small residual CNN: stem, an identity block, a projection block, global pool, fc."""

    def __init__(self, classes=10, width=16, in_channels=1):
        super().__init__()
        self.stem = nn.Sequential(*_conv_bn_relu(in_channels, width))
        self.block1 = BasicBlock(width, width)
        self.block2 = BasicBlock(width, 2 * width, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(2 * width, classes)

    def forward(self, x):
        x = self.block2(self.block1(self.stem(x)))
        return self.fc(self.flatten(self.pool(x)))


class CNV(nn.Sequential):
    """FINN's CNV for 32x32x3: conv 64-64-P-128-128-P-256-256 (3x3, no padding), fc 512-512-10."""

    def __init__(self, classes=10, in_channels=3):
        super().__init__(
            *_conv_bn_relu(in_channels, 64, padding=0), *_conv_bn_relu(64, 64, padding=0),
            nn.MaxPool2d(2),
            *_conv_bn_relu(64, 128, padding=0), *_conv_bn_relu(128, 128, padding=0),
            nn.MaxPool2d(2),
            *_conv_bn_relu(128, 256, padding=0), *_conv_bn_relu(256, 256, padding=0),
            nn.Flatten(),
            nn.Linear(256, 512, bias=False), nn.BatchNorm1d(512), nn.ReLU(),
            nn.Linear(512, 512, bias=False), nn.BatchNorm1d(512), nn.ReLU(),
            nn.Linear(512, classes))


class ResNet18(nn.Module):
    """ResNet-18; ``stem="cifar"`` (3x3 conv, no max-pool) or ``"imagenet"`` (7x7/2 + max-pool)."""

    def __init__(self, classes=1000, stem="imagenet", in_channels=3):
        super().__init__()
        if stem == "imagenet":
            self.stem = nn.Sequential(nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False),
                                      nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        elif stem == "cifar":
            self.stem = nn.Sequential(*_conv_bn_relu(in_channels, 64))
        else:
            raise ValueError(f"ResNet-18 stem must be 'imagenet' or 'cifar', not {stem!r}")
        layers, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers.append(nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout)))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return self.fc(self.flatten(self.pool(x)))


# name -> (constructor, input shape (C, H, W), default number of classes)
MODELS = {
    "digits-cnn": (DigitsCNN, (1, 8, 8), 10),
    "fashion-cnn": (FashionCNN, (1, 28, 28), 10),
    "residual-cnn": (ResidualCNN, (1, 28, 28), 10),
    "cnv": (CNV, (3, 32, 32), 10),
    "resnet18-cifar": (lambda classes=10, in_channels=3: ResNet18(classes, "cifar", in_channels),
                       (3, 32, 32), 10),
    "resnet18-imagenet": (lambda classes=1000, in_channels=3: ResNet18(classes, "imagenet",
                                                                       in_channels),
                          (3, 224, 224), 1000),
}


def build_model(name, classes=None, in_channels=None):
    """A fresh model from :data:`MODELS` by name."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; choose one of {', '.join(MODELS)}")
    constructor, shape, default_classes = MODELS[name]
    kwargs = {"classes": classes or default_classes}
    if in_channels is not None:
        kwargs["in_channels"] = in_channels
    return constructor(**kwargs)


def input_shape(name, in_channels=None):
    shape = MODELS[name][1]
    return (in_channels or shape[0],) + tuple(shape[1:])
