"""Bradley-Terry ranking of trials from pairwise CTT votes, bootstrap intervals, next pairs to ask.

Also: `informative_pairs`, the pairs whose votes are expected to settle the most of the ranking
(the Laplace posterior `bt_posterior`, moment-matched updates per outcome, `order_uncertainty`),
which pairwise campaigns ask first; and `fit_crowd_bt`, Crowd-BT, which weighs each rater by an
estimated reliability.

A pairwise vote shows a rater two trials' colorizations of the same source clip and records which
looks more natural. Bradley & Terry (1952) model P(i beats j) = π_i / (π_i + π_j) = σ(s_i − s_j)
with log-strength s = ln π. The fit is `choix.ilsr_pairwise_dense` (Maystre & Grossglauser 2015,
iterative Luce spectral ranking; vectorised over the win-count matrix, so 500 bootstrap refits
for 10 trials × 400 votes take under a second), not hand-written code. The source clip only
decides which two clips a rater sees; the fit pools votes over sources.

Regularisation: a trial that always wins has no finite ML estimate (Hunter 2004, "MM algorithms
for generalized Bradley-Terry models", needs a strongly connected comparison graph). choix's I-LSR
`alpha` adds rate alpha to every edge of its Markov chain; its fixed point solves
W_i − π_i·Σ_j n_ij/(π_i+π_j) = n·alpha·(π_i − 1), the MAP estimate under independent
Gamma(a+1, a) priors on the strengths with a = n·alpha (the prior Caron & Doucet 2012 add to
Hunter's MM, whose update becomes π_i = (W_i + a)/(D_i + a)). Our `alpha` is that `a`, so the
shrinkage does not depend on how many trials there are: it acts as `alpha` pseudo-wins per trial,
and for two trials s_A − s_B = ln((W_A + alpha)/(W_B + alpha)) exactly. The default 0.5 is the
empirical-logit correction (Cox 1970: add ½ to each count before taking log odds): a 10-0 trial
stays finite (ln 21 ≈ 3.0), a 30-10 split moves from ln 3 = 1.099 to 1.066.

Pure numpy/pandas/choix: no torch, no Ray. It sits below the results store, which ranks a campaign's
trials with it (`Store.trial_ranking`, the plan of a pairwise session), and the CTT.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence

import choix
import numpy as np
import pandas as pd

from models.errors import VidcolorError

Z95 = 1.959963984540054  # two-sided 95% normal quantile (as study.ctt.stats.Z95, which must not import choix)
ALPHA = 0.5
N_BOOT = 500
RANKING_COLUMNS = ("trial", "score", "low", "high", "wins", "losses", "comparisons", "rank")
VoteInput = pd.DataFrame | Iterable[Sequence[str]]


def vote_pairs(votes: VoteInput) -> list[tuple[str, str]]:
    """(winner, loser) trial ids, as strings, from a DataFrame with `winner` and `loser` columns
    (other columns, e.g. the source clip, are ignored) or from an iterable of pairs."""
    if isinstance(votes, pd.DataFrame):
        missing = [c for c in ("winner", "loser") if c not in votes.columns]
        if missing:
            raise VidcolorError(f"pairwise votes lack column(s) {missing}; have {list(votes.columns)}")
        rows: list = list(zip(votes["winner"], votes["loser"]))
    else:
        rows = [v if isinstance(v, str) else tuple(v) for v in votes]
    pairs = []
    for i, row in enumerate(rows):
        blank = any(v is None or (not isinstance(v, str) and pd.isna(v)) for v in row)
        if isinstance(row, str) or len(row) != 2 or blank:
            raise VidcolorError(f"pairwise vote {i} must be (winner, loser) trial ids, got {row!r}")
        winner, loser = str(row[0]), str(row[1])
        if winner == loser:
            raise VidcolorError(f"pairwise vote {i} has trial {winner!r} as both winner and loser")
        pairs.append((winner, loser))
    return pairs


def _trial_list(pairs: list[tuple[str, str]], items: Iterable[str] | None) -> list[str]:
    """The trials to rank: `items` (every vote must name two of them), else all trials voted on."""
    if items is None:
        trials = sorted({t for pair in pairs for t in pair})
        if not trials:
            raise VidcolorError("no trials to rank: no pairwise votes and no items given")
        return trials
    trials = [str(t) for t in items]
    if not trials:
        raise VidcolorError("no trials to rank: items is empty")
    dupes = sorted({t for t in trials if trials.count(t) > 1})
    if dupes:
        raise VidcolorError(f"items lists trial(s) {dupes} more than once")
    known = set(trials)
    for i, pair in enumerate(pairs):
        for t in pair:
            if t not in known:
                raise VidcolorError(f"pairwise vote {i} names trial {t!r}, which is not among the {len(trials)} items")
    return trials


def _fit(counts: np.ndarray, alpha: float, init: np.ndarray | None = None) -> np.ndarray:
    """Centered MAP log-strengths from a win-count matrix (counts[i, j] = i beat j)."""
    try:
        return choix.ilsr_pairwise_dense(
            counts, alpha=alpha / len(counts), initial_params=init, max_iter=1000, tol=1e-6
        )
    except (RuntimeError, ValueError) as e:  # alpha > 0 makes the chain irreducible: not expected
        raise VidcolorError(f"Bradley-Terry fit failed on {int(counts.sum())} votes: {e}") from e


def fit_bradley_terry(
    votes: VoteInput,
    items: Iterable[str] | None = None,
    alpha: float = ALPHA,
    n_boot: int = N_BOOT,
    rng: np.random.Generator | int | None = 0,
) -> pd.DataFrame:
    """Bradley-Terry ranking of trials, best first, with columns `RANKING_COLUMNS`.

    score: MAP log-strength (see the module docstring for `alpha`), centered to mean 0 over the
    trials that have comparisons; low, high: bootstrap 95% percentile interval (`n_boot`
    resamples of the votes with replacement, drawn as one multinomial over the win-count cells,
    each refit from the full-data estimate; `rng` seeds them, default 0 so a dashboard rerun shows
    the same interval). A trial with no comparisons has no information, only the prior: its score,
    interval and rank are NaN/NA and it is listed last, rather than shown as an average trial.
    """
    if not (alpha > 0 and math.isfinite(alpha)):
        raise VidcolorError(f"Bradley-Terry alpha must be a positive number, got {alpha!r}")
    if n_boot < 1:
        raise VidcolorError(f"Bradley-Terry n_boot must be at least 1, got {n_boot}")
    pairs = vote_pairs(votes)
    trials = _trial_list(pairs, items)
    index = {t: i for i, t in enumerate(trials)}
    counts = np.zeros((len(trials), len(trials)))
    for winner, loser in pairs:
        counts[index[winner], index[loser]] += 1
    wins, losses = counts.sum(axis=1), counts.sum(axis=0)
    seen = (wins + losses) > 0
    score, low, high = (np.full(len(trials), np.nan) for _ in range(3))
    if seen.any():
        sub = counts[np.ix_(seen, seen)]
        est = _fit(sub, alpha)
        total = int(sub.sum())
        draws = np.random.default_rng(rng).multinomial(total, sub.ravel() / total, size=n_boot)
        boot = np.array([_fit(d.reshape(sub.shape).astype(float), alpha, est) for d in draws])
        score[seen] = est
        low[seen], high[seen] = np.percentile(boot, [2.5, 97.5], axis=0)
    out = pd.DataFrame(
        {
            "trial": trials,
            "score": score,
            "low": low,
            "high": high,
            "wins": wins.astype(int),
            "losses": losses.astype(int),
            "comparisons": (wins + losses).astype(int),
        }
    )
    out["rank"] = out["score"].rank(method="min", ascending=False).astype("Int64")
    return out.sort_values(["rank", "trial"], na_position="last").reset_index(drop=True)


def win_probability(score_a: float, score_b: float) -> float:
    """Bradley-Terry probability that the trial with log-strength `score_a` beats `score_b`."""
    d = score_a - score_b
    return 1.0 / (1.0 + math.exp(-d)) if d >= 0 else math.exp(d) / (1.0 + math.exp(d))


def _order_z(ranking: pd.DataFrame) -> np.ndarray:
    """Pairwise z = |s_i − s_j| / sqrt(se_i² + se_j²), se = interval width / (2·1.96); 0 where
    a score is unknown (no comparisons) or both are equal with zero width."""
    s = ranking["score"].to_numpy(float)
    se = (ranking["high"].to_numpy(float) - ranking["low"].to_numpy(float)) / (2 * Z95)
    diff = np.abs(s[:, None] - s[None, :])
    spread = np.sqrt(se[:, None] ** 2 + se[None, :] ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(spread > 0, diff / spread, np.where(diff > 0, np.inf, 0.0))
    return np.where(np.isnan(diff) | np.isnan(spread), 0.0, z)


def next_pairs(
    data: pd.DataFrame | VoteInput,
    k: int = 5,
    rng: np.random.Generator | int | None = 0,
    items: Iterable[str] | None = None,
) -> list[tuple[str, str]]:
    """The `k` pairs of distinct trials to ask about next, where the ranking is least certain.

    `data` is a `fit_bradley_terry` ranking, or votes (fitted here with `items`). Pairs are picked
    one at a time by the smallest key (z, uses, comparisons, random): z (see `_order_z`) is how
    many standard errors apart the two scores are, so z ≈ 0 means the bootstrap cannot tell which
    is better (a trial with no comparisons gives z = 0); uses counts how often the two trials
    already appear in this batch, so equal z spreads the batch over all trials (with no votes at
    all the pairs go round-robin); comparisons (the two trials' totals) favours the less-compared;
    the seeded `rng` breaks what is left. Each pair is (better-ranked, worse-ranked); at most all
    n(n−1)/2 pairs are returned.
    """
    if k < 1:
        raise VidcolorError(f"next_pairs needs k >= 1, got {k}")
    gen = np.random.default_rng(rng)
    cols = {"trial", "score", "low", "high", "comparisons", "rank"}
    is_ranking = isinstance(data, pd.DataFrame) and cols <= set(data.columns)
    ranking = data if is_ranking else fit_bradley_terry(data, items=items, rng=gen)
    ranking = ranking.sort_values(["rank", "trial"], na_position="last")
    trials = ranking["trial"].astype(str).tolist()
    z = _order_z(ranking)
    comps = ranking["comparisons"].to_numpy(int)
    candidates = list(itertools.combinations(range(len(trials)), 2))
    tie = dict(zip(candidates, gen.permutation(len(candidates))))
    uses = np.zeros(len(trials), dtype=int)
    chosen: list[tuple[int, int]] = []
    for _ in range(min(k, len(candidates))):
        i, j = min(
            (c for c in candidates if c not in chosen),
            key=lambda c: (z[c], uses[c[0]] + uses[c[1]], comps[c[0]] + comps[c[1]], tie[c]),
        )
        chosen.append((i, j))
        uses[[i, j]] += 1
    return [(trials[i], trials[j]) for i, j in chosen]


# -- choosing pairs by expected information gain ----------------------------------------------------

PRIOR_VAR = 1.0  # the Gaussian prior on each log-strength of `bt_posterior`: about e^±2 at 2 sd


def _counts(pairs: list[tuple[str, str]], trials: list[str]) -> np.ndarray:
    index = {t: i for i, t in enumerate(trials)}
    counts = np.zeros((len(trials), len(trials)))
    for winner, loser in pairs:
        counts[index[winner], index[loser]] += 1
    return counts


def bt_posterior(counts: np.ndarray, prior_var: float = PRIOR_VAR, iters: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """The Laplace approximation of the Bradley-Terry posterior under independent N(0, prior_var)
    priors on the log-strengths: (mean, covariance), the mean the MAP by Newton's method (the
    log posterior is concave, so it converges from 0) and the covariance the inverse of the
    Hessian there. ``counts[i, j]``: how often i beat j (fractional counts are fine)."""
    n = len(counts)
    games = counts + counts.T
    s = np.zeros(n)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(s[:, None] - s[None, :])))  # p[i, j] = P(i beats j)
        grad = counts.sum(axis=1) - (games * p).sum(axis=1) - s / prior_var
        w = games * p * p.T  # the Fisher information of each pair's games
        hess = np.diag(w.sum(axis=1) + 1.0 / prior_var) - w
        step = np.linalg.solve(hess, grad)
        s = s + step
        if np.abs(step).max() < 1e-9:
            break
    p = 1.0 / (1.0 + np.exp(-(s[:, None] - s[None, :])))
    w = games * p * p.T
    hess = np.diag(w.sum(axis=1) + 1.0 / prior_var) - w
    return s, np.linalg.inv(hess)


def _entropy(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


_PROBIT = math.sqrt(math.pi / 8)  # σ(d) ≈ Φ(d·√(π/8)): the logistic as a probit, for closed-form updates


def _phi(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _cdf(x: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    return ndtr(x)


def order_uncertainty(mean: np.ndarray, cov: np.ndarray) -> float:
    """How unsure the ranking is: the sum over pairs of the binary entropy (nats) of their order,
    P(s_i > s_j) = Φ(μ_ij / σ_ij) under the Gaussian posterior. 0 when every order is certain."""
    mu = mean[:, None] - mean[None, :]
    sd = np.sqrt(np.clip(np.diag(cov)[:, None] + np.diag(cov)[None, :] - 2 * cov, 1e-12, None))
    upper = np.triu_indices(len(mean), 1)
    return float(_entropy(_cdf(mu[upper] / sd[upper])).sum())


def _after_vote(mean: np.ndarray, cov: np.ndarray, i: int, j: int) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """The two outcomes of a vote between i and j: (probability, mean, covariance) after it, by
    moment matching the probit likelihood (assumed density filtering, as TrueSkill updates)."""
    g = np.zeros(len(mean))
    g[i], g[j] = 1.0, -1.0
    sg = cov @ g
    c = math.sqrt(1.0 / _PROBIT**2 + float(g @ sg))
    out = []
    for sign in (1.0, -1.0):  # i wins, j wins
        t = sign * float(g @ mean) / c
        p = float(_cdf(np.array(t)))
        v = float(_phi(np.array(t))) / max(p, 1e-300)
        w = v * (v + t)
        out.append((p, mean + sign * (v / c) * sg, cov - (w / c**2) * np.outer(sg, sg)))
    return out


def informative_pairs(
    votes: VoteInput,
    items: Iterable[str],
    k: int = 5,
    prior_var: float = PRIOR_VAR,
    rng: np.random.Generator | int | None = 0,
) -> list[tuple[str, str]]:
    """The `k` pairs of `items` whose votes are expected to settle the most of the ranking: each
    pair minimises the expected `order_uncertainty` after its vote (the outcome's probability and
    the posterior after it by moment matching, from the Laplace posterior of the votes so far), an
    expected-information-gain rule aimed at the order of the trials rather than their scores, in the
    spirit of Mikhailiuk et al. 2020's ASAP. Picked one at a time; after each pick the covariance
    takes the expected update (the mean is unknown until the vote), so a batch does not ask the
    same question twice. Ties go to the seeded `rng`. Each pair is (better so far, worse so far)."""
    if k < 1:
        raise VidcolorError(f"informative_pairs needs k >= 1, got {k}")
    pairs = vote_pairs(votes)
    trials = _trial_list(pairs, items)
    mean, cov = bt_posterior(_counts(pairs, trials), prior_var)
    gen = np.random.default_rng(rng)
    candidates = list(itertools.combinations(range(len(trials)), 2))
    tie = dict(zip(candidates, gen.random(len(candidates)) * 1e-9))
    chosen: list[tuple[int, int]] = []
    for _ in range(min(k, len(candidates))):
        best, best_after = None, None
        for c in candidates:
            if c in chosen:
                continue
            after = _after_vote(mean, cov, *c)
            expected = sum(p * order_uncertainty(m, v) for p, m, v in after) + tie[c]
            if best is None or expected < best:
                best, best_pair, best_after = expected, c, after
        chosen.append(best_pair)
        cov = sum(p * v for p, _, v in best_after)  # the expected covariance; the mean waits for the vote
    return [(trials[i], trials[j]) if mean[i] >= mean[j] else (trials[j], trials[i]) for i, j in chosen]


# -- Crowd-BT: raters of unequal reliability ---------------------------------------------------------

RELIABILITY_PRIOR = (4.0, 1.0)  # Beta(a, b) on a rater's reliability: mean 0.8, as Chen et al. start


def fit_crowd_bt(
    votes: pd.DataFrame,
    items: Iterable[str] | None = None,
    alpha: float = ALPHA,
    prior: tuple[float, float] = RELIABILITY_PRIOR,
    iters: int = 200,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Crowd-BT (Chen, Bennett, Collins-Thompson & Horvitz 2013, "Pairwise ranking aggregation in a
    crowdsourced setting"): rater k reports the better of two trials with probability η_k and the
    worse with 1 − η_k, so P(k says i beats j) = η_k σ(s_i − s_j) + (1 − η_k) σ(s_j − s_i). Fitted
    by EM: each vote's chance that its rater told the truth given the current fit, then η_k as the
    posterior mean under a Beta(`prior`) and the scores as a Bradley-Terry fit (`alpha` as
    `fit_bradley_terry`'s) of the votes weighted by that chance (a vote likely reversed counts for
    the other side). A rater who votes against the consensus gets a low η and little weight; one
    below 0.5 is read as reversed. `votes`: columns winner, loser, rater.

    Returns (ranking: trial, score, rank, comparisons; raters: rater, votes, reliability)."""
    if "rater" not in votes.columns:
        raise VidcolorError(f"Crowd-BT needs a rater column; have {list(votes.columns)}")
    pairs = vote_pairs(votes)
    trials = _trial_list(pairs, items)
    index = {t: i for i, t in enumerate(trials)}
    raters = [str(r) for r in votes["rater"]]
    names = sorted(set(raters))
    rater_of = np.array([names.index(r) for r in raters], dtype=int)
    w = np.array([index[a] for a, _ in pairs], dtype=int)
    lo = np.array([index[b] for _, b in pairs], dtype=int)
    a, b = prior
    eta = np.full(len(names), a / (a + b))
    score = np.zeros(len(trials))
    games = np.zeros(len(trials))
    np.add.at(games, w, 1)
    np.add.at(games, lo, 1)
    seen = games > 0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(score[w] - score[lo])))  # P(winner truly better)
        truthful = eta[rater_of] * p / (eta[rater_of] * p + (1 - eta[rater_of]) * (1 - p))
        new_eta = (a + np.bincount(rater_of, truthful, len(names))) / (a + b + np.bincount(rater_of, None, len(names)))
        counts = np.zeros((len(trials), len(trials)))
        np.add.at(counts, (w, lo), truthful)
        np.add.at(counts, (lo, w), 1 - truthful)
        new = np.full(len(trials), np.nan)
        if seen.any():
            new[seen] = _fit(counts[np.ix_(seen, seen)], alpha, score[seen] if np.isfinite(score[seen]).all() else None)
        new = np.where(seen, new, 0.0)
        done = np.abs(new - score).max(initial=0) < 1e-7 and np.abs(new_eta - eta).max(initial=0) < 1e-7
        score, eta = new, new_eta
        if done:
            break
    ranking = pd.DataFrame({"trial": trials, "score": np.where(seen, score, np.nan), "comparisons": games.astype(int)})
    ranking["rank"] = ranking["score"].rank(method="min", ascending=False).astype("Int64")
    ranking = ranking.sort_values(["rank", "trial"], na_position="last").reset_index(drop=True)
    rater_table = pd.DataFrame(
        {"rater": names, "votes": np.bincount(rater_of, None, len(names)).astype(int), "reliability": eta}
    )
    return ranking, rater_table
