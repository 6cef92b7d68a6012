#include "sim/io/checkpoint.h"

#include "sim/io/output.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

namespace ouro {
namespace {

constexpr char kMagic[8] = {'O', 'U', 'R', 'O', 'C', 'K', 'P', 'T'};
constexpr std::uint64_t kFnvOffset = 14695981039346656037ULL, kFnvPrime = 1099511628211ULL;

void fnv(std::uint64_t& h, const void* p, std::size_t n) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i) h = (h ^ b[i]) * kFnvPrime;
}

std::string errno_text() { return std::strerror(errno); }

// Makes a rename inside `dir` durable.
void sync_folder(const std::string& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

void finish_atomic(std::FILE* f, const std::string& tmp, const std::string& path) {
  if (std::fflush(f) != 0 || ::fsync(fileno(f)) != 0) {
    const int err = errno;
    std::fclose(f);
    std::remove(tmp.c_str());
    throw WriteError(fmt::format("cannot write {}: {}", tmp, std::strerror(err)), err);
  }
  std::fclose(f);
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw WriteError(fmt::format("cannot rename {} to {}: {}", tmp, path, errno_text()), errno);
  sync_folder(std::filesystem::path(path).parent_path().string());
}

class Writer final : public kernels::StateArchive {
 public:
  Writer(std::FILE* f, std::string path) : f_(f), path_(std::move(path)) {}
  bool loading() const override { return false; }
  void bytes(const char* name, void* data, std::uint64_t n) override {
    name_and_size(name, n);
    put(data, n);
  }
  void count(const char* name, std::uint64_t& n) override { name_and_size(name, n); }
  void put(const void* p, std::uint64_t n) {
    if (n && std::fwrite(p, 1, n, f_) != n)
      throw WriteError(fmt::format("cannot write {}: {}", path_, errno_text()), errno);
    fnv(hash_, p, n);
  }
  std::uint64_t hash() const { return hash_; }

 private:
  void name_and_size(const char* name, std::uint64_t n) {
    const auto len = static_cast<std::uint32_t>(std::strlen(name));
    put(&len, sizeof len);
    put(name, len);
    put(&n, sizeof n);
  }
  std::FILE* f_;
  std::string path_;
  std::uint64_t hash_ = kFnvOffset;
};

// A full disk, injected for the tests (sim/io/output.h).
void refuse_if_injected(const std::string& tmp) {
  if (injected_disk_full_everywhere())
    throw WriteError(fmt::format("cannot write {}: {}", tmp, std::strerror(ENOSPC)), ENOSPC);
}

}  // namespace

void write_file_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  refuse_if_injected(tmp);
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw WriteError(fmt::format("cannot write {}: {}", tmp, errno_text()), errno);
  if (!text.empty() && std::fwrite(text.data(), 1, text.size(), f) != text.size()) {
    std::fclose(f);
    throw WriteError(fmt::format("cannot write {}: {}", tmp, errno_text()), errno);
  }
  finish_atomic(f, tmp, path);
}

void write_checkpoint(const std::string& path, const nlohmann::json& header,
                      const std::function<void(kernels::StateArchive&)>& fill) {
  const std::string tmp = path + ".tmp";
  refuse_if_injected(tmp);
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw WriteError(fmt::format("cannot write {}: {}", tmp, errno_text()), errno);
  try {
    Writer w(f, tmp);
    w.put(kMagic, sizeof kMagic);
    const std::string h = header.dump();
    const std::uint64_t len = h.size();
    w.put(&len, sizeof len);
    w.put(h.data(), h.size());
    fill(w);
    const std::uint64_t sum = w.hash();
    if (std::fwrite(&sum, 1, sizeof sum, f) != sizeof sum)
      throw WriteError(fmt::format("cannot write {}: {}", tmp, errno_text()), errno);
  } catch (...) {
    std::fclose(f);
    std::remove(tmp.c_str());
    throw;
  }
  finish_atomic(f, tmp, path);
}

