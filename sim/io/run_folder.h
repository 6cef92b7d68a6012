// A run folder's ownership and state: who may write it, and what its manifest's status means when the process that
// wrote it is gone.
//
// Ownership: `run` and `resume` hold an exclusive flock(2) on DIR/.lock from before they look at the folder to the
// end of the process (rank 0 of an MPI job holds it for every rank), so two processes never write one folder. The
// file holds the holder's pid, for the refusal's message. flock is advisory and local: on some network filesystems
// (older NFS, some FUSE mounts) it is not shared between machines, so two runs on two machines can still collide
// there.
//
// States (manifest.json's "status", with "status_reason" when the run did not complete):
//   running      a process is writing the folder;
//   complete     every point and generation is written;
//   interrupted  stopped by a signal (SIGINT, SIGTERM, SIGHUP) or by a write error such as a full disk, with a
//                checkpoint to go on from: `ouroboros resume DIR`;
//   failed       stopped by an error with no checkpoint to go on from.
// A folder whose manifest says running while nobody holds its lock was left by a process that could not say how it
// ended (kill -9, a power cut): read_run_state() reads it as interrupted when a checkpoint exists, else failed.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>

namespace ouro {

inline constexpr const char* kRunLockFile = ".lock";

class RunFolderBusy : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The folder's lock, held until destroyed. Creates the folder (and its parents) when absent; RunFolderBusy when
// another process holds the lock, std::runtime_error when the folder cannot be created or locked.
class RunFolderLock {
 public:
  explicit RunFolderLock(const std::string& dir);
  ~RunFolderLock();
  RunFolderLock(const RunFolderLock&) = delete;
  RunFolderLock& operator=(const RunFolderLock&) = delete;

 private:
  int fd_ = -1;
};

// Why `path` cannot be a run folder (it exists and is not a directory; a prefix of it is a file), or "" when it can.
std::string out_dir_problem(const std::string& path);

// The folder holds files other than its lock file.
bool has_files(const std::string& dir);

// The pid of the live process that holds the folder's lock, if any (a probe that takes and drops a shared lock).
std::optional<long> lock_holder(const std::string& dir);

// Why `path` cannot be read as a regular file ("" when it can): missing, a directory, a FIFO, a device, unreadable.
// `what` names it in the message ("config file", "summary.csv").
std::string regular_file_problem(const std::string& path, const std::string& what);

struct RunState {
  std::string status;        // running | complete | interrupted | failed; "" when there is no readable manifest
  std::string reason;        // why it is not complete (for interrupted and failed)
  bool checkpoint = false;   // checkpoint/latest.json exists
  std::optional<long> live;  // running: the pid that holds the lock
  bool resumable() const { return status == "interrupted"; }
};

// The folder's state as its manifest says, with a `running` folder nobody holds read as interrupted or failed.
RunState read_run_state(const std::string& dir);

}  // namespace ouro
