"""The CLI's subcommands as a user calls them: eval keeps training's record and names the
file of an out-of-range label."""
import paddle
import pytest
from fixtures import list_config, read_json

from paddle_fcn.cli.evaluate import eval_main
from paddle_fcn.config import load_config
from paddle_fcn.data import DataError, build_dataset
from paddle_fcn.engine.evaluate import evaluate
from paddle_fcn.engine.trainer import train
from paddle_fcn.models import build_model


# tools/eval.py never overwrites training's metrics.json
def test_eval_cli_keeps_the_training_record(tmp_path, list_root):
    run = tmp_path / "run"
    config = list_config(tmp_path, list_root, run)
    train(load_config(config), progress=False)
    record = read_json(run / "best_model" / "metrics.json")
    assert record["iteration"] == 4
    assert eval_main(["--config", config, "--model_path",
                      str(run / "best_model" / "model.pdparams")]) == 0
    assert read_json(run / "best_model" / "metrics.json") == record  # untouched
    evaluated = read_json(run / "best_model" / "eval_metrics.json")
    assert "iteration" not in evaluated
    assert evaluated["mIoU"] == pytest.approx(record["mIoU"])  # the same weights and data
    # --save_dir pointing at a run directory: its metrics.json is training's too
    latest = read_json(run / "metrics.json")
    assert eval_main(["--config", config, "--model_path", str(run / "best_model"),
                      "--save_dir", str(run)]) == 0
    assert read_json(run / "metrics.json") == latest and (run / "eval_metrics.json").is_file()
    assert eval_main(["--config", config, "--model_path", str(run / "best_model"),
                      "--save_dir", str(tmp_path / "out")]) == 0
    assert read_json(tmp_path / "out" / "metrics.json")["mIoU"] == pytest.approx(record["mIoU"])


# out-of-range labels name the file, in evaluate and in tools/eval.py
def test_out_of_range_label_names_the_file(tmp_path, list_root, capsys):
    cfg = load_config(list_config(tmp_path, list_root, tmp_path / "run", val="bad.txt"))
    model = build_model("unet", 3, width=4, depth=2, batch_norm=False)
    bad = build_dataset(cfg.val_dataset, model.normalization, 3)
    named = r"sample 0 \(.*img/bad0\.png, .*lbl/bad0\.png\): label values \[5\]"
    with pytest.raises(DataError, match=named):
        evaluate(model, bad, 3, progress=False)
    weights = tmp_path / "model.pdparams"
    paddle.save(model.state_dict(), str(weights))
    config = list_config(tmp_path, list_root, tmp_path / "run", val="bad.txt")
    assert eval_main(["--config", config, "--model_path", str(weights)]) == 2
    err = capsys.readouterr().err
    assert "Data check" in err and "bad0.png: values [5]" in err  # check_dataset first
    assert eval_main(["--config", config, "--model_path", str(weights),
                      "--skip_data_check"]) == 2
    err = capsys.readouterr().err
    assert "Data check" not in err and "bad0.png): " in err and "sample 0 (" in err
