"""Bradley-Terry ranking of trials from pairwise votes: hand-computed fits, recovery of known
scores from simulated raters, degenerate data, bad input, and the choice of the next pairs."""

import math
import re

import choix
import numpy as np
import pandas as pd
import pytest

from models.errors import VidcolorError
from study import ranking as rk

TINY = 1e-6  # alpha -> 0: the plain ML estimate


def by_trial(df: pd.DataFrame) -> pd.DataFrame:
    return df.set_index("trial")


def test_two_trials_match_log_odds_and_documented_shrinkage():
    votes = [("A", "B")] * 3 + [("B", "A")]
    # ML: P(A beats B) = 3/4 = σ(s_A - s_B), so s_A - s_B = ln 3 = 1.098612, centered ±0.549306
    ml = by_trial(rk.fit_bradley_terry(votes, alpha=TINY, n_boot=20))
    assert ml.loc["A", "score"] - ml.loc["B", "score"] == pytest.approx(math.log(3), abs=1e-3)
    assert ml.loc["A", "score"] == pytest.approx(0.549306, abs=1e-3)
    # alpha = 0.5 pseudo-wins each: ln((3 + .5)/(1 + .5)) = ln(7/3) = 0.847298
    mapf = rk.fit_bradley_terry(votes, n_boot=20)
    assert list(mapf.columns) == list(rk.RANKING_COLUMNS)
    assert mapf["trial"].tolist() == ["A", "B"] and mapf["rank"].tolist() == [1, 2]
    s = by_trial(mapf)
    assert s.loc["A", "score"] - s.loc["B", "score"] == pytest.approx(math.log(7 / 3), abs=1e-5)
    assert s.loc["A", ["wins", "losses", "comparisons"]].tolist() == [3, 1, 4]
    assert s.loc["B", ["wins", "losses", "comparisons"]].tolist() == [1, 3, 4]
    assert s.loc["A", "low"] <= s.loc["A", "score"] <= s.loc["A", "high"]


def test_three_trials_on_a_chain_decouple_by_hand():
    # A-B and B-C only (a tree): the likelihood factors by edge, so the ML differences are the
    # edge log odds. A beats B 3-1: s_A - s_B = ln 3; B beats C 4-1: s_B - s_C = ln 4.
    # Mean 0: s_B = (ln 4 - ln 3)/3 = 0.095894, s_A = 1.194506, s_C = -1.290400.
    votes = [("A", "B")] * 3 + [("B", "A")] + [("B", "C")] * 4 + [("C", "B")]
    s = by_trial(rk.fit_bradley_terry(votes, alpha=TINY, n_boot=20))["score"]
    assert s["A"] == pytest.approx(1.194506, abs=1e-3)
    assert s["B"] == pytest.approx(0.095894, abs=1e-3)
    assert s["C"] == pytest.approx(-1.290400, abs=1e-3)


def test_symmetric_cycle_scores_all_zero():
    # A > B, B > C, C > A twice each: every trial is in the same position, so s = 0 for any alpha
    votes = [("A", "B"), ("B", "C"), ("C", "A")] * 2
    s = rk.fit_bradley_terry(votes, alpha=0.5, n_boot=20)["score"]
    assert np.allclose(s, 0.0, atol=1e-6)


def test_map_estimate_solves_the_gamma_prior_equations_and_matches_hunter_mm():
    # MAP under Gamma(a+1, a) priors: W_i - π_i·Σ_j n_ij/(π_i+π_j) = a(π_i - 1), Σπ = n
    rng = np.random.default_rng(3)
    names = ["t0", "t1", "t2", "t3"]
    idx = [tuple(rng.choice(4, 2, replace=False)) for _ in range(40)]
    votes = [(names[w], names[l]) for w, l in idx]
    a = 0.5
    s = by_trial(rk.fit_bradley_terry(votes, alpha=a, n_boot=20))["score"].reindex(names).to_numpy()
    pi = 4 * np.exp(s) / np.exp(s).sum()
    n = np.zeros((4, 4))
    for w, l in idx:
        n[w, l] += 1
    wins, games = n.sum(axis=1), n + n.T
    residual = wins - pi * (games / (pi[:, None] + pi[None, :])).sum(axis=1) - a * (pi - 1)
    assert np.abs(residual).max() < 1e-4
    mm = choix.mm_pairwise(4, idx, alpha=a)  # Hunter 2004 MM with the same prior (Caron & Doucet)
    assert np.allclose(s, mm, atol=1e-4)


