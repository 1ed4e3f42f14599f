// The argument checks shared by the CPU and CUDA kernels (declared in common.h), for direct torch.ops calls:
// convkit.functional has already validated what users pass; these keep a bad direct call from reading out of
// bounds, and name the argument and what was expected. The CPU and CUDA kernels call the same checks, so a bad
// direct call gets the same message on either device.
#include "common.h"

#include <array>

namespace convkit {

ConvGeom conv_geometry(const at::Tensor& input, const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                       at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  TORCH_CHECK(input.dim() == 4, "convkit::corr2d: input must be 4-d (N, C, H, W), got ", input.sizes());
  TORCH_CHECK(weight.dim() == 4, "convkit::corr2d: weight must be 4-d (O, C/groups, kh, kw), got ", weight.sizes());
  TORCH_CHECK(stride.size() == 2 && stride[0] > 0 && stride[1] > 0,
              "convkit::corr2d: stride must be 2 positive ints, got ", stride);
  TORCH_CHECK(dilation.size() == 2 && dilation[0] > 0 && dilation[1] > 0,
              "convkit::corr2d: dilation must be 2 positive ints, got ", dilation);
  TORCH_CHECK(padding.size() == 4 && padding[0] >= 0 && padding[1] >= 0 && padding[2] >= 0 && padding[3] >= 0,
              "convkit::corr2d: padding must be 4 non-negative ints (top, bottom, left, right), got ", padding);
  TORCH_CHECK(groups > 0, "convkit::corr2d: groups must be positive, got ", groups);
  TORCH_CHECK(input.scalar_type() == weight.scalar_type(), "convkit::corr2d: input and weight must have the same dtype, got ",
              input.scalar_type(), " and ", weight.scalar_type());
  TORCH_CHECK(input.is_floating_point(), "convkit::corr2d: input must be a floating-point tensor, got ", input.scalar_type());
  TORCH_CHECK(input.device() == weight.device(), "convkit::corr2d: input and weight must be on the same device");
  ConvGeom g;
  g.n = input.size(0); g.c = input.size(1); g.h = input.size(2); g.w = input.size(3);
  g.o = weight.size(0); g.cg = weight.size(1); g.kh = weight.size(2); g.kw = weight.size(3);
  g.groups = groups;
  TORCH_CHECK(g.cg * groups == g.c, "convkit::corr2d: input has ", g.c, " channels but weight expects ", g.cg,
              " * groups=", groups);
  TORCH_CHECK(g.o % groups == 0, "convkit::corr2d: out_channels (", g.o, ") must be divisible by groups (", groups, ")");
  TORCH_CHECK(g.kh > 0 && g.kw > 0, "convkit::corr2d: kernel size must be positive, got ", weight.sizes());
  g.og = g.o / groups;
  g.sh = stride[0]; g.sw = stride[1]; g.dh = dilation[0]; g.dw = dilation[1];
  g.pt = padding[0]; g.pb = padding[1]; g.pl = padding[2]; g.pr = padding[3];
  TORCH_CHECK(g.dh * (g.kh - 1) + 1 <= g.h + g.pt + g.pb && g.dw * (g.kw - 1) + 1 <= g.w + g.pl + g.pr,
              "convkit::corr2d: kernel (with dilation) is larger than the padded input");
  g.ho = conv_out_size(g.h, g.kh, g.pt + g.pb, g.sh, g.dh);
  g.wo = conv_out_size(g.w, g.kw, g.pl + g.pr, g.sw, g.dw);
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == g.o, "convkit::corr2d: bias must have shape (", g.o, "), got ",
                bias->sizes());
    TORCH_CHECK(bias->scalar_type() == input.scalar_type() && bias->device() == input.device(),
                "convkit::corr2d: bias must match input's dtype and device");
  }
  return g;
}

void check_corr2d_grad_output(const at::Tensor& grad_output, const at::Tensor& input, const ConvGeom& g) {
  TORCH_CHECK(grad_output.dim() == 4 && grad_output.size(0) == g.n && grad_output.size(1) == g.o &&
                  grad_output.size(2) == g.ho && grad_output.size(3) == g.wo,
              "convkit::corr2d_backward: grad_output must have shape (", g.n, ", ", g.o, ", ", g.ho, ", ", g.wo,
              "), got ", grad_output.sizes());
  TORCH_CHECK(grad_output.scalar_type() == input.scalar_type(),
              "convkit::corr2d_backward: grad_output must have input's dtype ", input.scalar_type());
}

