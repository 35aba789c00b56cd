"""The accountant numbers aimass records are Opacus's, and Opacus's agree with closed forms."""

import math

import pytest
from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants.utils import get_noise_multiplier

from aimass.privacy import default_delta, epsilon_spent, noise_for_epsilon

CASES = [(1.1, 0.01, 1000, 1e-5), (0.8, 0.004, 5000, 1e-6), (2.0, 0.05, 200, 1e-4)]


@pytest.mark.filterwarnings("ignore:Optimal order is the")
@pytest.mark.parametrize(("sigma", "q", "steps", "delta"), CASES)
def test_epsilon_matches_opacus_accountants(sigma, q, steps, delta):
    for name, cls in (("rdp", RDPAccountant), ("prv", PRVAccountant)):
        acc = cls()
        for _ in range(steps):
            acc.step(noise_multiplier=sigma, sample_rate=q)
        assert epsilon_spent(
            noise_multiplier=sigma, sample_rate=q, steps=steps, delta=delta, accountant=name
        ) == pytest.approx(acc.get_epsilon(delta=delta), rel=1e-9)


@pytest.mark.filterwarnings("ignore:Optimal order is the")
@pytest.mark.parametrize(
    "accountant",
    ["rdp", pytest.param("prv", marks=pytest.mark.slow)],  # prv: ~15 s of numerics
)
def test_noise_calibration_matches_opacus(accountant):
    ours = noise_for_epsilon(
        target_epsilon=3.0, delta=1e-5, sample_rate=0.01, steps=2000, accountant=accountant
    )
    theirs = get_noise_multiplier(
        target_epsilon=3.0, target_delta=1e-5, sample_rate=0.01, steps=2000, accountant=accountant
    )
    assert ours == pytest.approx(theirs)
    spent = epsilon_spent(
        noise_multiplier=ours, sample_rate=0.01, steps=2000, delta=1e-5, accountant=accountant
    )
    assert 2.98 <= spent <= 3.0


def _phi(x):
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def _gaussian_epsilon(mu, delta):
    """Exact epsilon of a Gaussian mechanism with sensitivity/sigma = mu (Balle & Wang 2018)."""

    def delta_of(eps):
        return _phi(-eps / mu + mu / 2) - math.exp(eps) * _phi(-eps / mu - mu / 2)

    lo, hi = 0.0, 100.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if delta_of(mid) > delta else (lo, mid)
    return hi


@pytest.mark.parametrize(("sigma", "steps"), [(5.0, 10), (20.0, 100), (3.0, 4)])
def test_without_subsampling_prv_is_the_exact_gaussian_bound(sigma, steps):
    # q = 1: T Gaussian steps compose exactly into one Gaussian with mu = sqrt(T) / sigma.
    exact = _gaussian_epsilon(math.sqrt(steps) / sigma, 1e-5)
    prv = epsilon_spent(
        noise_multiplier=sigma, sample_rate=1.0, steps=steps, delta=1e-5, accountant="prv"
    )
    assert exact <= prv <= exact + 0.03  # PRV returns an upper bound within eps_error


def test_without_subsampling_rdp_is_the_closed_form():
    sigma, steps, delta = 4.0, 50, 1e-5
    orders = RDPAccountant.DEFAULT_ALPHAS
    oracle = min(
        steps * a / (2 * sigma**2)
        - (math.log(delta) + math.log(a)) / (a - 1)
        + math.log((a - 1) / a)
        for a in orders
    )
    rdp = epsilon_spent(
        noise_multiplier=sigma, sample_rate=1.0, steps=steps, delta=delta, accountant="rdp"
    )
    assert rdp == pytest.approx(oracle, rel=1e-9)
    assert rdp >= _gaussian_epsilon(math.sqrt(steps) / sigma, delta)  # RDP is looser, never tighter


@pytest.mark.parametrize(("n", "delta"), [(320, 1e-4), (10_000, 1e-5), (10_202, 1e-6), (9, 0.01)])
def test_default_delta_is_a_power_of_ten_well_below_one_over_n(n, delta):
    assert default_delta(n) == pytest.approx(delta)
    assert default_delta(n) <= 1 / (10 * n)