def simulate(true: np.ndarray, n_votes: int, seed: int) -> list[tuple[str, str]]:
    """Raters who pick trial i over j with the Bradley-Terry probability σ(s_i - s_j)."""
    rng = np.random.default_rng(seed)
    votes = []
    for _ in range(n_votes):
        i, j = rng.choice(len(true), 2, replace=False)
        i_wins = rng.random() < rk.win_probability(true[i], true[j])
        votes.append((f"t{i}", f"t{j}") if i_wins else (f"t{j}", f"t{i}"))
    return votes


def test_simulated_raters_recover_known_scores():
    true = np.linspace(-1.5, 1.5, 6)  # mean 0, like the fitted scores
    names = [f"t{i}" for i in range(6)]
    big = by_trial(rk.fit_bradley_terry(simulate(true, 3000, seed=1))).reindex(names)
    ranks = big["score"].rank().to_numpy()
    spearman = np.corrcoef(ranks, np.arange(1, 7))[0, 1]
    assert spearman >= 0.9
    inside = ((big["low"] <= true) & (true <= big["high"])).sum()
    assert inside >= 5
    assert np.abs(big["score"].to_numpy() - true).max() < 0.3
    small = by_trial(rk.fit_bradley_terry(simulate(true, 300, seed=2))).reindex(names)
    width_big, width_small = big["high"] - big["low"], small["high"] - small["low"]
    assert (width_big < 0.6 * width_small).all()  # ~ 1/sqrt(10) = 0.32 expected


def test_always_winner_stays_finite_and_ranks_first():
    votes = [("A", "B")] * 10 + [("A", "C")] * 10 + [("B", "C")] * 5 + [("C", "B")] * 5
    r = rk.fit_bradley_terry(votes)
    assert r.loc[0, "trial"] == "A" and r.loc[0, "rank"] == 1
    assert np.isfinite(r[["score", "low", "high"]].to_numpy()).all()
    s = by_trial(r)["score"]
    assert s["A"] - s["B"] > 2 and s["B"] == pytest.approx(s["C"], abs=1e-6)


def test_trials_without_comparisons_are_nan_and_last():
    votes = pd.DataFrame(
        {"winner": ["A", "A", "A", "B"], "loser": ["B", "B", "B", "A"], "source": ["s1", "s2", "s1", "s2"]}
    )
    r = rk.fit_bradley_terry(votes, items=["Z", "A", "B"])
    assert r["trial"].tolist() == ["A", "B", "Z"]
    z = r.iloc[2]
    assert math.isnan(z["score"]) and math.isnan(z["low"]) and math.isnan(z["high"])
    assert pd.isna(z["rank"]) and z["comparisons"] == 0
    # the compared trials are fitted as if Z were absent, and the source column is ignored
    alone = rk.fit_bradley_terry([("A", "B")] * 3 + [("B", "A")])
    pd.testing.assert_frame_equal(r.iloc[:2], alone)
    assert r.loc[0, "score"] == pytest.approx(math.log(7 / 3) / 2, abs=1e-5)
    empty = rk.fit_bradley_terry([], items=["A", "B"])
    assert empty["score"].isna().all() and empty["rank"].isna().all()


def test_bootstrap_is_seeded():
    votes = simulate(np.array([0.5, 0.0, -0.5]), 60, seed=4)
    one = rk.fit_bradley_terry(votes, rng=11)
    pd.testing.assert_frame_equal(one, rk.fit_bradley_terry(votes, rng=11))
    assert not one[["low", "high"]].equals(rk.fit_bradley_terry(votes, rng=12)[["low", "high"]])


@pytest.mark.parametrize(
    "votes, items, message",
    [
        ([("A", "B"), ("A", "A")], None, "pairwise vote 1 has trial 'A' as both winner and loser"),
        ([("A", "B"), ("X", "B")], ["A", "B"], "pairwise vote 1 names trial 'X', which is not among the 2 items"),
        ([("A", "B")], [], "no trials to rank: items is empty"),
        ([], None, "no trials to rank: no pairwise votes and no items given"),
        ([("A", "B")], ["A", "B", "A"], "items lists trial(s) ['A'] more than once"),
        ([("A", None)], None, "pairwise vote 0 must be (winner, loser) trial ids, got ('A', None)"),
        (["AB"], None, "pairwise vote 0 must be (winner, loser) trial ids, got 'AB'"),
        ([("A", "B", "C")], None, "pairwise vote 0 must be (winner, loser) trial ids, got ('A', 'B', 'C')"),
        (
            pd.DataFrame({"winner": ["A"], "clip": ["c"]}),
            None,
            "pairwise votes lack column(s) ['loser']; have ['winner', 'clip']",
        ),
    ],
)
def test_bad_votes_are_named(votes, items, message):
    with pytest.raises(VidcolorError, match=re.escape(message)):
        rk.fit_bradley_terry(votes, items=items)


