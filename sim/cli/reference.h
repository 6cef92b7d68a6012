// The program describing itself: every config key (`ouroboros keys [FAMILY]`) and every metric of a family
// (`ouroboros metrics FAMILY`), as text for a terminal or as Markdown, from the same descriptions that check a config
// (sim/engine/config.h common_keys(), each family's Family::keys() and Family::metrics()). docs/config.md is
// config_reference() of the built-in families; a test fails when the file is stale.
#pragma once

#include <string>
#include <vector>

#include "sim/families/family.h"

namespace ouro {

enum class TextFormat { kPlain, kMarkdown };

// The keys every config has, then those of each of `families` (one section each), or of `only` among them.
std::string keys_reference(const std::vector<const Family*>& families, const Family* only, TextFormat format);
// One family's metrics: name, collapse direction, theory column, definition.
std::string metrics_reference(const Family& family, TextFormat format);
// docs/config.md: every key and every metric of `families`, with what each backend runs.
std::string config_reference(const std::vector<const Family*>& families);

}  // namespace ouro
