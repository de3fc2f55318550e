"""Every baseline selector against an independent computation written here: brute-force
loops over samples and classes, direct formulas with np.linalg.inv / slogdet / det, the
explicit generalised eigenproblem, scikit-learn and scipy reference routines."""

import itertools

import numpy as np
import pytest
import scipy.linalg
import scipy.optimize
import scipy.special
import scipy.stats
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import StandardScaler

from emms.selectors.baselines import (
    gbc,
    hscore,
    leep,
    nce,
    nleep,
    pactran,
    parc,
    sfda,
    transrate,
    transrate_flabel,
)
from emms.selectors.baselines.sfda import _fisher_posteriors


def data(n=60, d=5, c=3, shift=1.5, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, size=n)
    labels[:c] = np.arange(c)  # every class present
    features = rng.normal(size=(n, d)) + shift * rng.normal(size=(c, d))[labels]
    return features, labels


def brute_leep(theta, labels):
    n, z_count = theta.shape
    classes = sorted(set(labels.tolist()))
    joint = {(y, z): 0.0 for y in classes for z in range(z_count)}
    for i in range(n):
        for z in range(z_count):
            joint[labels[i], z] += theta[i, z] / n
    total = 0.0
    for i in range(n):
        inner = 0.0
        for z in range(z_count):
            p_z = sum(joint[y, z] for y in classes)
            inner += joint[labels[i], z] / p_z * theta[i, z]
        total += np.log(inner)
    return total / n


def test_leep_matches_loops():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, size=40)
    theta = rng.dirichlet(np.full(5, 0.5), size=40)
    assert leep(theta, labels) == pytest.approx(brute_leep(theta, labels), rel=1e-12)


def test_nce_matches_joint_minus_marginal_entropy():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, size=70)
    source = rng.integers(0, 6, size=70)
    counts = {}
    for y, z in zip(labels, source, strict=True):
        counts[y, z] = counts.get((y, z), 0) + 1
    h_joint = -sum(c / 70 * np.log(c / 70) for c in counts.values())
    z_counts = np.bincount(source)
    h_z = -sum(c / 70 * np.log(c / 70) for c in z_counts if c)
    assert nce(source, labels) == pytest.approx(-(h_joint - h_z), rel=1e-12)


def test_nleep_is_leep_on_pca80_gaussian_mixture_posteriors():
    features, labels = data(n=90, d=12, c=3)
    # Present the rows already in the canonical order so that sklearn sees the same rows.
    order = np.lexsort([labels] + [features[:, j] for j in range(11, -1, -1)])
    features, labels = features[order], labels[order]
    reduced = PCA(n_components=0.8, svd_solver="full").fit_transform(features)
    gmm = GaussianMixture(n_components=15, covariance_type="diag", random_state=0)
    posteriors = gmm.fit(reduced).predict_proba(reduced)
    expected = brute_leep(posteriors, labels)
    assert nleep(features, labels) == pytest.approx(expected, rel=1e-6)
    assert PCA(n_components=0.8, svd_solver="full").fit(features).n_components_ < 12


def test_hscore_matches_the_direct_formula():
    features, labels = data()
    cov_f = np.cov(features.T, bias=True)
    conditional = np.array([features[labels == y].mean(axis=0) for y in labels])
    cov_z = np.cov(conditional.T, bias=True)
    expected = np.trace(np.linalg.inv(cov_f) @ cov_z)
    assert hscore(features, labels) == pytest.approx(expected, rel=1e-10)


def ledoit_wolf_brute(x):
    """Ledoit & Wolf (2004), Lemma 3.2-3.4, written out: shrinkage towards mu I."""
    n, p = x.shape
    x = x - x.mean(axis=0)
    s = x.T @ x / n
    mu = np.trace(s) / p
    d2 = np.sum((s - mu * np.eye(p)) ** 2)
    b2_bar = sum(np.sum((np.outer(row, row) - s) ** 2) for row in x) / n**2
    return min(b2_bar, d2) / d2


@pytest.mark.parametrize(("n", "d"), [(60, 5), (25, 40)])
def test_regularised_hscore_matches_the_shrunk_formula(n, d):
    features, labels = data(n=n, d=d)
    cov_f = np.cov(features.T, bias=True)
    conditional = np.array([features[labels == y].mean(axis=0) for y in labels])
    cov_z = np.cov(conditional.T, bias=True)
    for alpha, arg in [(ledoit_wolf_brute(features), "ledoit-wolf"), (0.25, 0.25)]:
        shrunk = (1 - alpha) * cov_f + alpha * np.trace(cov_f) / d * np.eye(d)
        expected = np.trace(np.linalg.inv(shrunk) @ ((1 - alpha) * cov_z))
        assert hscore(features, labels, shrinkage=arg) == pytest.approx(expected, rel=1e-9)


