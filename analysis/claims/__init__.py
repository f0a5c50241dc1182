"""Every study's claims, found by discovery of `analysis/claims/*.py` (each module's `CLAIMED`).

The report covers exactly these studies, whether or not they have results; a study module in `studies/` takes its
article, claims and figures from its module here, so the two cannot drift.
"""

import importlib
import pkgutil

from analysis.verdict import StudyClaims


def discover() -> dict[str, StudyClaims]:
    """Import every claims module in this package.

    Returns:
        dict[str, StudyClaims]: study name -> its claims, sorted by name.
    """
    found = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            found[info.name] = importlib.import_module(f"{__name__}.{info.name}").CLAIMED
    return found
