#include "sim/parallel/backend.h"

#include <stdexcept>

#if OUROBOROS_HAVE_CUDA
#include "kernels/cuda/cuda_info.h"
#endif

namespace ouro {

bool cuda_built() { return OUROBOROS_HAVE_CUDA != 0; }

int cuda_devices() {
#if OUROBOROS_HAVE_CUDA
  return kernels::cuda_device_count();
#else
  return 0;
#endif
}

std::string cuda_device_name() {
#if OUROBOROS_HAVE_CUDA
  return cuda_devices() > 0 ? kernels::cuda_device_name(kernels::cuda_current_device()) : std::string();
#else
  return {};
#endif
}

void cuda_select_device(int local_rank) {
#if OUROBOROS_HAVE_CUDA
  if (const int n = cuda_devices(); n > 0) kernels::cuda_use_device(local_rank % n);
#else
  (void)local_rank;
#endif
}

double cuda_free_bytes() {
#if OUROBOROS_HAVE_CUDA
  return cuda_devices() > 0 ? kernels::cuda_free_bytes() : 0.0;
#else
  return 0.0;
#endif
}

std::string cuda_runtime_version() {
#if OUROBOROS_HAVE_CUDA
  return kernels::cuda_runtime_version();
#else
  return {};
#endif
}

std::string resolve_backend(const std::string& requested) {
  if (requested == "cpu") return "cpu";
  if (requested == "auto") return cuda_devices() > 0 ? "cuda" : "cpu";
  if (requested == "cuda") {
    if (!cuda_built())
      throw std::invalid_argument(
          "--backend cuda: this build has no cuda backend (nvcc was not found at configure time)");
    if (cuda_devices() == 0) throw std::invalid_argument("--backend cuda: no CUDA device is visible");
    return "cuda";
  }
  throw std::invalid_argument("--backend: expected auto, cpu or cuda, got \"" + requested + "\"");
}

}  // namespace ouro