def coding_rate_brute(z, eps):
    n, d = z.shape
    return 0.5 * np.linalg.slogdet(np.eye(d) + z.T @ z / (n * eps))[1]


@pytest.mark.parametrize(("n", "d", "eps"), [(60, 5, 1e-4), (30, 45, 1e-2), (60, 5, 1.0)])
def test_transrate_matches_slogdet_with_class_weights(n, d, eps):
    features, labels = data(n=n, d=d)
    z = features - features.mean(axis=0)
    classes = np.unique(labels)
    rates = {c: coding_rate_brute(z[labels == c], eps) for c in classes}
    frequency = sum(np.mean(labels == c) * rates[c] for c in classes)
    uniform = np.mean([rates[c] for c in classes])  # the authors' code
    total = coding_rate_brute(z, eps)
    assert transrate(features, labels, eps=eps) == pytest.approx(total - frequency, rel=1e-9)
    assert transrate(features, labels, eps=eps, class_weighting="uniform") == pytest.approx(
        total - uniform, rel=1e-9
    )


def test_transrate_flabel_is_the_mean_transrate_over_value_bins():
    features, _ = data(n=50, d=4)
    rng = np.random.default_rng(3)
    embeddings = rng.normal(size=(50, 3, 2))
    n_bins = 4
    expected = []
    for k in range(2):
        for j in range(3):
            values = embeddings[:, j, k]
            ordered = sorted(values)
            edges = []
            for b in range(1, n_bins):  # the b / n_bins quantile, linearly interpolated
                position = b / n_bins * (50 - 1)
                low = int(np.floor(position))
                edges.append(ordered[low] + (position - low) * (ordered[low + 1] - ordered[low]))
            bins = np.array([sum(edge <= value for edge in edges) for value in values])
            expected.append(transrate(features, bins))
    assert transrate_flabel(features, embeddings, n_bins=n_bins) == pytest.approx(
        np.mean(expected), rel=1e-10
    )
    # Binning is by value: permuting the samples (features and embeddings together) does
    # not change the classes of any sample, hence not the score.
    perm = rng.permutation(50)
    assert transrate_flabel(features[perm], embeddings[perm], n_bins=n_bins) == pytest.approx(
        np.mean(expected), rel=1e-9
    )
    # A list of K (N, L) arrays is the same as the (N, L, K) stack; max_dims >= L K is all.
    as_list = [embeddings[:, :, 0], embeddings[:, :, 1]]
    assert transrate_flabel(features, as_list, n_bins=n_bins, max_dims=6) == pytest.approx(
        np.mean(expected), rel=1e-12
    )


def sfda_brute(features, labels, a=5.0, soften=True):
    """SFDA from the paper's steps: explicit Fisher space (generalised eigenproblem),
    Bayes rule there, loop-based ConfMix, second Fisher space."""
    classes = np.unique(labels)
    c = len(classes)
    n, d = features.shape

    def fisher(x, lam):
        means = np.array([x[labels == k].mean(axis=0) for k in classes])
        priors = np.array([np.mean(labels == k) for k in classes])
        s_w = sum(
            p * np.cov(x[labels == k].T, bias=True) for k, p in zip(classes, priors, strict=True)
        )
        mu = x.mean(axis=0)
        s_b = sum(p * np.outer(m - mu, m - mu) for m, p in zip(means, priors, strict=True))
        if lam is None:
            lam = max(np.exp(-a * np.linalg.eigvalsh(s_w).max()), 1e-10)
        s_w_shrunk = (1 - lam) * s_w + lam * np.trace(s_w) / d * np.eye(d)
        evals, evecs = scipy.linalg.eigh(s_b, s_w_shrunk)
        u = evecs[:, np.argsort(evals)[::-1][: min(c - 1, d)]]  # Fisher space
        x_t, m_t = x @ u, means @ u
        probs = np.zeros((n, c))
        for i in range(n):
            delta = [x_t[i] @ m_t[k] - 0.5 * m_t[k] @ m_t[k] + np.log(priors[k]) for k in range(c)]
            delta = np.exp(np.array(delta) - max(delta))
            probs[i] = delta / delta.sum()  # softmax over classes
        return probs, lam, means

    probs, lam, means = fisher(features, None)
    if soften:
        probs = np.exp(probs) / np.exp(probs).sum(axis=1, keepdims=True)
    mixed = features.copy()
    for i in range(n):
        k = int(np.searchsorted(classes, labels[i]))
        others = np.mean([means[j] for j in range(c) if j != k], axis=0)
        mixed[i] = probs[i, k] * features[i] + (1 - probs[i, k]) * others
    probs, _, _ = fisher(mixed, lam)
    return np.mean([probs[i, np.searchsorted(classes, labels[i])] for i in range(n)])


