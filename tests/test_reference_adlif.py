"""Self-checks of the adLIF oracle tests/reference_adlif.py (nothing here uses exactsnn).

* a = b = 0: it agrees with the LIF oracle tests/reference.py (spike times within 1e-25, margins, voltages);
* its propagator (cached dyadic expm + Taylor tail) agrees with one direct ``mpmath.expm`` call;
* an oscillating neuron (complex eigenvalues) whose free trajectory crosses threshold several times:
  the first crossing is reported, as found by a dense 1e-6 s scan plus mpmath refinement; a grazing
  peak 1e-9 above threshold, narrower than the scan step and strictly inside one of the oracle's grid
  cells, is found (and 1e-9 below threshold it is not), with the margin reporting the 1e-9;
* after a spike V = v_reset and w has jumped by b; during t_ref V is held and w relaxes to a v_reset;
* single adLIF neurons (oscillating, real, nearly coincident eigenvalues; b, t_ref, v_reset != 0)
  against an independent brute-force event simulator (dense float64 scan + Newton refinement in mpmath).
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import scipy.linalg
from mpmath import mpf
from reference import DPS, reference_simulate
from reference_adlif import adlif_maths, reference_adlif_simulate

T_MAX = 0.1


def _a_mp(tm, ts, tw, a):
    """The ODE matrix in mpmath, DPS digits."""
    with mpmath.workdps(DPS):
        tm, ts, tw, a = mpf(tm), mpf(ts), mpf(tw), mpf(a)
        return mpmath.matrix([[-1 / tm, -1 / tm, 1 / tm], [a / tw, -1 / tw, 0], [0, 0, -1 / ts]])


def _a_np(tm, ts, tw, a):
    return np.array([[-1 / tm, -1 / tm, 1 / tm], [a / tw, -1 / tw, 0.0], [0.0, 0.0, -1 / ts]])


def _prop_mp(A, x, s):
    """expm(A s) x by one direct mpmath.expm call (x: mpmath column matrix)."""
    return x if s == 0 else mpmath.expm(A * s) * x


class _Scanner:
    """Dense float64 scan of V on a dt grid: rows[k] = e_V^T expm(A dt)^k, for k dt up to T_MAX."""

    def __init__(self, tm, ts, tw, a, dt=1e-6):
        P = scipy.linalg.expm(_a_np(tm, ts, tw, a) * dt)
        n = int(round(T_MAX / dt)) + 2
        rows = np.empty((n, 3))
        r = np.array([1.0, 0.0, 0.0])
        for k in range(n):
            rows[k] = r
            r = r @ P
        self.rows, self.dt = rows, dt
        self.A = _a_mp(tm, ts, tw, a)

    def first_crossing(self, x0, t0, t1, v_th):
        """First t in [t0, t1] with V >= v_th on the free trajectory from x0 (mp column) at t0: the first
        dt-step whose end is >= v_th, then safeguarded Newton in that step (bisection whenever a Newton
        step leaves the bracket), one direct mpmath.expm per iterate; None if none."""
        n = int((t1 - t0) / self.dt) + 1
        V = self.rows[: n + 1] @ np.array([float(v) for v in x0])
        hit = np.nonzero(V >= float(v_th))[0]
        if len(hit) == 0:
            xe = _prop_mp(self.A, x0, t1 - t0)
            return t1 if xe[0] >= v_th else None
        for k in hit[:20]:  # the first step end that is >= v_th in mpmath too (float64 noise)
            lo, hi = t0 + max(int(k) - 1, 0) * mpf(self.dt), min(t0 + int(k) * mpf(self.dt), t1)
            if _prop_mp(self.A, x0, hi - t0)[0] >= v_th:
                break
        else:
            return None
        # Newton from the step end (V' > 0 there unless the crossing is ambiguous), kept inside [lo, hi]
        t = hi
        for _ in range(200):
            x = _prop_mp(self.A, x0, t - t0)
            f, d = x[0] - v_th, (self.A * x)[0]
            if f >= 0:
                hi = t
            else:
                lo = t
            t_new = t - f / d if d > 0 else (lo + hi) / 2
            if not lo <= t_new <= hi:
                t_new = (lo + hi) / 2
            if abs(t_new - t) < mpf("1e-45") or hi - lo < mpf("1e-45"):
                return t_new
            t = t_new
        raise AssertionError("no convergence")


def _brute_force_neuron(scanner, arrivals, prm, t_max=T_MAX):
    """Spike times of one adLIF neuron driven by ``arrivals`` [(t, weight)], by direct simulation."""
    with mpmath.workdps(DPS):
        A = scanner.A
        v_th, v_reset, t_ref = mpf(prm["v_th"]), mpf(prm["v_reset"]), mpf(prm["t_ref"])
        a, b, tw, ts = mpf(prm["a"]), mpf(prm["b"]), mpf(prm["tau_w"]), mpf(prm["tau_syn"])
        T = mpf(t_max)
        ev = sorted((mpf(t), mpf(w)) for t, w in arrivals if t <= t_max)
        x = mpmath.matrix([0, 0, 0])
        t, ref_end, i, spikes = mpf(0), mpf(-1), 0, []
        while True:
            ta = ev[i][0] if i < len(ev) else None
            end = T if ta is None else ta
            if ref_end > t:  # refractory hold: V frozen, w relaxes to a v_reset, I decays
                t1 = min(ref_end, end)
                s = t1 - t
                x = mpmath.matrix(
                    [v_reset, a * v_reset + (x[1] - a * v_reset) * mpmath.exp(-s / tw), x[2] * mpmath.exp(-s / ts)]
                )
                t = t1
                if t1 == ref_end and t1 < end:
                    continue
            else:
                tc = scanner.first_crossing(x, t, end, v_th)
                if tc is not None:
                    x = _prop_mp(A, x, tc - t)
                    spikes.append(tc)
                    x = mpmath.matrix([v_reset, x[1] + b, x[2]])
                    t, ref_end = tc, tc + t_ref
                    continue
                x = _prop_mp(A, x, end - t)
                t = end
            if ta is None:
                return spikes
            x[2] += ev[i][1]
            i += 1


# ----------------------------------------------------------------------------- (1) LIF limit
def _random_lif_case(seed):
    rng = np.random.default_rng(seed)
    n_in, n1, n2 = 3, int(rng.integers(2, 5)), int(rng.integers(1, 4))
    tm = float(rng.uniform(5e-3, 30e-3))
    ts = tm if seed % 3 == 0 else float(rng.uniform(2e-3, 20e-3))
    recurrent = seed % 2 == 1
    L1 = dict(
        W=rng.normal(1.5, 1.0, (n1, n_in)),
        D=rng.uniform(0, 5e-3, (n1, n_in)),
        R=rng.normal(0, 0.5, (n1, n1)) if recurrent else None,
        E=rng.uniform(0, 3e-3, (n1, n1)) if recurrent else None,
        tau_mem=tm,
        tau_syn=ts,
        v_th=1.0,
        v_reset=float(rng.choice([0.0, -0.3])),
        t_ref=float(rng.choice([0.0, 2e-3])),
        spiking=True,
    )
    L2 = dict(
        W=rng.normal(1.0, 1.0, (n2, n1)),
        D=None,
        R=None,
        E=None,
        tau_mem=10e-3,
        tau_syn=5e-3,
        v_th=1.0,
        v_reset=0.0,
        t_ref=0.0,
        spiking=seed % 4 != 2,
    )
    inputs = [(np.sort(rng.uniform(0, 0.08, 10)), rng.integers(0, n_in, 10)) for _ in range(2)]
    return n_in, [L1, L2], inputs


@pytest.mark.parametrize("seed", range(4))
def test_lif_limit_matches_lif_oracle(seed):
    n_in, layers, inputs = _random_lif_case(seed)
    ref = reference_simulate(n_in, layers, inputs, T_MAX)
    ad_layers = [dict(ly, tau_w=0.05, a=0.0, b=0.0) for ly in layers]  # explicit a = b = 0 (w stays 0)
    ad = reference_adlif_simulate(n_in, ad_layers, inputs, T_MAX)
    assert ad.n_spikes() == ref.n_spikes()
    for l in range(len(layers)):
        for b in range(len(inputs)):
            s_ref, s_ad = ref.spikes_mp[l][b], ad.spikes_mp[l][b]
            assert [u for _, u in s_ad] == [u for _, u in s_ref]
            for (t1, _), (t2, _) in zip(s_ref, s_ad, strict=True):
                assert abs(t1 - t2) < mpf("1e-25")
            m1, m2 = ref.margins[l][b], ad.margins[l][b]
            assert m1 == m2 or abs(m1 - m2) <= 1e-12 * abs(m1)
            for t in np.linspace(0, T_MAX, 7):
                np.testing.assert_allclose(ad.voltage(l, b, t), ref.voltage(l, b, t), rtol=0, atol=1e-12)
                assert np.all(ad.state(l, b, t)[:, 1] == 0.0)
    # LIF dicts (no tau_w / a / b keys) work as they are
    assert reference_adlif_simulate(n_in, layers, inputs, T_MAX).spikes == ad.spikes


# ----------------------------------------------------------------------------- propagator
PROP_PARAMS = [(20e-3, 5e-3, 100e-3, 40.0), (10e-3, 10e-3, 10e-3, 0.0), (20e-3, 32e-3, 80e-3, 0.5625)]


@pytest.mark.parametrize("params", PROP_PARAMS)
def test_propagator_matches_direct_expm(params):
    m = adlif_maths(*params)
    rng = np.random.default_rng(0)
    with mpmath.workdps(DPS):
        x = (mpf(0.3), mpf(-0.7), mpf(2.1))
        for s in [mpf(10) ** -40, mpf(10) ** -20, mpf("3e-7"), m.h, m.h * 3 + mpf("1e-9"), mpf(0.1)] + [
            mpf(float(v)) for v in rng.uniform(0, 0.2, 5)
        ]:
            y1, y2 = m.free(x, s), m.free_expm(x, s)
            assert max(abs(u - v) for u, v in zip(y1, y2, strict=True)) < mpf("1e-44"), s
        # semigroup over the grid: stepping cell by cell equals one long propagation
        y = x
        for _ in range(50):
            y = m.free(y, m.h)
        assert max(abs(u - v) for u, v in zip(y, m.free_expm(x, 50 * m.h), strict=True)) < mpf("1e-44")


# ----------------------------------------------------------------------------- (2) oscillating neuron
OSC = dict(tau_mem=20e-3, tau_syn=5e-3, tau_w=100e-3, a=40.0)


def _osc_layer(w, v_th=1.0, b=0.0, n_inputs=1):
    return dict(
        W=np.atleast_2d(np.asarray(w, dtype=float)).reshape(1, n_inputs),
        D=None,
        R=None,
        E=None,
        **OSC,
        b=b,
        v_th=v_th,
        v_reset=0.0,
        t_ref=0.0,
        spiking=True,
    )


def test_oscillating_first_of_several_crossings():
    t_in, w = 1e-3, 33.0
    res = reference_adlif_simulate(1, [_osc_layer(w)], [([t_in], [0])], T_MAX)
    scanner = _Scanner(OSC["tau_mem"], OSC["tau_syn"], OSC["tau_w"], OSC["a"])
    # the free trajectory from the input on (no threshold) crosses v_th = 1 several times
    V = scanner.rows[: int((T_MAX - t_in) / 1e-6)] @ np.array([0.0, 0.0, w])
    changes = np.count_nonzero(np.diff(np.sign(V - 1.0)) != 0)
    assert changes >= 4
    with mpmath.workdps(DPS):
        x0 = mpmath.matrix([0, 0, w])
        t_first = scanner.first_crossing(x0, mpf(t_in), mpf(T_MAX), mpf(1))
        assert res.spikes_mp[0][0][0][1] == 0
        assert abs(res.spikes_mp[0][0][0][0] - t_first) < mpf("1e-25")
        # V reaches threshold there, coming from below
        v_before = res.state_mp(0, 0, t_first - mpf("1e-9"))[0][0]
        assert v_before < 1
        xs = _prop_mp(scanner.A, x0, res.spikes_mp[0][0][0][0] - t_in)
        assert abs(xs[0] - 1) < mpf("1e-25")


def _osc_peak(scanner):
    """(time after the input, V) of the first maximum of V for a unit input, by bisection on V'."""
    with mpmath.workdps(DPS):
        A = scanner.A
        x0 = mpmath.matrix([0, 0, 1])
        V = scanner.rows[:20000] @ np.array([0.0, 0.0, 1.0])
        k = int(np.argmax(V[:15000]))
        lo, hi = mpf((k - 5) * 1e-6), mpf((k + 5) * 1e-6)
        dV = lambda s: (A * _prop_mp(A, x0, s))[0]  # noqa: E731
        assert dV(lo) > 0 > dV(hi)
        for _ in range(200):
            mid = (lo + hi) / 2
            if dV(mid) > 0:
                lo = mid
            else:
                hi = mid
        return lo, _prop_mp(A, x0, lo)[0]


