"""The ML-application workflow: diagnosis, early stopping, checkpoints, gradient norms,
the standardizer carried by the model, plots."""
import numpy as np
import pytest

import nn


@pytest.mark.parametrize("train, dev, base, problem", [
    (0.01, 0.11, 0.0, "high variance"),            # the notes' four cases
    (0.15, 0.16, 0.0, "high bias"),
    (0.15, 0.30, 0.0, "high bias and high variance"),
    (0.005, 0.01, 0.0, "neither"),
    (0.15, 0.16, 0.14, "neither"),                 # a high base error: no avoidable bias
])
def test_diagnose_names_the_problem(train, dev, base, problem):
    d = nn.diagnose(train, dev, base_error=base)
    assert d.problem == problem
    assert d.avoidable_bias == pytest.approx(train - base)
    assert d.variance == pytest.approx(dev - train)
    text = str(d)
    assert problem in text and "avoidable bias" in text


def test_diagnose_gives_the_basic_recipe():
    assert any("bigger network" in r for r in nn.diagnose(0.2, 0.21).recipe)
    assert any("more training data" in r for r in nn.diagnose(0.0, 0.2).recipe)
    assert any("regulariz" in r for r in nn.diagnose(0.0, 0.2).recipe)
    both = nn.diagnose(0.2, 0.4).recipe
    assert "bigger" in both[0] and any("data" in r for r in both)


@pytest.mark.parametrize("kwargs", [dict(train_error=-0.1, dev_error=0.1),
                                    dict(train_error=0.1, dev_error=1.5),
                                    dict(train_error=0.1, dev_error=0.1, base_error=np.nan)])
def test_diagnose_rejects_rates_outside_0_1(kwargs):
    with pytest.raises(ValueError, match="diagnose"):
        nn.diagnose(**kwargs)


def _digits(seed=0):
    d = nn.datasets.load_digits()
    (Xtr, ytr), (Xdev, ydev), _ = nn.data.split(d.X, d.y, stratify=True, seed=seed)
    return Xtr, ytr, Xdev, ydev


def _mlp(hidden=64, seed=0, dropout=False):
    layers = [nn.Dense(64, hidden, activation="relu")]
    if dropout:
        layers.append(nn.Dropout(0.8))
    layers.append(nn.Dense(hidden, 10))
    return nn.Sequential(layers, seed=seed)


def test_early_stopping_stops_and_restores_the_best_epoch(tmp_path):
    Xtr, ytr, Xdev, ydev = _digits()
    scaler = nn.data.Standardizer().fit(Xtr)
    Xtr, Xdev = scaler.transform(Xtr), scaler.transform(Xdev)
    model = _mlp()
    stop = nn.EarlyStopping("dev_loss", patience=3)
    best = nn.ModelCheckpoint(tmp_path / "best.safetensors", monitor="dev_loss")
    history = model.fit(Xtr, ytr, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(0.01),
                        epochs=200, validation_data=(Xdev, ydev), callbacks=[stop, best])
    losses = history["dev_loss"]
    assert history.stopped_epoch is not None and history.stopped_epoch < 199
    assert history.stopped_epoch == stop.best_epoch + 3
    assert stop.best == min(losses) == losses[stop.best_epoch - 1]
    assert "EarlyStopping" in history.stop_reason and "dev_loss" in history.stop_reason
    # restored: the model's dev loss is the best epoch's, and equals the checkpoint's
    assert model.evaluate(Xdev, ydev)["loss"] == pytest.approx(stop.best, rel=1e-6)
    saved = nn.load(tmp_path / "best.safetensors")
    np.testing.assert_array_equal(saved.params, model.params)


