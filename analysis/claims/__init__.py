"""Every study's claims, found by discovery of `analysis/claims/*.py` (each module's `CLAIMED`), and the claims of a
study that lives in a file of its own, outside the package (`claims_of_file`).

The report covers exactly the built-in studies, whether or not they have results, plus every outside study whose
results it finds; a study module in `studies/` takes its article, claims and figures from its module here, so the
two cannot drift. An outside study is one Python file defining `get_study(budget)` (docs/writing-a-study.md): its
file name names it, and its claims, article and figures are those of the `Study` its `get_study` returns.
"""

import hashlib
import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path
from types import ModuleType

from analysis.verdict import StudyClaims

STUDY_MODULE_PREFIX = "_claimbench_study_"
"""Module names given to study files loaded from a path (`import_study_file`); the runner pickles these by value."""


class StudyFileError(ValueError):
    """A study file that is missing, does not import or is not a study; its message is one line."""


def builtin_names() -> list[str]:
    """Names of the built-in studies (the modules of this package), without importing them."""
    return sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))


def discover() -> dict[str, StudyClaims]:
    """Import every claims module in this package.

    Returns:
        dict[str, StudyClaims]: study name -> its claims, sorted by name.
    """
    return {name: importlib.import_module(f"{__name__}.{name}").CLAIMED for name in builtin_names()}


def is_study_file(argument: str) -> bool:
    """Whether a study argument names a file (it ends in `.py` or holds a path separator) rather than a built-in study."""
    return argument.endswith(".py") or "/" in argument or "\\" in argument


def file_sha256(path: Path | str) -> str:
    """sha256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


_LOADED: dict[tuple[str, str], ModuleType] = {}


def import_study_file(path: Path | str) -> ModuleType:
    """Import a study file from any path under a private module name (`STUDY_MODULE_PREFIX`), once per content.

    Args:
        path (Path | str):
            The file; its stem is the study's name and must not be a built-in study's.

    Returns:
        ModuleType: the module, which defines `get_study`.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise StudyFileError(f"no study file at {path}")
    file = file.resolve()
    if file.stem in builtin_names():
        raise StudyFileError(f"{path}: its name {file.stem!r} is a built-in study's; rename the file")
    key = (str(file), file_sha256(file))
    if key in _LOADED:
        return _LOADED[key]
    name = f"{STUDY_MODULE_PREFIX}{file.stem}_{hashlib.sha256(key[0].encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise StudyFileError(f"{path} is not a study: Python cannot import it as a module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        del sys.modules[name]
        raise StudyFileError(f"{path} is not a study: importing it raised {_one_line(exc)}") from exc
    if not callable(getattr(module, "get_study", None)):
        del sys.modules[name]
        raise StudyFileError(f"{path} is not a study: it defines no get_study(budget)")
    _LOADED[key] = module
    return module


def study_of_file(path: Path | str, budget: str):
    """`get_study(budget)` of a study file (a `studies.Study`, checked here only for what the analysis reads)."""
    module = import_study_file(path)
    try:
        study = module.get_study(budget)
    except Exception as exc:  # noqa: BLE001 - the user's code: any failure is one line
        raise StudyFileError(f"{path} is not a study: get_study({budget!r}) raised {_one_line(exc)}") from exc
    if type(study).__name__ != "Study" or not all(hasattr(study, k) for k in ("claims", "article", "figures")):
        raise StudyFileError(f"{path} is not a study: get_study({budget!r}) returned {type(study).__name__}, not a Study")
    return study


def claims_of_file(path: Path | str, budget: str) -> StudyClaims:
    """The claims, article and figures of a study file at a budget, named after the file.

    Args:
        path (Path | str):
            The study file.
        budget (str):
            The budget whose `Study` the claims come from.

    Returns:
        StudyClaims: named by the file's stem (its results folder).
    """
    study = study_of_file(path, budget)
    return StudyClaims(Path(path).stem, study.article, tuple(study.claims), tuple(study.figures))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
