#include "sim/families/ngram/corpus.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string_view>

#include <fmt/format.h>
#include <omp.h>

namespace ouro {
namespace fs = std::filesystem;

namespace {

// The tokenizer's byte classes: word bytes (ASCII lower-case letters and
// digits, as std::isalnum in the "C" locale, which ouroboros never changes,
// and every byte of a multi-byte UTF-8 character), upper-case ASCII letters
// (word bytes, lower-cased), the apostrophe, space and control bytes (no
// token), and the rest (one-byte tokens).
enum ByteClass : unsigned char { kWordByte, kUpperByte, kApostrophe, kSpaceByte, kPunctByte };

constexpr std::array<ByteClass, 256> kByteClass = [] {
  std::array<ByteClass, 256> t{};
  for (int c = 0; c < 256; ++c)
    t[c] = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80 ? kWordByte
           : c >= 'A' && c <= 'Z'                                        ? kUpperByte
           : c == '\''                                                   ? kApostrophe
           : c <= 0x20                                                   ? kSpaceByte
                                                                         : kPunctByte;
  return t;
}();

ByteClass byte_class(char c) { return kByteClass[static_cast<unsigned char>(c)]; }
bool word_class(ByteClass k) { return k <= kUpperByte; }

// FNV-1a (64-bit), a byte at a time: the type table's hash.
constexpr std::uint64_t kFnvBasis = 1469598103934665603ull, kFnvPrime = 1099511628211ull;
std::uint64_t fnv_step(std::uint64_t h, unsigned char b) { return (h ^ b) * kFnvPrime; }

// Calls f(token, hash) for every token of a line (see corpus.h), hash its
// FNV-1a. One pass over a word's bytes classifies, lower-cases and hashes
// them; a word with an upper-case letter is lower-cased into a reused
// buffer, the others are passed as they stand in the line: no allocation
// per token.
template <class F>
void for_each_token(std::string_view line, std::string& cur, F&& f) {
  const char* const p = line.data();
  const std::size_t n = line.size();
  for (std::size_t i = 0; i < n;) {
    const ByteClass k = byte_class(p[i]);
    if (word_class(k)) {
      // A word runs over word bytes, and over an apostrophe between two of
      // them (lord's).
      std::uint64_t h = kFnvBasis;
      bool upper = false;
      std::size_t j = i;
      for (; j < n; ++j) {
        auto b = static_cast<unsigned char>(p[j]);
        const ByteClass kb = kByteClass[b];
        if (kb == kUpperByte) {
          upper = true;
          b = static_cast<unsigned char>(b + ('a' - 'A'));
        } else if (kb != kWordByte && !(kb == kApostrophe && j + 1 < n && word_class(byte_class(p[j + 1])))) {
          break;
        }
        h = fnv_step(h, b);
      }
      if (!upper) {
        f(line.substr(i, j - i), h);  // already lower case: no copy
      } else {
        cur.assign(p + i, j - i);
        for (char& ch : cur)
          if (byte_class(ch) == kUpperByte) ch = static_cast<char>(ch + ('a' - 'A'));
        f(std::string_view(cur), h);
      }
      i = j;
      continue;
    }
    if (k != kSpaceByte)
      f(line.substr(i, 1), fnv_step(kFnvBasis, static_cast<unsigned char>(p[i])));  // a one-byte token
    ++i;
  }
}

// Token texts to provisional ids (in order of first appearance): open
// addressing on the tokens' FNV-1a hashes, the table at most half full, each
// slot keeping its hash's high half so that most probes of another type
// are told apart without comparing text. The keys view the type texts,
// which a deque never moves.
class TypeTable {
 public:
  TypeTable() : slot_(1 << 12) {}

  // The id of t (h: its hash); a new type's text is kept.
  std::uint32_t find_or_add(std::string_view t, std::uint64_t h) {
    const std::size_t mask = slot_.size() - 1;
    const auto tag = static_cast<std::uint32_t>(h >> 32);
    for (std::size_t at = h & mask;; at = (at + 1) & mask) {
      const Slot s = slot_[at];
      if (s.id1 == 0) break;
      if (s.tag == tag && view_[s.id1 - 1] == t) return s.id1 - 1;
    }
    text_.emplace_back(t);
    view_.emplace_back(text_.back());
    hash_.push_back(h);
    const auto id = static_cast<std::uint32_t>(text_.size() - 1);
    if (2 * text_.size() > slot_.size()) grow();
    else place(h, id);
    return id;
  }

