#include "sim/cli/reference.h"

#include <fmt/format.h>

#include "sim/engine/config.h"

namespace ouro {
namespace {

// A cell of a Markdown table: pipes escaped, never empty.
std::string cell(const std::string& s, const char* empty = "") {
  if (s.empty()) return empty;
  std::string out;
  for (char ch : s) {
    if (ch == '|') out += '\\';
    out += ch;
  }
  return out;
}

// A key's allowed values; model.family's are the families described (the table may hold more, in a test).
std::string allowed(const KeySpec& k, const std::vector<const Family*>& families) {
  if (k.path != "model.family") return k.expected;
  std::string s = "one of";
  for (const Family* f : families) s += fmt::format(" {}", f->name());
  return s;
}

std::string default_text(const KeySpec& k) {
  return k.required ? "required" : k.fallback.empty() ? "none" : k.fallback;
}

std::string default_phrase(const KeySpec& k) {
  return k.required ? "required" : k.fallback.empty() ? "no default" : "default " + k.fallback;
}

std::string keys_table(const std::vector<KeySpec>& keys, const std::vector<const Family*>& families,
                       TextFormat format) {
  std::string s;
  if (format == TextFormat::kMarkdown) {
    s += "| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n";
    for (const auto& k : keys)
      s += fmt::format("| `{}` | {} | {} | {} | {} |\n", k.path, key_type_name(k.type), cell(default_text(k)),
                       cell(allowed(k, families)), cell(k.meaning));
    return s;
  }
  for (const auto& k : keys)
    s += fmt::format("  {}\n      {}; {}; allowed: {}\n      {}\n", k.path, key_type_name(k.type), default_phrase(k),
                     allowed(k, families), k.meaning);
  return s;
}

std::string backends_text(const Family& f) {
  std::string s;
  for (const char* backend : {"cpu", "cuda"}) {
    const BackendSupport b = f.support(backend);
    std::string options;
    for (DataOption o : b.options) options += fmt::format("{}{}", options.empty() ? "" : ", ", data_option_key(o));
    s += fmt::format("- {}: {}\n", backend,
                     !b.runs           ? "none"
                     : options.empty() ? "every regime; no data option"
                                       : "every regime; " + options);
  }
  return s;
}

}  // namespace

std::string keys_reference(const std::vector<const Family*>& families, const Family* only, TextFormat format) {
  const bool md = format == TextFormat::kMarkdown;
  std::string s = md ? "## Keys of every config\n\n" : "Keys of every config:\n";
  s += keys_table(common_keys(), families, format);
  for (const Family* f : families) {
    if (only != nullptr && f != only) continue;
    s += md ? fmt::format("\n## model.family: {}\n\nA {} family: {}.\n\n", f->name(), kind_name(f->kind()),
                          f->description())
            : fmt::format("\nKeys of model.family {}, a {} family: {}:\n", f->name(), kind_name(f->kind()),
                          f->description());
    s += keys_table(f->keys(), families, format);
  }
  return s;
}

std::string metrics_reference(const Family& f, TextFormat format) {
  std::string s;
  if (format == TextFormat::kMarkdown) {
    s += "| metric | collapse | theory column | written | definition |\n|---|---|---|---|---|\n";
    for (const auto& m : f.metrics())
      s += fmt::format("| `{}` | {} | {} | {} | {} |\n", m.name, cell(direction_name(m.direction), "–"),
                       cell(m.theory, "none"), cell(m.written, "always"), cell(m.definition));
    return s;
  }
  s += fmt::format("Metrics of model.family {} (collapse: the way a metric moves as the model collapses):\n", f.name());
  for (const auto& m : f.metrics())
    s += fmt::format("  {}\n      collapse {}; theory column: {}; written: {}\n      {}\n", m.name,
                     m.direction == Direction::kNone ? "-" : direction_name(m.direction),
                     m.theory[0] ? m.theory : "none", m.written[0] ? m.written : "always", m.definition);
  return s;
}

std::string config_reference(const std::vector<const Family*>& families) {
  std::string s =
      "# Config reference\n\n"
      "Every key a config may hold, with its type, default, allowed values and meaning, and every metric of every "
      "family. This page is written by `build/ouroboros keys --markdown > docs/config.md` from the tables that check "
      "a config (a test fails when it is stale): `ouroboros keys [FAMILY]` and `ouroboros metrics FAMILY` print the "
      "same on a terminal. A key of another family than the config's is refused, and so is a data option the "
      "family does not offer. Every key but `reproduction` can be given on the command line "
      "(`--set data.samples=50`), and every one but `name`, `plot.*`, `summary.*`, `early_warning.*` and "
      "`reproduction`, which hold for the whole run, can be swept (`sweep: {data.samples: [10, 100]}`).\n\n";
  s += keys_reference(families, nullptr, TextFormat::kMarkdown);
  for (const Family* f : families) {
    s += fmt::format("\n## Metrics of {}\n\n", f->name());
    s += metrics_reference(*f, TextFormat::kMarkdown);
    s += fmt::format("\nDefault summary: `{}` at {}. Early-warning detectors:", f->default_summary().metric,
                     f->default_summary().threshold);
    const auto detectors = f->detectors();
    for (std::size_t i = 0; i < detectors.size(); ++i)
      s += fmt::format("{} {} (`{}`)", i ? "," : "", detectors[i].name, detectors[i].metric);
    s += ".\n\nWhat each backend runs:\n\n" + backends_text(*f);
  }
  return s;
}

}  // namespace ouro
