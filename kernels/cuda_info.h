// Facts about the CUDA runtime and devices, for backend selection and the
// manifest. Plain C++ declarations; defined in cuda_info.cu.
#pragma once

#include <string>

namespace ouro::kernels {

int cuda_device_count();  // 0 when no device or no driver
std::string cuda_device_name(int device);
std::string cuda_runtime_version();

}  // namespace ouro::kernels
