// Reading a config's YAML tree: walking it by dotted paths, editing it (--set, sweep points), and typed reads of a
// value against its key's description (sim/io/config_keys.h). What is valid beyond one value's type and range is
// decided elsewhere: by the engine (sim/engine/config.cc) and by each family.
//
// Every refusal is a ConfigError naming the key's path and what was expected (and, for an unknown key or value,
// the nearest valid one); the CLI turns it into exit code 2.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "sim/io/config_keys.h"

namespace ouro {

class ConfigError : public std::runtime_error {
 public:
  ConfigError(const std::string& path, const std::string& what)
      : std::runtime_error(path.empty() ? what : path + ": " + what), path_(path) {}
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The candidate nearest to `word` by edit distance (the first of equals).
std::string nearest(const std::string& word, const std::vector<std::string>& candidates);

std::vector<std::string> split_path(const std::string& path);
std::string join_path(const std::string& section, const std::string& key);
// A node as one line of text: a scalar as written, anything else in YAML's flow style.
std::string scalar_text(const YAML::Node& n);

// The node at a dotted path (a handle into the tree, to be read), or an undefined node; never changes the tree
// (yaml-cpp's operator[] on a non-const node inserts).
YAML::Node find_node(const YAML::Node& root, const std::string& path);
// Sets the node at a dotted path, creating the mappings on the way; ConfigError where a prefix is not a mapping.
void assign_node(YAML::Node root, const std::string& path, const YAML::Node& value);

// A key given twice in one mapping of `node` (the value at `at`, "" for a whole config), anywhere in it (nested
// mappings, lists, sweep), is refused: yaml-cpp keeps both, and which one a reader finds is not what the config says.
// Keys compare as scalars. The refusal names the key's path and where the two are: "(lines 4 and 9)" as an editor
// numbers them (the node's marks), or `where` when it is not empty (a --set value: "in --set data={...}"). A value
// that is an alias of a mapping or list containing it (a cycle) is refused too.
void refuse_duplicate_keys(const YAML::Node& node, const std::string& at, const std::string& where = "");

// A number read from a scalar node; ConfigError "expected EXPECTED, got ..." otherwise (or if not finite).
double as_number(const YAML::Node& n, const std::string& path, const std::string& expected);
// A list of numbers.
std::vector<double> read_numbers(const YAML::Node& n, const std::string& path);

// Typed reads of one config tree against the descriptions of its keys: an absent key takes its default, a required
// one is refused as missing, a value outside the key's range or choices is refused.
class ConfigReader {
 public:
  explicit ConfigReader(const YAML::Node& root) : root_(root) {}
  const YAML::Node& root() const { return root_; }
  const YAML::Node node(const std::string& path) const { return find_node(root_, path); }
  // Present and not null.
  bool given(const std::string& path) const;

  std::int64_t integer(const KeySpec& k) const;
  // With the lower bound raised to `lo` (a bound that depends on other keys, such as data.samples >= dim + 1).
  std::int64_t integer(const KeySpec& k, double lo) const;
  double number(const KeySpec& k) const;
  std::string choice(const KeySpec& k) const;
  bool flag(const KeySpec& k) const;

 private:
  YAML::Node root_;
};

}  // namespace ouro
