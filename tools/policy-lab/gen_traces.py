#!/usr/bin/env python3
"""gen_traces.py - synthetic LLM-serving traces in the Mooncake format, to
see whether the cache policy (src/store/policy.c) generalizes beyond the
one real trace we have (/work/shared/traces/mooncake_synthetic_trace.jsonl).

Each line: {"timestamp": ms, "input_length": tokens, "output_length": n,
"hash_ids": [ids]}, ids of 512-token blocks, prefix-chained: an id names
a whole prefix (the same id at position p means the same ids before it),
and a new block whose prefix is new gets a fresh id.

How ids come about: a request is a concatenation of named token segments
(a system prompt, a document, a user turn...); equal names mean equal
text. Block j covers tokens [512j, 512(j+1)) and is labelled by the
pieces of segments it covers, so a block that straddles a shared prompt
and a unique suffix is unique, and a request's last, partial block
changes id when the next turn appends to it (as in real traces). An id
is then (parent id, label) through a trie, numbered in time order.

Families (each about 4,000 requests, 100k-150k block references):
  chat     multi-turn chat: sessions with Zipf-ish (power-law) turn counts,
           each turn re-sends the whole conversation plus a new user
           message; lognormal think time between turns; one short shared
           system prompt.
  sysprompt shared system prompts / few-shot templates: a handful of long
           prefixes with Zipf popularity (ranks reshuffled once, half way),
           some with few-shot example sets, each request a unique suffix.
  agent    agentic tool loops: many sessions interleaved, each re-sends its
           growing context (tool results appended) every few seconds; a
           few agent types share long tool-definition prefixes; some steps
           fork a sub-agent; a context over the limit is compacted (a new
           unique summary breaks the prefix).
  rag      RAG / document QA: short shared system prompt, then a document
           (Zipf over many documents) or top-k retrieved chunks (Zipf,
           order by relevance), then a unique question.
  mix      chat + sysprompt + agent + rag interleaved, with a one-time scan
           burst (long unique prompts) in the middle.

Usage:
  tools/policy-lab/gen_traces.py [--seed 1] [--out DIR] [--requests 4000]
                                 [--family chat,sysprompt,agent,rag,mix]
Writes DIR/<family>.jsonl (DIR defaults to /tmp/policy-lab-traces) and
prints, per trace: requests, block references, distinct blocks, and the
prefix hit ratio of an unbounded cache. Python 3 stdlib only; the same
seed gives byte-identical files.

Then, e.g.:
  build/tools/gpucache sim /tmp/policy-lab-traces/chat.jsonl \\
      --capacity 100K,300K,1M,3M,10M --policy ours,lru,belady \\
      --block-bytes 16K --segments 64 --seeds 4
"""
import argparse
import bisect
import json
import math
import os
import random
import sys

BLOCK = 512


# ---------------------------------------------------------------- helpers

def lognorm(rng, median, sigma, lo, hi):
    """A lognormal draw with the given median, clipped to [lo, hi]."""
    v = int(median * math.exp(rng.gauss(0.0, sigma)))
    return max(lo, min(hi, v))


class Zipf:
    """Ranks 0..n-1 with P(k) proportional to 1/(k+1)^s."""

    def __init__(self, n, s):
        acc, self.cum = 0.0, []
        for k in range(n):
            acc += 1.0 / (k + 1) ** s
            self.cum.append(acc)

    def draw(self, rng):
        return bisect.bisect_left(self.cum, rng.random() * self.cum[-1])


def powerlaw_int(rng, a, lo, hi):
    """An integer in [lo, hi] with P(k) ~ k^-a (continuous inverse CDF)."""
    u = rng.random()
    lo_, hi_ = lo ** (1 - a), (hi + 1) ** (1 - a)
    return min(hi, int((lo_ + u * (hi_ - lo_)) ** (1 / (1 - a))))


class Req:
    __slots__ = ("ts", "segs", "out")

    def __init__(self, ts, segs, out):
        self.ts = ts          # seconds (float)
        self.segs = segs      # [(name, tokens)], name hashable; equal = same text
        self.out = out        # output tokens


def block_labels(segs):
    """Per 512-token block, the tuple of (segment, start, end) pieces it
    covers: the block's text."""
    labels, cur, room = [], [], BLOCK
    for name, n in segs:
        off = 0
        while off < n:
            take = min(room, n - off)
            cur.append((name, off, off + take))
            off += take
            room -= take
            if room == 0:
                labels.append(tuple(cur))
                cur, room = [], BLOCK
    if cur:
        labels.append(tuple(cur))
    return labels


# ------------------------------------------------------------- families

def calibrated(gen, rng, n, **kw):
    """Session families: sessions arrive at a rate; retry with the rate
    scaled until about n requests fall in the span (deterministic: every
    try restarts from the same generator state)."""
    state, mult = rng.getstate(), 1.0
    for _ in range(6):
        rng.setstate(state)
        reqs = gen(rng, n, mult=mult, **kw)
        if len(reqs) >= n:
            break
        mult *= 1.1 * n / max(1, len(reqs))
    return reqs[:n]