def test_bad_parameters_are_named():
    with pytest.raises(VidcolorError, match=re.escape("alpha must be a positive number, got 0")):
        rk.fit_bradley_terry([("A", "B")], alpha=0)
    with pytest.raises(VidcolorError, match=re.escape("n_boot must be at least 1, got 0")):
        rk.fit_bradley_terry([("A", "B")], n_boot=0)
    with pytest.raises(VidcolorError, match=re.escape("next_pairs needs k >= 1, got 0")):
        rk.next_pairs([("A", "B")], k=0)


def test_win_probability():
    assert rk.win_probability(0.3, 0.3) == 0.5
    assert rk.win_probability(math.log(3), 0.0) == pytest.approx(0.75)
    assert rk.win_probability(0.0, math.log(3)) == pytest.approx(0.25)
    assert rk.win_probability(1000.0, 0.0) == 1.0 and rk.win_probability(-1000.0, 0.0) == 0.0


def clear_ranking_with_a_tie() -> list[tuple[str, str]]:
    """A far above B, B far above C and D, and C and D tied 10-10."""
    votes = []
    for winner, loser, w, l in [
        ("A", "B", 18, 2),
        ("A", "C", 19, 1),
        ("A", "D", 19, 1),
        ("B", "C", 18, 2),
        ("B", "D", 18, 2),
        ("C", "D", 10, 10),
    ]:
        votes += [(winner, loser)] * w + [(loser, winner)] * l
    return votes


def test_next_pairs_asks_the_near_tie_first_and_never_a_self_pair():
    votes = clear_ranking_with_a_tie()
    ranking = rk.fit_bradley_terry(votes)
    pairs = rk.next_pairs(ranking, k=6)
    assert set(pairs[0]) == {"C", "D"}
    assert all(a != b for a, b in pairs)
    assert {frozenset(p) for p in pairs} == {
        frozenset(p) for p in [("A", "B"), ("A", "C"), ("A", "D"), ("B", "C"), ("B", "D"), ("C", "D")]
    }
    assert rk.next_pairs(ranking, k=100) == pairs  # at most all 6 pairs
    # from votes, seeded: the same pairs every time
    assert rk.next_pairs(votes, k=3, rng=5) == rk.next_pairs(votes, k=3, rng=5)
    assert rk.next_pairs(votes, k=1, rng=5)[0] in {("C", "D"), ("D", "C")}


def test_next_pairs_asks_about_an_unseen_trial_first():
    votes = clear_ranking_with_a_tie()
    pairs = rk.next_pairs(votes, k=2, items=["A", "B", "C", "D", "new"])
    assert all("new" in p for p in pairs)


def test_next_pairs_without_votes_go_round_robin():
    items = list("ABCDEF")
    first = rk.next_pairs([], k=3, items=items, rng=1)
    assert sorted(t for p in first for t in p) == items  # 3 disjoint pairs cover all 6 trials
    every = rk.next_pairs([], k=15, items=items, rng=1)
    assert len({frozenset(p) for p in every}) == 15 and all(a != b for a, b in every)
    assert every[:3] == first
    assert rk.next_pairs([], k=15, items=items, rng=1) == every
    assert rk.next_pairs([], k=15, items=items, rng=2) != every  # the rng breaks the ties


# -- expected information gain and Crowd-BT -----------------------------------------------------------


def test_bt_posterior_mean_is_the_bradley_terry_fit_and_more_votes_shrink_it():
    from study.ranking import bt_posterior

    counts = np.array([[0, 7, 9], [3, 0, 6], [1, 4, 0]], float)
    mean, cov = bt_posterior(counts, prior_var=1e8)  # a flat prior: the maximum likelihood
    ml = rk.fit_bradley_terry(
        [(a, b) for i, a in enumerate("abc") for j, b in enumerate("abc") for _ in range(int(counts[i, j]))],
        alpha=1e-9,
        n_boot=1,
    ).set_index("trial")
    assert mean - mean.mean() == pytest.approx(ml.loc[list("abc"), "score"].to_numpy(), abs=1e-4)
    _, cov10 = bt_posterior(counts * 10, prior_var=1e8)

    def diff_var(c):  # of s_a - s_b: the shift of all scores is the prior's alone
        return c[0, 0] + c[1, 1] - 2 * c[0, 1]

    assert diff_var(cov10) == pytest.approx(diff_var(cov) / 10, rel=0.2)  # ten times the votes
    assert np.allclose(cov, cov.T)