def test_early_stopping_on_accuracy_and_without_restore():
    Xtr, ytr, Xdev, ydev = _digits()
    s = nn.data.Standardizer().fit(Xtr)
    model = _mlp()
    model.standardizer = s
    stop = nn.EarlyStopping("dev_accuracy", patience=2, min_delta=0.5, restore_best=False)
    history = model.fit(Xtr, ytr, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(0.01),
                        epochs=50, validation_data=(Xdev, ydev), callbacks=[stop])
    # no later epoch beats the first by 0.5: stops after 1 + patience epochs
    assert history.epochs == [1, 2, 3] and stop.best_epoch == 1
    assert "weights restored" not in history.stop_reason


def test_early_stopping_needs_its_metric():
    Xtr, ytr, _, _ = _digits()
    with pytest.raises(ValueError, match="validation_data"):
        _mlp().fit(Xtr / 16, ytr, loss=nn.SoftmaxCrossEntropy(), epochs=3,
                   callbacks=[nn.EarlyStopping("dev_loss")])
    with pytest.raises(ValueError, match="use 'dev_loss'"):
        nn.EarlyStopping("val_loss")
    with pytest.raises(ValueError, match="patience"):
        nn.EarlyStopping(patience=0)


def test_early_stopping_restores_batchnorm_statistics():
    Xtr, ytr, Xdev, ydev = _digits()
    model = nn.Sequential([nn.Dense(64, 32, use_bias=False), nn.BatchNorm(32),
                           nn.Activation("relu"), nn.Dense(32, 10)], seed=0)
    model.standardizer = nn.data.Standardizer().fit(Xtr)
    snapshots = {}

    class Snap(nn.Callback):
        def on_epoch_end(self, model, epoch, logs, history):
            snapshots[epoch] = (model.params.copy(), model.buffers.copy())

    stop = nn.EarlyStopping("dev_loss", patience=2)
    model.fit(Xtr, ytr, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(0.05), epochs=60,
              validation_data=(Xdev, ydev), callbacks=[Snap(), stop])
    params, buffers = snapshots[stop.best_epoch]
    np.testing.assert_array_equal(model.params, params)
    np.testing.assert_array_equal(model.buffers, buffers)


