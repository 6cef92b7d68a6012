#include "sim/corpus.h"

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string_view>

#include <fmt/format.h>

namespace ouro {
namespace fs = std::filesystem;

namespace {

// ASCII letters and digits (std::isalnum in the "C" locale, which ouroboros
// never changes) and every byte of a multi-byte UTF-8 character.
bool word_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}
char lower_ascii(char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c); }

// Calls f(token) for every token of a line (see corpus.h). A word with an
// upper-case letter is lower-cased into a reused buffer, the others are
// passed as they stand in the line: no allocation per token.
template <class F>
void for_each_token(std::string_view line, std::string& cur, F&& f) {
  const std::size_t n = line.size();
  for (std::size_t i = 0; i < n;) {
    const auto c = static_cast<unsigned char>(line[i]);
    if (word_byte(c)) {
      // A word runs over word bytes, and over an apostrophe between two of
      // them (lord's).
      std::size_t j = i + 1;
      while (j < n && (word_byte(static_cast<unsigned char>(line[j])) ||
                       (line[j] == '\'' && j + 1 < n && word_byte(static_cast<unsigned char>(line[j + 1])))))
        ++j;
      const std::string_view word = line.substr(i, j - i);
      if (std::none_of(word.begin(), word.end(), [](char ch) { return ch >= 'A' && ch <= 'Z'; })) {
        f(word);  // already lower case: no copy
      } else {
        cur.resize(word.size());
        std::transform(word.begin(), word.end(), cur.begin(), [](char ch) { return lower_ascii(ch); });
        f(std::string_view(cur));
      }
      i = j;
      continue;
    }
    if (c > 0x20) {  // not a space (nor a control character): a one-byte token
      const char one = static_cast<char>(c);
      f(std::string_view(&one, 1));
    }
    ++i;
  }
}

// Token texts to provisional ids (in order of first appearance): open
// addressing on an FNV-1a hash, the table at most half full. The keys view
// the type texts, which a deque never moves.
class TypeTable {
 public:
  TypeTable() : slot_(1 << 16, 0) {}

  // The id of t, and whether it is new (then its text is kept).
  std::uint32_t find_or_add(std::string_view t, bool& added) {
    const std::uint64_t h = hash(t);
    const std::size_t mask = slot_.size() - 1;
    for (std::size_t at = h & mask;; at = (at + 1) & mask) {
      const std::uint32_t s = slot_[at];
      if (s == 0) break;
      if (view_[s - 1] == t) {
        added = false;
        return s - 1;
      }
    }
    added = true;
    text_.emplace_back(t);
    view_.emplace_back(text_.back());
    const auto id = static_cast<std::uint32_t>(text_.size() - 1);
    if (2 * text_.size() > slot_.size())
      grow();
    else
      place(h, id);
    return id;
  }

  const std::deque<std::string>& texts() const { return text_; }

 private:
  static std::uint64_t hash(std::string_view t) {
    std::uint64_t h = 1469598103934665603ull;
    for (const char ch : t) h = (h ^ static_cast<unsigned char>(ch)) * 1099511628211ull;
    return h;
  }
  void place(std::uint64_t h, std::uint32_t id) {
    const std::size_t mask = slot_.size() - 1;
    std::size_t at = h & mask;
    while (slot_[at] != 0) at = (at + 1) & mask;
    slot_[at] = id + 1;
  }
  void grow() {
    slot_.assign(2 * slot_.size(), 0);
    for (std::uint32_t id = 0; id < view_.size(); ++id) place(hash(view_[id]), id);
  }

  std::vector<std::uint32_t> slot_;  // id + 1, 0 for empty
  std::deque<std::string> text_;
  std::vector<std::string_view> view_;  // of text_, for the comparisons
};

}  // namespace

std::vector<std::string> tokenize(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  for_each_token(line, cur, [&](std::string_view t) { out.emplace_back(t); });
  return out;
}

Corpus load_corpus(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw CorpusError(fmt::format("cannot read corpus file \"{}\" (not a regular file)", path));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CorpusError(fmt::format("cannot read corpus file \"{}\"", path));
  std::string text(static_cast<std::size_t>(fs::file_size(path, ec)), '\0');
  if (ec) throw CorpusError(fmt::format("cannot read corpus file \"{}\": {}", path, ec.message()));
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad() || in.gcount() != static_cast<std::streamsize>(text.size()))
    throw CorpusError(fmt::format("cannot read corpus file \"{}\"", path));
  return parse_corpus(text, path);
}