@pytest.mark.parametrize("above", [True, False])
def test_oscillating_grazing_peak_inside_a_cell(above):
    """Peak 1e-9 above (below) threshold: a spike there (none there, the first spike is the later one)."""
    scanner = _Scanner(OSC["tau_mem"], OSC["tau_syn"], OSC["tau_w"], OSC["a"])
    delta = 1e-9
    t_in, t_late = 2e-3, 60e-3
    with mpmath.workdps(DPS):
        s_peak, v_unit = _osc_peak(scanner)
        v_th = mpf(1)
        w = float(v_th / v_unit)  # peak ~ v_th (float rounding of w: relative ~1e-16)
        x0 = mpmath.matrix([0, 0, w])
        v_peak = _prop_mp(scanner.A, x0, s_peak)[0]
        # choose v_th (a float) 1e-9 below / above the exact peak
        v_th = float(v_peak - delta) if above else float(v_peak + delta)
        assert abs(abs(v_peak - v_th) - delta) < 1e-15
        W = np.array([[w, 60.0]])
        layer = dict(_osc_layer(0.0, v_th=v_th), W=W)
        res = reference_adlif_simulate(2, [layer], [([t_in, t_late], [0, 1])], T_MAX)
        times = [t for t, _ in res.spikes_mp[0][0]]
        assert times, "the strong late input must make the neuron spike"
        # the excursion above threshold is narrower than 1e-6 s and inside one grid cell of the oracle
        m = adlif_maths(OSC["tau_mem"], OSC["tau_syn"], OSC["tau_w"], OSC["a"])
        k = int(mpmath.floor(s_peak / m.h))
        for u in (k * m.h, (k + 1) * m.h):
            assert _prop_mp(scanner.A, x0, u)[0] < v_th - 1e-6
        for u in (s_peak - mpf("5e-7"), s_peak + mpf("5e-7")):
            assert _prop_mp(scanner.A, x0, u)[0] < v_th
        if above:
            # exact crossing: V increases on [s_peak - 1e-4, s_peak]
            lo, hi = s_peak - mpf("1e-4"), s_peak
            for _ in range(150):
                mid = (lo + hi) / 2
                if _prop_mp(scanner.A, x0, mid)[0] >= v_th:
                    hi = mid
                else:
                    lo = mid
            assert abs(times[0] - (t_in + hi)) < mpf("1e-25")
            assert abs(res.margin - delta) < 1e-6 * delta  # the grazing interval sets the margin
        else:
            assert times[0] > t_late
            assert abs(res.margins[0][0] - delta) < 1e-6 * delta


