"""Inference precision (``inference/precision.py``): deploy.yml records it, the predictor runs
it, bf16/int8 masks agree with fp32 where the hardware runs them, clear errors where not.

bf16 needs a CPU with avx512_bf16 or amx_bf16 (GPUs: fp16); int8 runs on CPUs through
oneDNN (``inference/int8_cpu.py``) and on GPUs through TensorRT; tests that need hardware
this machine lacks skip with the reason. Tiny models (ResNet18 FCN-8s at width 8), synthetic
images <= 56 px.
"""
import os

import cv2
import numpy as np
import paddle
import pytest
import yaml

from paddle_fcn.cli.evaluate import eval_main
from paddle_fcn.config import load_config
from paddle_fcn.data import build_dataset
from paddle_fcn.data.io import write_image
from paddle_fcn.models.loading import load_trained_model
from paddle_fcn.engine.trainer import train
from paddle_fcn.cli.deploy import export_main, predict_main
from paddle_fcn.inference import precision
from paddle_fcn.inference.export import ExportError, export_model, read_deploy_info
from paddle_fcn.inference.precision import (BF16_FLAGS, PrecisionError, bf16_missing,
                                            calibration_images, compare_outputs, cpu_flags)
from paddle_fcn.inference.predictor import Predictor
from paddle_fcn.models import build_model

FLAGS = cpu_flags()
CPU_BF16 = bf16_missing(FLAGS) is None
NO_BF16 = f"this CPU has no {' or '.join(BF16_FLAGS)} (oneDNN bf16 cannot run here)"
HAS_GPU = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
HAS_TRT = HAS_GPU and any(paddle.inference.get_trt_compile_version())

