#include "kernels/cuda/cuda_info.h"

#include <cuda_runtime.h>

#include <cstdlib>

namespace ouro::kernels {

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device / no driver" error
    return 0;
  }
  return n;
}

std::string cuda_device_name(int device) {
  cudaDeviceProp p{};
  if (cudaGetDeviceProperties(&p, device) != cudaSuccess) return "unknown";
  return p.name;
}

int cuda_current_device() {
  int d = 0;
  cudaGetDevice(&d);
  return d;
}

void cuda_use_device(int device) { cudaSetDevice(device); }

double cuda_free_bytes() {
  std::size_t free = 0, total = 0;
  if (cudaMemGetInfo(&free, &total) != cudaSuccess) return 0.0;
  return static_cast<double>(free);
}

std::string cuda_worker_name() {
  const int d = cuda_current_device();
  return "cuda:" + std::to_string(d) + " " + cuda_device_name(d);
}

double cuda_scratch_bytes() {
  const char* env = std::getenv("OUROBOROS_CUDA_SCRATCH_BYTES");
  const double v = env && *env ? std::atof(env) : 0.0;
  return v >= 1.0 ? v : kCudaScratchBytes;
}

std::string cuda_runtime_version() {
  int v = 0;
  cudaRuntimeGetVersion(&v);
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

}  // namespace ouro::kernels