  std::size_t size() const { return text_.size(); }
  std::string_view text(std::uint32_t id) const { return view_[id]; }
  std::uint64_t hash(std::uint32_t id) const { return hash_[id]; }
  const std::deque<std::string>& texts() const { return text_; }

 private:
  struct Slot {
    std::uint32_t id1 = 0;  // id + 1, 0 for empty
    std::uint32_t tag = 0;  // the high half of the type's hash
  };
  void place(std::uint64_t h, std::uint32_t id) {
    const std::size_t mask = slot_.size() - 1;
    std::size_t at = h & mask;
    while (slot_[at].id1 != 0) at = (at + 1) & mask;
    slot_[at] = Slot{id + 1, static_cast<std::uint32_t>(h >> 32)};
  }
  void grow() {
    slot_.assign(2 * slot_.size(), Slot{});
    for (std::uint32_t id = 0; id < view_.size(); ++id) place(hash_[id], id);
  }

  std::vector<Slot> slot_;
  std::deque<std::string> text_;
  std::vector<std::string_view> view_;  // of text_, for the comparisons
  std::vector<std::uint64_t> hash_;     // of text_, for growing
};

constexpr std::uint32_t kEnd = 0xFFFFFFFFu;  // sentence end, in the provisional streams

// A stretch of the text (whole lines), tokenized: its tokens as provisional
// ids of its own type table, kEnd after each sentence (a line with a token).
struct Stretch {
  TypeTable types;
  std::vector<std::uint32_t> ids;
  std::size_t sentences = 0;
};

void tokenize_stretch(std::string_view text, Stretch& out) {
  std::string cur;
  out.ids.reserve(text.size() / 4);
  for (std::size_t pos = 0; pos < text.size();) {
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const std::size_t before = out.ids.size();
    for_each_token(line, cur,
                   [&](std::string_view t, std::uint64_t h) { out.ids.push_back(out.types.find_or_add(t, h)); });
    if (out.ids.size() != before) out.ids.push_back(kEnd), ++out.sentences;
  }
}

// The first offset at which `text` stops being UTF-8 text without NUL bytes, and what is wrong there
// (text.size() when nothing is). Well-formed UTF-8 is Unicode's Table 3-7 (The Unicode Standard, ch. 3.9):
// a lead byte C2..DF, E0..EF or F0..F4 followed by 1, 2 or 3 continuation bytes 80..BF, the second one narrowed
// after E0 (A0..BF: below is an overlong encoding), ED (80..9F: above are the surrogates D800..DFFF), F0 (90..BF:
// overlong) and F4 (80..8F: above is beyond U+10FFFF). C0, C1 (overlong) and F5..FF never occur. A bad sequence is
// reported at its first byte. Eight ASCII bytes are checked at once.
std::size_t first_bad_byte(std::string_view text, std::string& what) {
  const auto* b = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  auto bad = [&](std::size_t at, const char* why) {
    what = fmt::format("not valid UTF-8 (byte 0x{:02X}: {})", static_cast<unsigned>(b[at]), why);
    return at;
  };
  for (std::size_t i = 0; i < n;) {
    if (i + 8 <= n) {
      std::uint64_t v;
      std::memcpy(&v, b + i, 8);
      constexpr std::uint64_t kOnes = 0x0101010101010101ull, kHighs = 0x8080808080808080ull;
      if ((v & kHighs) == 0 && ((v - kOnes) & ~v & kHighs) == 0) {  // no byte >= 0x80, no byte 0
        i += 8;
        continue;
      }
    }
    const unsigned c = b[i];
    if (c == 0) {
      what = "a NUL byte";
      return i;
    }
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    unsigned lo = 0x80, hi = 0xBF;
    const char* narrowed = "";  // what a continuation byte outside [lo, hi] would encode
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) len = 3, lo = 0xA0, narrowed = "an overlong encoding";
    else if (c == 0xED) len = 3, hi = 0x9F, narrowed = "a surrogate, U+D800..U+DFFF";
    else if (c >= 0xE1 && c <= 0xEF) len = 3;
    else if (c == 0xF0) len = 4, lo = 0x90, narrowed = "an overlong encoding";
    else if (c == 0xF4) len = 4, hi = 0x8F, narrowed = "a code point above U+10FFFF";
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else if (c <= 0xBF) return bad(i, "a continuation byte with no lead byte");
    else if (c <= 0xC1) return bad(i, "an overlong encoding");
    else if (c <= 0xF7) return bad(i, "a code point above U+10FFFF");
    else return bad(i, "never used in UTF-8");
    for (std::size_t k = 1; k < len; ++k) {
      if (i + k >= n) return bad(i, "a sequence cut short by the end of the file");
      const unsigned d = b[i + k];
      if (d < 0x80 || d > 0xBF) return bad(i, "a sequence cut short");
      if (k == 1 && (d < lo || d > hi)) return bad(i, narrowed);
    }
    i += len;
  }
  return n;
}

}  // namespace

