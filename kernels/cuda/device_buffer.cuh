// An owning, movable buffer of device memory (cudaMalloc / cudaFree), for the
// cuda backends' per-batch arrays.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <stdexcept>
#include <utility>
#include <vector>

#include "kernels/core/state.h"
#include "kernels/cuda/cuda_check.h"

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

}  // namespace ouro::kernels
