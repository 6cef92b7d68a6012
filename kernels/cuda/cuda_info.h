// Facts about the CUDA runtime and devices, for backend selection and the
// manifest. Plain C++ declarations; defined in cuda_info.cu.
#pragma once

#include <string>

namespace ouro::kernels {

int cuda_device_count();  // 0 when no device or no driver
std::string cuda_device_name(int device);
std::string cuda_runtime_version();
int cuda_current_device();
void cuda_use_device(int device);  // this process's device (an MPI rank's local rank picks it)
double cuda_free_bytes();          // free memory of the current device
std::string cuda_worker_name();    // "cuda:N name" of the current device, for manifest.json

// The most device memory a cuda backend gives the per-chain scratch of one
// launch (training sets, dedup's tables): kCudaScratchBytes, or
// $OUROBOROS_CUDA_SCRATCH_BYTES when set (the tests set it small, so that
// chains go through the kernels in several slices).
constexpr double kCudaScratchBytes = 1024.0 * 1024.0 * 1024.0;
double cuda_scratch_bytes();

}  // namespace ouro::kernels
