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
double cuda_free_bytes();           // free memory of the current device
std::string cuda_worker_name();     // "cuda:N name" of the current device, for manifest.json

}  // namespace ouro::kernels
