// The zero-padded input slab of the direct kernels (forward_rows with row stride > 1, direct_oc.cpp): the
// rows [ih0, ih0 + rows) of channels [0, cg) of one image and group, slab[c][r][pl + iw] = x[c][ih0 + r][iw],
// zero for rows outside the image and in every other column of the ld-wide rows (padding and slack).
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "../common.h"

namespace convkit {

template <typename T>
void padded_rows_slab(const T* xg, const ConvGeom& g, int64_t ih0, int64_t rows, int64_t ld, std::vector<T>& slab) {
  const int64_t c_ld = rows * ld;
  slab.assign(g.cg * c_ld, T(0));
  for (int64_t c = 0; c < g.cg; ++c)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t ih = ih0 + r;
      if (ih >= 0 && ih < g.h)
        std::copy(xg + (c * g.h + ih) * g.w, xg + (c * g.h + ih + 1) * g.w, slab.data() + c * c_ld + r * ld + g.pl);
    }
}

}  // namespace convkit
