"""Compiled (numba) loops of `FastHoeffdingTreeClassifier`: sorting rows to leaves, leaf predictions, test-then-train
updates of the leaf statistics, and the numeric split candidates. One call handles a whole micro-batch, row by row in
order, so a batch costs one dispatch instead of dozens of numpy calls per expert.

The arrays are the tree's own (see `FastHoeffdingTreeClassifier._init_state`): node arrays indexed by node, observers
`obs` (5, slots, features, classes) holding Gaussian weight, mean, M2, min, max, and `cat` (slots, features,
categories, classes) holding nominal counts.
"""

from __future__ import annotations

import math

import numba
import numpy as np

LEAF, NUMERIC, NOMINAL_BINARY, NOMINAL_MULTIWAY = 0, 1, 2, 3
MC, NB, NBA = 0, 1, 2  # leaf prediction modes
INFO_GAIN, GINI = 0, 1
_HALF_LOG_TAU = 0.5 * math.log(2 * math.pi)

jit = numba.njit(cache=True, nogil=True)
# For the helpers called once per row and tree: inlined into their callers, and calling nothing themselves. A compiled
# function that calls another (or an array method such as `.sum()`) takes a reference on each of its array arguments
# on entry and drops it on exit, two atomic operations per array per call; with ten arrays that was most of a row's
# cost (sorting 128 rows through a tree: 25 us, against 5 without).
inline = numba.njit(cache=True, nogil=True, inline="always")


@inline
def _weight(stats, node):
    """The weight a node has seen (the sum of its class weights)."""
    total = 0.0
    for c in range(stats.shape[1]):
        total += stats[node, c]
    return total


@inline
def _most_travelled(branch, m, stats):
    """The child of multiway node m (its row of the branch table: child per category code, -1 none) that has seen
    the most weight; ties go to the child made first (the lowest node index), as river's insertion order."""
    best = -1
    best_weight = -1.0
    for code in range(branch.shape[1]):
        child = branch[m, code]
        if child < 0:
            continue
        weight = _weight(stats, child)
        if weight > best_weight or (weight == best_weight and child < best):
            best, best_weight = child, weight
    return best


@inline
def _sort_one(X, b, kind, feature, threshold, left, right, stats, multiway, branch, grow):
    """The leaf row b of X reaches, whether it took a detour (a missing value, or a category a multiway node has no
    branch for: the child that has seen the most weight), and -1; or, when `grow` (the row is learned) and a multiway
    node has no branch for its category, (-1, True, that node): the caller adds the branch (river makes a new leaf)."""
    node = 0
    detour = False
    while kind[node] != LEAF:
        f = feature[node]
        v = X[b, f] if f < X.shape[1] else np.nan
        if kind[node] == NOMINAL_MULTIWAY:
            m = multiway[node]
            child = -1
            if v >= 0 and v < branch.shape[1]:  # False for NaN
                child = branch[m, int(v)]
            if child < 0:
                detour = True
                if grow and v >= 0:
                    return -1, True, node
                child = _most_travelled(branch, m, stats)
            node = child
        elif np.isnan(v):
            detour = True
            node = right[node] if _weight(stats, right[node]) > _weight(stats, left[node]) else left[node]
        elif kind[node] == NUMERIC:
            node = right[node] if v > threshold[node] else left[node]
        else:
            node = right[node] if v != threshold[node] else left[node]
    return node, detour, -1


@jit
def sort_rows(X, kind, feature, threshold, left, right, stats, multiway, branch):
    """`_sort_one` for every row, none learned."""
    n = X.shape[0]
    leaves = np.zeros(n, dtype=np.int64)
    detour = np.zeros(n, dtype=np.bool_)
    for b in range(n):
        leaves[b], detour[b], _ = _sort_one(X, b, kind, feature, threshold, left, right, stats, multiway, branch,
                                            False)
    return leaves, detour