# ----------------------------------------------------------------------------- (3) state after a spike
@pytest.mark.parametrize("t_ref", [0.0, 3e-3])
def test_state_after_spike(t_ref):
    prm = dict(tau_mem=20e-3, tau_syn=5e-3, tau_w=50e-3, a=2.0, b=0.3, v_th=1.0, v_reset=-0.2, t_ref=t_ref)
    layer = dict(W=np.array([[15.0]]), D=None, R=None, E=None, spiking=True, **prm)
    t_in = 1e-3
    res = reference_adlif_simulate(1, [layer], [([t_in], [0])], T_MAX)
    times = [t for t, _ in res.spikes_mp[0][0]]
    assert len(times) >= 1
    t_s = times[0]
    with mpmath.workdps(DPS):
        A = _a_mp(prm["tau_mem"], prm["tau_syn"], prm["tau_w"], prm["a"])
        x_minus = _prop_mp(A, mpmath.matrix([0, 0, 15.0]), t_s - mpf(t_in))  # free trajectory up to the spike
        assert abs(x_minus[0] - 1) < mpf("1e-25")
        V, w, I = res.state_mp(0, 0, t_s)[0]
        assert V == mpf(prm["v_reset"])
        assert abs(w - (x_minus[1] + mpf(prm["b"]))) < mpf("1e-40")
        assert abs(I - x_minus[2]) < mpf("1e-40")
        t_f = float(t_s)  # the nearest float may lie before the spike: query the first float after it
        if mpf(t_f) < t_s:
            t_f = float(np.nextafter(t_f, 1.0))
        st = res.state(0, 0, t_f)
        assert st.shape == (1, 3) and abs(st[0, 0] - prm["v_reset"]) < 1e-12  # V moves ~1e-16 in one ulp
        assert abs(st[0, 1] - float(w)) < 1e-12
        assert abs(res.voltage(0, 0, t_f)[0] - prm["v_reset"]) < 1e-12
        x_plus = mpmath.matrix([V, w, I])
        if t_ref > 0:
            s = mpf(t_ref) / 2
            Vh, wh, Ih = res.state_mp(0, 0, t_s + s)[0]
            w_inf = mpf(prm["a"]) * mpf(prm["v_reset"])
            assert Vh == mpf(prm["v_reset"])
            assert abs(wh - (w_inf + (w - w_inf) * mpmath.exp(-s / mpf(prm["tau_w"])))) < mpf("1e-40")
            assert abs(Ih - I * mpmath.exp(-s / mpf(prm["tau_syn"]))) < mpf("1e-40")
            x_end = res.state_mp(0, 0, t_s + mpf(t_ref))[0]
            assert x_end[0] == mpf(prm["v_reset"])
            x_plus, t_free = mpmath.matrix(list(x_end)), t_s + mpf(t_ref)
        else:
            t_free = t_s
        t_q = t_free + mpf("2e-3")
        if len(times) == 1 or times[1] > t_q:
            xq = _prop_mp(A, x_plus, t_q - t_free)
            got = res.state_mp(0, 0, t_q)[0]
            assert max(abs(got[i] - xq[i]) for i in range(3)) < mpf("1e-40")


