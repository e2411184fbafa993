#!/usr/bin/env python3
"""policy_lab.py - block-granular models of cache policies on a Mooncake-
format trace, to measure an idea before it goes into the store.

Not the product: gpucache sim runs the real store (src/store). These
models are exact per block (no segments), so they bound what a log can do
with the same idea. docs/cache-policy.md quotes their figures.

Usage: tools/policy-lab/policy_lab.py [TRACE] [--caps 300K,1M,3M,10M]
Prefix semantics: a request's hit is its leading run of present blocks;
then every block of the request is touched or inserted.
"""
import argparse
import collections
import heapq
import json
import random
import sys


def load(path):
    with open(path) as f:
        return [json.loads(line)["hash_ids"] for line in f]


def run(reqs, pol):
    hit = 0
    for r in reqs:
        p = 0
        for b in r:
            if pol.has(b):
                p += 1
            else:
                break
        hit += p
        pol.request(r)
    return hit / sum(len(r) for r in reqs)


class LRU:
    def __init__(self, cap, leaf_first=False):
        self.cap, self.c, self.rev = cap, collections.OrderedDict(), leaf_first

    def has(self, b):
        return b in self.c

    def request(self, r):
        for b in (reversed(r) if self.rev else r):
            if b in self.c:
                self.c.move_to_end(b)
            else:
                self.c[b] = 1
                if len(self.c) > self.cap:
                    self.c.popitem(last=False)


class S3FIFO:
    """Yang et al., SOSP'23: small FIFO (10%), main FIFO with 2-bit
    frequency reinsertion, ghost of evicted small-queue keys."""

    def __init__(self, cap, leaf_first=False, small=0.1):
        self.cap, self.scap = cap, max(1, int(cap * small))
        self.S, self.M, self.G = (collections.OrderedDict() for _ in range(3))
        self.freq, self.rev = {}, leaf_first

    def has(self, b):
        return b in self.S or b in self.M

    def evict(self):
        if len(self.S) >= self.scap or not self.M:
            b, _ = self.S.popitem(last=False)
            if self.freq[b] > 0:
                self.M[b] = 1
                self.freq[b] = 0
            else:
                del self.freq[b]
                self.G[b] = 1
                if len(self.G) > self.cap:
                    self.G.popitem(last=False)
            return
        while True:
            b, _ = self.M.popitem(last=False)
            if self.freq[b] > 0:
                self.freq[b] -= 1
                self.M[b] = 1
            else:
                del self.freq[b]
                return

    def request(self, r):
        for b in (reversed(r) if self.rev else r):
            if self.has(b):
                self.freq[b] = min(3, self.freq[b] + 1)
                continue
            if b in self.G:
                del self.G[b]
                self.M[b] = 1
            else:
                self.S[b] = 1
            self.freq[b] = 0
            while len(self.S) + len(self.M) > self.cap:
                self.evict()


class ARC:
    """Megiddo and Modha, FAST'03."""

    def __init__(self, cap, leaf_first=False):
        self.c, self.p, self.rev = cap, 0.0, leaf_first
        self.T1, self.T2, self.B1, self.B2 = (collections.OrderedDict()
                                              for _ in range(4))

    def has(self, b):
        return b in self.T1 or b in self.T2

    def replace(self, b):
        if self.T1 and (len(self.T1) > self.p or
                        (b in self.B2 and len(self.T1) == self.p)):
            x, _ = self.T1.popitem(last=False)
            self.B1[x] = 1
        else:
            x, _ = self.T2.popitem(last=False)
            self.B2[x] = 1

    def access(self, b):
        c = self.c
        if b in self.T1:
            del self.T1[b]
            self.T2[b] = 1
        elif b in self.T2:
            self.T2.move_to_end(b)
        elif b in self.B1:
            self.p = min(c, self.p + max(len(self.B2) / max(1, len(self.B1)), 1))
            self.replace(b)
            del self.B1[b]
            self.T2[b] = 1
        elif b in self.B2:
            self.p = max(0, self.p - max(len(self.B1) / max(1, len(self.B2)), 1))
            self.replace(b)
            del self.B2[b]
            self.T2[b] = 1
        else:
            l1 = len(self.T1) + len(self.B1)
            tot = l1 + len(self.T2) + len(self.B2)
            if l1 == c:
                if len(self.T1) < c:
                    self.B1.popitem(last=False)
                    self.replace(b)
                else:
                    self.T1.popitem(last=False)
            elif l1 < c and tot >= c:
                if tot == 2 * c:
                    self.B2.popitem(last=False)
                self.replace(b)
            self.T1[b] = 1

    def request(self, r):
        for b in (reversed(r) if self.rev else r):
            self.access(b)


class AgedLFU:
    """Counts every reference (resident or not), halved every window;
    evicts the lowest (count, last use); TinyLFU admission."""

    def __init__(self, cap, window_x=10):
        self.cap, self.W = cap, cap * window_x
        self.f, self.c, self.h, self.t = collections.Counter(), {}, [], 0

    def has(self, b):
        return b in self.c

    def request(self, r):
        for b in r:
            self.t += 1
            self.f[b] += 1
            if self.t % self.W == 0:
                for x in list(self.f):
                    self.f[x] //= 2
                    if not self.f[x]:
                        del self.f[x]
                self.c = {x: (self.f[x], v[1]) for x, v in self.c.items()}
                self.h = [(v[0], v[1], x) for x, v in self.c.items()]
                heapq.heapify(self.h)
            if b not in self.c and len(self.c) >= self.cap:
                while True:
                    v = self.h[0]
                    if self.c.get(v[2]) == (v[0], v[1]):
                        break
                    heapq.heappop(self.h)
                if v[0] > self.f[b]:
                    continue
            self.c[b] = (self.f[b], self.t)
            heapq.heappush(self.h, (self.f[b], self.t, b))
            while len(self.c) > self.cap:
                f, t, x = heapq.heappop(self.h)
                if self.c.get(x) == (f, t):
                    del self.c[x]


