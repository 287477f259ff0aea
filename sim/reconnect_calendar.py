"""The reconnect calendar of a transient: future attempts and connection releases in time order,
in fine steps early and wider ones later; and a survivor's FIFO admission of attempts through a
token bucket behind a listen backlog (closed forms over sorted arrivals)."""

from __future__ import annotations

import heapq

import numpy as np

BUCKET_S = 0.05  # time resolution of the vectorised model in the first STEP_GROWTH_S ...
STEP_GROWTH_S = 10.0  # ... after which steps widen in proportion to t (clients spread out by then)

ATTEMPT, RELEASE = 0, 1
COARSE_S = 1.0


class Calendar:
    """Future attempts and connection releases: filed by the coarse second (cheap to file),
    served in fine steps of BUCKET_S in time order."""

    def __init__(self) -> None:
        self.store: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        self.heap: list[int] = []

    def push(self, times: np.ndarray, values: np.ndarray, kinds: np.ndarray) -> None:
        if not len(times):
            return
        keys = np.floor(times / COARSE_S).astype(np.int64)
        order = np.argsort(keys, kind="stable")
        keys, times, values, kinds = keys[order], times[order], values[order], kinds[order]
        cuts = (np.flatnonzero(keys[1:] != keys[:-1]) + 1).tolist()
        for lo, hi in zip([0, *cuts], [*cuts, len(keys)], strict=True):
            key = int(keys[lo])
            if key not in self.store:
                heapq.heappush(self.heap, key)
                self.store[key] = []
            self.store[key].append((times[lo:hi], values[lo:hi], kinds[lo:hi]))

    def _take(self, key: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        parts = self.store.pop(key)
        t = np.concatenate([p[0] for p in parts])
        v = np.concatenate([p[1] for p in parts])
        k = np.concatenate([p[2] for p in parts])
        order = np.argsort(t, kind="stable")
        return t[order], v[order], k[order]

    def steps(self, pending: np.ndarray):
        """Yield (step start, client indices, attempt times) in time order, applying releases to
        `pending` first; what is pushed meanwhile is merged in."""
        while self.heap:
            key = heapq.heappop(self.heap)
            if key not in self.store:
                continue
            t, v, k = self._take(key)
            pos = 0
            while pos < len(t):
                width = BUCKET_S * max(1.0, t[pos] / STEP_GROWTH_S)
                step_start = np.floor(t[pos] / width) * width
                if step_start + width <= t[pos]:  # t on a step boundary, rounded below it: the
                    step_start += width  # step must hold t (else one attempt per step: 10,000
                    # clients back at once after a maintenance took 10,000 steps)
                end = int(np.searchsorted(t, step_start + width, side="left"))
                end = max(end, pos + 1)
                seg_v, seg_k, seg_t = v[pos:end], k[pos:end], t[pos:end]
                pos = end
                released = seg_k == RELEASE
                if released.any():
                    np.subtract.at(pending, seg_v[released], 1)
                attempt = ~released
                if attempt.any():
                    yield step_start, seg_v[attempt], seg_t[attempt]
                if key in self.store:  # pushed into this very second: merge
                    t2, v2, k2 = self._take(key)
                    t = np.concatenate((t[pos:], t2))
                    v = np.concatenate((v[pos:], v2))
                    k = np.concatenate((k[pos:], k2))
                    order = np.argsort(t, kind="stable")
                    t, v, k, pos = t[order], v[order], k[order], 0


def admit(a: np.ndarray, next_free: float, rate: float, max_wait: float
          ) -> tuple[np.ndarray, float]:
    """Token-bucket FIFO admission of sorted arrivals `a`; an arrival that would wait longer than
    `max_wait` (the backlog is full) is dropped (start = nan) and uses no slot.

    Alternates two closed forms: while arrivals find room, start_k = k/r + max(next_free,
    cummax(a_l - l/r)); while the backlog is full, slots come every 1/r and each goes to the first
    later arrival that finds room."""
    m = len(a)
    out = np.full(m, np.nan)
    i, nf = 0, next_free
    while i < m:
        seg = a[i:]
        k = np.arange(len(seg))
        start = k / rate + np.maximum(nf, np.maximum.accumulate(seg - k / rate))
        ok = start - seg <= max_wait
        if ok.all():
            out[i:] = start
            return out, float(start[-1] + 1 / rate)
        k0 = int(np.argmin(ok))
        out[i : i + k0] = start[:k0]
        nf = float(start[k0 - 1] + 1 / rate) if k0 else nf
        i += k0
        # Saturated from arrival i on (it is dropped): slot q opens at nf + q/r.
        q = np.arange(m - i)
        slots = nf + q / rate
        first = np.searchsorted(a, slots - max_wait, side="left")
        taker = q + np.maximum.accumulate(first - q)  # each arrival takes at most one slot
        valid = taker < m
        taker, slots = taker[valid], slots[valid]
        late = a[taker] > slots  # the queue ran empty before this arrival: not saturated now
        k1 = int(np.argmax(late)) if late.any() else len(taker)
        out[taker[:k1]] = slots[:k1]
        if k1:
            nf = float(slots[k1 - 1] + 1 / rate)
        if k1 == len(taker):
            return out, nf
        i = int(taker[k1])
    return out, nf
