// Checkpoint files: the state of every chain of one rank at a generation
// boundary, so `ouroboros resume DIR` continues a killed run and writes the
// same bytes an uninterrupted run would have written.
//
// File (little-endian): the 8 bytes "OUROCKPT", a u64 length and a JSON
// header (format, the writing ouroboros version, the config's fingerprint,
// rank, ranks, the position point / batch / generation, rank 0's output
// offsets), then named records (u32 name length, name, u64 byte count,
// bytes), then a u64 FNV-1a hash of every byte before it. A file is written
// to a temporary name, fsync'ed and renamed, so a crash leaves either the old
// checkpoint or the new one, never half of one.
//
// A set of files (one per rank) is committed by rank 0 writing
// checkpoint/latest.json (atomically) after every rank has renamed its file
// into place; resume reads only the set latest.json names.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "kernels/core/state.h"

namespace ouro {

class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline constexpr int kCheckpointFormat = 1;

// Writes header and records (fill(ar) saves them) to path, atomically.
void write_checkpoint(const std::string& path, const nlohmann::json& header,
                      const std::function<void(kernels::StateArchive&)>& fill);

// An open, verified checkpoint: the whole file's checksum has been checked
// and its header parsed; records are then read in the order they were saved
// (CheckpointError on a name or size that does not match).
class CheckpointReader final : public kernels::StateArchive {
 public:
  explicit CheckpointReader(const std::string& path);
  ~CheckpointReader() override;
  const nlohmann::json& header() const { return header_; }
  bool loading() const override { return true; }
  void bytes(const char* name, void* data, std::uint64_t n) override;
  void count(const char* name, std::uint64_t& n) override;
  // Every record has been read (a file with more is refused).
  void finish();

 private:
  void record(const char* name, std::uint64_t& n);
  void read(void* p, std::uint64_t n);
  struct Close {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::string path_;
  std::unique_ptr<std::FILE, Close> file_;  // closed also when the constructor refuses the file
  std::FILE* f_ = nullptr;
  std::uint64_t end_ = 0;  // offset of the trailing hash
  nlohmann::json header_;
};

// Writes path atomically: temporary file, fsync, rename, fsync of the folder.
void write_file_atomic(const std::string& path, const std::string& text);

}  // namespace ouro