@inline
def _log_votes(X, b, leaf, s, stats, known, obs, cat, nominal, out):
    """Naive Bayes log-votes of row b of X at its leaf (observer slot s) into `out` (C,), as river computes them."""
    n_classes = out.shape[0]
    total = _weight(stats, leaf)
    n_features = min(X.shape[1], obs.shape[2])
    for c in range(n_classes):
        if not known[leaf, c]:
            out[c] = -np.inf
            continue
        if stats[leaf, c] <= 0:
            out[c] = 0.0
            continue
        vote = math.log(stats[leaf, c] / total)
        for f in range(n_features):
            v = X[b, f]
            if np.isnan(v):
                continue
            if nominal[f]:
                code = int(v)
                if v < 0 or code >= cat.shape[2]:
                    continue
                per_class = 0.0
                for k in range(cat.shape[2]):
                    per_class += cat[s, f, k, c]
                if per_class > 0:
                    p = cat[s, f, code, c] / per_class
                    if p > 0:
                        vote += math.log(p)
                continue
            w = obs[0, s, f, c]
            if w <= 1:
                continue
            var = obs[2, s, f, c] / (w - 1)
            if var > 0:
                d = v - obs[1, s, f, c]
                vote += d * d / (-2.0 * var) - _HALF_LOG_TAU - 0.5 * math.log(var)
        out[c] = vote


@inline
def _leaf_proba(X, b, leaf, stats, known, slot, mc_correct, nb_correct, obs, cat, nominal, mode, nb_threshold, votes,
                out):
    """Row b's class probabilities at its leaf into row b of `out`; `votes` is scratch space."""
    n_classes = out.shape[1]
    total = _weight(stats, leaf)
    s = slot[leaf]
    use_nb = False
    if s >= 0 and mode != MC:
        use_nb = total >= nb_threshold if mode == NB else nb_correct[leaf] >= mc_correct[leaf]
    if not use_nb:
        for c in range(n_classes):
            out[b, c] = stats[leaf, c] / total if total > 0 else 0.0
        return
    _log_votes(X, b, leaf, s, stats, known, obs, cat, nominal, votes)
    top = -np.inf
    for c in range(n_classes):
        top = max(top, votes[c])
    shift = top if np.isfinite(top) else 0.0
    norm = 0.0
    for c in range(n_classes):
        out[b, c] = math.exp(votes[c] - shift)
        norm += out[b, c]
    for c in range(n_classes):
        out[b, c] = out[b, c] / norm if norm > 0 else 0.0


@jit
def predict(X, leaves, stats, known, slot, mc_correct, nb_correct, obs, cat, nominal, mode, nb_threshold):
    """Class probabilities (B, C) of rows at their leaves."""
    n_classes = stats.shape[1]
    out = np.zeros((X.shape[0], n_classes))
    votes = np.empty(n_classes)
    for b in range(X.shape[0]):
        _leaf_proba(X, b, leaves[b], stats, known, slot, mc_correct, nb_correct, obs, cat, nominal, mode,
                    nb_threshold, votes, out)
    return out