def _chat(rng, n, tag="chat", t0=0.0, span=3600.0, mult=1.0):
    """Multi-turn chat sessions (ShareGPT/LMSYS-like, with long tails)."""
    sysp = [((tag, "sys", 0), 1100)]      # 2 shared blocks, a partial one
    reqs = []
    sid = 0
    rate = mult * n / span / 7.0                 # sessions/s: ~7 requests each kept
    t = t0
    while len(reqs) < 3 * n and t < t0 + span:
        t += rng.expovariate(rate)
        sid += 1
        turns = powerlaw_int(rng, 1.5, 1, 60)
        hist = list(sysp)
        ts = t
        for k in range(turns):
            if k == 0 and rng.random() < 0.35:   # a pasted document / code
                u = lognorm(rng, 6000, 0.8, 500, 30000)
            else:
                u = lognorm(rng, 400, 1.0, 5, 8000)
            hist.append(((tag, sid, "u", k), u))
            out = lognorm(rng, 500, 0.8, 10, 3000)
            if sum(x[1] for x in hist) > 60000:
                break                             # context full: session ends
            reqs.append(Req(ts, list(hist), out))
            hist.append(((tag, sid, "a", k), out))
            # generation (~40 tok/s) + reading + typing: think time
            ts += out / 40.0 + lognorm(rng, 25, 1.0, 2, 900)
    reqs.sort(key=lambda r: r.ts)
    return [r for r in reqs if r.ts < t0 + span][:n]


def fam_chat(rng, n, **kw):
    return calibrated(_chat, rng, n, **kw)


