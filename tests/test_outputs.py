"""Forward outputs (scores, predictions, spike counts) of loss_and_grad and evaluate_batch."""

import numpy as np
import pytest

import exactsnn as es
from exactsnn.data.poisson import poisson_batch
from exactsnn.grad import evaluate_batch, first_spike_times


@pytest.mark.parametrize("loss", [es.losses.SumExp(), es.losses.MaxVoltage(), es.losses.FirstSpike()])
def test_outputs_agree_with_the_forward_pass(loss):
    spiking_out = isinstance(loss, es.losses.FirstSpike)
    out_neuron = es.LIF() if spiking_out else es.LI()
    net = es.Network(20, [es.Layer(12, recurrent=True, weight_mean=0.4, weight_std=0.3),
                          es.Layer(3, out_neuron, weight_mean=0.8 if spiking_out else 0.0)])
    params = net.init(3)
    batch = poisson_batch(6, 20, 40.0, t_max=0.2, seed=1)
    labels = np.array([0, 1, 2, 0, 1, 2])
    value, grads, out = es.loss_and_grad(net, params, batch, labels, loss, t_max=0.2, outputs=True)
    value2, out2 = evaluate_batch(net, params, batch, labels, loss, t_max=0.2)
    assert value == pytest.approx(value2, rel=1e-14)
    assert np.array_equal(out.scores, out2.scores)
    assert np.array_equal(out.predictions(), np.argmax(out.scores, axis=1))
    rec = es.simulate(net, params, batch, t_max=0.2)
    assert out.counts[0].shape == (6, 12) and out.counts[0].sum() == rec.spikes[0].n_events
    for b in range(6):
        _, u = rec.spikes[0].sample(b)
        assert np.array_equal(out.counts[0][b], np.bincount(u, minlength=12))
    if spiking_out:
        first, _ = first_spike_times(rec.spikes[1], 3)
        fired = np.isfinite(first)
        assert np.array_equal(out.scores[fired], -first[fired])
        assert np.all(out.scores[~fired] < -0.2)  # silent units rank below every spike
    else:
        assert out.counts[1] is None
    # input_grad and outputs together: the outputs come last
    res = es.loss_and_grad(net, params, batch, labels, loss, t_max=0.2, input_grad=True, outputs=True)
    assert len(res) == 4 and res[2].shape == batch.times.shape and np.array_equal(res[3].scores, out.scores)
