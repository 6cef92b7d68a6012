#!/usr/bin/python3
"""NumPy peer for ouroboros: recursive training of a bigram model (mle) on the King James text.

The loop of experiments/ngram/kjv_bigram.yaml at the size of the speed target: one chain,
n tokens per generation (whole sentences, the last one overshooting), replace, no real data
after generation 1. Same tokenizer, split and vocabulary as ouroboros (README, "N-gram
language models"). Vectorised: every sentence of a generation is advanced together, one
token per step, the next token found by np.searchsorted in the model's cumulative counts;
bigram counts by np.unique. Per generation it computes the held-out perplexity and
zero-probability rate, support, vocabulary survival, the entropy of its own sample and
distinct-2, like ouroboros.

Prints one JSON line with the wall time and the per-generation metrics.
"""
import argparse
import json
import re
import time

import numpy as np

TOKEN = re.compile(rb"[a-z0-9\x80-\xff]+(?:'[a-z0-9\x80-\xff]+)*|[^\s]")


def load(path):
    train, held = [], []
    j = 0
    with open(path, "rb") as f:
        for line in f:
            toks = TOKEN.findall(line.lower())
            if not toks:
                continue
            (held if j % 10 == 9 else train).append(toks)
            j += 1
    counts = {}
    for s in train:
        for w in s:
            counts[w] = counts.get(w, 0) + 1
    words = sorted(counts, key=lambda w: (-counts[w], w))
    ids = {w: i + 2 for i, w in enumerate(words)}   # 0 </s>, 1 <unk>
    def encode(sents, unk):
        out = [np.array([ids.get(w, 1) for w in s] + [0], dtype=np.int64) for s in sents]
        return out
    return encode(train, False), encode(held, True), len(words) + 2


def fit(tokens_list, V):
    """Sorted bigram keys (prev * (V + 1) + w, prev = V for <s>) and counts."""
    seqs = np.concatenate(tokens_list)
    starts = np.zeros(len(seqs), dtype=bool)
    lens = np.array([len(t) for t in tokens_list])
    starts[np.concatenate(([0], np.cumsum(lens)[:-1]))] = True
    prev = np.empty_like(seqs)
    prev[1:] = seqs[:-1]
    prev[starts] = V
    keys, counts = np.unique(prev * (V + 1) + seqs, return_counts=True)
    return keys, counts


def sample(keys, counts, V, n, rng):
    """Sentences from the bigram model until n tokens; all sentences advance together."""
    ctx = keys // (V + 1)
    cum = np.cumsum(counts)
    first = np.searchsorted(ctx, np.arange(V + 1), "left")
    last = np.searchsorted(ctx, np.arange(V + 1), "right")
    before = np.where(first > 0, cum[np.maximum(first - 1, 0)], 0)
    total = np.where(last > first, cum[np.maximum(last - 1, 0)] - before, 0)
    m = int(n / 25) + 64  # sentences in flight; more are drawn if they fall short
    out, have = [], 0
    while have < n:
        cur = np.full(m, V)
        alive = np.arange(m)
        toks = [[] for _ in range(m)]
        steps = []
        while alive.size:
            c = cur[alive]
            r = np.floor(rng.random(alive.size) * total[c]).astype(np.int64)
            w = keys[np.searchsorted(cum, before[c] + r, "right")] % (V + 1)
            steps.append((alive, w))
            cur[alive] = w
            alive = alive[w != 0]
        lengths = np.zeros(m, dtype=np.int64)
        for a, w in steps:
            lengths[a] += 1
        flat = np.empty(lengths.sum(), dtype=np.int64)
        offs = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        pos = offs.copy()
        for a, w in steps:
            flat[pos[a]] = w
            pos[a] += 1
        for s in range(m):
            out.append(flat[offs[s]:offs[s] + lengths[s]])
            have += lengths[s]
            if have >= n:
                break
    return out


def prob(keys, counts, V, prev, w):
    ctx_tot = np.bincount(keys // (V + 1), weights=counts, minlength=V + 1)
    k = prev * (V + 1) + w
    i = np.searchsorted(keys, k)
    hit = (i < len(keys)) & (keys[np.minimum(i, len(keys) - 1)] == k)
    c = np.where(hit, counts[np.minimum(i, len(keys) - 1)], 0)
    return np.where(ctx_tot[prev] > 0, c / np.maximum(ctx_tot[prev], 1), 0.0)


def bigram_pairs(sents, V):
    seqs = np.concatenate(sents)
    lens = np.array([len(t) for t in sents])
    starts = np.zeros(len(seqs), dtype=bool)
    starts[np.concatenate(([0], np.cumsum(lens)[:-1]))] = True
    prev = np.empty_like(seqs)
    prev[1:] = seqs[:-1]
    prev[starts] = V
    return prev, seqs, starts


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", default="data/kjv.txt")
    p.add_argument("--samples", type=int, default=1000000)
    p.add_argument("--generations", type=int, default=5)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    t0 = time.perf_counter()
    rng = np.random.default_rng(a.seed)
    train, held, V = load(a.corpus)
    hp, hw, _ = bigram_pairs(held, V)
    rows = []
    # Generation 1: whole real sentences drawn uniformly with replacement.
    lens = np.array([len(s) for s in train])
    picks = rng.integers(0, len(train), size=int(2 * a.samples / lens.mean()) + 100)
    k = np.searchsorted(np.cumsum(lens[picks]), a.samples) + 1
    text = [train[i] for i in picks[:k]]
    for g in range(1, a.generations + 1):
        keys, counts = fit(text, V)
        ph = prob(keys, counts, V, hp, hw)
        nz = ph > 0
        text = sample(keys, counts, V, a.samples, rng)
        sp, sw, st = bigram_pairs(text, V)
        ent = -np.log2(prob(keys, counts, V, sp, sw)).mean()
        inner = ~st
        distinct = np.unique(sp[inner] * (V + 1) + sw[inner]).size / inner.sum()
        rows.append({"generation": g, "heldout_ppl": float(2 ** (-np.log2(ph[nz]).mean())),
                     "zero_prob_rate": float(1 - nz.mean()), "support": int(len(keys)),
                     "vocab_survival": float(np.unique(keys % (V + 1)).size - 1) / (V - 2),
                     "entropy": float(ent), "distinct_2": float(distinct)})
    print(json.dumps({"peer": "numpy", "wall_seconds": time.perf_counter() - t0, "generations": rows}))


if __name__ == "__main__":
    main()
