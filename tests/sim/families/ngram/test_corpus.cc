// The corpus reader: tokenizer rules, the fixed split, the vocabulary, and a
// checksum of the King James token stream (so that any change to the
// tokenizer, the split or the extraction shows).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "sim/families/ngram/corpus.h"

namespace {

using namespace ouro;
namespace fs = std::filesystem;

TEST(Tokenizer, LowerCasesWordsAndSplitsPunctuation) {
  EXPECT_EQ(tokenize("In the beginning God created; the LORD's house."),
            (std::vector<std::string>{"in", "the", "beginning", "god", "created", ";", "the", "lord's", "house", "."}));
  EXPECT_EQ(tokenize("  'Hello,' (he said)  "),
            (std::vector<std::string>{"'", "hello", ",", "'", "(", "he", "said", ")"}));
  EXPECT_EQ(tokenize("Caf\xc3\xa9 42 x-y"), (std::vector<std::string>{"caf\xc3\xa9", "42", "x", "-", "y"}));
  EXPECT_TRUE(tokenize(" \t ").empty());
  // Apostrophes: inside a word (once or more) it belongs to it; doubled,
  // leading or trailing it is a token of its own.
  EXPECT_EQ(tokenize("a'b'C lords' 'tis a''b x'"),
            (std::vector<std::string>{"a'b'c", "lords", "'", "'", "tis", "a", "'", "'", "b", "x", "'"}));
  // A control byte splits words and is no token.
  EXPECT_EQ(tokenize(std::string("ABC") + '\x01' + "dEf"), (std::vector<std::string>{"abc", "def"}));
}

fs::path write(const std::string& name, const std::string& text) {
  const fs::path p = fs::temp_directory_path() / ("ouroboros-corpus-" + name + "-" + std::to_string(getpid()));
  std::ofstream(p) << text;
  return p;
}

TEST(Corpus, EveryTenthSentenceIsHeldOutAndUnknownWordsBecomeUnk) {
  std::string text;
  for (int i = 0; i < 20; ++i) text += (i == 9 ? "a zebra b\n" : (i % 2 ? "a b\n\n" : "b c c\n"));
  const Corpus c = load_corpus(write("split", text).string());
  ASSERT_EQ(c.train.sentences(), 18u);
  ASSERT_EQ(c.heldout.sentences(), 2u);
  // Vocabulary: </s>, <unk>, then by training count: c (18), b (18) ... ties by bytes.
  EXPECT_EQ(c.vocab[0], "</s>");
  EXPECT_EQ(c.vocab[1], "<unk>");
  EXPECT_EQ(c.train_count[0], 18u);  // one end marker per training sentence
  // Held-out sentence 0 is line 10 ("a zebra b"): zebra is not in the training split.
  const auto& h = c.heldout;
  std::vector<std::string> first;
  for (auto i = h.start[0]; i < h.start[1]; ++i) first.push_back(c.vocab[h.tokens[i]]);
  EXPECT_EQ(first, (std::vector<std::string>{"a", "<unk>", "b", "</s>"}));
}

TEST(Corpus, BadFilesAreRefusedByName) {
  EXPECT_THROW(load_corpus("/nonexistent/corpus.txt"), CorpusError);
  EXPECT_THROW(load_corpus(write("empty", "\n \n").string()), CorpusError);
  EXPECT_THROW(load_corpus(fs::temp_directory_path().string()), CorpusError);  // a directory
  EXPECT_THROW(load_corpus(write("short", "one line\n").string()), CorpusError);
}

// The text is tokenized in stretches of whole lines at once: any number of
// them gives the one-pass result (sentence numbers, and so the split, run
// across stretches; a type's provisional id depends on the stretch, its
// final id must not).
void expect_same(const Corpus& a, const Corpus& b) {
  EXPECT_EQ(a.vocab, b.vocab);
  EXPECT_EQ(a.train_count, b.train_count);
  EXPECT_EQ(a.train.tokens, b.train.tokens);
  EXPECT_EQ(a.train.start, b.train.start);
  EXPECT_EQ(a.heldout.tokens, b.heldout.tokens);
  EXPECT_EQ(a.heldout.start, b.heldout.start);
}

TEST(Corpus, StretchesGiveTheOnePassResult) {
  // Empty and blank lines, CRLF, no final newline, words that first appear
  // in a later stretch, held-out-only words.
  std::string text;
  for (int i = 0; i < 97; ++i)
    text += (i % 7 == 3 ? "\n \t\n" : "") + std::string("Word") + std::to_string(i % 13) + " and, w" +
            std::to_string(i * i % 31) + (i % 5 ? "\r\n" : "\n");
  text += "last line without newline";
  const Corpus one = parse_corpus(text, "t", 1);
  for (int parts : {2, 3, 5, 16, 200}) {
    SCOPED_TRACE(parts);
    expect_same(one, parse_corpus(text, "t", parts));
  }
  const Corpus kjv = load_corpus(kjv_path());
  std::ifstream in(kjv_path(), std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (int parts : {1, 2, 7}) {
    SCOPED_TRACE(parts);
    expect_same(kjv, parse_corpus(bytes, kjv_path(), parts));
  }
}

TEST(Corpus, KingJamesTokenStreamIsPinned) {
  const Corpus c = load_corpus(kjv_path());
  EXPECT_EQ(c.train.sentences() + c.heldout.sentences(), 31102u);  // verses
  EXPECT_EQ(c.heldout.sentences(), 3110u);
  EXPECT_EQ(c.vocab[2], ",");
  EXPECT_EQ(c.vocab.size(), 12359u);
  EXPECT_EQ(c.train.tokens.size(), 849757u);
  EXPECT_EQ(token_checksum(c), 6489715647392629882ull);
}

}  // namespace
