// The ouroboros program (sim/cli/cli.h).
#include "sim/cli/cli.h"

int main(int argc, char** argv) { return ouro::run_cli(argc, argv); }
