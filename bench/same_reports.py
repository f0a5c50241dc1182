"""Do two checkouts train the same? One trial of every training task (attention's LM and recall, fast_mlm's two
objectives, question_generation at smoke and on tiny full-budget files with span QA, embedding_dim's head-size LM,
flooding and weissi alone and fused), run in each checkout on one thread, and their reports compared value for value
(timings left out). For refactors that must not change the arithmetic.

    python bench/same_reports.py /path/to/other/checkout     # e.g. git worktree add /tmp/base HEAD~1
"""

import json
import os
import pickle
import random
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def capture(repo: str, path: str) -> None:
    """Run every task with checkout `repo`'s modules (imported from there) and pickle what each reported to `path`."""
    sys.path[:0] = [repo, f"{repo}/tests/studies"]
    os.chdir(repo)
    import numpy as np
    import test_question_generation_full as tq
    import torch
    from ray import tune

    from studies import attention_scaling, embedding_dim, expand, fast_mlm, flooding, question_generation, weissi

    torch.set_num_threads(1)
    out = {}

    def collect(name, fn):
        rows = []
        tune.report = rows.append  # the studies' trainables report through ray.tune.report
        fn(rows.append)
        out[name] = rows

    def cell(module, pred):
        return next(c for c in expand(module.get_study("smoke").param_space) if pred(c))

    lm = cell(attention_scaling, lambda c: c["task"] == "lm" and c["attn"] == "linear_elu")
    collect("attention_lm", lambda r: attention_scaling.train(lm))
    rc = cell(attention_scaling, lambda c: c["task"] == "recall" and c["attn"] == "softmax")
    collect("attention_recall", lambda r: attention_scaling.train(rc))
    for objective in ("mlm", "tta"):
        c = cell(fast_mlm, lambda c, o=objective: c["task"] == "lm" and c["objective"] == o)
        collect(f"fast_mlm_{objective}", lambda r, c=c: fast_mlm.train(c))
    qg = cell(question_generation, lambda c: True)
    collect("qg_smoke", lambda r: question_generation.train(qg))
    root = Path(tempfile.mkdtemp())  # the full budget on tiny files, as its test builds them
    rng = random.Random(0)
    (root / "squad").mkdir()
    for name, n, first in (("train-v1.1.json", 24, 0), ("dev-v1.1.json", 4, 100)):
        articles = [tq._article(first + i, rng) for i in range(n)]
        (root / "squad" / name).write_text(json.dumps({"version": "1.1", "data": articles}))
    (root / "bert").mkdir()
    tq._bert(root / "bert", tq.VOCAB)
    collect("qg_full", lambda r: question_generation.qg(tq._config(root, steps=4, qa_steps=4), r))
    folder = root / "wikitext-103-raw"
    folder.mkdir()
    g = np.random.default_rng(0)
    for split, size in (("train", 20_000), ("valid", 2_000), ("test", 2_000)):
        (folder / f"wiki.{split}.raw").write_bytes(bytes(g.choice(list(b"abcd efgh\n"), size).tolist()))
    os.environ["CLAIMBENCH_DATA"] = str(root)
    head = next(c for c in embedding_dim.head_cells("full") if c["arm"] == "heads" and c["context"] == 128)
    head |= {"context": 16, "head_dim": 8, "d_model": 32, "heads": 2, "layers": 1, "batch_tokens": 128, "steps": 60,
             "lr": 1e-2}  # fmt: skip
    collect("head_lm", lambda r: embedding_dim.head_lm(head, r))
    del os.environ["CLAIMBENCH_DATA"]
    for module in (flooding, weissi):
        cfgs = [c for c in expand(module.get_study("smoke").param_space) if c.get("optimizer") == "adam"]
        collect(f"{module.__name__[8:]}_alone", lambda r, m=module, c=cfgs[0]: m.train(c))
        collect(f"{module.__name__[8:]}_fused", lambda r, m=module, cs=cfgs[:3]: m.FUSION.trainable(cs, r))
    with open(path, "wb") as f:
        pickle.dump(out, f)


def _clean(v):
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items() if "time" not in k}
    if isinstance(v, list):
        return [_clean(x) for x in v]
    return v


def main(other: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        for name, repo in (("other", other), ("this", str(HERE))):
            subprocess.run([sys.executable, __file__, "--capture", repo, f"{tmp}/{name}.pkl"], check=True)
        a, b = (pickle.loads(Path(f"{tmp}/{n}.pkl").read_bytes()) for n in ("other", "this"))
    bad = 0
    for task in a:
        same = repr(_clean(a[task])) == repr(_clean(b.get(task)))
        print(f"{task:16s} {len(a[task]):4d} reports  {'bitwise equal' if same else 'DIFFERENT'}")
        bad += not same
    return bad


if __name__ == "__main__":
    if sys.argv[1] == "--capture":
        capture(sys.argv[2], sys.argv[3])
    else:
        sys.exit(main(sys.argv[1]))