@jit
def predict_learn(X, leaves, detour, ci, w, last_attempt, grace_period, depth, max_depth, kind, feature, threshold,
                  left, right, multiway, branch, stats, known, slot, mc_correct, nb_correct, obs, cat, nominal, mode,
                  nb_threshold, split):
    """Test-then-train row by row: each row's probabilities from its leaf as the earlier rows left it, then (weight >
    0) the naive-Bayes-adaptive credits, the class weights and, at active leaves, the observers learn it.

    A row whose leaf is -1 is sorted when its turn comes (through the tree and the weights the earlier rows left). A
    row that leaves its (active) leaf due for a split attempt (`grace_period` weight since the last one), not after a
    detour (as river), has the attempt made here when it ends with the leaf as it is (`_keeps_leaf`, given `split` =
    (criterion, min_branch_fraction, max_share_to_split, delta, tau, n_features, whether the tree has nominal
    observers, binary nominal splits)); otherwise, and at `max_depth` (-1: none), the loop stops after that row so
    that the caller splits (or deactivates) the leaf before the next row is sorted. A learned row whose category a
    multiway node has no branch for stops the loop before it, for the caller to add the branch. Returns the
    probabilities, how many rows were handled, and the due leaf (-1 if none; -2 - node for a branch to add)."""
    n_classes = stats.shape[1]
    out = np.zeros((X.shape[0], n_classes))
    votes = np.empty(n_classes)
    for b in range(X.shape[0]):
        if leaves[b] < 0:
            leaves[b], detour[b], bare = _sort_one(X, b, kind, feature, threshold, left, right, stats, multiway, branch,
                                                   w[b] > 0)
            if bare >= 0:
                return out, b, -2 - bare
        leaf = leaves[b]
        s = slot[leaf]
        _leaf_proba(X, b, leaf, stats, known, slot, mc_correct, nb_correct, obs, cat, nominal, mode, nb_threshold,
                    votes, out)
        if mode == NBA and w[b] > 0 and s >= 0:  # credit the leaf predictor that would have got it right
            any_known = False
            best_mc = 0
            total = 0.0
            for c in range(n_classes):
                any_known = any_known or known[leaf, c]
                total += stats[leaf, c]
                if stats[leaf, c] > stats[leaf, best_mc]:
                    best_mc = c
            if not any_known or best_mc == ci[b]:
                mc_correct[leaf] += w[b]
            _log_votes(X, b, leaf, s, stats, known, obs, cat, nominal, votes)
            best_nb = 0
            for c in range(n_classes):
                if votes[c] > votes[best_nb]:
                    best_nb = c
            if best_nb == ci[b] and total > 0 and np.isfinite(votes[best_nb]):
                nb_correct[leaf] += w[b]
        if w[b] <= 0:
            continue
        c = ci[b]
        stats[leaf, c] += w[b]
        known[leaf, c] = True
        if s < 0:
            continue
        for f in range(min(X.shape[1], obs.shape[2])):
            v = X[b, f]
            if np.isnan(v):
                continue
            if nominal[f]:
                if v >= 0:
                    cat[s, f, int(v), c] += w[b]
                continue
            n_old = obs[0, s, f, c]
            n_new = n_old + w[b]
            delta = v - obs[1, s, f, c]
            mean = obs[1, s, f, c] + delta * w[b] / n_new
            obs[2, s, f, c] += w[b] * delta * (v - mean)
            obs[0, s, f, c] = n_new
            obs[1, s, f, c] = mean
            obs[3, s, f, c] = min(obs[3, s, f, c], v)
            obs[4, s, f, c] = max(obs[4, s, f, c], v)
        if detour[b]:
            continue
        if 0 <= max_depth <= depth[leaf]:
            return out, b + 1, leaf
        total = _weight(stats, leaf)
        if total - last_attempt[leaf] >= grace_period:
            if not _keeps_leaf(stats[leaf], known[leaf], obs, cat, s, nominal, split):
                return out, b + 1, leaf
            last_attempt[leaf] = total
    return out, X.shape[0], -1


# trees handled by one `predict_learn_trees` call: its tuples hold one tree or this many (padded), so that it compiles
# twice, not once per pool size (a lone tree in a padded call ran at 62-91k rows/s on SEA_a, in its own at 87-104k)
TREES_PER_CALL = 16


@jit
def predict_learn_trees(ids, X, start, ci, w, leaves, detour, out, floats, ints, has_nominal, kind, feature, threshold,
                        left, right, multiway, branch, depth, last_attempt, stats, known, slot, mc_correct, nb_correct,
                        obs, cat, nominal):
    """`predict_learn` for up to `TREES_PER_CALL` trees in one call: tree `ids[p]` (a row of the per-tree inputs:
    rows `X`, first row `start`, class indices `ci`, weights `w`, `leaves` and `detour` (-1: to sort), answers
    `out`, settings) has its arrays at position p of the tuples `kind` ... `nominal`. Each tree runs from `start`
    until its batch ends or it stops (`predict_learn`'s stops); `start` moves on and the stops come back (-1: none).

    `floats` per tree: grace period, naive Bayes threshold, min branch fraction, max share to split, delta, tau;
    `ints`: max depth (-1: none), leaf prediction mode, split criterion, number of features, binary nominal
    splits (0 or 1)."""
    due = np.full(ids.shape[0], -1)
    for p in range(ids.shape[0]):
        t = ids[p]
        s0 = start[t]
        if s0 >= X.shape[1]:
            continue
        split = (ints[t, 2], floats[t, 2], floats[t, 3], floats[t, 4], floats[t, 5], ints[t, 3], has_nominal[t],
                 ints[t, 4] != 0)
        proba, done, due[p] = predict_learn(
            X[t, s0:], leaves[t, s0:], detour[t, s0:], ci[t, s0:], w[t, s0:], last_attempt[p], floats[t, 0],
            depth[p], ints[t, 0], kind[p], feature[p], threshold[p], left[p], right[p], multiway[p], branch[p],
            stats[p], known[p], slot[p], mc_correct[p], nb_correct[p], obs[p], cat[p], nominal[p], ints[t, 1],
            floats[t, 1], split)
        out[t, s0 : s0 + done, : proba.shape[1]] = proba[:done]
        start[t] = s0 + done
    return due


