// libFuzzer target for the run-folder readers of `ouroboros resume`: a folder's manifest.json and
// checkpoint/latest.json read for its state (sim/io/run_folder.h, read_run_state) and a checkpoint file read
// record by record (sim/io/checkpoint.h, CheckpointReader). The input is the three files' bytes separated by NUL
// bytes; the checkpoint gets its checksum appended here, so the fuzzer reaches the header and the records behind
// it (a wrong checksum is refused first, and tests/sim/io/test_checkpoint.cc tests that).
//
// CheckpointError is the one expected failure of the checkpoint reader, and read_run_state never throws; any other
// exception is a finding (abort), and so is anything the sanitizers see. A state read is checked for consistency.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "sim/io/checkpoint.h"
#include "sim/io/run_folder.h"

namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_resume: %s\n", what);
  std::abort();
}

const fs::path& folder() {
  static const fs::path dir = [] {
    const fs::path d = fs::temp_directory_path() / ("ouroboros-fuzz-resume-" + std::to_string(::getpid()));
    fs::create_directories(d / "checkpoint");
    return d;
  }();
  return dir;
}

void put(const fs::path& p, const std::string& bytes) { std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> parts(3);
  std::size_t at = 0;
  for (int k = 0; k < 3; ++k) {
    const std::size_t end = k < 2 ? in.find('\0', at) : std::string::npos;
    parts[k] = in.substr(at, end == std::string::npos ? std::string::npos : end - at);
    if (end == std::string::npos) break;
    at = end + 1;
  }
  const fs::path& dir = folder();
  put(dir / "manifest.json", parts[0]);
  put(dir / "checkpoint" / "latest.json", parts[1]);

  const ouro::RunState state = ouro::read_run_state(dir.string());
  if (!state.checkpoint) fail("latest.json exists but was not seen");
  if (state.status == "running") fail("a folder nobody holds was read as running");
  if (state.status == "failed" && state.resumable()) fail("a failed run called resumable");

  // The checkpoint: its bytes, then the FNV-1a hash of every byte before it.
  std::string ckpt = parts[2];
  std::uint64_t h = 14695981039346656037ULL;
  for (unsigned char c : ckpt) h = (h ^ c) * 1099511628211ULL;
  ckpt.append(reinterpret_cast<const char*>(&h), sizeof h);
  const fs::path file = dir / "checkpoint" / "ckpt-1-rank0.bin";
  put(file, ckpt);
  try {
    ouro::CheckpointReader reader(file.string());
    if (!reader.header().is_object()) fail("a header that is not a JSON object was accepted");
    // The records a resumed run reads first: rank 0's table, then a backend's workers.
    std::vector<double> table;
    reader.vec("table", table);
    std::vector<ouro::kernels::WorkerRange> workers;
    reader.workers(workers);
    reader.finish();
  } catch (const ouro::CheckpointError&) {
    // the expected refusal
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_resume: unexpected exception: %s\n", e.what());
    std::abort();
  }
  return 0;
}
