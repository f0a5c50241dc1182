import numpy as np
import pytest

from core.data.label_noise import symmetric_label_noise


@pytest.mark.parametrize("n", [1, 7, 1000, 1001])
@pytest.mark.parametrize("eta", [0.0, 0.1, 0.4, 0.9])
def test_realised_fraction_is_eta_within_one_over_n_and_flips_change_class(n, eta):
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 10, n)
    noisy = symmetric_label_noise(clean, eta, 10, np.random.default_rng(1))
    changed = (noisy != clean).sum()
    assert changed == int(n * eta)  # every chosen index changes class, so the count is exact
    assert abs(changed / n - eta) <= 1 / n
    assert ((noisy >= 0) & (noisy < 10)).all()


def test_flipped_labels_are_uniform_over_the_other_classes():
    clean = np.zeros(200_000, dtype=np.int64)
    noisy = symmetric_label_noise(clean, 0.5, 5, np.random.default_rng(0))
    counts = np.bincount(noisy[noisy != 0], minlength=5)[1:]
    assert counts.sum() == 100_000
    np.testing.assert_allclose(counts / counts.sum(), 0.25, atol=0.01)


def test_same_seed_same_noise_and_input_untouched():
    clean = np.arange(100) % 10
    a = symmetric_label_noise(clean, 0.3, 10, np.random.default_rng(5))
    b = symmetric_label_noise(clean, 0.3, 10, np.random.default_rng(5))
    assert np.array_equal(a, b)
    assert np.array_equal(clean, np.arange(100) % 10)


def test_bad_rates_are_refused():
    with pytest.raises(ValueError, match="label noise"):
        symmetric_label_noise(np.zeros(3, int), 1.0, 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="2 classes"):
        symmetric_label_noise(np.zeros(3, int), 0.1, 1, np.random.default_rng(0))
