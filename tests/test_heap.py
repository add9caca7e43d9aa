"""The array-backed event heap pops entries in (time, kind, seq) order, with replace-top and growth."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from exactsnn.engine.cpu.heap import heap_pop, heap_push, heap_replace_top, heap_reserve

entries = st.lists(
    st.tuples(st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0]) | st.floats(0, 1), st.integers(0, 2)), max_size=60
)


@given(entries, st.lists(st.floats(0, 1), max_size=10))
def test_heap_order_matches_sorting(items, replacements):
    ht, hk, hs, ha, hb = np.empty(1), np.empty(1, np.int64), np.empty(1, np.int64), np.empty(1, np.int64), np.empty(
        1, np.int64
    )
    size = 0
    model = []
    for seq, (t, k) in enumerate(items):
        ht, hk, hs, ha, hb = heap_reserve(ht, hk, hs, ha, hb, size, 1)
        size = heap_push(ht, hk, hs, ha, hb, size, t, k, seq, seq, -seq)
        model.append((t, k, seq))
    seq = len(items)
    for t in replacements:
        if size == 0:
            break
        model.remove(min(model))
        heap_replace_top(ht, hk, hs, ha, hb, size, t, 1, seq, seq, -seq)
        model.append((t, 1, seq))
        seq += 1
    got = []
    while size:
        got.append((ht[0], hk[0], hs[0]))
        assert ha[0] == -hb[0] == hs[0]  # payloads travel with their entry
        size = heap_pop(ht, hk, hs, ha, hb, size)
    assert got == sorted(model)