def test_order_uncertainty_falls_as_votes_settle_the_order():
    from study.ranking import _after_vote, bt_posterior, order_uncertainty

    # a and b: 50 votes, even; b and c: none; a far above d: 40 to 0
    counts = np.zeros((4, 4))
    counts[0, 1] = counts[1, 0] = 25
    counts[0, 3] = 40
    mean, cov = bt_posterior(counts)
    before = order_uncertainty(mean, cov)
    assert 0 < before < 6 * math.log(2)  # 6 pairs, none certain, some nearly
    assert order_uncertainty(np.array([5.0, 0.0, -5.0]), np.eye(3) * 1e-4) == pytest.approx(0, abs=1e-9)

    def expected_after(i, j):
        return sum(p * order_uncertainty(m, v) for p, m, v in _after_vote(mean, cov, i, j))

    assert all(expected_after(i, j) < before for i in range(4) for j in range(i + 1, 4))  # a vote never hurts
    assert expected_after(1, 2) < expected_after(0, 3)  # b vs c (never compared) settles more than a vs d
    outcomes = _after_vote(mean, cov, 1, 2)
    assert sum(p for p, _, _ in outcomes) == pytest.approx(1.0)
    assert outcomes[0][1][1] > mean[1] and outcomes[1][1][1] < mean[1]  # b's score follows the outcome


def test_informative_pairs_spread_a_batch_and_name_the_better_first():
    from study.ranking import informative_pairs

    votes = [("a", "b")] * 12 + [("b", "c")] * 12
    pairs = informative_pairs(votes, ["a", "b", "c", "d"], k=3)
    assert len(pairs) == len(set(map(frozenset, pairs))) == 3
    assert all("d" in p for p in pairs[:2]) or sum("d" in p for p in pairs) >= 2  # the unseen trial first
    assert ("a", "b") not in pairs  # settled
    assert informative_pairs(votes, ["a", "b", "c"], k=10) and len(informative_pairs(votes, list("abc"), k=10)) == 3
    with pytest.raises(VidcolorError, match="k >= 1"):
        informative_pairs(votes, list("abc"), k=0)


def _crowd(seed: int, spammers: int):
    """Votes on 5 trials (true scores 1.5 ... -1.6) from 7 careful raters and `spammers` who
    answer the reverse 90% of the time, 40 votes each."""
    rng = np.random.default_rng(seed)
    true = np.array([1.5, 0.8, 0.0, -0.7, -1.6])
    rows = []
    for r in range(7 + spammers):
        honest = 0.95 if r < 7 else 0.1
        for _ in range(40):
            i, j = rng.choice(5, 2, replace=False)
            better = rng.random() < 1 / (1 + np.exp(-(true[i] - true[j])))
            told = better if rng.random() < honest else not better
            win, lose = (i, j) if told else (j, i)
            rows.append((f"t{win}", f"t{lose}", f"r{r}"))
    return pd.DataFrame(rows, columns=["winner", "loser", "rater"])


def test_crowd_bt_discounts_reversed_raters_that_fool_plain_bradley_terry():
    from study.ranking import fit_crowd_bt

    votes = _crowd(0, spammers=3)
    ranking, raters = fit_crowd_bt(votes)
    assert ranking["trial"].tolist() == ["t0", "t1", "t2", "t3", "t4"]  # the true order
    plain = rk.fit_bradley_terry(votes, n_boot=10)["trial"].tolist()
    assert plain != ["t0", "t1", "t2", "t3", "t4"]  # the spammers flip the top two
    rel = raters.set_index("rater")["reliability"]
    assert rel[[f"r{i}" for i in range(7)]].min() > 0.7 > 0.5 > rel[["r7", "r8", "r9"]].max()
    assert raters["votes"].sum() == len(votes)
    honest_only, _ = fit_crowd_bt(_crowd(1, spammers=0))
    assert honest_only["trial"].tolist()[:2] == ["t0", "t1"]
    with pytest.raises(VidcolorError, match="rater column"):
        fit_crowd_bt(votes.drop(columns="rater"))
