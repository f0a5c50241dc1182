"""M5: Yin and Shen's PIP-optimal dimension (On the Dimensionality of Word Embedding, NeurIPS 2018), a competing
predictor of the dimension a vocabulary needs.

Word2vec factorises the shifted PMI matrix M (Levy and Goldberg 2014) symmetrically, E = U_k D_k^alpha with
alpha = 1/2. The corpus gives M only up to noise; Yin and Shen estimate the noise sigma from two halves of the
corpus, the signal spectrum by soft-thresholding M's singular values at 2 sigma sqrt(N), and then the PIP loss
||E_k E_k^T - E E^T||_F of a k-dimensional embedding of a noisy matrix against the noiseless one, by simulation
(a random signal with that spectrum plus Gaussian noise). The PIP-optimal k minimises it: it trades the bias of
dropping signal directions against the variance of fitting noise, so it grows with the corpus (unlike 8.33 ln N).
"""

import numpy as np
import torch


def shifted_pmi(table: torch.Tensor, shift: float = 1.0) -> torch.Tensor:
    """ln(P_ij / (P_i P_j)) - ln(shift) from co-occurrence counts `[N, N]`, 0 where a pair never co-occurs."""
    table = table.double()
    total = table.sum()
    row, col = table.sum(1, keepdim=True), table.sum(0, keepdim=True)
    pmi = torch.log(table * total / (row * col)) - np.log(shift)
    return torch.where(table > 0, pmi, torch.zeros_like(pmi))


def noise_sigma(half_a: torch.Tensor, half_b: torch.Tensor, shift: float = 1.0) -> float:
    """Entry-wise noise of the whole corpus's PMI from its two halves' tables: std(M_a - M_b) / 2.

    Each half's noise has twice the variance of the whole's, and the difference of two halves twice that again.
    """
    return float((shifted_pmi(half_a, shift) - shifted_pmi(half_b, shift)).std()) / 2


def signal_spectrum(matrix: torch.Tensor, sigma: float, device: str = "cpu") -> np.ndarray:
    """Singular values of the signal: the matrix's, soft-thresholded at 2 sigma sqrt(N), zeros dropped."""
    s = torch.linalg.svdvals(matrix.double().to(device)).cpu().numpy()
    s = np.maximum(s - 2 * sigma * np.sqrt(matrix.shape[0]), 0.0)
    return s[s > 0]


def _orthonormal(n: int, k: int, gen: torch.Generator) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(n, k, generator=gen, dtype=torch.float64))
    return q


def _draw(spectrum: np.ndarray, size: int, sigma: float, seed: int, device: str = "cpu"):
    """A random signal U diag(spectrum) V^T and the same plus Gaussian noise (float64, drawn on the CPU so every
    device sees the same matrices). Returns U, the spectrum, V and the noisy matrix, on `device`."""
    gen = torch.Generator().manual_seed(seed)
    k = len(spectrum)
    u, v = _orthonormal(size, k, gen), _orthonormal(size, k, gen)
    d = torch.as_tensor(spectrum, dtype=torch.float64)
    y = (u * d) @ v.T + sigma * torch.randn(size, size, generator=gen, dtype=torch.float64)
    return u.to(device), d.to(device), v.to(device), y.to(device)


