// The description of one config key: its path, type, allowed values, default and meaning. The engine lists the
// keys every config has (sim/engine/config.cc) and each family its own (sim/families/*/); the same descriptions
// check a config (sim/io/yaml_reader.h reads a value against its key's range and default), answer `ouroboros keys`
// and write docs/config.md, so the three cannot drift apart.
#pragma once

#include <limits>
#include <string>
#include <vector>

namespace ouro {

// kPath: a file path. A relative one is read against the folder of the config file that holds it (against the
// current folder for a --set value, which was typed there, and for a config given as text); the config reader
// rewrites it to an absolute path before anything reads it, so the config a run records names the same file from
// any folder. The key's `choices` are the words it also accepts that are not paths (truth.corpus: kjv).
enum class KeyType { kInteger, kNumber, kChoice, kBool, kText, kList, kMatrix, kMapping, kPath };
const char* key_type_name(KeyType t);

struct KeySpec {
  std::string path;  // e.g. "model.order"
  KeyType type = KeyType::kText;
  std::string expected;  // what a value must be, as refusals and `ouroboros keys` say it ("an integer in [1, 3]")
  std::string fallback;  // the default, as a config would write it; "" when there is none
  bool required = false;
  std::string meaning;  // one line
  // kInteger, kNumber: the accepted range, inclusive at both ends.
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  std::vector<std::string> choices;  // kChoice, in the order `expected` lists them; kPath: the words that are not paths
};

// An integer in [lo, hi] ("an integer in [lo, hi]", or "an integer >= lo" when hi is unbounded).
KeySpec integer_key(std::string path, double lo, double hi, std::string fallback, std::string meaning);
// A number in [lo, hi], described by `expected` (e.g. "a share in (0, 1)" where the bounds are 1e-9 and 1 - 1e-9).
KeySpec number_key(std::string path, std::string expected, double lo, double hi, std::string fallback,
                   std::string meaning);
// One of `choices` ("one of a b c").
KeySpec choice_key(std::string path, std::vector<std::string> choices, std::string fallback, std::string meaning);
KeySpec bool_key(std::string path, std::string fallback, std::string meaning);
// A file path, or one of `words` ("kjv or a file path, relative to the config file's folder: WHAT"); `what` says
// what the file holds.
KeySpec path_key(std::string path, std::vector<std::string> words, std::string what, std::string fallback,
                 std::string meaning);
// Text, a list, a matrix or a mapping, described by `expected` and read by the code that owns it.
KeySpec shaped_key(std::string path, KeyType type, std::string expected, std::string fallback, std::string meaning);
// The same key with no default: a config must give it.
KeySpec required(KeySpec k);

// The key of `keys` with this path; std::logic_error if none (a key the code reads must be described).
const KeySpec& key_of(const std::vector<KeySpec>& keys, const std::string& path);

}  // namespace ouro
