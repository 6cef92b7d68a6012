#include "sim/corpus.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include <fmt/format.h>

namespace ouro {
namespace fs = std::filesystem;

namespace {

bool word_byte(unsigned char c) { return std::isalnum(c) || c >= 0x80; }

// Sentence s of a split's ids from token texts.
void append_sentence(Sentences& out, const std::vector<std::uint32_t>& ids) {
  if (out.start.empty()) out.start.push_back(0);
  out.tokens.insert(out.tokens.end(), ids.begin(), ids.end());
  out.tokens.push_back(kEndToken);
  out.start.push_back(out.tokens.size());
}

}  // namespace

std::vector<std::string> tokenize(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  const std::size_t n = line.size();
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(line[i]);
    // An apostrophe between two word characters belongs to the word (lord's).
    const bool inner_apostrophe = c == '\'' && !cur.empty() && i + 1 < n &&
                                  word_byte(static_cast<unsigned char>(line[i + 1]));
    if (word_byte(c) || inner_apostrophe) {
      cur.push_back(static_cast<char>(c < 0x80 ? std::tolower(c) : c));
      continue;
    }
    if (!cur.empty()) out.push_back(std::move(cur)), cur.clear();
    if (!std::isspace(c) && c >= 0x20) out.emplace_back(1, static_cast<char>(c));
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

Corpus load_corpus(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CorpusError(fmt::format("cannot read corpus file \"{}\"", path));
  std::vector<std::vector<std::string>> train_text, heldout_text;
  std::string line;
  std::size_t j = 0;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    auto toks = tokenize(line);
    if (toks.empty()) continue;
    (j % 10 == 9 ? heldout_text : train_text).push_back(std::move(toks));
    ++j;
  }
  if (j == 0) throw CorpusError(fmt::format("corpus file \"{}\" holds no sentence (no non-empty line)", path));
  if (train_text.empty() || heldout_text.empty())
    throw CorpusError(fmt::format("corpus file \"{}\" has {} sentence(s); at least 10 are needed (every 10th is held out)",
                                  path, j));
  // Vocabulary: training types by decreasing count, ties by bytes.
  std::unordered_map<std::string, std::uint64_t> count;
  for (const auto& s : train_text)
    for (const auto& w : s) ++count[w];
  std::vector<std::pair<std::string, std::uint64_t>> types(count.begin(), count.end());
  std::sort(types.begin(), types.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  Corpus c;
  c.source = path;
  c.vocab = {"</s>", "<unk>"};
  c.train_count = {train_text.size(), 0};
  std::unordered_map<std::string, std::uint32_t> id;
  for (const auto& [w, k] : types) {
    id.emplace(w, static_cast<std::uint32_t>(c.vocab.size()));
    c.vocab.push_back(w);
    c.train_count.push_back(k);
  }
  std::vector<std::uint32_t> ids;
  for (const auto& s : train_text) {
    ids.clear();
    for (const auto& w : s) ids.push_back(id.at(w));
    append_sentence(c.train, ids);
  }
  for (const auto& s : heldout_text) {
    ids.clear();
    for (const auto& w : s) {
      const auto it = id.find(w);
      ids.push_back(it == id.end() ? kUnkToken : it->second);
    }
    append_sentence(c.heldout, ids);
  }
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
