// Real text for the n-gram family: reading a corpus (one sentence per line,
// UTF-8), the tokenizer, the fixed train / held-out split and the vocabulary.
//
// Tokenizer (documented in README, "N-gram language models"): ASCII letters
// are lower-cased; a token is a maximal run of letters, digits, apostrophes
// between two such characters, and bytes >= 0x80 (so UTF-8 words stay whole); every other
// non-space ASCII character (punctuation) is a token of its own; whitespace
// separates. A line is a sentence; empty lines are skipped.
//
// Split: sentence j (0-based, in file order, empty lines not counted) is
// held out when j mod 10 == 9, else it is training text.
//
// Vocabulary: id 0 is the end marker </s>, id 1 is <unk>, then the training
// split's word types by decreasing training count (ties by byte order).
// Held-out words outside it become <unk>. The begin marker <s> is context
// only and is never predicted.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/ngram/ngram_backend.h"

namespace ouro {

class CorpusError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline constexpr std::uint32_t kEndToken = 0;
inline constexpr std::uint32_t kUnkToken = 1;

// Sentences as token ids, each ending with kEndToken, concatenated (the
// n-gram family's text type, kernels/ngram/ngram_backend.h).
using Sentences = kernels::TokenText;

struct Corpus {
  std::string source;                      // what was read (path)
  std::vector<std::string> vocab;          // id -> token text
  std::vector<std::uint64_t> train_count;  // id -> count in the training split (</s> included)
  Sentences train, heldout;
};

std::vector<std::string> tokenize(const std::string& line);

// Reads and splits a corpus file; CorpusError (naming the file) if it is not
// a regular file (a directory, a FIFO, a device: said without opening it, so
// a FIFO never blocks), cannot be read, or parse_corpus refuses its bytes.
Corpus load_corpus(const std::string& path);

// What load_corpus does with the file's bytes, for text already in memory
// (the fuzz target tests/fuzz/fuzz_corpus.cc); `source` is what the errors
// name and what Corpus::source records. CorpusError if the text is empty, is
// not valid UTF-8 or holds a NUL byte (naming the byte offset and line of the
// first bad byte, and what is wrong there), or yields no training or no
// held-out sentence. The text is tokenized in `parts` stretches of whole
// lines at once (0: one per MiB, at most one per thread); the result does not
// depend on how many.
Corpus parse_corpus(const std::string& text, const std::string& source, int parts = 0);

// load_corpus, read once per path and process (sweep points share it).
const Corpus& load_corpus_cached(const std::string& path);

// The cached King James text (data/kjv.txt under the source folder, or under
// $OUROBOROS_SOURCE_DIR; one verse per line), extracted from Debian's
// bible-kjv by scripts/setup.sh. CorpusError if it is missing.
std::string kjv_path();

// FNV-1a (64-bit) over the training and held-out token ids, in order: the
// tokenizer-and-split checksum a test pins.
std::uint64_t token_checksum(const Corpus& c);

}  // namespace ouro
