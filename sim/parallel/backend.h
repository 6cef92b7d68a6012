// Backend selection: which backends this build has, whether a CUDA device is
// present, and `--backend auto|cpu|cuda` resolved to one of them. The only
// place where the cuda build option is visible outside kernels/.
#pragma once

#include <memory>
#include <string>

#include "kernels/gaussian/gaussian_backend.h"
#include "kernels/gmm/gmm_backend.h"

namespace ouro {

bool cuda_built();
int cuda_devices();              // 0 without the cuda backend or without a device
std::string cuda_device_name();  // "" when none
std::string cuda_runtime_version();
// One GPU per MPI rank: device local_rank modulo the visible devices.
void cuda_select_device(int local_rank);
double cuda_free_bytes();  // of the selected device; 0 without one

// "auto" -> cuda when built and a device is present, else cpu. Throws
// std::invalid_argument with a message for an unknown name or cuda without a
// device.
std::string resolve_backend(const std::string& requested);

std::unique_ptr<kernels::GaussianBackend> make_gaussian_backend(const std::string& backend,
                                                                const kernels::GaussianBatchSpec& spec);
std::unique_ptr<kernels::GmmBackend> make_gmm_backend(const std::string& backend, const kernels::GmmBatchSpec& spec);

}  // namespace ouro
