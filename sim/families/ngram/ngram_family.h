// The n-gram family (model.family: ngram): language models of order 1 to 3 (mle, add-k, interpolated Kneser-Ney)
// retrained on their own text, against a corpus or a Zipf truth (docs/families/ngram.md).
#pragma once

#include <string>

#include "kernels/ngram/ngram_backend.h"
#include "sim/engine/config.h"
#include "sim/families/family.h"

namespace ouro {

// What the family reads of its own keys.
struct NgramSettings : FamilySettings {
  int order = 1;                  // model.order
  std::string smoothing = "mle";  // model.smoothing: mle | add_k | kneser_ney
  double add_k = 1.0;             // model.k
  double discount = 0.75;         // model.discount
  double temperature = 1.0;       // sampler.temperature
  int top_k = 0;                  // sampler.top_k
  double top_p = 1.0;             // sampler.top_p
  std::string corpus;             // truth.corpus: the text file's path ("" for a zipf truth)
  int zipf_vocab = 0;             // truth.zipf.vocab
  double zipf_exponent = 0.0;     // truth.zipf.exponent
  int tail_count = 5;             // metrics.tail_count
  double tail_share = 0.1;        // metrics.tail_share
  int heldout = 10000;            // metrics.heldout: held-out tokens of a zipf truth
};

// The batch description with the truth filled in: a corpus (its training sentences, unigram frequencies, word
// types, tail set and held-out sentences) or an order-1 Zipf distribution (with a held-out sample of
// metrics.heldout tokens), for all of the point's chains.
kernels::NgramBatchSpec make_ngram_spec(const PointConfig& c, int threads);

}  // namespace ouro
