// The ouroboros command line: `run` an experiment config, `validate` one without running it, `resume` a stopped run,
// `report` on a finished one, and describe the config keys (`keys`) and a family's metrics (`metrics`). Bad input
// (an unknown option, a config error) exits with code 2 before any work is done.
#pragma once

namespace ouro {

// The whole program: main() is this. Exposed so that a test can run the command line in its own process, with a
// family it registered itself (tests/families/).
int run_cli(int argc, char** argv);

}  // namespace ouro
