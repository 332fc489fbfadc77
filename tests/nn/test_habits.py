"""What people coming from Keras and scikit-learn do first: summary(), History as a
table, metrics from callbacks, 1-based epochs, an honest diagnosis, early path checks."""
import io
import math
import os

import numpy as np
import pytest

import nn


def _digits(n=600):
    X, y = nn.datasets.load_digits()
    return X[:n] / 16.0, y[:n]


def _model(keep_prob=1.0):
    return nn.Sequential([nn.Dense(64, 32, activation="relu"), nn.Dropout(keep_prob),
                          nn.Dense(32, 10)], seed=0)


def test_summary_lists_layers_shapes_and_counts():
    model = nn.Sequential([nn.Dense(64, 128, use_bias=False), nn.BatchNorm(128),
                           nn.Activation("relu"), nn.Dense(128, 10)], seed=0)
    out = io.StringIO()
    model.summary(file=out)
    text = out.getvalue()
    assert "input (n, 64), float32" in text
    assert "(n, 128)" in text and "(n, 10)" in text
    assert "8,192" in text and "1,290" in text and "fused into the BatchNorm" in text
    assert f"trainable parameters: {64 * 128 + 256 + 1290:,}" in text
    assert "running statistics): 256" in text and "loss: None" in text


def test_history_is_a_mapping_and_a_dataframe():
    X, y = _digits()
    history = _model().fit(X, y, loss=nn.SoftmaxCrossEntropy(), epochs=3,
                           validation_data=(X[:100], y[:100]))
    as_dict = dict(history)
    assert set(as_dict) == {"loss", "accuracy", "dev_loss", "dev_accuracy", "lr", "time"}
    assert all(len(v) == 3 for v in as_dict.values())
    assert history.epochs == [1, 2, 3]
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(history)
    assert frame.shape == (3, 6) and list(frame["loss"]) == history["loss"]


class F1(nn.Callback):
    """Adds a made-up dev metric, as a user's metric callback would."""

    def on_epoch_end(self, model, epoch, logs, history):
        logs["dev_f1"] = 1.0 / abs(epoch - 2.5)   # best at epochs 2 and 3, then worse
        if epoch >= 2:
            logs["late"] = epoch


def test_metrics_added_by_callbacks_are_recorded_and_monitored():
    X, y = _digits()
    stop = nn.EarlyStopping("dev_f1", patience=2)
    assert stop.mode == "max"
    history = _model().fit(X, y, loss=nn.SoftmaxCrossEntropy(), epochs=20,
                           validation_data=(X[:100], y[:100]), callbacks=[F1(), stop])
    assert history.epochs == [1, 2, 3, 4]
    assert history["dev_f1"] == [1 / 1.5, 2.0, 2.0, 1 / 1.5]
    late = history["late"]
    assert math.isnan(late[0]) and late[1:] == [2, 3, 4]
    assert stop.best_epoch == 2 and history.stopped_epoch == 4
    assert "best 2 at epoch 2" in history.stop_reason
    assert history.final["epoch"] == 2            # the restored weights' epoch
    with pytest.raises(ValueError, match="use 'dev_accuracy'"):
        nn.EarlyStopping("val_accuracy")
    assert nn.EarlyStopping("dev_error").mode == "min"


def test_diagnosis_uses_eval_mode_errors_of_the_kept_weights():
    """Training accuracy measured with dropout on is lower than the model's: the old
    diagnosis read it and reported a negative variance."""
    X, y = _digits()
    Xtr, ytr, Xdev, ydev = X[:400], y[:400], X[400:], y[400:]
    model = _model(keep_prob=0.5)
    history = model.fit(Xtr, ytr, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(0.01),
                        epochs=8, validation_data=(Xdev, ydev))
    train, dev = model.evaluate(Xtr, ytr), model.evaluate(Xdev, ydev)
    assert history.final == {"epoch": 8, "loss": train["loss"],
                             "accuracy": train["accuracy"], "dev_loss": dev["loss"],
                             "dev_accuracy": dev["accuracy"]}
    assert history["accuracy"][-1] < train["accuracy"]   # running, with dropout
    d = history.diagnose()
    assert d.avoidable_bias == pytest.approx(1 - train["accuracy"])
    assert d.variance == pytest.approx(train["accuracy"] - dev["accuracy"])


def test_loss_and_optimizer_classes_without_parentheses_get_a_hint():
    X, y = _digits(50)
    with pytest.raises(TypeError, match=r"Call it: loss=nn.SoftmaxCrossEntropy\(\)"):
        _model().fit(X, y, loss=nn.SoftmaxCrossEntropy)
    with pytest.raises(TypeError, match=r"Call it: optimizer=nn.Adam\(lr=...\)"):
        _model().fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam)


def test_checkpoint_folder_is_checked_before_training(tmp_path):
    with pytest.raises(FileNotFoundError, match="ModelCheckpoint: path .* does not exist"):
        nn.ModelCheckpoint(tmp_path / "no" / "such" / "ck.safetensors")
    folder = tmp_path / "later"
    folder.mkdir()
    ck = nn.ModelCheckpoint(folder / "ck-{epoch:02d}.safetensors")
    folder.rmdir()
    X, y = _digits(50)
    model = _model()
    before = model.params.copy()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), epochs=2, callbacks=[ck])
    np.testing.assert_array_equal(model.params, before)    # no epoch was spent
    folder.mkdir()
    model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), epochs=2, callbacks=[ck])
    assert sorted(os.listdir(folder)) == ["ck-01.safetensors", "ck-02.safetensors"]
    assert ck.saved == [(1, str(folder / "ck-01.safetensors")), (2, str(folder / "ck-02.safetensors"))]
