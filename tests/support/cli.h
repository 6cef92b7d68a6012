// Running the ouroboros binary from a test: its path (compiled in,
// overridable from the environment for a build folder carried to another
// machine, as gpu_check.sh does), its exit code and output, scratch folders.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace ouro::test {

namespace fs = std::filesystem;

struct Result {
  int code;
  std::string out;  // stdout and stderr
};

// Where the binary and the sources are: compiled in, overridable from the
// environment for a build folder carried to another machine (gpu_check.sh).
inline std::string from_env(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}
inline const std::string kBinary = from_env("OUROBOROS_BINARY", OUROBOROS_BINARY);
inline const std::string kSourceDir = from_env("OUROBOROS_SOURCE_DIR", OUROBOROS_SOURCE_DIR);

// A shell command's exit code (128 + the signal for a process killed by
// one) and its stdout and stderr together.
inline Result run_command(const std::string& command) {
  const std::string cmd = command + " 2>&1";
  Result r{0, {}};
  FILE* p = popen(cmd.c_str(), "r");
  char buf[4096];
  std::size_t k;
  while ((k = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, k);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
  return r;
}

inline Result run(const std::string& args) { return run_command(kBinary + " " + args); }

// The binary under `mpirun -n ranks` (oversubscribed: more ranks than cores
// is fine for tests; allowed as root, as CI containers run).
inline Result run_mpi(int ranks, const std::string& args) {
  return run_command(
      "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 "
      "mpirun --oversubscribe -n " +
      std::to_string(ranks) + " " + kBinary + " " + args);
}

// Whether this build runs across MPI ranks and mpirun is on the PATH.
inline bool mpi_available() { return OUROBOROS_HAVE_MPI && std::system("command -v mpirun > /dev/null 2>&1") == 0; }

inline std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline fs::path temp_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("ouroboros-test-" + name + "-" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

inline fs::path write_config(const fs::path& dir, const std::string& text) {
  const fs::path p = dir / "config.yaml";
  std::ofstream(p) << text;
  return p;
}

}  // namespace ouro::test
