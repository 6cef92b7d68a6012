// Backend selection: which backends this build has, whether a CUDA device is
// present, `--backend auto|cpu|cuda` resolved to one of them, and the one
// factory every family builds its backend with. The only place where the cuda
// build option (OUROBOROS_HAVE_CUDA) is visible outside kernels/.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>

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

// A family's cuda factory where this build has the cuda backend, else nullptr (its symbol is then not referenced:
// kernels/*/*_cuda.cu is not compiled).
#if OUROBOROS_HAVE_CUDA
#define OURO_CUDA_FACTORY(f) (&(f))
#else
#define OURO_CUDA_FACTORY(f) nullptr
#endif

// The backend `backend` ("cpu" or "cuda", resolved) of a family, from its factories: the cpu one, and the cuda one
// or nullptr (OURO_CUDA_FACTORY). std::invalid_argument for a backend this build does not have.
template <class Backend, class Spec>
using BackendFactory = std::unique_ptr<Backend> (*)(const Spec&);
template <class T>
struct NotDeduced {
  using type = T;
};
template <class Backend, class Spec>
std::unique_ptr<Backend> make_backend(const std::string& backend, const Spec& spec, BackendFactory<Backend, Spec> cpu,
                                      typename NotDeduced<BackendFactory<Backend, Spec>>::type cuda) {
  if (backend == "cuda" && cuda != nullptr) return cuda(spec);
  if (backend != "cpu") throw std::invalid_argument("backend " + backend + " is not available in this build");
  return cpu(spec);
}

}  // namespace ouro
