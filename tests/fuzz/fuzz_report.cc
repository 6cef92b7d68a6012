// libFuzzer target for the run-folder readers of `ouroboros report`,
// report_markdown (sim/analysis/report.h): the manifest's JSON, the CSV
// tables, the checks between them and the ranking that follows.
//
// Input: the files of a run folder separated by NUL bytes, in the order
// manifest.json, summary.csv, summary_chains.csv and, when there is a fourth
// part, early_warning.csv (a fifth part, any, says collapse.png is there).
// The seeds (tests/fuzz/corpus/report/) are small real runs written so.
//
// Refusing a folder is the readers' job: RunFolderError is the one expected
// failure. Any other exception escaping is reported as a finding (abort),
// and so is anything the sanitizers see. An accepted folder's report is
// checked for its frame: the title, a first-ranked point, the closing line.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "sim/analysis/report.h"

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_report: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> parts;
  for (std::size_t pos = 0;;) {
    const std::size_t nul = input.find('\0', pos);
    parts.push_back(input.substr(pos, nul == std::string::npos ? std::string::npos : nul - pos));
    if (nul == std::string::npos) break;
    pos = nul + 1;
  }
  if (parts.size() < 3) return -1;  // not the three files a folder needs: left out of the corpus
  ouro::RunFolderText run;
  run.dir = "fuzz";
  run.manifest = parts[0];
  run.summary = parts[1];
  run.summary_chains = parts[2];
  if (parts.size() > 3) run.early_warning = parts[3];
  run.has_plot = parts.size() > 4;
  try {
    const std::string md = ouro::report_markdown(run);
    static const std::string kClose = " from fuzz/summary.csv and summary_chains.csv.\n";
    if (md.rfind("# Report: ", 0) != 0) fail("an accepted folder's report has no title");
    if (md.find("\n| 1 |") == std::string::npos) fail("an accepted folder's report ranks no point first");
    if (md.size() < kClose.size() || md.compare(md.size() - kClose.size(), kClose.size(), kClose) != 0)
      fail("an accepted folder's report does not end with its sources");
  } catch (const ouro::RunFolderError&) {
    // The expected refusal.
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_report: unexpected exception (not RunFolderError): %s\n", e.what());
    std::abort();
  }
  return 0;
}
