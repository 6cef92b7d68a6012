// The n-gram cpu backend's fit phase (kernels/ngram/ngram_cpu.h): a model's tables from sorted counts, a level at a
// time, contexts in parallel (the tables do not depend on the thread count).
#include "kernels/ngram/ngram_cpu.h"

namespace ouro::kernels::ngram_cpu {

void Level::build(const Counts& counts, std::uint32_t V, double d, bool dense, bool with_alias, int threads) {
  const std::size_t n = counts.key.size();
  const std::uint64_t V1 = static_cast<std::uint64_t>(V) + 1;
  ent_ctx.resize(n);
  ent_w.resize(n);
  ent_c.resize(n);
  const auto entries = static_cast<std::int64_t>(n);
  if (n < (std::size_t{1} << 14)) threads = 1;  // not worth a team
#pragma omp parallel for schedule(static) num_threads(threads)
  for (std::int64_t i = 0; i < entries; ++i) {
    const std::uint64_t v = counts.key[i] / V1;
    ent_ctx[i] = v;
    ent_w[i] = static_cast<std::uint32_t>(counts.key[i] - v * V1);
    ent_c[i] = counts.c[i];
  }
  ctx.clear(), ctx_start.clear();
  for (std::size_t i = 0; i < n; ++i)
    if (i == 0 || ent_ctx[i] != ent_ctx[i - 1]) ctx.push_back(ent_ctx[i]), ctx_start.push_back(i);
  ctx_start.push_back(n);
  const auto contexts = static_cast<std::int64_t>(ctx.size());
  ctx_total.resize(ctx.size());
  ent_cum.resize(n);
  ent_cumd.resize(n);
#pragma omp parallel for schedule(dynamic, 256) num_threads(threads)
  for (std::int64_t ci = 0; ci < contexts; ++ci) {
    const std::uint64_t lo = ctx_start[ci];
    ctx_total[ci] = build_context(&ent_c[lo], ctx_start[ci + 1] - lo, d, &ent_cum[lo], &ent_cumd[lo]);
  }
  // Alias tables where every count is a whole number (weighted counts,
  // from data.tail_upsample or data.age_decay, need not be: then sampling
  // searches the cumulative counts).
  alias.clear();
  alias_entry.clear();
  with_alias = with_alias &&
               std::all_of(ent_c.begin(), ent_c.end(), [](double c) { return c == std::floor(c) && c < 0x1.0p53; });
  for (std::size_t ci = 0; with_alias && ci < ctx.size(); ++ci)
    with_alias = alias_fits(ctx_total[ci], ctx_start[ci + 1] - ctx_start[ci]);
  if (with_alias) {
    alias.resize(n);
    alias_entry.resize(n);
    units.resize(n);
    stack.resize(n);
#pragma omp parallel for schedule(dynamic, 256) num_threads(threads)
    for (std::int64_t ci = 0; ci < contexts; ++ci) {
      const std::uint64_t lo = ctx_start[ci];
      build_alias(&ent_w[lo], &ent_c[lo], ctx_start[ci + 1] - lo, ctx_total[ci], &alias[lo], &alias_entry[lo],
                  &units[lo], &stack[lo]);
    }
  }
  ctx_of.clear();
  if (dense) {
    ctx_of.assign(V + 1, -1);
    for (std::size_t i = 0; i < ctx.size(); ++i) ctx_of[ctx[i]] = static_cast<std::int32_t>(i);
  }
}

void Model::build(const NgramBatchSpec& s, const Counts& counts, int threads) {
  const double d = s.discount;
  const std::uint32_t V = s.V;
  if (s.order == 1) {
    uni = counts.uni;
  } else {
    // Alias tables where counts are sampled directly (mle, add_k).
    top.build(counts, V, d, s.order == 2, s.smoothing != Smoothing::kKneserNey, threads);
    // The level below the top: continuation counts N(. v w), the number of
    // distinct u seen before v w (order 3, kneser_ney), and N(. w) over the
    // lowest context level's types.
    const Level* lowest = &top;
    if (s.order == 3 && s.smoothing == Smoothing::kKneserNey) {
      std::vector<std::uint64_t> keys;
      keys.reserve(top.ent_w.size());
      for (std::size_t ci = 0; ci + 1 < top.ctx_start.size(); ++ci)
        for (std::uint64_t e = top.ctx_start[ci]; e < top.ctx_start[ci + 1]; ++e)
          keys.push_back((top.ctx[ci] % (V + 1)) * (V + 1) + top.ent_w[e]);
      std::vector<std::uint64_t> tmp;
      radix_sort(keys, key_bits(V, 2), tmp, threads);
      Counts cont;
      run_lengths(keys, cont);
      mid.build(cont, V, d, true, false, threads);
      lowest = &mid;
    }
    uni.assign(V, 0.0);
    for (std::uint32_t w : lowest->ent_w) uni[w] += 1.0;
  }
  uni_cum.resize(V);
  uni_cumd.resize(V);
  build_lowest(uni.data(), V, d, uni_cum.data(), uni_cumd.data(), uni_total, uni_types);
}

}  // namespace ouro::kernels::ngram_cpu
