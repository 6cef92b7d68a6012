// The device memory of the sample-based metrics' model samples (kernels/core/sample_metrics.h) on the cuda
// backends: a batch's chains go through in slices whose model samples and nearest-neighbour radii fit
// cuda_scratch_bytes(), the buffers kept from one generation to the next.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/cuda_info.h"
#include "kernels/cuda/device_buffer.cuh"

namespace ouro::kernels {

class SampleSlices {
 public:
  // Calls launch(first, count, points, radii) for consecutive slices of chains [0, batch): room for count model
  // samples of n points in d dimensions (points, count * n * d doubles) and their radii (count * n doubles).
  template <class Launch>
  void run(std::int64_t batch, std::int64_t n, int d, Launch&& launch) {
    const double per_chain = 8.0 * static_cast<double>(n) * (d + 1.0);
    const std::int64_t slice = std::max<std::int64_t>(
        1, std::min<std::int64_t>(batch, static_cast<std::int64_t>(cuda_scratch_bytes() / per_chain)));
    if (points_.size() < static_cast<std::size_t>(slice * n * d)) points_ = DeviceBuffer<double>(slice * n * d);
    if (radii_.size() < static_cast<std::size_t>(slice * n)) radii_ = DeviceBuffer<double>(slice * n);
    for (std::int64_t first = 0; first < batch; first += slice)
      launch(first, std::min(slice, batch - first), points_.get(), radii_.get());
  }

 private:
  DeviceBuffer<double> points_, radii_;
};

}  // namespace ouro::kernels
