"""Test helper shared by test_models_vgg.py and test_models_resnet.py: the FCN head's
response to one class score, through its own stages (``FCN.stages``, ``FCN.fuse``)."""
import numpy as np
import paddle


def impulse_response(model, level, row, col, size=(3, 4)):
    """``FCN.fuse`` of zero score maps, one per stage of ``model`` for a ``32 size`` input,
    with a one-hot at (row, col) of class 0 in the 1/``level`` map: the H x W output of class 0.
    """
    height, width = (32 * s for s in size)
    maps = [np.zeros((1, model.num_classes, height // stage.stride, width // stage.stride),
                     np.float32) for stage in model.stages]
    maps[[stage.stride for stage in model.stages].index(level)][0, 0, row, col] = 1.0
    with paddle.no_grad():
        return model.fuse([paddle.to_tensor(m) for m in maps], height, width).numpy()[0, 0]
