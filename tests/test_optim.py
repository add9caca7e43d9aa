"""Adam and the learning-rate schedule."""

import numpy as np
import pytest

import exactsnn as es
from exactsnn.optim import Adam, Schedule, adam_init, adam_step, lr_factor


def _net():
    return es.Network(3, [es.Layer(4, recurrent=True, delays=True, delay_max=5e-3), es.Layer(2, es.LI())])


def _reference_adam(p, grads, lr, b1=0.9, b2=0.999, eps=1e-8, lo=-np.inf, hi=np.inf):
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for k, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = np.clip(p - lr * (m / (1 - b1**k)) / (np.sqrt(v / (1 - b2**k)) + eps), lo, hi)
    return p


def test_adam_matches_textbook_update_and_respects_constraints():
    net = _net()
    params = net.init(1)
    opt = Adam(lr=1e-2, delay_lr=1e-4)
    state = adam_init(net, params)
    rng = np.random.default_rng(0)
    grads_seq = []
    p = params
    for _ in range(5):
        g = es.Params(
            [rng.normal(size=w.shape) for w in p.weights],
            [rng.normal(size=d.shape) for d in p.delays],
            [rng.normal(size=(4, 4)), None],
            [rng.normal(size=(4, 4)), None],
        )
        grads_seq.append(g)
        p, state = adam_step(opt, state, net, p, g)
    assert state.step == 5
    expect_w0 = _reference_adam(params.weights[0], [g.weights[0] for g in grads_seq], 1e-2)
    assert np.allclose(p.weights[0], expect_w0, rtol=1e-14, atol=1e-15)
    expect_d0 = _reference_adam(params.delays[0], [g.delays[0] for g in grads_seq], 1e-4, lo=0.0, hi=5e-3)
    assert np.allclose(p.delays[0], expect_d0, rtol=1e-12, atol=1e-15)
    # diagonal of the recurrent weights stays zero, delays stay in [0, delay_max]
    assert np.all(np.diag(p.recurrent_weights[0]) == 0)
    assert p.delays[0].min() >= 0 and p.delays[0].max() <= 5e-3
    # the readout has no delays: they stay zero whatever the gradient says
    assert np.all(p.delays[1] == 0)
    net.check_params(p)
    # inputs are not modified in place
    assert np.array_equal(params.weights[0], net.init(1).weights[0])


def test_non_finite_gradient_is_rejected():
    net = _net()
    params = net.init(0)
    g = params.copy()
    g.weights[1][0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        adam_step(Adam(), adam_init(net, params), net, params, g)


def test_schedule_warmup_and_decays():
    s = Schedule(warmup_epochs=2, decay="none")
    f = [lr_factor(s, k, 10) for k in range(30)]
    assert f[0] == pytest.approx(0.05) and f[19] == 1.0 and f[29] == 1.0
    assert np.all(np.diff(f[:20]) > 0)
    e = Schedule(decay="exponential", gamma=0.5)
    assert lr_factor(e, 20, 10) == pytest.approx(0.25)
    c = Schedule(decay="cosine", epochs=4, min_factor=0.1)
    assert lr_factor(c, 0, 10) == 1.0
    assert lr_factor(c, 20, 10) == pytest.approx(0.55)
    assert lr_factor(c, 40, 10) == pytest.approx(0.1)
    assert lr_factor(c, 80, 10) == pytest.approx(0.1)


@pytest.mark.parametrize(
    "kwargs",
    [dict(decay="linear"), dict(warmup_epochs=-1), dict(gamma=0), dict(min_factor=2), dict(epochs=0)],
)
def test_bad_schedule(kwargs):
    with pytest.raises(ValueError):
        Schedule(**kwargs)


@pytest.mark.parametrize("kwargs", [dict(lr=0), dict(beta1=1.0), dict(eps=-1), dict(delay_lr=np.nan)])
def test_bad_adam(kwargs):
    with pytest.raises(ValueError):
        Adam(**kwargs)
