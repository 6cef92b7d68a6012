// The n-gram family's entries for sim/families/family.h, and its truth.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kernels/ngram/ngram_backend.h"
#include "sim/families/family.h"

namespace ouro {

// The batch description with the truth filled in: a corpus (its training
// sentences, unigram frequencies, word types, tail set and held-out
// sentences) or an order-1 Zipf distribution (with a held-out sample of
// metrics.heldout tokens).
kernels::NgramBatchSpec make_ngram_spec(const PointConfig& c, int threads);

std::vector<std::string> ngram_metric_names();
std::optional<double> ngram_theory(const PointConfig& c, int metric, int generation);
double ngram_point_bytes(const PointConfig& c);
// What of a point the cuda backend does not run yet, or empty.
std::string ngram_cuda_gap(const PointConfig& c);
std::unique_ptr<FamilyRun> make_ngram_run(const PointConfig& c, const std::string& backend, int threads,
                                          ChainBlock block);

}  // namespace ouro
