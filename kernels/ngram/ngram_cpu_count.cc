// The n-gram cpu backend's count phase (kernels/ngram/ngram_cpu.h): a text's n-grams by a radix sort of packed
// (context, word) keys and a run-length pass, the counts of a drawn text from its alias cells, adding, scaling and
// weighting counts.
#include "kernels/ngram/ngram_cpu.h"

namespace ouro::kernels::ngram_cpu {

// Sorts keys below 2^bits (LSD radix sort): passes of at most 11-bit
// digits, so that a histogram and a pass's write positions stay in the
// first-level cache, O(n) per pass. With several threads each sorts a
// contiguous share into places given by the histograms of every share
// before it: the same stable order, so the result does not depend on the
// thread count.
void radix_sort(std::vector<std::uint64_t>& keys, int bits, std::vector<std::uint64_t>& tmp, int threads) {
  const std::size_t n = keys.size();
  tmp.resize(n);
  const int passes = std::max(1, (bits + 10) / 11), digit = (bits + passes - 1) / passes;
  const std::uint64_t mask = (std::uint64_t{1} << digit) - 1;
  const std::size_t buckets = std::size_t{1} << digit;
  if (n < (std::size_t{1} << 16)) threads = 1;  // not worth a team
  std::vector<std::size_t> count(buckets * static_cast<std::size_t>(threads));
#pragma omp parallel num_threads(threads)
  {
    const auto T = static_cast<std::size_t>(omp_get_num_threads()), me = static_cast<std::size_t>(omp_get_thread_num());
    const std::size_t i0 = n * me / T, i1 = n * (me + 1) / T;
    std::size_t* mine = count.data() + me * buckets;
    for (int shift = 0; shift < bits; shift += digit) {
      std::fill(mine, mine + buckets, 0);
      for (std::size_t i = i0; i < i1; ++i) ++mine[(keys[i] >> shift) & mask];
#pragma omp barrier
#pragma omp single
      {
        std::size_t run = 0;
        for (std::size_t d = 0; d < buckets; ++d)
          for (std::size_t t = 0; t < T; ++t) {
            const std::size_t here = count[t * buckets + d];
            count[t * buckets + d] = run;
            run += here;
          }
      }  // (implied barrier)
      for (std::size_t i = i0; i < i1; ++i) tmp[mine[(keys[i] >> shift) & mask]++] = keys[i];
#pragma omp barrier
#pragma omp single
      keys.swap(tmp);
    }
  }
}

// Sorted keys -> unique keys and their counts.
void run_lengths(const std::vector<std::uint64_t>& keys, Counts& out) {
  std::size_t unique = 0;
  for (std::size_t i = 0; i < keys.size(); ++i) unique += (i == 0 || keys[i] != keys[i - 1]) ? 1 : 0;
  out.key.resize(unique);
  out.c.resize(unique);
  std::size_t u = 0;
  for (std::size_t i = 0; i < keys.size();) {
    std::size_t j = i;
    while (j < keys.size() && keys[j] == keys[i]) ++j;
    out.key[u] = keys[i];
    out.c[u++] = static_cast<double>(j - i);
    i = j;
  }
}

// The n-gram counts of a text (every token with its context, the first
// from <s>), on `threads` threads.
void count_text(int order, std::uint32_t V, const TokenText& text, Counts& out, int threads) {
  if (order == 1) {
    out.uni.assign(V, 0.0);
    for (std::uint32_t w : text.tokens) out.uni[w] += 1.0;
    return;
  }
  // Keys context * (V + 1) + word, the context starting at <s> (<s> <s> for
  // order 3): key i is token i's. The buffers are kept per thread: fresh
  // ones cost a page fault per 4 KiB every generation.
  // (The loop below reads them through `key`: inside a team, the name of a
  // thread_local would be each thread's own.)
  static thread_local std::vector<std::uint64_t> keys, tmp;
  keys.resize(text.tokens.size());
  std::uint64_t* const key = keys.data();
  const auto sentences = static_cast<std::int64_t>(text.sentences());
#pragma omp parallel for schedule(static) num_threads(threads)
  for (std::int64_t s = 0; s < sentences; ++s) {
    std::uint64_t ctx = start_context(order, V);
    for (std::uint64_t i = text.start[s]; i < text.start[s + 1]; ++i) {
      const std::uint32_t w = text.tokens[i];
      key[i] = ctx * (V + 1) + w;
      ctx = next_context(order, V, ctx, w);
    }
  }
  radix_sort(keys, key_bits(V, order), tmp, threads);
  run_lengths(keys, out);
}

// a += b (accumulate).
void add_counts(int order, Counts& a, const Counts& b) {
  if (order == 1) {
    if (a.uni.empty()) a.uni.assign(b.uni.size(), 0.0);
    for (std::size_t i = 0; i < b.uni.size(); ++i) a.uni[i] += b.uni[i];
    return;
  }
  Counts m;
  std::size_t i = 0, j = 0;
  while (i < a.key.size() || j < b.key.size()) {
    if (j == b.key.size() || (i < a.key.size() && a.key[i] < b.key[j])) {
      m.key.push_back(a.key[i]), m.c.push_back(a.c[i]), ++i;
    } else if (i == a.key.size() || b.key[j] < a.key[i]) {
      m.key.push_back(b.key[j]), m.c.push_back(b.c[j]), ++j;
    } else {
      m.key.push_back(a.key[i]), m.c.push_back(a.c[i] + b.c[j]), ++i, ++j;
    }
  }
  a = std::move(m);
}

// The counts of a text drawn from a model with top level `top`, from the
// alias cells its tokens were drawn from (mle: every drawn token is one of
// the model's n-grams), in the model's sorted order: what count_text gives,
// without a sort. False if some token has no cell (kNoCell32).
bool count_cells(const Level& top, std::uint32_t V, const std::vector<std::uint32_t>& cells, Counts& out) {
  const std::size_t entries = top.ent_w.size();
  static thread_local std::vector<std::uint32_t> hist, count;
  hist.assign(2 * entries, 0);
  for (std::uint32_t x : cells) {
    if (x == kNoCell32) return false;
    ++hist[x];
  }
  // Bucket b's own cell counts its entry b, its alias cell the entry
  // alias_entry[b] of the same context.
  count.assign(entries, 0);
  for (std::size_t ci = 0; ci < top.ctx.size(); ++ci)
    for (std::uint64_t b = top.ctx_start[ci]; b < top.ctx_start[ci + 1]; ++b) {
      count[b] += hist[2 * b + 1];
      count[top.ctx_start[ci] + top.alias_entry[b]] += hist[2 * b];
    }
  std::size_t types = 0;
  for (std::uint32_t n : count) types += n > 0 ? 1 : 0;
  out.key.resize(types);
  out.c.resize(types);
  std::size_t u = 0;
  const std::uint64_t V1 = static_cast<std::uint64_t>(V) + 1;
  for (std::size_t ci = 0; ci < top.ctx.size(); ++ci)
    for (std::uint64_t e = top.ctx_start[ci]; e < top.ctx_start[ci + 1]; ++e)
      if (count[e] > 0) out.key[u] = top.ctx[ci] * V1 + top.ent_w[e], out.c[u++] = count[e];
  return true;
}

// data.tail_upsample: the counts of tail tokens (n-grams ending in one)
// times the factor. The tail as tail_mass counts it: a corpus's <unk>,
// which the truth never says, is not upweighted.
void NgramCpu::upweight_tail(Counts& k) const {
  const double f = s_.tail_factor;
  if (f == 1.0) return;
  if (s_.order == 1) {
    for (std::size_t w = 0; w < k.uni.size(); ++w) k.uni[w] *= in_tail_mass(static_cast<std::uint32_t>(w)) ? f : 1.0;
    return;
  }
  const std::uint64_t V1 = static_cast<std::uint64_t>(s_.V) + 1;
  for (std::size_t e = 0; e < k.key.size(); ++e)
    k.c[e] *= in_tail_mass(static_cast<std::uint32_t>(k.key[e] % V1)) ? f : 1.0;
}

void NgramCpu::scale_counts(Counts& k, double q) {
  for (double& x : k.uni) x *= q;
  for (double& x : k.c) x *= q;
}

// The sample's counts from its alias cells (count_cells): false when
// some token has none or none were kept.
bool NgramCpu::count_cells(const Chain& c, Counts& out) const {
  return !c.sample_cell.empty() && c.sample_cell.size() == c.sample.tokens.size() &&
         ngram_cpu::count_cells(c.model->top, s_.V, c.sample_cell, out);
}

}  // namespace ouro::kernels::ngram_cpu
