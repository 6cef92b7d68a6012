// The exact loss of word types under Wright-Fisher resampling: the n-gram family's theory column for
// vocab_survival and missing_mass (docs/families/ngram.md, "Theory").
//
// An order-1 mle model refitted under `replace` to n tokens drawn from the previous model is a Wright-Fisher
// population. Type w's count is a Markov chain of its own on 0..n: c_1 ~ Binomial(n, p_w) (generation 1 draws from
// the truth), and given all that came before, c_{t+1} ~ Binomial(n, c_t / n), a law of c_t alone; 0 is absorbing. With
// a_s[k] the probability that a count k is lost within s generations,
//   a_0[k] = [k = 0],  a_{s+1}[k] = sum_j Binomial(n, k / n)[j] a_s[j],
//   P(w dead at t) = sum_k Binomial(n, p_w)[k] a_{t-1}[k]  (t >= 1),
// and, by linearity over the V types,
//   E[vocab_survival_t] = 1 - (1 / V) sum_w P(w dead at t),  E[missing_mass_t] = sum_w p_w P(w dead at t).
// Computed once: the vectors a_s (at most O(n^2) per generation, and backwards, so that a type only takes a dot
// product per generation), then each distinct p_w. Probabilities below 1e-40 are dropped: a binomial's terms from
// its mode outwards until one is (it is unimodal), a_s[k] from the first k where it is (it decreases in k). Each
// generation adds at most (n + 2) 1e-40 to the absolute error, so beside rounding (relative 1e-12 or better) the
// values at generation t are off by less than t (n + 2) 1e-40 (keeping every term down to 1e-300 instead changes no
// bit of them for the shipped experiments' truths, at several times the cost).
//
// Suresh, Thangaraj & Khandavally (2024, "Rate of model collapse in recursive training") approximate the survival by
// 1 - exp(-n p_w g_t), g_1 = 1, g_{t+1} = 1 - exp(-g_t): each binomial replaced by a Poisson law of the same mean
// (a Galton-Watson process with Poisson(1) offspring). That is not the expectation: at V = 50 types of a Zipf law of
// exponent 0.8, n = 60 and t = 40 it gives 0.0534 for vocab_survival, the exact value being 0.0604.
#pragma once

#include <cstdint>
#include <vector>

namespace ouro {

// Binomial(n, p)'s probability of k, q = 1 - p given separately (exact where the caller knows it, as for p = k / n),
// by Loader's saddle-point form (Loader 2000, "Fast and accurate computation of binomial probabilities"): relative
// error near rounding for any n, where ln C(n, k) + k ln p + (n - k) ln q loses about n ln n ulps.
double binomial_pmf(std::int64_t n, double p, double q, std::int64_t k);

// The expectations above at t = 0..generations for a truth p (every type a word type) and n tokens per generation,
// as far as `budget` terms (a few nanoseconds each) go: the vectors a_s up to the first generation that would take
// more, and then the types' dot products, or generation 1 alone (P(dead at 1) = (1 - p)^n needs no chain) when
// those take more. V = 1000, n = 2000 and 100 generations take 7 10^7 terms, n = 10^6 and 100 generations 2.5 10^8;
// with n = 10^5 and 300 generations the budget of 10^9 ends the a_s at generation 192 (5 s).
struct WrightFisherLoss {
  std::vector<double> survival;  // E[vocab_survival_t]
  std::vector<double> missing;   // E[missing_mass_t]
};
inline constexpr double kWrightFisherBudget = 1e9;
WrightFisherLoss wright_fisher_loss(const std::vector<double>& p, std::int64_t n, int generations,
                                    double budget = kWrightFisherBudget);

}  // namespace ouro
