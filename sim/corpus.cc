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
#include <unordered_map>

#include <fmt/format.h>

namespace ouro {
namespace fs = std::filesystem;

namespace {

// ASCII letters and digits (std::isalnum in the "C" locale, which ouroboros
// never changes) and every byte of a multi-byte UTF-8 character.
bool word_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}
char lower_ascii(unsigned char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c); }

// Calls f(token) for every token of a line (see corpus.h); word tokens are
// lower-cased into a reused buffer, so there is no allocation per token.
template <class F>
void for_each_token(std::string_view line, std::string& cur, F&& f) {
  cur.clear();
  const std::size_t n = line.size();
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(line[i]);
    // An apostrophe between two word characters belongs to the word (lord's).
    const bool inner_apostrophe = c == '\'' && !cur.empty() && i + 1 < n &&
                                  word_byte(static_cast<unsigned char>(line[i + 1]));
    if (word_byte(c) || inner_apostrophe) {
      cur.push_back(lower_ascii(c));
      continue;
    }
    if (!cur.empty()) f(std::string_view(cur)), cur.clear();
    if (c > 0x20) {  // not a space (nor a control character): a one-byte token
      const char one = static_cast<char>(c);
      f(std::string_view(&one, 1));
    }
  }
  if (!cur.empty()) f(std::string_view(cur));
}

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
  // The map's keys view the type texts, which a deque never moves.
  std::unordered_map<std::string_view, std::uint32_t> provisional;
  provisional.reserve(1 << 16);
  std::deque<std::string> type_text;
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
      auto it = provisional.find(t);
      if (it == provisional.end()) {
        type_text.emplace_back(t);
        it = provisional.emplace(std::string_view(type_text.back()), static_cast<std::uint32_t>(type_text.size() - 1)).first;
        type_count.push_back(0);
      }
      line_ids.push_back(it->second);
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