TINY = {
    "model": {"type": "fcn8s_resnet18", "num_classes": 6, "width": 8},
    "train_dataset": {"type": "SyntheticVOC", "dataset_root": "", "mode": "train",
                      "num_classes": 6, "transforms": [{"type": "RandomCrop",
                                                        "crop_size": [40, 40]}],
                      "synthetic": {"seed": 0, "num_train": 12, "num_val": 4, "min_size": 40,
                                    "max_size": 56}},
    "lr_scheduler": {"type": "poly", "learning_rate": 0.1, "warmup_iters": 2},
    "batch_size": 4, "iters": 120, "save_interval": 120, "log_iters": 20, "num_workers": 0,
    "use_vdl": False, "do_eval": False, "device": "cpu",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A config over a tiny synthetic set and an untrained checkpoint (random head)."""
    root = tmp_path_factory.mktemp("precision")
    cfg = yaml.safe_load(yaml.safe_dump(TINY))
    cfg["train_dataset"]["dataset_root"] = str(root / "data")
    cfg["val_dataset"] = dict(cfg["train_dataset"], mode="val", transforms=[])
    cfg["save_dir"] = str(root / "run")
    path = root / "tiny.yml"
    path.write_text(yaml.safe_dump(cfg))
    model = build_model("fcn8s_resnet18", 6, width=8)
    rng = np.random.default_rng(0)
    for key, param in model.named_parameters():
        if "score" in key:  # zero-initialised score layers would predict class 0 everywhere
            param.set_value(0.1 * rng.standard_normal(param.shape).astype("float32"))
    model.eval()
    ckpt = root / "untrained"
    ckpt.mkdir()
    paddle.save(model.state_dict(), str(ckpt / "model.pdparams"))
    return {"config": str(path), "ckpt": str(ckpt), "model": model, "root": root}


@pytest.fixture(scope="module")
def trained(tiny):
    """The tiny model trained for 120 iterations (~5 s)."""
    cfg = load_config(tiny["config"])
    train(cfg, progress=False, check_data=False)
    ckpt = os.path.join(cfg.save_dir, "iter_000120")
    return dict(tiny, ckpt=ckpt, cfg=cfg)


def _agreement_after_export(run, tmp_path, precision, device, extra=()):
    """Export ``run``'s trained checkpoint at fp32 and at ``precision`` with tools/export.py;
    the fraction of the val split's pixels whose predicted class the two share."""
    for p in ("fp32", precision):
        assert export_main(["--config", run["config"], "--model_path", run["ckpt"],
                            "--save_dir", str(tmp_path / p), "--device", device,
                            "--precision", p, *extra]) == 0
    assert read_deploy_info(str(tmp_path / precision))["precision"] == precision
    a, b = (Predictor(str(tmp_path / p), device) for p in ("fp32", precision))
    images = build_dataset(run["cfg"].val_dataset, a.normalization, 6)
    same = [(a.predict(x[None]).argmax(1) == b.predict(x[None]).argmax(1)).mean()
            for x, _ in images]
    return float(np.mean(same))


def test_bf16_needs_the_instruction_set():
    assert bf16_missing({"avx512_bf16", "avx512f"}) is None
    assert bf16_missing({"amx_bf16"}) is None
    message = bf16_missing({"avx", "avx2", "fma", "avx512f", "avx512_vnni"})
    assert "avx512_bf16 or amx_bf16" in message and "--precision fp32" in message


def test_deploy_yml_records_the_precision(tiny, tmp_path):
    export_model(tiny["model"], str(tmp_path), "none")
    assert read_deploy_info(str(tmp_path))["precision"] == "fp32"
    deploy = tmp_path / "deploy.yml"
    assert "precision: fp32" in deploy.read_text()
    info = yaml.safe_load(deploy.read_text())
    del info["precision"]  # an export written before precision existed runs as fp32
    deploy.write_text(yaml.safe_dump(info))
    assert Predictor(str(tmp_path), "cpu").precision == "fp32"
    deploy.write_text(yaml.safe_dump(dict(info, precision="fp8")))
    with pytest.raises(ExportError, match="precision 'fp8' is not one of fp32, bf16, int8"):
        read_deploy_info(str(tmp_path))


AVX2_CPU = {"fpu", "sse4_2", "avx", "avx2", "fma"}  # an AMD Zen 3 / Intel Skylake client


def test_bf16_without_the_instruction_set_is_a_clear_error(tiny, tmp_path, capsys,
                                                           monkeypatch):
    # Runs on any CPU: the check reads /proc/cpuinfo through precision.cpu_flags, which here
    # reports an AVX2-only CPU (on one, the same as unpatched).
    monkeypatch.setattr(precision, "cpu_flags", lambda path=None: set(AVX2_CPU))
    out = tmp_path / "bf16"
    with pytest.raises(PrecisionError, match="avx512_bf16 or amx_bf16"):
        export_model(tiny["model"], str(out), "none", precision="bf16", device="cpu")
    assert not out.exists()  # refused before anything is written
    argv = ["--config", tiny["config"], "--model_path", tiny["ckpt"], "--save_dir", str(out),
            "--precision", "bf16"]
    assert export_main(argv) == 2
    err = capsys.readouterr().err
    assert "avx512_bf16 or amx_bf16" in err and "Traceback" not in err
    # an export made on a bf16 machine: refused here unless run in fp32 explicitly
    export_model(tiny["model"], str(out), "none")
    info = yaml.safe_load((out / "deploy.yml").read_text())
    (out / "deploy.yml").write_text(yaml.safe_dump(dict(info, precision="bf16")))
    with pytest.raises(PrecisionError, match="avx512_bf16 or amx_bf16"):
        Predictor(str(out), "cpu")
    x = np.random.default_rng(1).standard_normal((1, 3, 37, 53)).astype("float32")
    with paddle.no_grad():
        want = tiny["model"](paddle.to_tensor(x)).numpy()
    got = Predictor(str(out), "cpu", precision="fp32").predict(x)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())
    image = str(tmp_path / "im.png")
    write_image(image, np.random.default_rng(2).integers(0, 256, (37, 53, 3), dtype=np.uint8))
    argv = ["--model_path", str(out), "--image_path", image, "--save_dir", str(tmp_path / "p")]
    assert predict_main(argv) == 2
    assert "avx512_bf16 or amx_bf16" in capsys.readouterr().err
    assert predict_main(argv + ["--precision", "fp32"]) == 0