def test_checkpoint_every_n_epochs_with_epoch_in_the_name(tmp_path):
    Xtr, ytr, _, _ = _digits()
    ck = nn.ModelCheckpoint(tmp_path / "ck-{epoch}.safetensors", every=2)
    model = _mlp()
    model.fit(Xtr / 16, ytr, loss=nn.SoftmaxCrossEntropy(), epochs=5, callbacks=[ck])
    assert [e for e, _ in ck.saved] == [2, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck-2.safetensors", "ck-4.safetensors"]
    assert nn.load(tmp_path / "ck-4.safetensors").optimizer.state.step > 0


def test_history_diagnoses_the_last_epoch():
    Xtr, ytr, Xdev, ydev = _digits()
    model = _mlp(hidden=256)
    model.standardizer = nn.data.Standardizer().fit(Xtr)
    history = model.fit(Xtr[:60], ytr[:60], loss=nn.SoftmaxCrossEntropy(),
                        optimizer=nn.Adam(0.01), epochs=60, validation_data=(Xdev, ydev))
    d = history.diagnose()
    assert d.problem == "high variance"   # 60 rows: fits them, generalizes worse
    assert d.variance == pytest.approx(history.last()["accuracy"]
                                       - history.last()["dev_accuracy"])
    with pytest.raises(ValueError, match="validation_data"):
        model.fit(Xtr, ytr, loss=nn.SoftmaxCrossEntropy(), epochs=1).diagnose()


def test_history_records_each_dense_layers_gradient_norm():
    Xtr, ytr, _, _ = _digits()
    model = _mlp(dropout=True)
    history = model.fit(Xtr / 16, ytr, loss=nn.SoftmaxCrossEntropy(), epochs=3)
    assert sorted(history.grad_norms) == [0, 2]  # the Dense layers' indices
    for i, norms in history.grad_norms.items():
        assert len(norms) == 3 and all(n > 0 and np.isfinite(n) for n in norms)
    assert history.grad_norms[2][-1] == pytest.approx(np.linalg.norm(model.layers[2].dW))


def test_model_standardizer_applies_to_raw_inputs_everywhere():
    Xtr, ytr, Xdev, ydev = _digits()
    scaler = nn.data.Standardizer().fit(Xtr)
    a, b = _mlp(), _mlp()
    b.standardizer = scaler
    a.fit(scaler.transform(Xtr), ytr, loss=nn.SoftmaxCrossEntropy(), epochs=3)
    b.fit(Xtr, ytr, loss=nn.SoftmaxCrossEntropy(), epochs=3)       # raw inputs
    np.testing.assert_array_equal(a.params, b.params)
    np.testing.assert_array_equal(a.predict(scaler.transform(Xdev)), b.predict(Xdev))
    assert b.copy().standardizer is scaler
    with pytest.raises(ValueError, match="not fitted"):
        b.standardizer = nn.data.Standardizer()
    with pytest.raises(ValueError, match="fitted on 3 features"):
        b.standardizer = nn.data.Standardizer().fit(np.ones((4, 3)))
    with pytest.raises(TypeError, match="Standardizer or None"):
        b.standardizer = "scale"


def test_history_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    Xtr, ytr, Xdev, ydev = _digits()
    history = _mlp().fit(Xtr / 16, ytr, loss=nn.SoftmaxCrossEntropy(), epochs=3,
                         validation_data=(Xdev / 16, ydev))
    path = history.plot(tmp_path / "history.png")
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert [p.name for p in tmp_path.iterdir()] == ["history.png"]  # no temporary left
    with pytest.raises(ValueError, match="no epochs"):
        nn.History().plot(tmp_path / "empty.png")


def test_fit_augments_training_batches_only_and_reproducibly():
    d = nn.datasets.load_digits()
    X, y = d.X[:300] / 16, d.y[:300]
    aug = nn.Augment(noise=0.1, image_shape=(8, 8), max_shift=1, flip=False)

    def run(augment, seed=0, epochs=3, initial=None):
        model = _mlp()
        kw = dict(loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(0.01), batch_size=50,
                  seed=seed, augment=augment)
        if initial is None:
            model.fit(X, y, epochs=epochs, **kw)
        else:  # train to `initial`, then resume to `epochs`
            model.fit(X, y, epochs=initial, **kw)
            model.fit(X, y, epochs=epochs, initial_epoch=initial, **{
                k: v for k, v in kw.items() if k != "optimizer"})
        return model

    a, b, plain = run(aug), run(aug), run(None)
    np.testing.assert_array_equal(a.params, b.params)             # same seed, same bits
    assert not np.array_equal(a.params, plain.params)             # it did something
    assert not np.array_equal(a.params, run(aug, seed=1).params)  # the seed matters
    np.testing.assert_array_equal(run(aug, initial=2).params, a.params)  # resumes exactly
    p1, p2 = a.predict(X), a.predict(X)                           # none in predict
    np.testing.assert_array_equal(p1, p2)


def test_fit_checks_augment_against_the_model():
    X, y = np.zeros((10, 64)), np.zeros(10, int)
    with pytest.raises(ValueError, match="image_shape"):
        _mlp().fit(X, y, loss=nn.SoftmaxCrossEntropy(),
                   augment=nn.Augment(image_shape=(7, 7), max_shift=1))
    with pytest.raises(TypeError, match="augment must be an nn.Augment"):
        _mlp().fit(X, y, loss=nn.SoftmaxCrossEntropy(), augment="flip")


def test_gradients_example_shows_vanishing_then_healthy_norms():
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).resolve().parents[2] / "examples" / "gradients.py"
    spec = importlib.util.spec_from_file_location("gradients_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    results = example.main(["--depth", "8", "--epochs", "1"])
    sigmoid, relu = results.values()
    assert sigmoid[0] / sigmoid[-1] < 1e-3     # vanished toward the input
    assert 0.1 < relu[0] / relu[-1] < 10       # kept its scale
