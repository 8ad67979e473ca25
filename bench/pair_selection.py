"""Pair selection for pairwise CTT campaigns, by simulation: how many votes until the ranking of
the trials is right, when the next pairs are chosen at random, by the existing bootstrap rule
(`study.ranking.next_pairs`: the pairs whose scores the bootstrap cannot tell apart) and by expected
information gain (`study.ranking.informative_pairs`: the expected fall of the ranking's uncertainty).

A study of ``--trials`` trials with true Bradley-Terry log-strengths evenly spread over
``--spread`` (jittered per run); simulated raters answer each pair by the model
(P(i wins) = σ(s_i − s_j)); votes come in sessions of ``--batch`` pairs chosen from the votes so
far; after each session the trials are ranked (the posterior mean) and Kendall's tau against the
true order is taken. Measured per strategy over ``--runs`` seeded runs: the votes from which tau
reaches ``--tau`` and stays there up to ``--max-votes`` (a run below it at the end counts the
cap), and tau after ``--budget`` votes. ``speedup`` = random's median votes / information gain's.

    python bench/pair_selection.py [--trials 8] [--runs 10] [--tau 0.9] [--json FILE]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from study.ranking import bt_posterior, fit_bradley_terry, informative_pairs, next_pairs  # noqa: E402
from study.report import format_table, write_json  # noqa: E402

STRATEGIES = ("random", "bootstrap z (next_pairs)", "information gain")


def kendall_tau(estimate: np.ndarray, truth: np.ndarray) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(estimate, truth).statistic)


def choose(strategy: str, votes: list, trials: list[str], k: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    if strategy == "random":
        every = list(itertools.combinations(trials, 2))
        return [every[i] for i in rng.integers(0, len(every), k)]
    if strategy == "information gain":
        return informative_pairs(votes, trials, k=k, rng=rng)
    return next_pairs(fit_bradley_terry(votes, items=trials, n_boot=50, rng=rng), k=k, rng=rng)


def run(strategy: str, truth: np.ndarray, args, seed: int) -> tuple[int, float]:
    """(votes from which tau stays >= args.tau up to the cap, tau after args.budget votes) of one
    simulated campaign; the cap when tau is below it after the last session."""
    rng = np.random.default_rng(seed)
    answers = np.random.default_rng(seed + 10_000)  # the raters: the same stream for every strategy
    trials = [f"t{i}" for i in range(len(truth))]
    index = {t: i for i, t in enumerate(trials)}
    votes: list[tuple[str, str]] = []
    counts = np.zeros((len(trials), len(trials)))
    held, at_budget = None, None  # votes since when tau has stayed above the threshold
    while len(votes) < args.max_votes:
        for a, b in choose(strategy, votes, trials, args.batch, rng):
            p = 1.0 / (1.0 + np.exp(-(truth[index[a]] - truth[index[b]])))
            w, lo = (a, b) if answers.random() < p else (b, a)
            votes.append((w, lo))
            counts[index[w], index[lo]] += 1
        tau = kendall_tau(bt_posterior(counts)[0], truth)
        if at_budget is None and len(votes) >= args.budget:
            at_budget = tau
        held = (held or len(votes)) if tau >= args.tau else None
    return (held if held is not None else args.max_votes), at_budget


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--spread", type=float, default=3.0, help="true log-strengths span this (default 3)")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--batch", type=int, default=5, help="pairs per session, chosen together")
    p.add_argument("--tau", type=float, default=0.9)
    p.add_argument("--budget", type=int, default=300, help="votes after which tau is also reported")
    p.add_argument("--max-votes", type=int, default=1000)
    p.add_argument("--json", default=None, metavar="FILE")
    args = p.parse_args()
    results: dict[str, list[tuple[int, float]]] = {s: [] for s in STRATEGIES}
    seconds = dict.fromkeys(STRATEGIES, 0.0)
    for r in range(args.runs):
        jitter = np.random.default_rng(r).normal(0, 0.1 * args.spread / args.trials, args.trials)
        truth = np.linspace(args.spread / 2, -args.spread / 2, args.trials) + jitter
        for strategy in STRATEGIES:
            t0 = time.perf_counter()
            results[strategy].append(run(strategy, truth, args, seed=r))
            seconds[strategy] += time.perf_counter() - t0
    rows, figures = [], {}
    for strategy in STRATEGIES:
        votes = np.array([v for v, _ in results[strategy]])
        taus = np.array([t for _, t in results[strategy]])
        figures[strategy] = {
            "median_votes": float(np.median(votes)),
            "mean_votes": float(votes.mean()),
            "never": int((votes >= args.max_votes).sum()),
            "tau_at_budget": float(taus.mean()),
            "seconds_per_run": seconds[strategy] / args.runs,
        }
        f = figures[strategy]
        rows.append(
            (strategy, f["median_votes"], f["mean_votes"], f["never"], f["tau_at_budget"], f["seconds_per_run"])
        )
    print(
        f"{args.trials} trials spread over {args.spread:g} log-strength, sessions of {args.batch} pairs, "
        f"{args.runs} runs: votes from which Kendall tau stays >= {args.tau:g} (to {args.max_votes})"
    )
    print(
        format_table(
            ["strategy", "median votes", "mean votes", "below at the end", f"tau at {args.budget}", "s/run"],
            rows,
        )
    )
    speedup = figures["random"]["median_votes"] / figures["information gain"]["median_votes"]
    print(f"random / information gain (median votes): {speedup:.2f}x")
    if args.json:
        write_json(args.json, {"config": vars(args), "strategies": figures, "speedup": round(speedup, 2)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
