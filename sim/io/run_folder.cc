#include "sim/io/run_folder.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace ouro {
namespace fs = std::filesystem;

namespace {

std::string lock_path(const std::string& dir) { return (fs::path(dir) / kRunLockFile).string(); }

// The pid written in an open lock file; 0 when it holds none.
long read_pid(int fd) {
  char buf[32] = {};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  return n > 0 ? std::strtol(buf, nullptr, 10) : 0;
}

std::string holder_text(long pid) { return pid > 0 ? fmt::format("process {}", pid) : "another process"; }

}  // namespace

RunFolderLock::RunFolderLock(const std::string& dir) {
  if (const std::string problem = out_dir_problem(dir); !problem.empty()) throw std::runtime_error(problem);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error(fmt::format("cannot create the output folder {}: {}", dir, ec.message()));
  const std::string path = lock_path(dir);
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
  if (fd_ < 0) throw std::runtime_error(fmt::format("cannot open the lock file {}: {}", path, std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd_);
    throw std::runtime_error(fmt::format("{} is not a regular file; remove it", path));
  }
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    const long pid = read_pid(fd_);
    ::close(fd_);
    if (err == EWOULDBLOCK)
      throw RunFolderBusy(fmt::format("{} is in use by {} (it holds {}); wait for it to end, or choose another --out",
                                      dir, holder_text(pid), path));
    throw std::runtime_error(fmt::format("cannot lock {}: {}", path, std::strerror(err)));
  }
  const std::string pid = fmt::format("{}\n", static_cast<long>(::getpid()));
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    // The lock holds without its pid; a refused process then names "another process".
  }
}

RunFolderLock::~RunFolderLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the lock
}

std::string out_dir_problem(const std::string& path) {
  if (path.empty()) return "the output folder's name is empty";
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (fs::exists(st)) {
    if (!fs::is_directory(st)) return fmt::format("{} exists and is not a directory", path);
    return {};
  }
  // Absent: every existing prefix must be a directory.
  for (fs::path p = fs::path(path).parent_path(); !p.empty(); p = p.parent_path()) {
    const fs::file_status ps = fs::status(p, ec);
    if (fs::exists(ps)) {
      if (!fs::is_directory(ps)) return fmt::format("{} cannot be created: {} is not a directory", path, p.string());
      break;
    }
    if (p == p.parent_path()) break;
  }
  return {};
}

bool has_files(const std::string& dir) {
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().filename() != kRunLockFile) return true;
  return false;
}

std::optional<long> lock_holder(const std::string& dir) {
  const std::string path = lock_path(dir);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return std::nullopt;
  std::optional<long> holder;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    if (::flock(fd, LOCK_SH | LOCK_NB) != 0) holder = errno == EWOULDBLOCK ? read_pid(fd) : 0L;
    else ::flock(fd, LOCK_UN);
  }
  ::close(fd);
  return holder;
}

std::string regular_file_problem(const std::string& path, const std::string& what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return fmt::format("cannot read {} {}: {}", what, path, std::strerror(errno));
  if (S_ISDIR(st.st_mode)) return fmt::format("{} {} is a directory, not a file", what, path);
  if (!S_ISREG(st.st_mode)) return fmt::format("{} {} is not a regular file (a FIFO, socket or device)", what, path);
  if (::access(path.c_str(), R_OK) != 0) return fmt::format("cannot read {} {}: {}", what, path, std::strerror(errno));
  return {};
}

RunState read_run_state(const std::string& dir) {
  RunState s;
  const std::string manifest = (fs::path(dir) / "manifest.json").string();
  std::error_code ec;
  s.checkpoint = fs::is_regular_file(fs::path(dir) / "checkpoint" / "latest.json", ec);
  if (!regular_file_problem(manifest, "manifest").empty()) return s;
  nlohmann::json m;
  try {
    std::ifstream in(manifest);
    in >> m;
    s.status = m.at("status").get<std::string>();
    if (m.contains("status_reason")) s.reason = m["status_reason"].get<std::string>();
  } catch (const std::exception&) {
    s.status.clear();
    return s;
  }
  if (s.status == "running") {
    s.live = lock_holder(dir);
    if (s.live && *s.live == static_cast<long>(::getpid())) s.live.reset();  // this process: resume holds it
    if (!s.live) {
      s.status = s.checkpoint ? "interrupted" : "failed";
      s.reason =
          "its manifest says running, but no process holds the folder: the process was killed, or could not "
          "write its status";
    }
  }
  return s;
}

}  // namespace ouro