# ----------------------------------------------------------------------------- (4) brute force
BRUTE_CASES = [
    # oscillating, adaptation jump, no refractory
    dict(tau_mem=20e-3, tau_syn=5e-3, tau_w=100e-3, a=40.0, b=0.5, v_th=1.0, v_reset=0.0, t_ref=0.0),
    # real eigenvalues, refractory, negative reset
    dict(tau_mem=15e-3, tau_syn=4e-3, tau_w=60e-3, a=2.0, b=0.2, v_th=1.0, v_reset=-0.2, t_ref=2e-3),
    # nearly coincident eigenvalues (-1/tau_syn and the double root of the (V, w) block), a < 0
    dict(tau_mem=20e-3, tau_syn=32e-3, tau_w=80e-3, a=0.5625, b=-0.1, v_th=0.8, v_reset=0.1, t_ref=1e-3),
    dict(tau_mem=10e-3, tau_syn=10e-3, tau_w=30e-3, a=-0.5, b=0.1, v_th=1.0, v_reset=0.0, t_ref=0.0),
]


@pytest.mark.parametrize("case", range(len(BRUTE_CASES)))
def test_single_neuron_against_brute_force(case):
    prm = BRUTE_CASES[case]
    scanner = _Scanner(prm["tau_mem"], prm["tau_syn"], prm["tau_w"], prm["a"])
    rng = np.random.default_rng(100 + case)
    n_checked = 0
    for _ in range(3):
        w_in = rng.uniform(2.0, 12.0, 2)
        layer = dict(W=w_in.reshape(1, 2), D=None, R=None, E=None, spiking=True, **prm)
        k = 8
        times, units = np.sort(rng.uniform(0, 0.09, k)), rng.integers(0, 2, k)
        res = reference_adlif_simulate(2, [layer], [(times, units)], T_MAX)
        if res.margin < 1e-5:  # a grazing excursion narrower than the brute force's step: ambiguous for it
            continue
        brute = _brute_force_neuron(scanner, [(t, w_in[u]) for t, u in zip(times, units, strict=True)], prm)
        got = [t for t, _ in res.spikes_mp[0][0]]
        assert len(got) == len(brute)
        for t1, t2 in zip(got, brute, strict=True):
            assert abs(t1 - t2) < mpf("1e-25")
        n_checked += len(got)
    assert n_checked > 0
