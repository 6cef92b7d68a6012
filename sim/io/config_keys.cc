#include "sim/io/config_keys.h"

#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

namespace ouro {

const char* key_type_name(KeyType t) {
  switch (t) {
    case KeyType::kInteger:
      return "integer";
    case KeyType::kNumber:
      return "number";
    case KeyType::kChoice:
      return "choice";
    case KeyType::kBool:
      return "boolean";
    case KeyType::kText:
      return "text";
    case KeyType::kList:
      return "list";
    case KeyType::kMatrix:
      return "matrix";
    case KeyType::kMapping:
      return "mapping";
    case KeyType::kPath:
      return "path";
  }
  return "";
}

KeySpec integer_key(std::string path, double lo, double hi, std::string fallback, std::string meaning) {
  KeySpec k;
  k.path = std::move(path);
  k.type = KeyType::kInteger;
  k.lo = lo;
  k.hi = hi;
  k.expected = std::isinf(hi)
                   ? fmt::format("an integer >= {}", static_cast<long long>(lo))
                   : fmt::format("an integer in [{}, {}]", static_cast<long long>(lo), static_cast<long long>(hi));
  k.fallback = std::move(fallback);
  k.meaning = std::move(meaning);
  return k;
}

KeySpec number_key(std::string path, std::string expected, double lo, double hi, std::string fallback,
                   std::string meaning) {
  KeySpec k;
  k.path = std::move(path);
  k.type = KeyType::kNumber;
  k.expected = std::move(expected);
  k.lo = lo;
  k.hi = hi;
  k.fallback = std::move(fallback);
  k.meaning = std::move(meaning);
  return k;
}

KeySpec choice_key(std::string path, std::vector<std::string> choices, std::string fallback, std::string meaning) {
  KeySpec k;
  k.path = std::move(path);
  k.type = KeyType::kChoice;
  k.expected = "one of";
  for (const auto& c : choices) k.expected += " " + c;
  k.choices = std::move(choices);
  k.fallback = std::move(fallback);
  k.meaning = std::move(meaning);
  return k;
}

KeySpec bool_key(std::string path, std::string fallback, std::string meaning) {
  KeySpec k;
  k.path = std::move(path);
  k.type = KeyType::kBool;
  k.expected = "true or false";
  k.fallback = std::move(fallback);
  k.meaning = std::move(meaning);
  return k;
}

KeySpec path_key(std::string path, std::vector<std::string> words, std::string what, std::string fallback,
                 std::string meaning) {
  KeySpec k;
  k.path = std::move(path);
  k.type = KeyType::kPath;
  for (const auto& w : words) k.expected += w + " or ";
  k.expected += "a file path, relative to the config file's folder: " + what;
  k.choices = std::move(words);
  k.fallback = std::move(fallback);
  k.meaning = std::move(meaning);
  return k;
}

KeySpec shaped_key(std::string path, KeyType type, std::string expected, std::string fallback, std::string meaning) {
  KeySpec k;
  k.path = std::move(path);
  k.type = type;
  k.expected = std::move(expected);
  k.fallback = std::move(fallback);
  k.meaning = std::move(meaning);
  return k;
}

KeySpec required(KeySpec k) {
  k.fallback.clear();
  k.required = true;
  return k;
}

const KeySpec& key_of(const std::vector<KeySpec>& keys, const std::string& path) {
  for (const auto& k : keys)
    if (k.path == path) return k;
  throw std::logic_error("no description of the config key " + path);
}

}  // namespace ouro