@jit
def _keeps_leaf(pre, known, obs, cat, s, nominal, split):
    """Whether a split attempt at a leaf with class weights `pre` and observer slot s ends with the leaf as it is:
    fewer than two classes seen, or no split decided (`FastHoeffdingTreeClassifier._attempt_split`'s outcomes that
    change nothing). False: the caller makes the attempt (it splits or deactivates the leaf)."""
    criterion, min_branch_fraction, max_share, delta, tau, n_features, has_nominal, binary_split = split
    total = pre.sum()
    n_seen = 0
    top = 0.0
    for c in range(pre.shape[0]):
        n_seen += pre[c] != 0
        top = max(top, pre[c])
    if n_seen < 2:
        return True
    if top / total > max_share:
        return False
    numeric = numeric_candidates(obs, s, int(n_features), pre, nominal, int(criterion), min_branch_fraction)
    merits, seen = numeric[0], numeric[-1]
    if has_nominal:
        for f in range(int(n_features)):
            if nominal[f] and cat[s, f].sum() > 0:
                seen[f] = True
                merits[f] = nominal_candidate(cat, s, f, pre, binary_split, int(criterion), min_branch_fraction)[0]
    should, _, _ = decide(merits, seen, total, known.sum(), int(criterion), delta, tau)
    return not should


@jit
def nominal_candidate(cat, s, f, pre, binary_split, criterion, min_branch_fraction):
    """The best split on nominal feature f at slot s: (merit, kind, category). Candidates in river's order: one branch
    per category seen (`NOMINAL_MULTIWAY`, category -1; unless `binary_split`), then "equal / not equal" for each
    category seen (`NOMINAL_BINARY`), a later one winning only with a higher merit; (-inf, -1, -1) when none seen."""
    n_classes = pre.shape[0]
    values = np.zeros(cat.shape[2], dtype=np.int64)
    n_values = 0
    total = np.zeros(n_classes)
    for v in range(cat.shape[2]):
        weight = 0.0
        for c in range(n_classes):
            weight += cat[s, f, v, c]
            total[c] += cat[s, f, v, c]
        if weight > 0:
            values[n_values] = v
            n_values += 1
    best, kind, value = -np.inf, -1, -1
    if n_values == 0:
        return best, kind, value
    if not binary_split:
        post = np.empty((n_values, n_classes))
        for k in range(n_values):
            post[k] = cat[s, f, values[k], :n_classes]
        best, kind = merit(pre, post, criterion, min_branch_fraction), NOMINAL_MULTIWAY
    post = np.empty((2, n_classes))
    for k in range(n_values):
        post[0] = cat[s, f, values[k], :n_classes]
        post[1] = total - post[0]
        m = merit(pre, post, criterion, min_branch_fraction)
        if m > best:
            best, kind, value = m, NOMINAL_BINARY, values[k]
    return best, kind, value


@jit
def _impurity(d, criterion):
    """Entropy in bits (as river computes it) or Gini impurity of class weights d."""
    total = d.sum()
    if total <= 0:
        return 0.0
    if criterion == GINI:
        g = 1.0
        for v in d:
            g -= (v / total) ** 2
        return g
    plogp = 0.0
    for v in d:
        if v > 0:
            plogp += v * math.log2(v)
    return (total * math.log2(total) - plogp) / total


