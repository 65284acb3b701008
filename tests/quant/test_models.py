import pytest

torch = pytest.importorskip("torch")

from quant.models import MODELS, build_model, input_shape  # noqa: E402
from quant.nn import quantize_model  # noqa: E402

torch.set_num_threads(1)


@pytest.mark.parametrize("name", [n for n in MODELS if n != "resnet18-imagenet"])
def test_every_model_runs_and_quantizes(name):
    model = build_model(name)
    shape = input_shape(name)
    out = quantize_model(model, "pot", 4, 4)(torch.rand((2,) + shape))
    assert out.shape == (2, MODELS[name][2])


def test_cnv_has_finns_topology():
    convs = [m for m in build_model("cnv").modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in build_model("cnv").modules() if isinstance(m, torch.nn.Linear)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256]
    assert [lin.out_features for lin in linears] == [512, 512, 10]


def test_resnet18_parameter_count_and_unknown_names():
    params = sum(p.numel() for p in build_model("resnet18-imagenet").parameters())
    assert params == 11689512                       # torchvision's resnet18
    with pytest.raises(ValueError, match="Unknown model 'vgg'"):
        build_model("vgg")
    with pytest.raises(ValueError, match="stem must be"):
        from quant.models import ResNet18
        ResNet18(stem="tiny")