@pytest.mark.parametrize(
    ("d", "c", "scale", "soften"), [(5, 3, 1.0, True), (4, 6, 0.1, False), (7, 2, 3.0, True)]
)
def test_sfda_matches_the_explicit_fisher_space(d, c, scale, soften):
    features, labels = data(n=80, d=d, c=c, seed=c)
    features = features * scale
    expected = sfda_brute(features, labels, soften=soften)
    assert sfda(features, labels, soften=soften) == pytest.approx(expected, rel=1e-8)


def test_fisher_posterior_equals_full_space_lda_with_shrunk_scatter():
    features, labels = data(n=70, d=6, c=4)
    probs, lam = _fisher_posteriors(features, labels, 4, 0.3, 5.0)
    assert lam == 0.3
    assert np.allclose(probs.sum(axis=1), 1.0)
    # sklearn's shrinkage LDA (eigen solver) is the same classifier up to its shrinkage
    # target; with shrinkage 0 both are plain LDA with the pooled ML covariance.
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=None, priors=None)
    plain, _ = _fisher_posteriors(features, labels, 4, 1e-14, 5.0)
    np.testing.assert_allclose(plain, lda.fit(features, labels).predict_proba(features), rtol=1e-6)


def gbc_brute(x, labels):
    classes = np.unique(labels)
    stats_ = {}
    for k in classes:
        rows = x[labels == k]
        stats_[k] = (rows.mean(axis=0), np.diag(rows.var(axis=0)))
    total = 0.0
    for i, j in itertools.permutations(classes, 2):
        (m1, s1), (m2, s2) = stats_[i], stats_[j]
        s = (s1 + s2) / 2
        diff = m1 - m2
        distance = diff @ np.linalg.inv(s) @ diff / 8 + 0.5 * np.log(
            np.linalg.det(s) / np.sqrt(np.linalg.det(s1) * np.linalg.det(s2))
        )
        total += np.exp(-distance)
    return -total


def test_gbc_matches_pairwise_bhattacharyya_loops():
    features, labels = data(n=80, d=6, c=4, shift=0.7)
    assert gbc(features, labels, n_dims=None) == pytest.approx(
        gbc_brute(features, labels), rel=1e-10
    )
    # With the PCA step (64 dims of 80): component signs do not affect diagonal Gaussians.
    wide, wide_labels = data(n=150, d=80, c=3, shift=0.5)
    reduced = PCA(n_components=64, svd_solver="full").fit_transform(wide)
    assert gbc(wide, wide_labels) == pytest.approx(gbc_brute(reduced, wide_labels), rel=1e-7)


def test_parc_matches_spearman_of_the_two_rdms():
    features, labels = data(n=70, d=40, c=4)
    reduced = StandardScaler().fit_transform(
        PCA(n_components=32, svd_solver="full").fit_transform(features)
    )
    rdm_f = 1 - np.corrcoef(reduced)
    rdm_y = np.round(1 - np.corrcoef(np.eye(4)[labels]), 12)
    upper = np.triu_indices(70, 1)
    expected = scipy.stats.spearmanr(rdm_f[upper], rdm_y[upper])[0]
    assert parc(features, labels) == pytest.approx(expected, rel=1e-9)
    few, few_labels = data(n=50, d=6, c=3)  # D <= 32: no PCA, only standardised
    rdm_f = 1 - np.corrcoef(StandardScaler().fit_transform(few))
    # corrcoef of one-hot rows is 1 or -1/(C-1) up to rounding noise; that noise would
    # break the ties of the label RDM, so round it away.
    rdm_y = np.round(1 - np.corrcoef(np.eye(3)[few_labels]), 12)
    upper = np.triu_indices(50, 1)
    expected = scipy.stats.spearmanr(rdm_f[upper], rdm_y[upper])[0]
    assert parc(few, few_labels) == pytest.approx(expected, rel=1e-9)