CheckpointReader::CheckpointReader(const std::string& path) : path_(path) {
  file_.reset(std::fopen(path.c_str(), "rb"));
  f_ = file_.get();
  if (!f_) throw CheckpointError(fmt::format("cannot read checkpoint {}: {}", path, errno_text()));
  // The whole file's checksum first: nothing of a damaged file is believed.
  std::fseek(f_, 0, SEEK_END);
  const long size = std::ftell(f_);
  if (size < static_cast<long>(sizeof kMagic + 16))
    throw CheckpointError(fmt::format("checkpoint {} is truncated ({} bytes)", path, size));
  end_ = static_cast<std::uint64_t>(size) - 8;
  std::fseek(f_, 0, SEEK_SET);
  std::uint64_t h = kFnvOffset;
  std::vector<unsigned char> buf(1 << 16);
  for (std::uint64_t done = 0; done < end_;) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), end_ - done));
    if (std::fread(buf.data(), 1, want, f_) != want)
      throw CheckpointError(fmt::format("cannot read checkpoint {}", path));
    fnv(h, buf.data(), want);
    done += want;
  }
  std::uint64_t stored = 0;
  if (std::fread(&stored, 1, sizeof stored, f_) != sizeof stored)
    throw CheckpointError(fmt::format("cannot read checkpoint {}", path));
  std::fseek(f_, 0, SEEK_SET);
  char magic[8];
  read(magic, sizeof magic);
  if (std::memcmp(magic, kMagic, sizeof kMagic) != 0)
    throw CheckpointError(fmt::format("{} is not an ouroboros checkpoint", path));
  if (stored != h)
    throw CheckpointError(
        fmt::format("checkpoint {} is corrupted or truncated (checksum {:016x}, expected {:016x})", path, h, stored));
  std::uint64_t len = 0;
  read(&len, sizeof len);
  if (len > end_) throw CheckpointError(fmt::format("checkpoint {} has a damaged header", path));
  std::string text(len, '\0');
  read(text.data(), len);
  try {
    header_ = nlohmann::json::parse(text);
  } catch (const std::exception&) {
    throw CheckpointError(fmt::format("checkpoint {} has a damaged header", path));
  }
  // The format as written, whatever its JSON type (a header's field of another type is a damaged header, never an
  // exception of the JSON library).
  const auto format = header_.is_object() ? header_.find("format") : header_.end();
  const bool known = format != header_.end() && format->is_number_integer() && *format == kCheckpointFormat;
  if (!known)
    throw CheckpointError(fmt::format("checkpoint {} has format {}; this ouroboros reads format {}", path,
                                      format != header_.end() ? format->dump() : "none", kCheckpointFormat));
}

CheckpointReader::~CheckpointReader() = default;

void CheckpointReader::read(void* p, std::uint64_t n) {
  const long at = std::ftell(f_);
  if (at < 0 || static_cast<std::uint64_t>(at) + n > end_ || (n && std::fread(p, 1, n, f_) != n))
    throw CheckpointError(fmt::format("checkpoint {} ends early", path_));
}

void CheckpointReader::record(const char* name, std::uint64_t& n) {
  std::uint32_t len = 0;
  read(&len, sizeof len);
  if (len > 256) throw CheckpointError(fmt::format("checkpoint {}: damaged record", path_));
  std::string got(len, '\0');
  read(got.data(), len);
  read(&n, sizeof n);
  if (got != name)
    throw CheckpointError(
        fmt::format("checkpoint {}: expected record \"{}\", found \"{}\" (written by another "
                    "version or for another config?)",
                    path_, name, got));
}

void CheckpointReader::bytes(const char* name, void* data, std::uint64_t n) {
  std::uint64_t have = 0;
  record(name, have);
  if (have != n)
    throw CheckpointError(
        fmt::format("checkpoint {}: record \"{}\" holds {} bytes, this run needs {} (written for "
                    "another config?)",
                    path_, name, have, n));
  read(data, n);
}

void CheckpointReader::count(const char* name, std::uint64_t& n) {
  record(name, n);
  if (n > end_) throw CheckpointError(fmt::format("checkpoint {}: damaged count in \"{}\"", path_, name));
}

void CheckpointReader::finish() {
  const long at = std::ftell(f_);
  if (at < 0 || static_cast<std::uint64_t>(at) != end_)
    throw CheckpointError(fmt::format("checkpoint {} holds more than this run reads (another config?)", path_));
}

}  // namespace ouro