class Scored:
    """Evict the lowest score among 64 random residents (LHD's sampling)."""

    def __init__(self, cap, score):
        self.cap, self.score, self.c, self.keys, self.pos = cap, score, set(), [], {}
        self.t, self.rng = 0, random.Random(1)

    def has(self, b):
        return b in self.c

    def request(self, r):
        for b in r:
            self.t += 1
            if b not in self.c:
                self.c.add(b)
                self.pos[b] = len(self.keys)
                self.keys.append(b)
            while len(self.c) > self.cap:
                cand = [self.keys[self.rng.randrange(len(self.keys))]
                        for _ in range(64)]
                x = min(cand, key=lambda y: self.score(self, y))
                self.c.discard(x)
                i = self.pos.pop(x)
                last = self.keys.pop()
                if last != x:
                    self.keys[i] = last
                    self.pos[last] = i


class PredictedUse(Scored):
    """Belady with a guess for the future: each block's next use is
    predicted as its last use plus its last gap between uses (requests);
    a block without a gap yet gets the median of the recent gaps; one past
    its predicted use, by its age (as LRU). Evicts the furthest."""

    def __init__(self, cap):
        super().__init__(cap, lambda s, x: -s.predicted(x))
        self.last, self.gap, self.gaps, self.now = {}, {}, [], 0
        self.dflt = 1 << 30

    def predicted(self, b):
        p = self.last[b] + self.gap.get(b, self.dflt)
        return p if p >= self.now else self.now + (self.now - self.last[b])

    def request(self, r):
        self.now += 1
        for b in r:
            if b in self.last:
                self.gap[b] = self.now - self.last[b]
                self.gaps.append(self.gap[b])
            self.last[b] = self.now
        if len(self.gaps) > 200:
            recent = sorted(self.gaps[-5000:])
            self.dflt = recent[len(recent) // 2]
        super().request(r)


class OracleAdmitLRU(LRU):
    """LRU that admits only blocks that will be referenced again."""

    def __init__(self, cap, future):
        super().__init__(cap)
        self.future, self.seen = future, collections.Counter()

    def request(self, r):
        for b in r:
            self.seen[b] += 1
            if b in self.c:
                self.c.move_to_end(b)
            elif self.future[b] > self.seen[b]:
                self.c[b] = 1
                if len(self.c) > self.cap:
                    self.c.popitem(last=False)


def belady(reqs, cap):
    seq = [b for r in reqs for b in r]
    nxt, last = [0] * len(seq), {}
    for i in range(len(seq) - 1, -1, -1):
        nxt[i] = last.get(seq[i], 1 << 60)
        last[seq[i]] = i
    c, h, i, hit = {}, [], 0, 0
    for r in reqs:
        p = 0
        for b in r:
            if b in c:
                p += 1
            else:
                break
        hit += p
        for b in r:
            c[b] = nxt[i]
            heapq.heappush(h, (-nxt[i], b))
            i += 1
            while len(c) > cap:
                nu, x = heapq.heappop(h)
                if c.get(x) == -nu:
                    del c[x]
    return hit / len(seq)


def parse_caps(s):
    out = []
    for tok in s.split(","):
        mult = {"K": 1e3, "M": 1e6, "G": 1e9}.get(tok[-1].upper(), 1)
        out.append((tok, int(float(tok.rstrip("KkMmGg")) * mult) // 512))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace", nargs="?",
                    default="data/traces/mooncake_synthetic_trace.jsonl")
    ap.add_argument("--caps", default="300K,1M,3M,10M")
    a = ap.parse_args()
    reqs = load(a.trace)
    caps = parse_caps(a.caps)
    future = collections.Counter(b for r in reqs for b in r)
    first, last, t = {}, {}, 0
    for r in reqs:
        for b in r:
            t += 1
            first.setdefault(b, t)
            last[b] = t
    rate = {b: (future[b] - 1) / (last[b] - first[b] + 1) for b in future}
    policies = [
        ("LRU", lambda c: LRU(c)),
        ("LRU, leaf first", lambda c: LRU(c, True)),
        ("S3-FIFO", lambda c: S3FIFO(c)),
        ("S3-FIFO, leaf first", lambda c: S3FIFO(c, True)),
        ("ARC, leaf first", lambda c: ARC(c, True)),
        ("aged LFU + TinyLFU admission", lambda c: AgedLFU(c)),
        ("predicted next use (last gap)", lambda c: PredictedUse(c)),
        ("oracle admission + LRU", lambda c: OracleAdmitLRU(c, future)),
        ("oracle reuse rate", lambda c: Scored(c, lambda s, x: rate[x])),
        ("oracle rate + last use", lambda c: Scored(
            c, lambda s, x: rate[x] if s.t < last[x] else -1)),
    ]
    print("policy".ljust(32) + "".join(n.rjust(8) for n, _ in caps))
    for name, mk in policies:
        row = [run(reqs, mk(c)) for _, c in caps]
        print(name.ljust(32) + "".join(f"{100 * h:8.1f}" for h in row))
        sys.stdout.flush()
    print("Belady".ljust(32) +
          "".join(f"{100 * belady(reqs, c):8.1f}" for _, c in caps))


if __name__ == "__main__":
    main()