std::vector<std::string> tokenize(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  for_each_token(line, cur, [&](std::string_view t, std::uint64_t) { out.emplace_back(t); });
  return out;
}

Corpus load_corpus(const std::string& path) {
  // What the path names is checked before it is opened (a FIFO would block the open, a device or a directory read
  // as something else than text), and again on the open file, non-blocking, in case the path changed in between.
  auto refuse = [&](const std::string& why) {
    return CorpusError(fmt::format("cannot read corpus file \"{}\": {}", path, why));
  };
  auto kind = [](mode_t mode) -> std::string {
    return S_ISDIR(mode)    ? "a directory"
           : S_ISFIFO(mode) ? "a FIFO (named pipe)"
           : S_ISCHR(mode)  ? "a character device"
           : S_ISBLK(mode)  ? "a block device"
           : S_ISSOCK(mode) ? "a socket"
                            : "not a file";
  };
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) throw refuse(std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw refuse(kind(st.st_mode) + ", not a regular file");
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw refuse(std::strerror(errno));
  struct Close {
    int fd;
    ~Close() { ::close(fd); }
  } close_fd{fd};
  if (::fstat(fd, &st) != 0) throw refuse(std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw refuse(kind(st.st_mode) + ", not a regular file");
  std::string text(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t got = 0;
  while (got < text.size()) {
    const ssize_t r = ::read(fd, text.data() + got, text.size() - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw refuse(std::strerror(errno));
    if (r == 0) break;
    got += static_cast<std::size_t>(r);
  }
  text.resize(got);
  return parse_corpus(text, path);
}

Corpus parse_corpus(const std::string& text, const std::string& source, int parts) {
  if (text.empty()) throw CorpusError(fmt::format("corpus file \"{}\" is empty (0 bytes)", source));
  std::string what;
  if (const std::size_t at = first_bad_byte(text, what); at < text.size())
    throw CorpusError(fmt::format("corpus file \"{}\" is not text: {} at byte offset {} (line {})", source, what, at,
                                  1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n')));
  // The text cut at line ends into stretches (about 1 MiB or more each, at
  // most one per thread unless `parts` says), tokenized in parallel.
  if (parts <= 0) parts = static_cast<int>(std::clamp<std::size_t>(text.size() >> 20, 1, omp_get_max_threads()));
  std::vector<std::size_t> cut(static_cast<std::size_t>(parts) + 1, text.size());
  cut[0] = 0;
  for (int k = 1; k < parts; ++k) {
    const std::size_t eol = text.find('\n', std::max(cut[k - 1], text.size() / parts * k));
    cut[k] = eol == std::string::npos ? text.size() : eol + 1;
  }
  std::vector<Stretch> stretch(static_cast<std::size_t>(parts));
  const int team = std::min(parts, omp_get_max_threads());
#pragma omp parallel for schedule(static, 1) num_threads(team)
  for (int k = 0; k < parts; ++k)
    tokenize_stretch(std::string_view(text).substr(cut[k], cut[k + 1] - cut[k]), stretch[k]);
  // One table of types over the stretches (each stretch's ids mapped to
  // it), sentences split 1 in 10 by their number in the whole text, and
  // training counts per type: what one pass over the whole text gives.
  TypeTable types;
  std::vector<std::vector<std::uint32_t>> to_type(stretch.size());
  for (std::size_t k = 0; k < stretch.size(); ++k)
    for (std::uint32_t id = 0; id < stretch[k].types.size(); ++id)
      to_type[k].push_back(types.find_or_add(stretch[k].types.text(id), stretch[k].types.hash(id)));
  // Per stretch (in parallel): the number of its first sentence, and per
  // split (0 training, 1 held out) its tokens and sentences and the
  // training counts of its own types.
  struct Tally {
    std::size_t first = 0, tokens[2] = {0, 0}, sentences[2] = {0, 0};
    std::vector<std::uint64_t> count;
  };
  std::vector<Tally> tally(stretch.size());
  for (std::size_t k = 1; k < stretch.size(); ++k) tally[k].first = tally[k - 1].first + stretch[k - 1].sentences;
  const std::size_t j = tally.back().first + stretch.back().sentences;
  // Calls f(id, split) for every token and sentence end (kEnd) of stretch k.
  auto each_token = [&](std::size_t k, auto&& f) {
    std::size_t n = tally[k].first;
    for (const std::uint32_t id : stretch[k].ids) {
      f(id, n % 10 == 9 ? 1 : 0);
      if (id == kEnd) ++n;
    }
  };
#pragma omp parallel for schedule(static, 1) num_threads(team)
  for (int k = 0; k < parts; ++k) {
    Tally& t = tally[k];
    t.count.assign(stretch[k].types.size(), 0);
    each_token(k, [&](std::uint32_t id, int split) {
      ++t.tokens[split];
      if (id == kEnd) ++t.sentences[split];
      else if (split == 0) ++t.count[id];
    });
  }
  std::vector<std::uint64_t> type_count(types.size(), 0);
  std::size_t tokens[2] = {0, 0}, sentences[2] = {0, 0};
  for (std::size_t k = 0; k < stretch.size(); ++k) {
    for (std::uint32_t id = 0; id < tally[k].count.size(); ++id) type_count[to_type[k][id]] += tally[k].count[id];
    for (int split : {0, 1}) tokens[split] += tally[k].tokens[split], sentences[split] += tally[k].sentences[split];
  }
  const std::size_t train_sentences = sentences[0], heldout_sentences = sentences[1];
  if (j == 0) throw CorpusError(fmt::format("corpus file \"{}\" holds no sentence (no non-empty line)", source));
  if (train_sentences == 0 || heldout_sentences == 0)
    throw CorpusError(fmt::format(
        "corpus file \"{}\" has {} sentence(s); at least 10 are needed (every 10th is held out)", source, j));
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
  // The two texts, each stretch writing its sentences (in parallel) where
  // the stretches before it end.
  Sentences* out[2] = {&c.train, &c.heldout};
  for (int split : {0, 1}) {
    out[split]->tokens.resize(tokens[split]);
    out[split]->start.assign(sentences[split] + 1, 0);
  }
  std::vector<std::array<std::size_t, 2>> at_token(stretch.size(), {0, 0}), at_sentence(stretch.size(), {0, 0});
  for (std::size_t k = 1; k < stretch.size(); ++k)
    for (int split : {0, 1}) {
      at_token[k][split] = at_token[k - 1][split] + tally[k - 1].tokens[split];
      at_sentence[k][split] = at_sentence[k - 1][split] + tally[k - 1].sentences[split];
    }
#pragma omp parallel for schedule(static, 1) num_threads(team)
  for (int k = 0; k < parts; ++k) {
    std::array<std::size_t, 2> pos = at_token[k], sentence = at_sentence[k];
    each_token(k, [&](std::uint32_t id, int split) {
      out[split]->tokens[pos[split]++] = id == kEnd ? kEndToken : final_id[to_type[k][id]];
      if (id == kEnd) out[split]->start[++sentence[split]] = pos[split];
    });
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
    throw CorpusError(
        fmt::format("the King James text is not cached at {}: scripts/setup.sh extracts it from "
                    "Debian's bible-kjv",
                    path.string()));
  return path.string();
}

std::uint64_t token_checksum(const Corpus& c) {
  std::uint64_t h = kFnvBasis;
  auto mix = [&](std::uint32_t v) {
    for (int b = 0; b < 4; ++b) h = fnv_step(h, static_cast<unsigned char>(v >> (8 * b)));
  };
  for (auto v : c.train.tokens) mix(v);
  for (auto v : c.heldout.tokens) mix(v);
  return h;
}

}  // namespace ouro
