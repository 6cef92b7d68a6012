// An owning, movable buffer of device memory (cudaMalloc / cudaFree), for the
// cuda backends' per-batch arrays.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "kernels/core/state.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_info.h"

namespace ouro::kernels {

template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t n) : n_(n) {
    if (n) OURO_CUDA_CHECK(cudaMalloc(&p_, n * sizeof(T)));
  }
  ~DeviceBuffer() {
    if (p_) cudaFree(p_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(o.p_), n_(o.n_) {
    o.p_ = nullptr;
    o.n_ = 0;
  }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }
  T* get() const { return p_; }
  std::size_t size() const { return n_; }

 private:
  T* p_ = nullptr;
  std::size_t n_ = 0;
};

// Saves or restores a device array through host memory (a checkpoint's
// state() on the cuda backends).
template <typename T>
void archive(StateArchive& ar, const char* name, DeviceBuffer<T>& b) {
  std::vector<T> host(b.size());
  if (!ar.loading() && b.size())
    OURO_CUDA_CHECK(cudaMemcpy(host.data(), b.get(), b.size() * sizeof(T), cudaMemcpyDeviceToHost));
  ar.vec(name, host);
  if (!ar.loading()) return;
  if (host.size() != b.size()) throw std::runtime_error(std::string("checkpoint: array ") + name + " has another size");
  if (b.size()) OURO_CUDA_CHECK(cudaMemcpy(b.get(), host.data(), b.size() * sizeof(T), cudaMemcpyHostToDevice));
}

// Blocks of per_block threads covering `threads` threads.
inline unsigned grid_blocks(std::int64_t threads, int per_block) {
  return static_cast<unsigned>((threads + per_block - 1) / per_block);
}

// Bytes in MiB, rounded, for messages.
inline std::string mib(double bytes) { return std::to_string(static_cast<long long>(bytes / (1024.0 * 1024.0) + 0.5)); }

// A device array of n elements; a failed allocation says whose it was (`owner`: "kde cuda backend"), what it was
// for and how much memory was free.
template <typename T>
DeviceBuffer<T> allocate_device(const std::string& owner, std::size_t n, const std::string& what) {
  const double free = cuda_free_bytes();
  try {
    return DeviceBuffer<T>(n);
  } catch (const std::runtime_error& e) {
    cudaGetLastError();  // clear the allocation's error, so that it is not reported again by a later check
    throw std::runtime_error(owner + ": no room on the device for " + what + " (" +
                             mib(static_cast<double>(n) * sizeof(T)) + " MiB, " + mib(free) +
                             " MiB free): " + e.what());
  }
}

// allocate_device, filled with a copy of `host`.
template <typename T>
DeviceBuffer<T> upload_device(const std::string& owner, const std::vector<T>& host, const std::string& what) {
  DeviceBuffer<T> b = allocate_device<T>(owner, host.size(), what);
  if (!host.empty()) OURO_CUDA_CHECK(cudaMemcpy(b.get(), host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  return b;
}

}  // namespace ouro::kernels
