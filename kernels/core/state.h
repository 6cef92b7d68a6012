// What a checkpoint holds of a backend: every array that advance() needs to go
// on from the last generation done. Each backend writes one state() method
// that both saves and restores (StateArchive::loading()), so the two
// directions cannot drift apart; sim/io/checkpoint.h gives the file format
// (named, sized records under a checksum).
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/core/chain_backend.h"

namespace ouro::kernels {

class StateArchive {
 public:
  virtual ~StateArchive() = default;
  virtual bool loading() const = 0;
  // Saves, or restores and checks against the record's name and size, n bytes.
  virtual void bytes(const char* name, void* data, std::uint64_t n) = 0;
  // Saves a count, or restores it (a vector's size, decided by the saver).
  virtual void count(const char* name, std::uint64_t& n) = 0;

  template <class T>
  void value(const char* name, T& x) {
    static_assert(std::is_trivially_copyable_v<T>, "state values are plain bytes");
    bytes(name, &x, sizeof x);
  }
  template <class T>
  void vec(const char* name, std::vector<T>& v) {
    static_assert(std::is_trivially_copyable_v<T>, "state arrays are plain bytes");
    std::uint64_t n = v.size();
    count(name, n);
    if (loading()) v.resize(n);
    bytes(name, v.data(), n * sizeof(T));
  }
  // A vector of a backend's own records, each archived by f(ar, element).
  template <class T, class F>
  void each(const char* name, std::vector<T>& v, F&& f) {
    std::uint64_t n = v.size();
    count(name, n);
    if (loading()) v.resize(n);
    for (auto& x : v) f(*this, x);
  }
  // Which chains each worker ran (for manifest.json; restored so a resumed
  // run reports the split that produced its chains' first generations).
  void workers(std::vector<WorkerRange>& w) {
    each("workers", w, [](StateArchive& ar, WorkerRange& r) {
      std::vector<char> name(r.worker.begin(), r.worker.end());
      ar.vec("worker", name);
      r.worker.assign(name.begin(), name.end());
      ar.value("first_chain", r.first_chain);
      ar.value("last_chain", r.last_chain);
      ar.value("chains", r.chains);
    });
  }
};

}  // namespace ouro::kernels