@pytest.mark.skipif(not CPU_BF16, reason=NO_BF16)
def test_bf16_export_masks_agree_with_fp32(trained, tmp_path):
    assert _agreement_after_export(trained, tmp_path, "bf16", "cpu") >= 0.99


def test_int8_calibration_needs_images(tiny, tmp_path, capsys):
    cfg = load_config(tiny["config"])
    with pytest.raises(PrecisionError, match="at least one image, got calib_images 0"):
        calibration_images(cfg, tiny["model"].normalization, 0)
    argv = ["--config", tiny["config"], "--model_path", tiny["ckpt"], "--save_dir",
            str(tmp_path / "int8"), "--precision", "int8", "--calib_images", "0"]
    assert export_main(argv) == 2
    assert "export.calib_images" in capsys.readouterr().err
    assert not (tmp_path / "int8").exists()
    images = list(calibration_images(cfg, tiny["model"].normalization, 2))
    assert len(images) == 2 and images[0].shape[:2] == (1, 3) and images[0].dtype == np.float32


@pytest.mark.skipif(HAS_GPU, reason="a GPU: int8 runs there through TensorRT (test below)")
def test_int8_cpu_export_masks_agree_with_fp32(trained, tmp_path):
    """Static PTQ on 12 training images, run by oneDNN int8 kernels: >= 97 % of the val
    masks are the fp32 model's, and the export says how it was calibrated."""
    agree = _agreement_after_export(trained, tmp_path, "int8", "cpu", ["--calib_images", "12"])
    assert agree >= 0.97
    info = read_deploy_info(str(tmp_path / "int8"))
    assert info["int8_cpu"]["pad_multiple"] == 32 and info["int8_cpu"]["calib_images"] == 12
    assert (tmp_path / "int8" / "int8" / "model.pdmodel").is_file()
    assert not [f for f in os.listdir(tmp_path / "int8") if f.startswith(".")]  # no work left
    image = str(tmp_path / "im.png")  # an odd size: padded to 64 x 64, cropped back
    write_image(image, np.random.default_rng(2).integers(0, 256, (37, 53, 3), dtype=np.uint8))
    assert predict_main(["--model_path", str(tmp_path / "int8"), "--image_path", image,
                         "--save_dir", str(tmp_path / "pred")]) == 0
    mask = cv2.imread(str(tmp_path / "pred" / "pseudo_color_prediction" / "im.png"))
    assert mask.shape[:2] == (37, 53)


@pytest.mark.skipif(HAS_GPU, reason="a GPU: int8 runs there through TensorRT")
def test_eval_precision_int8_scores_the_quantized_model(trained, tmp_path):
    """tools/eval.py --precision int8 exports the checkpoint at int8 (calibrating on
    export.calib_images training images) and evaluates that: the number a user ships."""
    import json

    argv = ["--config", trained["config"], "--model_path", trained["ckpt"], "--skip_data_check",
            "--opts", "export.calib_images=12"]
    assert eval_main(argv + ["--save_dir", str(tmp_path / "eager")]) == 0
    assert eval_main(argv + ["--save_dir", str(tmp_path / "int8"), "--precision", "int8"]) == 0
    eager, int8 = (json.loads((tmp_path / d / "metrics.json").read_text())
                   for d in ("eager", "int8"))
    assert int8["mIoU"] != eager["mIoU"]  # another model: the quantized one
    assert int8["mIoU"] == pytest.approx(eager["mIoU"], abs=0.03)


