"""Every network states its input stride and rejects other sizes with a clear error."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from gliomaseg.errors import GliomasegError
from gliomaseg.models import MODELS
from gliomaseg.models.base import InputSizeError

# 2**poolings for the U-shaped networks and the 3D U-Net, 32 for the ResNet encoders
STRIDES = {"unet": 16, "resunet": 16, "residual_inception_unet": 16, "unet3d": 16,
           "attention_resunet": 32, "encoder_unet": 32, "encoder_unet_resnet50": 32}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_stride_is_stated_and_checked(name):
    """Sides that are multiples of ``stride`` give the input's size back; others an InputSizeError
    naming the multiple, before anything is computed (shapes only: meta tensors)."""
    dims = MODELS[name].spatial_dims
    with torch.device("meta"):
        model = MODELS[name].builder(3, 2, 8)
        stride = model.stride
        assert stride == STRIDES[name]
        good = torch.zeros(1, 3, *[3 * stride] * dims)
        assert model(good).shape == (1, 2, *good.shape[2:])
        bad = torch.zeros(1, 3, 3 * stride, *[3 * stride + stride // 2] * (dims - 1))
        unit = "pixels" if dims == 2 else "voxels"
        message = f"input of {'x'.join(map(str, bad.shape[2:]))} {unit}: this network needs sides divisible by {stride}"
        with pytest.raises(InputSizeError) as raised:
            model(bad)
    assert str(raised.value) == message
    assert isinstance(raised.value, GliomasegError) and isinstance(raised.value, ValueError)


def test_importing_the_registry_does_not_import_monai():
    """Every name is registered without importing MONAI (about a second on each CLI call)."""
    code = ("import sys, gliomaseg.models as m; "
            "assert not [n for n in sys.modules if n.split('.')[0] == 'monai'], 'monai imported'; "
            "print(sorted(m.MODELS))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(sorted(STRIDES))