def pip_loss_curve(spectrum: np.ndarray, size: int, sigma: float, alpha: float = 0.5, max_dim: int | None = None,
                   seed: int = 0, device: str = "cpu") -> np.ndarray:  # fmt: skip
    """PIP loss of the k-dimensional embedding of the noisy matrix, k = 1 ... max_dim (one Monte-Carlo draw).

    One pass over k: with G = E E^T the true Gram matrix and A_k = sum_{i <= k} s_i^2 u_i u_i^T the estimate's,
    ||A_k - G||^2 = ||A_{k-1} - G||^2 + s_k^4 - 2 s_k^2 ||E^T u_k||^2 (the u_i are orthonormal).

    Args:
        spectrum (np.ndarray):
            The signal's singular values (`signal_spectrum`).
        size (int):
            N, the matrix side.
        sigma (float):
            Entry-wise noise (`noise_sigma`).
        alpha (float):
            Exponent of the embedding E = U D^alpha (1/2: word2vec's symmetric factorisation).
        max_dim (int | None):
            Largest k (default: the signal's rank).
        seed (int):
            Seed of the simulated signal and noise.
        device (str):
            Where the SVDs run (`cuda` for N in the tens of thousands).

    Returns:
        np.ndarray: PIP loss `[max_dim]` for k = 1 ... max_dim.
    """
    u_true, d_true, _, y = _draw(spectrum, size, sigma, seed, device)
    truth = u_true * d_true**alpha  # E [N, rank]: the signal's SVD is known (the spectrum is sorted), no need to take it
    u_est, d_est, _ = torch.linalg.svd(y)
    s2 = d_est ** (2 * alpha)
    max_dim = max_dim or len(spectrum)
    overlap = ((truth.T @ u_est[:, :max_dim]) ** 2).sum(0)  # ||E^T u_k||^2
    sq = (d_true ** (4 * alpha)).sum() + torch.cumsum(s2[:max_dim] ** 2 - 2 * s2[:max_dim] * overlap, 0)
    return torch.sqrt(torch.clamp(sq, min=0)).cpu().numpy()


def naive_pip_loss_curve(spectrum, size, sigma, alpha=0.5, max_dim=None, seed=0) -> np.ndarray:
    """`pip_loss_curve` by decomposing the signal too and forming both Gram matrices for every k (the reference)."""
    u, d, v, y = _draw(spectrum, size, sigma, seed)
    u_true, d_true, _ = torch.linalg.svd((u * d) @ v.T)
    u_est, d_est, _ = torch.linalg.svd(y)
    truth = u_true[:, : len(spectrum)] * d_true[: len(spectrum)] ** alpha
    gram = truth @ truth.T
    out = []
    for k in range(1, (max_dim or len(spectrum)) + 1):
        e = u_est[:, :k] * d_est[:k] ** alpha
        out.append(float(torch.linalg.norm(e @ e.T - gram)))
    return np.array(out)


def pip_optimal_dim(table: torch.Tensor, half_a: torch.Tensor, half_b: torch.Tensor, shift: float = 1.0,
                    alpha: float = 0.5, max_dim: int = 1000, draws: int = 3, seed: int = 0,
                    device: str = "cpu") -> dict[str, float]:  # fmt: skip
    """The PIP-optimal dimension of a corpus's co-occurrence table (M5), averaged over Monte-Carlo draws.

    Args:
        table (torch.Tensor):
            Co-occurrence counts of the whole training text `[N, N]`.
        half_a (torch.Tensor):
            Counts of one half of its paragraphs.
        half_b (torch.Tensor):
            Counts of the other half.
        shift (float):
            PMI shift (the number of negatives k; Yin and Shen use 1).
        alpha (float):
            Embedding exponent.
        max_dim (int):
            Largest dimension considered.
        draws (int):
            Monte-Carlo draws whose curves are averaged.
        seed (int):
            Seed of the first draw.
        device (str):
            Where the SVDs run.

    Returns:
        dict[str, float]: `pip/dim` (argmin), `pip/sigma`, `pip/rank` (signal rank), `pip/loss_min`, and
        `pip/dim_lo`, `pip/dim_hi` (the smallest and largest k within 1% of the minimum: how flat the optimum is).
    """
    sigma = noise_sigma(half_a, half_b, shift)
    spectrum = signal_spectrum(shifted_pmi(table, shift), sigma, device)
    if len(spectrum) == 0:
        return {"pip/dim": float("nan"), "pip/sigma": sigma, "pip/rank": 0.0}
    top = min(max_dim, len(spectrum))
    n = table.shape[0]
    curve = np.mean([pip_loss_curve(spectrum, n, sigma, alpha, top, seed + i, device) for i in range(draws)], 0)
    near = np.flatnonzero(curve <= curve.min() * 1.01) + 1
    return {"pip/dim": float(np.argmin(curve) + 1), "pip/sigma": sigma, "pip/rank": float(len(spectrum)),
            "pip/loss_min": float(curve.min()), "pip/dim_lo": float(near.min()), "pip/dim_hi": float(near.max())}  # fmt: skip