def fam_sysprompt(rng, n, tag="sp", t0=0.0, span=1000.0):
    """A handful of long popular prefixes (system prompt, optional few-shot
    set), Zipf popularity reshuffled half way, unique user suffix."""
    ntpl = 16
    tpl_len = [lognorm(rng, 9000, 0.7, 1500, 32000) for _ in range(ntpl)]
    shots = []   # per template: lengths of its few-shot example sets
    for _ in range(ntpl):
        shots.append([lognorm(rng, 2500, 0.6, 500, 8000)
                      for _ in range(rng.choice([0, 0, 1, 2, 4]))])
    zt = Zipf(ntpl, 1.1)
    zs = Zipf(4, 1.0)
    rank = list(range(ntpl))
    rng.shuffle(rank)
    reqs = []
    t = t0
    for i in range(n):
        t += rng.expovariate(n / span)
        if i == n // 2:                     # a deployment changes popularity
            moved = rank[:ntpl // 2]
            rng.shuffle(moved)
            rank = moved + rank[ntpl // 2:]
            rng.shuffle(rank)
        k = rank[zt.draw(rng)]
        segs = [((tag, "tpl", k), tpl_len[k])]
        if shots[k]:
            j = min(zs.draw(rng), len(shots[k]) - 1)
            segs.append(((tag, "shot", k, j), shots[k][j]))
        segs.append(((tag, "user", i), lognorm(rng, 500, 1.0, 20, 12000)))
        reqs.append(Req(t, segs, lognorm(rng, 200, 0.8, 5, 2000)))
    return reqs


def _agent(rng, n, tag="ag", t0=0.0, span=1000.0, mult=1.0):
    """Agentic tool loops: growing contexts re-sent every few seconds."""
    kinds = [(6000, 0.5), (12000, 0.3), (3000, 0.2)]   # tool defs, weight
    reqs = []
    sid = 0
    rate = mult * n / span / 18.0
    t = t0

    def run(ts, hist, steps, depth):
        nonlocal sid
        sid += 1
        me = sid
        for k in range(steps):
            if sum(x[1] for x in hist) > 32000:      # compaction
                summary = lognorm(rng, 2500, 0.4, 800, 6000)
                hist[:] = hist[:1] + [((tag, me, "summary", k), summary)]
            out = lognorm(rng, 150, 0.8, 10, 1500)
            reqs.append(Req(ts, list(hist), out))
            hist.append(((tag, me, "act", k), out))
            hist.append(((tag, me, "tool", k),
                         lognorm(rng, 450, 1.2, 20, 16000)))
            ts += out / 60.0 + lognorm(rng, 1.5, 1.0, 0.1, 30)
            if depth == 0 and rng.random() < 0.06:   # a sub-agent forks
                run(ts, list(hist), lognorm(rng, 5, 0.6, 2, 20), 1)
                ts += 2.0

    while len(reqs) < 3 * n and t < t0 + span:
        t += rng.expovariate(rate)
        r, acc = rng.random(), 0.0
        for kind, (plen, w) in enumerate(kinds):
            acc += w
            if r < acc:
                break
        hist = [((tag, "tools", kind), plen),
                ((tag, "task", sid + 1), lognorm(rng, 400, 0.9, 30, 8000))]
        run(t, hist, lognorm(rng, 15, 0.7, 3, 80), 0)
    reqs.sort(key=lambda r: r.ts)
    return [r for r in reqs if r.ts < t0 + span][:n]


def fam_agent(rng, n, **kw):
    return calibrated(_agent, rng, n, **kw)


def fam_rag(rng, n, tag="rag", t0=0.0, span=1000.0):
    """RAG / document QA behind a short shared system prompt."""
    ndocs, nchunks = 1500, 6000
    doc_len = [lognorm(rng, 15000, 0.9, 1000, 80000) for _ in range(ndocs)]
    chunk_len = [lognorm(rng, 1000, 0.4, 200, 3000) for _ in range(nchunks)]
    zd = Zipf(ndocs, 0.9)
    zc = Zipf(nchunks, 1.0)
    sysp = ((tag, "sys"), 700)             # 1 shared block, 1 straddling
    reqs = []
    t = t0
    for i in range(n):
        t += rng.expovariate(n / span)
        segs = [sysp]
        if rng.random() < 0.6:              # whole-document QA
            d = zd.draw(rng)
            segs.append(((tag, "doc", d), doc_len[d]))
        else:                               # top-k chunks, most relevant first
            picked = []
            while len(picked) < rng.choice([3, 4, 5, 8]):
                c = zc.draw(rng)
                if c not in picked:
                    picked.append(c)
            picked.sort()                   # by rank: popular ones lead
            segs += [((tag, "chunk", c), chunk_len[c]) for c in picked]
        segs.append(((tag, "q", i), lognorm(rng, 80, 0.8, 8, 1000)))
        reqs.append(Req(t, segs, lognorm(rng, 250, 0.7, 10, 2000)))
    return reqs


def fam_scan(rng, n, tag="scan", t0=0.0, span=60.0):
    """A one-time burst of long unique prompts (batch summarization)."""
    reqs, t = [], t0
    for i in range(n):
        t += rng.expovariate(n / span)
        reqs.append(Req(t, [((tag, i), lognorm(rng, 30000, 0.5, 8000, 100000))],
                        lognorm(rng, 300, 0.5, 20, 1000)))
    return reqs


def fam_mix(rng, n):
    span = 1000.0
    k = n // 5
    reqs = (fam_chat(rng, k, span=span) + fam_sysprompt(rng, k, span=span) +
            fam_agent(rng, k, span=span) + fam_rag(rng, k, span=span))
    nscan = n - len(reqs)
    reqs += fam_scan(rng, min(nscan, 250), t0=0.45 * span, span=0.05 * span)
    nrest = n - len(reqs)
    if nrest > 0:
        reqs += fam_sysprompt(rng, nrest, tag="sp2", span=span)
    return reqs


FAMILIES = {
    "chat": fam_chat,
    "sysprompt": fam_sysprompt,
    "agent": fam_agent,
    "rag": fam_rag,
    "mix": fam_mix,
}


# ----------------------------------------------------------------- output

def write(path, reqs):
    """Number ids in time order through a trie of (parent, label); write
    the trace; return its statistics."""
    reqs = sorted(reqs, key=lambda r: r.ts)
    trie, seen = {}, set()
    nrefs = hits = 0
    with open(path, "w") as f:
        for r in reqs:
            ids, parent = [], -1
            for lab in block_labels(r.segs):
                key = (parent, lab)
                bid = trie.get(key)
                if bid is None:
                    bid = trie[key] = len(trie)
                ids.append(bid)
                parent = bid
            # unbounded cache, prefix hits
            p = 0
            while p < len(ids) and ids[p] in seen:
                p += 1
            hits += p
            seen.update(ids)
            nrefs += len(ids)
            f.write(json.dumps({
                "timestamp": int(round(r.ts * 1000)),
                "input_length": sum(n for _, n in r.segs),
                "output_length": r.out,
                "hash_ids": ids}) + "\n")
    return len(reqs), nrefs, len(trie), hits / max(1, nrefs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="/tmp/policy-lab-traces")
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--family", default=",".join(FAMILIES))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for name in a.family.split(","):
        if name not in FAMILIES:
            sys.exit("unknown family %r (one of %s)" % (name, ", ".join(FAMILIES)))
        # one stream per family, so a family's trace does not depend on
        # which others are generated with it
        rng = random.Random("%d/%s" % (a.seed, name))
        path = os.path.join(a.out, name + ".jsonl")
        nreq, nrefs, nuniq, inf = write(path, FAMILIES[name](rng, a.requests))
        print("%-10s %5d requests %7d block refs %6d distinct blocks "
              "(%.1f refs/req), unbounded prefix hit %.1f%%  -> %s"
              % (name, nreq, nrefs, nuniq, nrefs / max(1, nreq), 100 * inf, path))


if __name__ == "__main__":
    main()
