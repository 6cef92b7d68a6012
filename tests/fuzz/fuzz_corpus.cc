// libFuzzer target for the corpus reader, parse_corpus (sim/families/ngram/corpus.h): the
// tokenizer, the 1-in-10 held-out split and the vocabulary, on the bytes a
// corpus file would hold.
//
// CorpusError (empty, not UTF-8 text, no sentence, fewer than 10) is the one
// expected failure; any other exception is a finding (abort), and so is
// anything the sanitizers see. An accepted corpus is checked against the invariants the n-gram family
// relies on, and against the same text tokenized in 3 stretches at once.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "sim/families/ngram/corpus.h"

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_corpus: %s\n", what);
  std::abort();
}

// Sentences: start[0] = 0, increasing, the last is the size, every sentence
// non-empty and ending with </s> (and </s> nowhere else), every id below V.
void check_text(const ouro::Sentences& s, std::size_t vocab) {
  if (s.start.empty() || s.start.front() != 0 || s.start.back() != s.tokens.size()) fail("bad sentence starts");
  for (std::size_t i = 1; i < s.start.size(); ++i) {
    if (s.start[i] <= s.start[i - 1] + 1) fail("an empty sentence");
    for (auto k = s.start[i - 1]; k < s.start[i]; ++k) {
      const auto t = s.tokens[k];
      if (t >= vocab) fail("a token id outside the vocabulary");
      if ((t == ouro::kEndToken) != (k + 1 == s.start[i])) fail("</s> not exactly at the end of a sentence");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const ouro::Corpus c = ouro::parse_corpus(text, "fuzz", 1);
    const std::size_t V = c.vocab.size();
    if (V < 3 || c.train_count.size() != V || c.vocab[0] != "</s>" || c.vocab[1] != "<unk>" || c.train_count[1] != 0)
      fail("bad vocabulary");
    for (std::size_t w = 2; w < V; ++w) {
      if (c.train_count[w] == 0 || c.vocab[w].empty()) fail("a vocabulary word with no training count");
      if (w > 2 && c.train_count[w] > c.train_count[w - 1]) fail("vocabulary not by decreasing count");
    }
    check_text(c.train, V);
    check_text(c.heldout, V);
    const std::size_t sentences = c.train.start.size() - 1 + c.heldout.start.size() - 1;
    if (c.heldout.start.size() - 1 != sentences / 10) fail("not every 10th sentence held out");
    if (c.train_count[0] != c.train.start.size() - 1) fail("</s> count is not the training sentence count");
    ouro::Corpus c3;
    try {
      c3 = ouro::parse_corpus(text, "fuzz", 3);
    } catch (const ouro::CorpusError&) {
      fail("three stretches refuse what one pass accepts");
    }
    if (c3.vocab != c.vocab || c3.train_count != c.train_count || c3.train.tokens != c.train.tokens ||
        c3.train.start != c.train.start || c3.heldout.tokens != c.heldout.tokens || c3.heldout.start != c.heldout.start)
      fail("three stretches do not give the one-pass result");
  } catch (const ouro::CorpusError&) {
    // The expected refusal.
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_corpus: unexpected exception (not CorpusError): %s\n", e.what());
    std::abort();
  }
  return 0;
}