def test_pactran_gaussian_matches_a_naive_laplace_evidence():
    features, labels = data(n=40, d=3, c=3, shift=1.0, seed=5)
    n, d, c = 40, 3, 3
    sigma2 = 0.7
    x = features - features.mean(axis=0)

    def objective(theta):
        w, b = theta[: d * c].reshape(d, c), theta[d * c :]
        total = 0.0
        for i in range(n):
            logits = x[i] @ w + b
            total += scipy.special.logsumexp(logits) - logits[labels[i]]
        return total / n + np.sum(w**2) / (2 * n * sigma2)

    theta = scipy.optimize.minimize(objective, np.zeros(d * c + c), method="BFGS", tol=1e-12).x
    h, hessian_diag = 1e-4, []
    for j in range(d * c):  # central second differences of the data term only
        step = np.zeros_like(theta)
        step[j] = h
        second = (objective(theta + step) - 2 * objective(theta) + objective(theta - step)) / h**2
        hessian_diag.append(second - 1 / (n * sigma2))
    expected = objective(theta) + np.sum(np.log1p(n * sigma2 * np.array(hessian_diag))) / (2 * n)
    value = pactran(features, labels, prior="gaussian", prior_variance=sigma2)
    assert -value == pytest.approx(expected, rel=1e-5)


def dirichlet_evidence_by_enumeration(s, labels, alpha=1.0):
    """Exact log p(y | s) of the Dirichlet model: sum over every assignment z."""
    n, v = s.shape
    c = labels.max() + 1
    a0 = alpha * np.bincount(labels, minlength=c) / n

    def log_beta(a):
        return np.sum(scipy.special.gammaln(a)) - scipy.special.gammaln(np.sum(a))

    terms = []
    for assignment in itertools.product(range(v), repeat=n):
        z = np.array(assignment)
        with np.errstate(divide="ignore"):
            log_prior = np.sum(np.log(s[np.arange(n), z]))
        if not np.isfinite(log_prior):
            continue
        counts = [np.bincount(labels[z == k], minlength=c) for k in range(v)]
        terms.append(log_prior + sum(log_beta(a0 + m) - log_beta(a0) for m in counts))
    return scipy.special.logsumexp(terms) / n


def hard_source_evidence(z, labels, alpha=1.0):
    """Exact log-evidence per sample of the Dirichlet model for one-hot s (z known):
    the Dirichlet-multinomial marginal of the labels within each source class."""
    n, c = len(labels), labels.max() + 1
    a0 = alpha * np.bincount(labels, minlength=c) / n
    total = 0.0
    for k in np.unique(z):
        counts = np.bincount(labels[z == k], minlength=c)
        total += (
            scipy.special.gammaln(a0.sum())
            - scipy.special.gammaln(a0.sum() + counts.sum())
            + np.sum(scipy.special.gammaln(a0 + counts) - scipy.special.gammaln(a0))
        )
    return total / n


def test_pactran_dirichlet_is_exact_for_hard_sources_and_a_lower_bound_otherwise():
    rng = np.random.default_rng(6)
    labels = np.array([0, 1, 0, 1, 1, 0, 1, 0, 1])
    z = np.array([0, 0, 1, 1, 2, 2, 0, 1, 2])
    exact = hard_source_evidence(z, labels)
    assert dirichlet_evidence_by_enumeration(np.eye(3)[z], labels) == pytest.approx(exact)
    value = pactran(np.eye(3)[z], labels, prior="dirichlet", probabilities=True)
    assert value == pytest.approx(exact, rel=1e-10)
    soft = rng.dirichlet(np.ones(3), size=9)
    exact = dirichlet_evidence_by_enumeration(soft, labels)
    value = pactran(soft, labels, prior="dirichlet", probabilities=True)
    first_sweep = pactran(soft, labels, prior="dirichlet", probabilities=True, max_iter=1)
    assert first_sweep < value <= exact + 1e-12  # the ascent gains, never past the evidence
    assert value > exact - 0.25  # mean-field gap at N = 9 (about 0.15 nats per sample)


def test_pactran_gamma_bounds_the_evidence_of_the_same_model_from_below():
    # With one-hot s the normalised Gamma head w_z / sum_y w_zy is Dirichlet(a0): the exact
    # evidence is the Dirichlet one, which the Gamma variational bound must not exceed.
    labels = np.array([0, 1, 0, 1, 1, 0, 1, 0, 1, 2, 2, 2])
    z = np.array([0, 0, 1, 1, 2, 2, 0, 1, 2, 0, 1, 2])
    hard = np.eye(3)[z]
    exact = hard_source_evidence(z, labels)
    value = pactran(hard, labels, prior="gamma", probabilities=True)
    assert exact - 0.5 < value <= exact + 1e-12
    # Its coordinate ascent is monotone: more sweeps never lower the bound.
    soft = np.random.default_rng(7).dirichlet(np.ones(3), size=12)
    sweeps = [
        pactran(soft, labels, prior="gamma", probabilities=True, max_iter=m) for m in (1, 3, 30)
    ]
    assert sweeps[0] <= sweeps[1] + 1e-12 <= sweeps[2] + 2e-12