@jit
def merit(pre, post, criterion, min_branch_fraction):
    """Merit of a split whose branches hold class weights `post` (branches, C); -inf unless at least two branches hold
    more than `min_branch_fraction` of the weight."""
    total = post.sum()
    big = 0
    impurity = 0.0
    for k in range(post.shape[0]):
        weight = post[k].sum()
        share = weight / total if total > 0 else 0.0
        if share > min_branch_fraction:
            big += 1
        if total > 0:
            impurity += share * _impurity(post[k], criterion)
    if big < 2:
        return -np.inf
    return (1.0 if criterion == GINI else _impurity(pre, criterion)) - impurity


@jit
def numeric_candidates(obs, s, n_features, pre, nominal, criterion, min_branch_fraction):
    """Best binary split of each numeric feature at slot s (river's Gaussian observer: 10 evenly spaced candidate
    points strictly between the smallest and largest value seen): merits (F,), thresholds, left and right class
    weights (F, C), which classes each side knows (F, C), and which features the slot has seen a value of (F,)."""
    n_classes = pre.shape[0]
    merits = np.full(n_features, -np.inf)
    points = np.zeros(n_features)
    lefts = np.zeros((n_features, n_classes))
    rights = np.zeros((n_features, n_classes))
    known_left = np.zeros((n_features, n_classes), dtype=np.bool_)
    known_right = np.zeros((n_features, n_classes), dtype=np.bool_)
    seen = np.zeros(n_features, dtype=np.bool_)
    post = np.zeros((2, n_classes))
    sigma = np.zeros(n_classes)
    for f in range(n_features):
        if nominal[f]:
            continue
        lo, hi = np.inf, -np.inf
        for c in range(n_classes):
            n = obs[0, s, f, c]
            if n > 0:
                seen[f] = True
                lo = min(lo, obs[3, s, f, c])
                hi = max(hi, obs[4, s, f, c])
            sigma[c] = math.sqrt(obs[2, s, f, c] / (n - 1)) if n > 1 else 0.0
        size = (hi - lo) / 11.0
        for k in range(1, 11):
            point = lo + size * k
            if not (lo < point < hi):
                continue
            for c in range(n_classes):
                n = obs[0, s, f, c]
                if n <= 0:
                    post[0, c] = 0.0
                elif point < obs[3, s, f, c]:
                    post[0, c] = 0.0
                elif point >= obs[4, s, f, c]:
                    post[0, c] = n
                elif sigma[c] > 0:
                    post[0, c] = 0.5 * (1.0 + math.erf((point - obs[1, s, f, c]) / sigma[c] / math.sqrt(2.0))) * n
                else:
                    post[0, c] = 0.0
                post[1, c] = n - post[0, c] if n > 0 else 0.0
            m = merit(pre, post, criterion, min_branch_fraction)
            if m > merits[f]:
                merits[f] = m
                points[f] = point
                lefts[f] = post[0]
                rights[f] = post[1]
        for c in range(n_classes):
            has = obs[0, s, f, c] > 0
            known_left[f, c] = has and not points[f] < obs[3, s, f, c]
            known_right[f, c] = has and points[f] < obs[4, s, f, c]
    return merits, points, lefts, rights, known_left, known_right, seen


@jit
def decide(merits, seen, total, n_classes, criterion, delta, tau):
    """river's split decision: rank the null split (merit -inf) and the best candidate of every feature seen by merit
    (a stable sort), and split when the best beats the second by the Hoeffding bound, or the bound is below `tau`.
    Returns (split or not, the best feature or -1 for the null split, its merit)."""
    best, second, best_f = -np.inf, -np.inf, -1
    n_suggestions = 1
    for f in range(merits.shape[0]):
        if not seen[f]:
            continue
        n_suggestions += 1
        if merits[f] >= best:  # a later equal merit sorts after: it is the best, the former best second
            second, best, best_f = best, merits[f], f
        elif merits[f] >= second:
            second = merits[f]
    if n_suggestions < 2:
        return True, -1, -np.inf
    value_range = 1.0 if criterion == GINI else math.log2(max(2, n_classes))
    bound = math.sqrt(value_range * value_range * math.log(1.0 / delta) / (2.0 * total))
    return (best - second > bound) or (bound < tau), best_f, best
