// The corpus reader: tokenizer rules, the fixed split, the vocabulary, the
// refusal of what is not UTF-8 text in a regular file, and a checksum of the
// King James token stream (so that any change to the tokenizer, the split or
// the extraction shows).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
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

// The message of the CorpusError that f throws ("" when it throws none).
template <class F>
std::string refusal(F&& f) {
  try {
    f();
  } catch (const CorpusError& e) {
    return e.what();
  }
  return "";
}

// Twelve good lines (enough sentences for a corpus), so that only the bad bytes after them can be refused.
const std::string kGoodLines = [] {
  std::string t;
  for (int i = 0; i < 12; ++i) t += "In the beginning.\n";
  return t;
}();

// A file that is not UTF-8 text is refused, naming the file, the byte offset and line of the first bad byte (the
// first byte of a bad sequence) and what is wrong there: a NUL byte, or which rule of Unicode's Table 3-7 the bytes
// break.
TEST(Corpus, BytesThatAreNotUtf8TextAreRefusedAtTheirOffset) {
  struct Case {
    std::string tail;  // after kGoodLines
    std::size_t at;    // the offset of the bad byte in tail
    std::string what;
  };
  const Case cases[] = {
      {std::string("abc\0def\n", 8), 3, "a NUL byte"},
      {"caf\xC3\xA9 \xFF x\n", 6, "not valid UTF-8 (byte 0xFF: never used in UTF-8)"},
      {"\x80x\n", 0, "not valid UTF-8 (byte 0x80: a continuation byte with no lead byte)"},
      {"x\xC0\xAF\n", 1, "not valid UTF-8 (byte 0xC0: an overlong encoding)"},  // '/' in two bytes
      {"x\xE0\x80\xAF\n", 1, "not valid UTF-8 (byte 0xE0: an overlong encoding)"},
      {"x\xF0\x8F\xBF\xBF\n", 1, "not valid UTF-8 (byte 0xF0: an overlong encoding)"},
      {"x\xED\xA0\x80\n", 1, "not valid UTF-8 (byte 0xED: a surrogate, U+D800..U+DFFF)"},
      {"x\xF4\x90\x80\x80\n", 1, "not valid UTF-8 (byte 0xF4: a code point above U+10FFFF)"},
      {"x\xF5\x80\x80\x80\n", 1, "not valid UTF-8 (byte 0xF5: a code point above U+10FFFF)"},
      {"x\xE2\x82y\n", 1, "not valid UTF-8 (byte 0xE2: a sequence cut short)"},
      {"last \xE2\x82", 5, "not valid UTF-8 (byte 0xE2: a sequence cut short by the end of the file)"},
      {"last \xF0\x9F\x98", 5, "not valid UTF-8 (byte 0xF0: a sequence cut short by the end of the file)"},
  };
  for (const Case& c : cases) {
    const std::string path = write("bad", kGoodLines + c.tail).string();
    const std::string message = refusal([&] { load_corpus(path); });
    SCOPED_TRACE(message);
    EXPECT_NE(message.find("\"" + path + "\""), std::string::npos);
    EXPECT_NE(message.find(c.what + " at byte offset " + std::to_string(kGoodLines.size() + c.at) + " (line 13)"),
              std::string::npos);
  }
  // Any alignment (the check takes eight ASCII bytes at once), the first and the last byte.
  for (std::size_t k = 0; k < 17; ++k) {
    const std::string text = kGoodLines + std::string(k, 'a') + "\xFF" + "b\n";
    EXPECT_NE(refusal([&] {
                parse_corpus(text, "t");
              }).find("at byte offset " + std::to_string(kGoodLines.size() + k) + " (line 13)"),
              std::string::npos)
        << k;
  }
  EXPECT_NE(refusal([&] {
              parse_corpus(std::string(1, '\0') + kGoodLines, "t");
            }).find("a NUL byte at byte offset 0 (line 1)"),
            std::string::npos);
  EXPECT_NE(refusal([&] {
              parse_corpus(kGoodLines + std::string(1, '\0'), "t");
            }).find("a NUL byte at byte offset " + std::to_string(kGoodLines.size()) + " (line 13)"),
            std::string::npos);
}

// Every length of UTF-8 at the edges of its ranges is text: U+0080, U+07FF, U+0800, U+D7FF (below the surrogates),
// U+E000 (above them), U+FFFF, U+10000, U+10FFFF; a word keeps its bytes whole.
TEST(Corpus, Utf8AtTheEdgesOfItsRangesIsAccepted) {
  const std::string word =
      "a\xC2\x80\xDF\xBF\xE0\xA0\x80\xED\x9F\xBF\xEE\x80\x80\xEF\xBF\xBF\xF0\x90\x80\x80\xF4\x8F\xBF\xBF";
  std::string text;
  for (int i = 0; i < 12; ++i) text += word + " b\n";
  const Corpus c = parse_corpus(text, "t");
  EXPECT_NE(std::find(c.vocab.begin(), c.vocab.end(), word), c.vocab.end());
}

// A path that is not a regular file is refused by what it is, without opening it (a FIFO with no writer would
// block the open: if it ever does, the test writes to it after 10 s so that it returns, and fails); an empty file
// and one without enough sentences are refused too.
TEST(Corpus, PathsThatAreNotTextFilesAreRefusedByName) {
  auto expect = [](const std::string& path, const std::string& what) {
    const std::string message = refusal([&] { load_corpus(path); });
    EXPECT_NE(message.find("\"" + path + "\""), std::string::npos) << message;
    EXPECT_NE(message.find(what), std::string::npos) << message;
  };
  expect("/nonexistent/corpus.txt", "cannot read corpus file \"/nonexistent/corpus.txt\": No such file or directory");
  expect(fs::temp_directory_path().string(), "a directory, not a regular file");
  expect("/dev/null", "a character device, not a regular file");
  expect(write("empty", "").string(), "is empty (0 bytes)");
  expect(write("blank", "\n \n").string(), "holds no sentence");
  expect(write("short", "one line\n").string(), "at least 10 are needed");
  const fs::path fifo = fs::temp_directory_path() / ("ouroboros-corpus-fifo-" + std::to_string(getpid()));
  fs::remove(fifo);
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  auto done = std::async(std::launch::async, [&] { return refusal([&] { load_corpus(fifo.string()); }); });
  if (done.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    ADD_FAILURE() << "load_corpus blocked on a FIFO";
    const int fd = open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
    if (fd >= 0) close(fd);
  }
  const std::string message = done.get();
  EXPECT_NE(message.find("a FIFO (named pipe), not a regular file"), std::string::npos) << message;
  fs::remove(fifo);
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