def test_pactran_gamma_reaches_the_maximum_of_its_variational_bound():
    """The Gamma bound written out term by term, maximised by a generic optimiser over
    every variational parameter (q(z), Gamma shapes AND per-entry rates, the bound points
    lam), must equal what the coordinate ascent reaches: a looser bound (e.g. rates fixed
    at the prior's beta, as in the release) or a wrong term would not."""
    rng = np.random.default_rng(8)
    n, v, c = 10, 3, 2
    labels = np.array([0, 1] * 5)
    s = rng.dirichlet(np.ones(v), size=n)
    a0 = np.bincount(labels) / n  # alpha = 1
    beta = 1.0

    def bound(params):
        logits = params[: n * v].reshape(n, v)
        q = np.exp(logits - scipy.special.logsumexp(logits, axis=1, keepdims=True))
        shape = np.exp(params[n * v : n * v + c * v]).reshape(c, v)
        rate = np.exp(params[n * v + c * v : n * v + 2 * c * v]).reshape(c, v)
        lam = np.exp(params[n * v + 2 * c * v :])
        total = 0.0
        for y in range(c):
            for k in range(v):
                a, b = shape[y, k], rate[y, k]
                e_log_w, e_w = scipy.special.digamma(a) - np.log(b), a / b
                # E[log Gamma(w; a0, beta)] - E[log Gamma(w; a, b)]
                total += a0[y] * np.log(beta) - scipy.special.gammaln(a0[y])
                total += (a0[y] - 1) * e_log_w - beta * e_w
                total -= a * np.log(b) - scipy.special.gammaln(a) + (a - 1) * e_log_w - b * e_w
        for i in range(n):
            for k in range(v):  # Jensen over z: E log(s_k w_{k,y}) - log q
                e_log_w = scipy.special.digamma(shape[labels[i], k]) - np.log(rate[labels[i], k])
                total += q[i, k] * (np.log(s[i, k]) + e_log_w - np.log(q[i, k]))
            e_norm = sum(s[i, k] * shape[y, k] / rate[y, k] for k in range(v) for y in range(c))
            total += 1 - np.log(lam[i]) - e_norm / lam[i]  # -log D >= 1 - log lam - D / lam
        return total / n

    start = np.zeros(n * v + 2 * c * v + n)
    best = scipy.optimize.minimize(lambda p: -bound(p), start, method="L-BFGS-B", tol=1e-14)
    value = pactran(s, labels, prior="gamma", probabilities=True)
    assert value == pytest.approx(-best.fun, abs=1e-6)


def test_pactran_dirichlet_reaches_the_maximum_of_its_variational_bound():
    """Mean-field bound over q(z) and free Dirichlet posteriors q(theta_v) = Dir(a_v),
    written out and maximised by a generic optimiser, equals the coordinate ascent's."""
    rng = np.random.default_rng(9)
    n, v, c = 9, 3, 2
    labels = np.array([0, 1, 1, 0, 1, 0, 1, 1, 0])
    s = rng.dirichlet(np.ones(v), size=n)
    a0 = np.bincount(labels) / n

    def log_beta(a):
        return np.sum(scipy.special.gammaln(a)) - scipy.special.gammaln(np.sum(a))

    def bound(params):
        logits = params[: n * v].reshape(n, v)
        q = np.exp(logits - scipy.special.logsumexp(logits, axis=1, keepdims=True))
        post = np.exp(params[n * v :]).reshape(v, c)
        total = 0.0
        for k in range(v):
            e_log_theta = scipy.special.digamma(post[k]) - scipy.special.digamma(post[k].sum())
            total += -log_beta(a0) + np.sum((a0 - 1) * e_log_theta)  # E log prior
            total -= -log_beta(post[k]) + np.sum((post[k] - 1) * e_log_theta)  # - E log q
            for i in range(n):
                total += q[i, k] * (np.log(s[i, k]) + e_log_theta[labels[i]] - np.log(q[i, k]))
        return total / n

    best = scipy.optimize.minimize(
        lambda p: -bound(p), np.zeros(n * v + v * c), method="L-BFGS-B", tol=1e-14
    )
    value = pactran(s, labels, prior="dirichlet", probabilities=True)
    assert value == pytest.approx(-best.fun, abs=1e-6)