PoolGeom pool_geometry(const at::Tensor& input, c10::string_view mode, at::IntArrayRef kernel, at::IntArrayRef stride,
                       at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode, bool count_include_pad,
                       c10::optional<int64_t> divisor_override) {
  TORCH_CHECK(input.dim() == 4, "convkit::pool2d: input must be 4-d (N, C, H, W), got ", input.sizes());
  TORCH_CHECK(input.is_floating_point(), "convkit::pool2d: input must be a floating-point tensor, got ",
              input.scalar_type());
  TORCH_CHECK(mode == "max" || mode == "avg", "convkit::pool2d: mode must be 'max' or 'avg', got '", mode, "'");
  TORCH_CHECK(kernel.size() == 2 && kernel[0] > 0 && kernel[1] > 0, "convkit::pool2d: kernel must be 2 positive ints, got ", kernel);
  TORCH_CHECK(stride.size() == 2 && stride[0] > 0 && stride[1] > 0, "convkit::pool2d: stride must be 2 positive ints, got ", stride);
  TORCH_CHECK(dilation.size() == 2 && dilation[0] > 0 && dilation[1] > 0,
              "convkit::pool2d: dilation must be 2 positive ints, got ", dilation);
  TORCH_CHECK(padding.size() == 2 && padding[0] >= 0 && padding[1] >= 0,
              "convkit::pool2d: padding must be 2 non-negative ints, got ", padding);
  PoolGeom g;
  g.is_max = mode == "max";
  g.n = input.size(0); g.c = input.size(1); g.h = input.size(2); g.w = input.size(3);
  g.kh = kernel[0]; g.kw = kernel[1]; g.sh = stride[0]; g.sw = stride[1];
  g.ph = padding[0]; g.pw = padding[1]; g.dh = dilation[0]; g.dw = dilation[1];
  TORCH_CHECK(g.is_max || (g.dh == 1 && g.dw == 1), "convkit::pool2d: dilation is only supported for mode 'max'");
  const int64_t eh = g.dh * (g.kh - 1) + 1, ew = g.dw * (g.kw - 1) + 1;
  TORCH_CHECK(g.ph <= (g.is_max ? eh : g.kh) / 2 && g.pw <= (g.is_max ? ew : g.kw) / 2,
              "convkit::pool2d: padding must be at most half of the kernel size, got ", padding);
  g.ceil_mode = ceil_mode;
  g.count_include_pad = count_include_pad;
  g.divisor = divisor_override.has_value() ? *divisor_override : 0;
  TORCH_CHECK(!divisor_override.has_value() || *divisor_override != 0, "convkit::pool2d: divisor_override must be non-zero");
  g.ho = pool_out_size(g.h, g.kh, g.ph, g.sh, g.dh, ceil_mode);
  g.wo = pool_out_size(g.w, g.kw, g.pw, g.sw, g.dw, ceil_mode);
  TORCH_CHECK(g.ho > 0 && g.wo > 0, "convkit::pool2d: output size is too small (", g.ho, "x", g.wo, ") for input ",
              input.sizes());
  return g;
}

void check_pool2d_backward_args(const at::Tensor& grad_output, const at::Tensor& indices, const at::Tensor& input,
                                const PoolGeom& g) {
  const std::array<int64_t, 4> out_shape{g.n, g.c, g.ho, g.wo};
  TORCH_CHECK(grad_output.sizes() == at::IntArrayRef(out_shape), "convkit::pool2d_backward: grad_output must have shape ",
              at::IntArrayRef(out_shape), ", got ", grad_output.sizes());
  TORCH_CHECK(grad_output.scalar_type() == input.scalar_type(),
              "convkit::pool2d_backward: grad_output must have input's dtype ", input.scalar_type());
  if (g.is_max)
    TORCH_CHECK(indices.defined() && indices.scalar_type() == at::kLong && indices.sizes() == at::IntArrayRef(out_shape),
                "convkit::pool2d_backward: indices must be int64 of shape ", at::IntArrayRef(out_shape), ", got ",
                indices.defined() ? c10::str(indices.scalar_type(), " ", indices.sizes()) : std::string("none"));
}

}  // namespace convkit
