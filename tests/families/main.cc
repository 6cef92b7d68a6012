// The ouroboros program with the test suite's families in its table (tests/families/), for the tests that run a
// family of theirs through the binary: under fault injection (OUROBOROS_FAULT), MPI or the script tests.
#include "sim/cli/cli.h"
#include "tests/families/cloud/cloud_family.h"

int main(int argc, char** argv) {
  ouro::register_family(ouro::test::cloud_family());
  return ouro::run_cli(argc, argv);
}