Corpus parse_corpus(const std::string& text, const std::string& source) {
  // Tokens as provisional ids (in order of first appearance), sentences split
  // 1 in 10, training counts per provisional id.
  TypeTable types;
  std::vector<std::uint64_t> type_count;
  constexpr std::uint32_t kEnd = 0xFFFFFFFFu;  // sentence end, in the provisional streams
  std::vector<std::uint32_t> train_ids, heldout_ids, line_ids;
  std::size_t j = 0, train_sentences = 0, heldout_sentences = 0;
  std::string cur;
  for (std::size_t pos = 0; pos < text.size();) {
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string_view line(text.data() + pos, eol - pos);
    pos = eol + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    line_ids.clear();
    for_each_token(line, cur, [&](std::string_view t) {
      bool added;
      line_ids.push_back(types.find_or_add(t, added));
      if (added) type_count.push_back(0);
    });
    if (line_ids.empty()) continue;
    const bool held = j % 10 == 9;
    auto& ids = held ? heldout_ids : train_ids;
    ids.insert(ids.end(), line_ids.begin(), line_ids.end());
    ids.push_back(kEnd);
    if (held) {
      ++heldout_sentences;
    } else {
      ++train_sentences;
      for (auto id : line_ids) ++type_count[id];
    }
    ++j;
  }
  if (j == 0) throw CorpusError(fmt::format("corpus file \"{}\" holds no sentence (no non-empty line)", source));
  if (train_sentences == 0 || heldout_sentences == 0)
    throw CorpusError(fmt::format("corpus file \"{}\" has {} sentence(s); at least 10 are needed (every 10th is held out)",
                                  source, j));
  // Vocabulary: training types by decreasing count, ties by bytes.
  const std::deque<std::string>& type_text = types.texts();
  std::vector<std::uint32_t> order;
  for (std::uint32_t t = 0; t < type_text.size(); ++t)
    if (type_count[t] > 0) order.push_back(t);
  std::sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
    return type_count[a] != type_count[b] ? type_count[a] > type_count[b] : type_text[a] < type_text[b];
  });
  Corpus c;
  c.source = source;
  c.vocab = {"</s>", "<unk>"};
  c.train_count = {train_sentences, 0};
  std::vector<std::uint32_t> final_id(type_text.size(), kUnkToken);  // held-out-only types: <unk>
  for (std::uint32_t t : order) {
    final_id[t] = static_cast<std::uint32_t>(c.vocab.size());
    c.vocab.push_back(type_text[t]);
    c.train_count.push_back(type_count[t]);
  }
  auto emit = [&](const std::vector<std::uint32_t>& ids, Sentences& out) {
    out.tokens.reserve(ids.size());
    out.start.push_back(0);
    for (auto id : ids) {
      out.tokens.push_back(id == kEnd ? kEndToken : final_id[id]);
      if (id == kEnd) out.start.push_back(out.tokens.size());
    }
  };
  emit(train_ids, c.train);
  emit(heldout_ids, c.heldout);
  return c;
}

const Corpus& load_corpus_cached(const std::string& path) {
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<Corpus>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = cache[path];
  if (!slot) slot = std::make_unique<Corpus>(load_corpus(path));
  return *slot;
}

std::string kjv_path() {
  const char* env = std::getenv("OUROBOROS_SOURCE_DIR");
  const fs::path dir = fs::path(env && *env ? env : OUROBOROS_SOURCE_DIR) / "data";
  const fs::path path = dir / "kjv.txt";
  if (!fs::exists(path))
    throw CorpusError(fmt::format("the King James text is not cached at {}: scripts/setup.sh extracts it from "
                                  "Debian's bible-kjv", path.string()));
  return path.string();
}

std::uint64_t token_checksum(const Corpus& c) {
  std::uint64_t h = 1469598103934665603ull;
  auto mix = [&](std::uint32_t v) {
    for (int b = 0; b < 4; ++b) {
      h ^= (v >> (8 * b)) & 0xFF;
      h *= 1099511628211ull;
    }
  };
  for (auto v : c.train.tokens) mix(v);
  for (auto v : c.heldout.tokens) mix(v);
  return h;
}

}  // namespace ouro
