import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest

from core.data.classification import load_cifar, load_digits, load_mnist_5k


def write_fake_cifar(root: Path, name: str, n: int = 20, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    if name == "cifar10":
        d, files, test, key, k = (
            root / "cifar-10-batches-py",
            [f"data_batch_{i}" for i in range(1, 6)],
            "test_batch",
            b"labels",
            10,
        )
    else:
        d, files, test, key, k = root / "cifar-100-python", ["train"], "test", b"fine_labels", 100
    d.mkdir(parents=True)
    for f in [*files, test]:
        labels = (np.arange(n) % k).tolist()
        batch = {
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            key: labels,
            b"batch_label": f.encode(),
            b"filenames": [f"{i}.png".encode() for i in range(n)],
        }
        if name == "cifar100":
            batch[b"coarse_labels"] = [v // 5 for v in labels]
        (d / f).write_bytes(pickle.dumps(batch))
    meta = "batches.meta" if name == "cifar10" else "meta"
    (d / meta).write_bytes(pickle.dumps({b"label_names": [b"x"] * k}))


@pytest.mark.parametrize(("name", "n", "k"), [("cifar10", 20, 10), ("cifar100", 400, 100)])
def test_cifar_reads_the_pickle_layout(tmp_path, name, n, k):
    write_fake_cifar(tmp_path, name, n=n)
    s = load_cifar(name, root=tmp_path, n_val=k)
    n_train = n * (5 if name == "cifar10" else 1)
    assert s.x_train.shape[1:] == (3, 32, 32) and s.x_train.dtype == np.float32
    assert len(s.y_train) + len(s.y_val) == n_train and len(s.y_test) == n
    assert s.num_classes == k and "sha256:" in s.source
    # per-channel standardisation with training statistics
    np.testing.assert_allclose(s.x_train.mean(axis=(0, 2, 3)), 0, atol=1e-4)


def test_cifar_plane_order_is_red_green_blue_row_major(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    row = np.concatenate([np.full(1024, 10), np.full(1024, 20), np.arange(1024) % 256]).astype(np.uint8)
    for f in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        (d / f).write_bytes(pickle.dumps({b"data": np.stack([row] * 10), b"labels": list(range(10))}))
    s = load_cifar("cifar10", root=tmp_path, n_val=10)
    x = s.x_test[0]
    assert np.ptp(x[0]) == 0 and np.ptp(x[1]) == 0  # constant red and green planes
    assert x[2, 0, 1] > x[2, 0, 0]  # blue increases along the first row


def test_missing_cifar_names_the_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="lacks"):
        load_cifar("cifar10", root=tmp_path)
    with pytest.raises(ValueError, match="unknown CIFAR"):
        load_cifar("cifar11", root=tmp_path)


def test_mnist_5k_split_is_stratified_despite_grouped_rows(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 50)  # grouped by class, like the real file
    rows = np.column_stack([rng.integers(0, 256, (500, 784)), labels])
    path = tmp_path / "mnist_5k.csv.gz"
    with gzip.open(path, "wt") as fh:
        np.savetxt(fh, rows, fmt="%d", delimiter=",")
    s = load_mnist_5k(path)
    assert (len(s.y_train), len(s.y_val), len(s.y_test)) == (300, 100, 100)
    for y in (s.y_train, s.y_val, s.y_test):
        assert (np.bincount(y, minlength=10) == len(y) // 10).all()
    assert s.x_train.max() <= 1.0 and s.x_train.min() >= 0.0


def test_mnist_5k_rejects_a_wrong_width(tmp_path):
    path = tmp_path / "bad.csv"
    np.savetxt(path, np.zeros((3, 10)), fmt="%d", delimiter=",")
    with pytest.raises(ValueError, match="785 columns"):
        load_mnist_5k(path)


def test_digits_split_is_fixed_and_standardised():
    a, b = load_digits(), load_digits()
    assert np.array_equal(a.y_test, b.y_test)
    assert len(a.y_train) + len(a.y_val) + len(a.y_test) == 1797
    varying = a.x_train.std(0) > 0
    np.testing.assert_allclose(a.x_train.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(a.x_train.std(0)[varying], 1, atol=1e-3)
    assert np.isfinite(a.x_test).all()


def test_load_by_name_reads_once_and_names_unknown_sets():
    from core.data.classification import load

    assert load("digits") is load("digits")
    with pytest.raises(ValueError, match="unknown data set 'mnist'"):
        load("mnist")
