// One error-check family for CUDA runtime calls (after ggml's CUDA_CHECK_GEN):
// a failed call throws std::runtime_error naming the statement, function,
// file and line. Library code throws rather than exits, so the CLI can report
// and keep the rows already written. Include only from .cu files.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace ouro::kernels {

[[noreturn]] inline void cuda_fail(const char* stmt, const char* func, const char* file, int line, const char* what) {
  throw std::runtime_error(std::string("CUDA error: ") + what + " in " + stmt + " (" + func + ", " + file + ":" +
                           std::to_string(line) + ")");
}

}  // namespace ouro::kernels

#define OURO_CUDA_CHECK(stmt)                                                                         \
  do {                                                                                                \
    const cudaError_t ouro_err_ = (stmt);                                                             \
    if (ouro_err_ != cudaSuccess)                                                                     \
      ::ouro::kernels::cuda_fail(#stmt, __func__, __FILE__, __LINE__, cudaGetErrorString(ouro_err_)); \
  } while (0)
