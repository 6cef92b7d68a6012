// The built-in families, in the order `ouroboros keys`, `ouroboros metrics` and docs/config.md list them. Adding a
// family is one line of OURO_FAMILIES: X(NAME) declares `const Family& NAME_family();`, which the family's own file
// under sim/families/NAME/ defines, and puts it in the table.
#include "sim/families/family.h"

#define OURO_FAMILIES(X) \
  X(gaussian)            \
  X(gmm)                 \
  X(ngram)               \
  X(linear_regression)   \
  X(kde)

namespace ouro {

#define OURO_DECLARE_FAMILY(NAME) const Family& NAME##_family();
OURO_FAMILIES(OURO_DECLARE_FAMILY)
#undef OURO_DECLARE_FAMILY

std::vector<const Family*> builtin_families() {
#define OURO_LIST_FAMILY(NAME) &NAME##_family(),
  return {OURO_FAMILIES(OURO_LIST_FAMILY)};
#undef OURO_LIST_FAMILY
}

}  // namespace ouro