@pytest.mark.skipif(HAS_GPU, reason="a GPU: int8 runs there through TensorRT")
def test_int8_runs_only_from_an_int8_export(tiny, tmp_path, capsys):
    out = tmp_path / "fp32"
    export_model(tiny["model"], str(out), "none")
    with pytest.raises(PrecisionError, match="not exported for int8 on CPU"):
        Predictor(str(out), "cpu", precision="int8")
    info = yaml.safe_load((out / "deploy.yml").read_text())  # claims an int8 graph it lacks
    info.update(precision="int8", int8_cpu={"pad_multiple": 32})
    (out / "deploy.yml").write_text(yaml.safe_dump(info))
    with pytest.raises(ExportError, match="no int8/model.pdmodel"):
        Predictor(str(out), "cpu")
    image = str(tmp_path / "im.png")
    write_image(image, np.random.default_rng(2).integers(0, 256, (37, 53, 3), dtype=np.uint8))
    argv = ["--model_path", str(out), "--image_path", image, "--save_dir", str(tmp_path / "p")]
    assert predict_main(argv) == 2
    err = capsys.readouterr().err
    assert "no int8/model.pdmodel" in err and "Traceback" not in err
    assert predict_main(argv + ["--precision", "fp32"]) == 0


def test_int8_export_of_a_model_it_cannot_convert_is_a_clear_error(tmp_path):
    """U-Net pads its input inside the graph by sizes read from it, which the legacy IR
    cannot save: the export says so and leaves nothing behind."""
    model = build_model("unet", 3, width=4, depth=2)
    model.eval()
    image = np.random.default_rng(0).standard_normal((1, 3, 40, 44)).astype("float32")
    with pytest.raises(ExportError, match="(?s)could not convert UNet.*exit 1.*TypeError"):
        export_model(model, str(tmp_path / "unet"), "none", precision="int8", device="cpu",
                     calibration=[image])
    assert os.listdir(tmp_path / "unet") == []


def test_eval_precision_fp32_evaluates_the_export_like_the_eager_model(tiny, tmp_path):
    import json

    argv = ["--config", tiny["config"], "--model_path", tiny["ckpt"], "--skip_data_check"]
    assert eval_main(argv + ["--save_dir", str(tmp_path / "eager")]) == 0
    assert eval_main(argv + ["--save_dir", str(tmp_path / "fp32"), "--precision", "fp32"]) == 0
    exported = str(tmp_path / "export")
    assert export_main(["--config", tiny["config"], "--model_path", tiny["ckpt"], "--save_dir",
                        exported, "--output_op", "argmax"]) == 0
    argv[3] = exported  # an export is evaluated as deployed (argmax: one-hot scores)
    assert eval_main(argv + ["--save_dir", str(tmp_path / "export")]) == 0
    eager, fp32, deployed = (json.loads((tmp_path / d / "metrics.json").read_text())
                             for d in ("eager", "fp32", "export"))
    hit = [name for name, iou in eager["class_IoU"].items() if iou]  # classes hit: not trivial
    assert len(hit) >= 4, eager
    assert fp32["mIoU"] == pytest.approx(eager["mIoU"], abs=1e-6)
    assert deployed["mIoU"] == pytest.approx(eager["mIoU"], abs=1e-6)


def test_compare_outputs_tolerances():
    want = np.linspace(-4, 4, 60, dtype=np.float32).reshape(1, 6, 2, 5)
    assert compare_outputs(want + 0.1, want, "none", "bf16") is None  # 0.1 <= 0.05 x 4
    assert "max difference 1" in compare_outputs(want + 1, want, "none", "bf16")
    assert "shape" in compare_outputs(want[:, :3], want, "none", "bf16")
    labels = want.argmax(1)
    assert "agree on 0.0 %" in compare_outputs(labels + 1, labels, "argmax", "int8")


@pytest.mark.skipif(not HAS_TRT, reason="no GPU with TensorRT: GPU int8 is TensorRT's")
def test_gpu_int8_masks_agree_with_fp32(trained, tmp_path):
    agree = _agreement_after_export(trained, tmp_path, "int8", "gpu", ["--calib_images", "12"])
    assert agree >= 0.97


@pytest.mark.skipif(not HAS_GPU, reason="no GPU: bf16 maps to fp16 on GPUs")
def test_gpu_fp16_masks_agree_with_fp32(trained, tmp_path):
    assert _agreement_after_export(trained, tmp_path, "bf16", "gpu") >= 0.99
