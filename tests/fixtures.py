"""Test helpers shared by several test modules: small datasets written to disk, tiny models.

Everything here is seeded; nothing is downloaded.
"""
import importlib.util
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import paddle

from paddle_fcn.data import write_image, write_label
from paddle_fcn.models import build_model
from paddle_fcn.upsample import bilinear_kernel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(REPO, "configs")


def load_benchmark(name):
    """``benchmarks/<name>.py`` as a module, whatever the working directory (``benchmarks/``
    is a folder of scripts, not a package)."""
    path = os.path.join(REPO, "benchmarks", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"benchmarks.{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- datasets in a reference layout (NYUDv2, SIFT Flow) -------------------------------------

def write_id_splits(root, ids):
    """``root/trainval.txt`` listing ``ids[:2]`` and ``root/test.txt`` the rest, one id a line
    (the split files of the NYUDv2 and SIFT Flow reference layouts)."""
    for split, names in (("trainval", ids[:2]), ("test", ids[2:])):
        with open(os.path.join(root, f"{split}.txt"), "w") as f:
            f.write("".join(n + "\n" for n in names))


SUB = "spatial_envelope_256x256_static_8outdoorcategories"
# stored values: semantic 0 = void, 1..33; geometric -1 = void, 1..3
SEMANTIC = np.array([[0, 1, 33, 17], [2, 0, 1, 1]])
GEOMETRIC = np.array([[-1, 1, 2, 3], [3, 1, -1, 1]])
SEMANTIC_LOADED = np.array([[255, 0, 32, 16], [1, 255, 0, 0]])
GEOMETRIC_LOADED = np.array([[255, 0, 1, 2], [2, 0, 255, 0]])


def make_siftflow(root, fmt="png", ids=("coast_arnat59", "street_urb506", "tallbuilding_a4")):
    """The reference tree; labels as .mat (variable S, needs scipy) or PNG (void geometric 0)."""
    for i, name in enumerate(ids):
        write_image(os.path.join(root, "Images", SUB, name + ".jpg"),
                    np.full((2, 4, 3), 30 * i, np.uint8))
        for folder, stored in (("SemanticLabels", SEMANTIC), ("GeoLabels", GEOMETRIC)):
            path = os.path.join(root, folder, SUB, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if fmt == "mat":
                import scipy.io
                scipy.io.savemat(path + ".mat", {"S": stored.astype(np.int16)})
            else:
                cv2.imwrite(path + ".png", np.maximum(stored, 0).astype(np.uint8))
    write_id_splits(root, ids)
    return root


def quick_train_opts(root, save_dir):
    """Command-line overrides that make a shipped config train 2 iterations on ``root``."""
    return [f"train_dataset.dataset_root={root}", f"val_dataset.dataset_root={root}",
            "model.pretrained=null", "iters=2", "num_workers=0", "use_vdl=false",
            "log_iters=1", "save_interval=2", f"save_dir={save_dir}", "device=cpu"]


# --- PASCAL-Context, Cityscapes, ADE20K in their release layouts -------------------------

def random_image(h, w, seed):
    """A seeded random ``h x w`` uint8 RGB image."""
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


CONTEXT_LABEL = np.array([[0, 1, 59, 255],
                          [20, 21, 0, 58]], np.uint8)  # background, classes, void


def make_context(root, ids=("2008_000002", "2008_000003"), split="train"):
    """PASCAL-Context under ``root`` (a VOC2010 folder): ``ids`` with ``CONTEXT_LABEL``
    rolled by the image's position, listed in ``ImageSets/SegmentationContext/<split>.txt``."""
    for i, name in enumerate(ids):
        write_image(os.path.join(root, "JPEGImages", name + ".jpg"), random_image(2, 4, i))
        write_label(os.path.join(root, "SegmentationClassContext", name + ".png"),
                    np.roll(CONTEXT_LABEL, i, axis=1))
    split_dir = os.path.join(root, "ImageSets", "SegmentationContext")
    os.makedirs(split_dir, exist_ok=True)
    with open(os.path.join(split_dir, split + ".txt"), "w") as f:
        f.write("".join(n + "\n" for n in ids))
    return root


def make_cityscapes(root, mode="train", unofficial=40):
    """Two cities; the label holds each of the 34 ids, 255, and ``unofficial`` (40: not an
    official id)."""
    ids = np.array(list(range(34)) + [255, unofficial], np.uint8).reshape(4, 9)
    for city, frame in (("aachen", "000000_000019"), ("bochum", "000001_000020")):
        stem = f"{city}_{frame}"
        write_image(os.path.join(root, "leftImg8bit", mode, city, stem + "_leftImg8bit.png"),
                    random_image(4, 9, 1))
        label = os.path.join(root, "gtFine", mode, city, stem + "_gtFine_labelIds.png")
        os.makedirs(os.path.dirname(label), exist_ok=True)
        cv2.imwrite(label, ids)  # 8-bit grayscale, as the official files
        cv2.imwrite(label.replace("labelIds", "instanceIds"), ids)  # not picked up
    return ids


def make_ade20k(root, mode="training", prefix="ADE_train"):
    """Two ADE20K images of split folder ``mode``; stored 0 (void), 1..150 -> the label."""
    label = np.array([[0, 1, 2, 150], [149, 0, 75, 1]], np.uint8)
    for i in range(2):
        name = f"{prefix}_{i + 1:08d}"
        write_image(os.path.join(root, "images", mode, name + ".jpg"), random_image(2, 4, i))
        os.makedirs(os.path.join(root, "annotations", mode), exist_ok=True)
        cv2.imwrite(os.path.join(root, "annotations", mode, name + ".png"), label)
    return label


# --- a `type: ListDataset` file list of padded-size images (engine, CLI) ------------------------

LIST_SIZES = [(24, 32), (32, 28), (28, 24), (32, 32)]  # (H, W): every batch gets padded
SEVEN = 7  # an ignore_index other than 255: the whole pipeline must honour it

LIST_CONFIG = """
model: {{type: unet, num_classes: 3, width: 4, depth: 2, batch_norm: false}}
train_dataset: {{type: ListDataset, dataset_root: {root}, file_list: {train}, num_classes: 3,
                ignore_index: {ignore}}}
val_dataset: {{type: ListDataset, dataset_root: {root}, file_list: {val}, num_classes: 3,
              ignore_index: {ignore}}}
loss: {{ignore_index: {ignore}}}
lr_scheduler: {{type: poly, learning_rate: 0.01, warmup_iters: 1, warmup_start_lr: 0.001}}
batch_size: 2
iters: {iters}
save_dir: {out}
save_interval: {save}
eval_interval: {eval}
log_iters: 1
keep_checkpoint_max: 5
num_workers: 0
use_vdl: false
device: cpu
"""


def write_list_split(root, name, sizes, label_fn):
    """Random images, ``label_fn(h, w)`` labels and ``root/<name>.txt`` listing the pairs."""
    rng = np.random.RandomState(len(name))
    lines = []
    for k, (h, w) in enumerate(sizes):
        image, label = f"img/{name}{k}.png", f"lbl/{name}{k}.png"
        write_image(os.path.join(root, image), rng.randint(0, 256, (h, w, 3), dtype=np.uint8))
        write_label(os.path.join(root, label), label_fn(h, w))
        lines.append(f"{image} {label}")
    with open(os.path.join(root, f"{name}.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def band_classes(h, w, void=255):
    """Classes 0..2 in 8 px bands, a 2 px border of the ``void`` (ignore) value."""
    label = (np.arange(w)[None, :] // 8 + np.arange(h)[:, None] // 8) % 3
    label[:2], label[:, :2] = void, void
    return label.astype(np.uint8)


def make_list_data(root):
    """Splits train/val (void 255), train7/val7 (void 7), void (all void), bad (class 5)."""
    val_sizes = [(24, 28), (28, 24)]
    write_list_split(root, "train", LIST_SIZES, band_classes)
    write_list_split(root, "val", val_sizes, band_classes)
    write_list_split(root, "train7", LIST_SIZES, lambda h, w: band_classes(h, w, SEVEN))
    write_list_split(root, "val7", val_sizes, lambda h, w: band_classes(h, w, SEVEN))
    write_list_split(root, "void", [(24, 28)], lambda h, w: np.full((h, w), 255, np.uint8))
    bad = lambda h, w: np.where(band_classes(h, w) == 2, 5, band_classes(h, w))  # noqa: E731
    write_list_split(root, "bad", [(24, 28)], lambda h, w: bad(h, w).astype(np.uint8))
    return root


def list_config(tmp_path, root, out, iters=4, save=4, eval_every=None, val="val.txt",
                train="train.txt", ignore=255):
    """A YAML file in ``tmp_path`` training the tiny U-Net on ``make_list_data``'s splits."""
    path = tmp_path / f"{os.path.basename(str(out))}-{iters}-{val}.yml"
    path.write_text(LIST_CONFIG.format(root=root, train=train, val=val, ignore=ignore,
                                       iters=iters, out=out, save=save,
                                       eval=eval_every or iters))
    return str(path)


def read_json(path):
    with open(path) as f:
        return json.load(f)


def leftovers(run):
    """Names of the temporaries an atomic write leaves when killed (none after a clean run)."""
    return [n for n in os.listdir(run) if n.startswith((".old-", ".tmp-"))]


# --- tiny models ----------------------------------------------------------------------------

class TinyNet(paddle.nn.Layer):
    """backbone -> head, plus a frozen layer: three parameter groups for optimiser tests."""

    def __init__(self):
        super().__init__()
        self.backbone = paddle.nn.Conv2D(3, 4, 1)
        self.head = paddle.nn.Conv2D(4, 2, 1)
        self.frozen = paddle.nn.Conv2D(2, 2, 1, bias_attr=False)
        self.frozen.weight.stop_gradient = True


SCORED_CLASSES = 6


def overfit_losses(model, x, label, steps=30, lr=0.01):
    """Adam on one batch ``x`` (N3HW) / ``label`` (NHW) for ``steps`` steps over the model's
    trainable parameters -> the loss before each step (a short overfit run)."""
    opt = paddle.optimizer.Adam(lr, parameters=[p for p in model.parameters()
                                                if not p.stop_gradient])
    losses = []
    for _ in range(steps):
        loss = paddle.nn.functional.cross_entropy(model(x), label, axis=1)
        loss.backward()
        opt.step()
        opt.clear_grad()
        losses.append(float(loss))
    return losses


def scored_model(name="fcn8s_resnet18"):
    """A width-8 model whose score layers (zero-initialised) and learnable upsamplers get
    seeded random values, so that its predictions hold several classes."""
    model = build_model(name, SCORED_CLASSES, width=8)
    rng = np.random.default_rng(0)
    for key, param in model.named_parameters():
        if "score" in key:  # score_*, and the learnable upscore2 / upscore_pool4
            param.set_value(0.1 * rng.standard_normal(param.shape).astype("float32"))
    model.eval()
    return model


def eager_output(model, x):
    """``model``'s output for the numpy batch ``x``, as numpy."""
    with paddle.no_grad():
        return model(paddle.to_tensor(x)).numpy()


def grouped_bilinear_weight(channels, kernel):
    """The frozen upsampler as the transposed conv it is: ``bilinear_kernel`` per channel,
    groups = channels (what Paddle's ``depthwise_conv2d_transpose`` computes)."""
    return paddle.to_tensor(np.repeat(bilinear_kernel(kernel)[None, None], channels, axis=0))


def assert_upsampler_parameters(up, learnable, kernel):
    """Learnable: one ``[C, C, k, k]`` trainable weight. Frozen: no parameter and nothing in
    the state dict (the bilinear kernel is the layer's definition, not a value to load)."""
    if learnable:
        assert [p.shape for p in up.parameters()] == [[up.channels, up.channels, kernel, kernel]]
        assert not up.up.weight.stop_gradient
    else:
        assert up.parameters() == [] and up.state_dict() == {}


def run_legacy_ir(script, *args):
    """Run the Python source ``script`` with ``args`` in a child process under Paddle's legacy
    IR (``FLAGS_enable_pir_api=0``, read when paddle is imported, as in the int8 export's
    child), with this folder importable; returns the JSON its last output line prints."""
    tests = os.path.dirname(os.path.abspath(__file__))
    path = [tests] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = dict(os.environ, FLAGS_enable_pir_api="0", PYTHONPATH=os.pathsep.join(path))
    done = subprocess.run([sys.executable, "-c", script, *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
