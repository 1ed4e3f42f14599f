// Autograd for every convkit op, in C++, registered for the Autograd dispatch key (CPU and CUDA alike), the
// way torchvision's csrc/ops/autograd does it. It replaced torch.library.register_autograd's Python wrapper,
// which cost 40-110 us per call on a tiny input (measured on this machine, torch 2.13), so that d2l-sized
// training steps paid far more in Python than in the kernels; a C++ Function costs a few us.
//
// Each Function calls the op below autograd through the dispatcher (so the CPU or CUDA kernel, or the fake
// kernel under torch.compile, runs), and its backward calls the ops again *through* autograd, so gradients
// of any order work:
//   corr2d          -> backward is corr2d_backward (only the gradients needed);
//   corr2d_backward -> linear in grad_output and bilinear in (input, weight): its vector-Jacobian products
//                      are corr2d and corr2d_backward again (torch's convolution double backward);
//   pool2d          -> backward is pool2d_backward with the saved indices (max) or the window (avg);
//   pool2d_backward -> linear in grad_output: its VJP gathers the winners (max) or averages again (avg).
// Fake kernels (shapes for torch.compile) stay in Python: convkit/backends/compiled.py.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/autograd/saved_variable.h>
#include <torch/library.h>

#include "dispatch.h"

#include <algorithm>
#include <array>
#include <utility>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

namespace convkit {

using at::IntArrayRef;
using at::Tensor;

// ---- the ops called through the dispatcher (declared in dispatch.h)
Tensor corr2d_call(const Tensor& x, const Tensor& w, const c10::optional<Tensor>& b, IntArrayRef stride,
                   IntArrayRef padding, IntArrayRef dilation, int64_t groups, c10::string_view algo) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("convkit::corr2d", "")
                       .typed<Tensor(const Tensor&, const Tensor&, const c10::optional<Tensor>&, IntArrayRef,
                                     IntArrayRef, IntArrayRef, int64_t, c10::string_view)>();
  return op.call(x, w, b, stride, padding, dilation, groups, algo);
}

std::tuple<Tensor, Tensor, Tensor> corr2d_backward_call(const Tensor& gy, const Tensor& x, const Tensor& w,
                                                        IntArrayRef stride, IntArrayRef padding,
                                                        IntArrayRef dilation, int64_t groups,
                                                        std::array<bool, 3> mask, c10::string_view algo) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("convkit::corr2d_backward", "")
                       .typed<std::tuple<Tensor, Tensor, Tensor>(const Tensor&, const Tensor&, const Tensor&,
                                                                 IntArrayRef, IntArrayRef, IntArrayRef, int64_t,
                                                                 std::array<bool, 3>, c10::string_view)>();
  return op.call(gy, x, w, stride, padding, dilation, groups, mask, algo);
}

std::tuple<Tensor, Tensor> pool2d_call(const Tensor& x, c10::string_view mode, IntArrayRef kernel, IntArrayRef stride,
                                       IntArrayRef padding, IntArrayRef dilation, bool ceil_mode,
                                       bool count_include_pad, c10::optional<int64_t> divisor_override,
                                       bool return_indices) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("convkit::pool2d", "")
                       .typed<std::tuple<Tensor, Tensor>(const Tensor&, c10::string_view, IntArrayRef, IntArrayRef,
                                                         IntArrayRef, IntArrayRef, bool, bool,
                                                         c10::optional<int64_t>, bool)>();
  return op.call(x, mode, kernel, stride, padding, dilation, ceil_mode, count_include_pad, divisor_override,
                 return_indices);
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;


// pool2d's configuration after the input: everything pool2d_backward takes too.
// Pairs in fixed arrays (filled only from a saved list whose lengths the kernel checked): loading one
// allocates nothing, which matters on d2l-sized inputs where a backward costs ~20 us in all.
struct PoolConf {
  c10::string_view mode;  // a literal: "max" or "avg"
  std::array<int64_t, 2> kernel{}, stride{}, padding{}, dilation{};
  bool ceil_mode = false, count_include_pad = true;
  c10::optional<int64_t> divisor_override;
};

std::tuple<Tensor, Tensor> pool2d_call(const Tensor& x, const PoolConf& c, bool return_indices) {
  return convkit::pool2d_call(x, c.mode, c.kernel, c.stride, c.padding, c.dilation, c.ceil_mode, c.count_include_pad,
                     c.divisor_override, return_indices);
}

Tensor pool2d_backward_call(const Tensor& gy, const Tensor& x, const Tensor& idx, c10::string_view mode,
                            IntArrayRef kernel, IntArrayRef stride, IntArrayRef padding, IntArrayRef dilation,
                            bool ceil_mode, bool count_include_pad, c10::optional<int64_t> divisor_override) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("convkit::pool2d_backward", "")
                       .typed<Tensor(const Tensor&, const Tensor&, const Tensor&, c10::string_view, IntArrayRef,
                                     IntArrayRef, IntArrayRef, IntArrayRef, bool, bool, c10::optional<int64_t>)>();
  return op.call(gy, x, idx, mode, kernel, stride, padding, dilation, ceil_mode, count_include_pad, divisor_override);
}

Tensor pool2d_backward_call(const Tensor& gy, const Tensor& x, const Tensor& idx, const PoolConf& c) {
  return pool2d_backward_call(gy, x, idx, c.mode, c.kernel, c.stride, c.padding, c.dilation, c.ceil_mode,
                              c.count_include_pad, c.divisor_override);
}

// ---- the convolution's configuration, kept in the context between forward and backward
struct ConvConf {
  std::vector<int64_t> stride, padding, dilation;
  int64_t groups = 1;
  std::string algo;
};

// Kept in the context as one int list (and the algo string): fewer saved_data entries, fewer allocations.
void save_conv(AutogradContext* ctx, IntArrayRef stride, IntArrayRef padding, IntArrayRef dilation, int64_t groups,
               c10::string_view algo, int64_t extra = 0) {
  std::vector<int64_t> v;
  v.reserve(stride.size() + padding.size() + dilation.size() + 2);
  v.insert(v.end(), stride.begin(), stride.end());
  v.insert(v.end(), padding.begin(), padding.end());
  v.insert(v.end(), dilation.begin(), dilation.end());
  v.push_back(groups);
  v.push_back(extra);  // corr2d: has_bias; corr2d_backward: output_mask as bits
  ctx->saved_data["conf"] = std::move(v);
  ctx->saved_data["algo"] = std::string(algo);
}

ConvConf load_conv(AutogradContext* ctx, int64_t* extra = nullptr) {
  const auto v = ctx->saved_data["conf"].toIntVector();  // stride(2) padding(4) dilation(2) groups extra
  TORCH_INTERNAL_ASSERT(v.size() == 10);
  if (extra) *extra = v[9];
  return {{v[0], v[1]}, {v[2], v[3], v[4], v[5]}, {v[6], v[7]}, v[8], ctx->saved_data["algo"].toStringRef()};
}

class Corr2dFunction : public torch::autograd::Function<Corr2dFunction> {
 public:
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Tensor& w, const c10::optional<Tensor>& b,
                        IntArrayRef stride, IntArrayRef padding, IntArrayRef dilation, int64_t groups,
                        c10::string_view algo) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({x, w});
    save_conv(ctx, stride, padding, dilation, groups, algo, b.has_value() && b->defined());
    return corr2d_call(x, w, b, stride, padding, dilation, groups, algo);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    int64_t has_bias = 0;
    const ConvConf c = load_conv(ctx, &has_bias);
    const std::array<bool, 3> mask = {ctx->needs_input_grad(0), ctx->needs_input_grad(1),
                                      has_bias && ctx->needs_input_grad(2)};
    variable_list out(8);
    if (!grads[0].defined() || !(mask[0] || mask[1] || mask[2])) return out;
    // Without create_graph, straight to the kernels: the recording Function (Corr2dBackwardFunction) around
    // them costs microseconds per call, measurable on small inputs (as in Pool2dBackwardNode::apply).
    c10::optional<at::AutoDispatchBelowADInplaceOrView> below;
    if (!at::GradMode::is_enabled()) below.emplace();
    auto [gx, gw, gb] =
        corr2d_backward_call(grads[0], saved[0], saved[1], c.stride, c.padding, c.dilation, c.groups, mask, c.algo);
    out[0] = gx;
    out[1] = gw;
    out[2] = gb;
    return out;
  }
};

class Corr2dBackwardFunction : public torch::autograd::Function<Corr2dBackwardFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const Tensor& gy, const Tensor& x, const Tensor& w,
                               IntArrayRef stride, IntArrayRef padding, IntArrayRef dilation, int64_t groups,
                               std::array<bool, 3> mask, c10::string_view algo) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({gy, x, w});
    save_conv(ctx, stride, padding, dilation, groups, algo, mask[0] | mask[1] << 1 | mask[2] << 2);
    auto [gx, gw, gb] = corr2d_backward_call(gy, x, w, stride, padding, dilation, groups, mask, algo);
    // A custom Function's outputs must be defined tensors: return the computed ones only, in order.
    variable_list out;
    const Tensor g[3] = {gx, gw, gb};
    for (int i = 0; i < 3; ++i) {
      TORCH_INTERNAL_ASSERT(g[i].defined() == mask[i], "corr2d_backward: output ", i, " defined against output_mask");
      if (mask[i]) out.push_back(g[i]);
    }
    return out;
  }

  // ggx, ggw, ggb: the incoming gradients of grad_input, grad_weight and grad_bias (each may be undefined).
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tensor &gy = saved[0], &x = saved[1], &w = saved[2];
    int64_t bits = 0;
    const ConvConf c = load_conv(ctx, &bits);
    Tensor gg[3];
    for (size_t i = 0, k = 0; i < 3; ++i)
      if (bits >> i & 1) gg[i] = grads[k++];
    const Tensor &ggx = gg[0], &ggw = gg[1], &ggb = gg[2];
    variable_list out(9);
    if (ctx->needs_input_grad(0)) {  // d/d(grad_output): the forward applied to ggx, plus to ggw, plus ggb
      Tensor g;
      if (ggx.defined()) g = corr2d_call(ggx, w, c10::nullopt, c.stride, c.padding, c.dilation, c.groups, c.algo);
      if (ggw.defined()) {
        Tensor t = corr2d_call(x, ggw, c10::nullopt, c.stride, c.padding, c.dilation, c.groups, c.algo);
        g = g.defined() ? g.add(t) : t;
      }
      if (ggb.defined()) {
        Tensor t = ggb.reshape({1, -1, 1, 1}).expand_as(gy);
        g = g.defined() ? g.add(t) : t;
      }
      out[0] = g;
    }
    if (ctx->needs_input_grad(1) && ggw.defined())
      out[1] = std::get<0>(corr2d_backward_call(gy, x, ggw, c.stride, c.padding, c.dilation, c.groups,
                                                {true, false, false}, c.algo));
    if (ctx->needs_input_grad(2) && ggx.defined())
      out[2] = std::get<1>(corr2d_backward_call(gy, ggx, w, c.stride, c.padding, c.dilation, c.groups,
                                                {false, true, false}, c.algo));
    return out;
  }
};

// Kept in the context as one int list: mode (0 max, 1 avg), kernel, stride, padding, dilation (2 each),
// ceil_mode, count_include_pad, divisor_override (0: None; a given one is never 0).
void save_pool(AutogradContext* ctx, c10::string_view mode, IntArrayRef kernel, IntArrayRef stride,
               IntArrayRef padding, IntArrayRef dilation, bool ceil_mode, bool count_include_pad,
               c10::optional<int64_t> divisor_override) {
  std::vector<int64_t> v{mode == "max" ? 0 : 1};
  for (IntArrayRef a : {kernel, stride, padding, dilation}) v.insert(v.end(), a.begin(), a.end());
  v.push_back(ceil_mode);
  v.push_back(count_include_pad);
  v.push_back(divisor_override.value_or(0));
  ctx->saved_data["conf"] = std::move(v);
}

PoolConf load_pool(AutogradContext* ctx) {
  const c10::List<int64_t> v = ctx->saved_data["conf"].toIntList();  // shares the saved list: no copy
  TORCH_INTERNAL_ASSERT(v.size() == 12);  // the kernel checked the lengths before any backward
  PoolConf c;
  c.mode = v.get(0) == 0 ? "max" : "avg";
  c.kernel = {v.get(1), v.get(2)};
  c.stride = {v.get(3), v.get(4)};
  c.padding = {v.get(5), v.get(6)};
  c.dilation = {v.get(7), v.get(8)};
  c.ceil_mode = v.get(9);
  c.count_include_pad = v.get(10);
  if (v.get(11) != 0) c.divisor_override = v.get(11);
  return c;
}

// pool2d's backward node: a Node written out the way torch's generated ones are (MaxPool2DWithIndicesBackward0),
// not a torch::autograd::Function. On d2l-sized inputs the Function's bookkeeping was the cost: a CppNode
// records per-input and per-output VariableInfo (a sizes vector each), a saved_data hash map, a
// non-differentiable set, and demangles its own type name on every backward. Forward + backward of the d2l
// 3x3 max-pool took 24.7 us that way against torch's 20.0 us (callgrind-free loop, /tmp/w/cg_pool.py);
// the numbers after this node are in the closing note of the session that wrote it.
// Double backward still works: apply calls pool2d_backward through the dispatcher, whose Autograd kernel
// records Pool2dBackwardFunction when grad mode is on (create_graph=True).
// torch 2.13 holds autograd nodes in c10::intrusive_ptr, earlier releases (2.11, the GPU machine's) in
// std::shared_ptr: make the node the way this torch's Edge holds it.
template <class N>
auto make_node() {
  if constexpr (std::is_same_v<decltype(torch::autograd::Edge::function), std::shared_ptr<torch::autograd::Node>>)
    return std::make_shared<N>();
  else
    return c10::make_intrusive<N>();
}

struct Pool2dBackwardNode final : torch::autograd::Node {
  torch::autograd::SavedVariable x_, idx_;  // the input; the int64 winners (max; may be empty, see apply)
  PoolConf conf;

  std::string name() const override { return "Pool2dBackward"; }
  void release_variables() override {
    std::lock_guard<std::mutex> lock(mutex_);
    x_.reset_data();
    idx_.reset_data();
  }
  variable_list apply(variable_list&& grads) override {
    std::lock_guard<std::mutex> lock(mutex_);
    variable_list out(1);
    const Tensor& gy = grads[0];
    if (!gy.defined() || !task_should_compute_output(0)) return out;
    const Tensor x = x_.unpack();
    Tensor idx = idx_.unpack();
    if (conf.mode == "max" && (!idx.defined() || idx.sym_numel() == 0) && gy.sym_numel() > 0)
      // a direct op call with return_indices=False on an input that requires grad: find the winners again
      idx = std::get<1>(pool2d_call(x.detach(), conf, true));
    // create_graph: the backward is recorded (Pool2dBackwardFunction) for double backward; else straight to
    // the kernel, no autograd Function around it (d2l 3x3 max pool fwd+bwd 20.5 -> 18.7 us; torch 20.3-20.6)
    c10::optional<at::AutoDispatchBelowADInplaceOrView> below;
    if (!at::GradMode::is_enabled()) below.emplace();
    out[0] = pool2d_backward_call(gy, x, idx, conf);
    return out;
  }
};

class Pool2dBackwardFunction : public torch::autograd::Function<Pool2dBackwardFunction> {
 public:
  static Tensor forward(AutogradContext* ctx, const Tensor& gy, const Tensor& x, const Tensor& idx,
                        c10::string_view mode, IntArrayRef kernel, IntArrayRef stride, IntArrayRef padding,
                        IntArrayRef dilation, bool ceil_mode, bool count_include_pad,
                        c10::optional<int64_t> divisor_override) {
    at::AutoDispatchBelowADInplaceOrView guard;
    save_pool(ctx, mode, kernel, stride, padding, dilation, ceil_mode, count_include_pad, divisor_override);
    ctx->save_for_backward({idx});
    return pool2d_backward_call(gy, x, idx, mode, kernel, stride, padding, dilation, ceil_mode, count_include_pad,
                                divisor_override);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list out(11);
    const Tensor& ggx = grads[0];
    if (!ggx.defined() || !ctx->needs_input_grad(0)) return out;
    const Tensor idx = ctx->get_saved_variables()[0];
    const PoolConf c = load_pool(ctx);
    if (c.mode == "max")
      out[0] = ggx.flatten(2).gather(2, idx.flatten(2)).view_symint(idx.sym_sizes());
    else
      out[0] = std::get<0>(pool2d_call(ggx, c, false));
    return out;
  }
};

// ---- the Autograd kernels. Where no gradient can flow (grad mode off, as inside a first-order backward, or no
// input requiring grad) they call the kernel below autograd directly, without a Function and its context.
bool any_requires_grad(std::initializer_list<const Tensor*> ts) {
  if (!at::GradMode::is_enabled()) return false;
  for (const Tensor* t : ts)
    if (t->defined() && t->requires_grad()) return true;
  return false;
}

Tensor corr2d_autograd(const Tensor& x, const Tensor& w, const c10::optional<Tensor>& b, IntArrayRef stride,
                       IntArrayRef padding, IntArrayRef dilation, int64_t groups, c10::string_view algo) {
  if (!any_requires_grad({&x, &w, b ? &*b : &x})) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return corr2d_call(x, w, b, stride, padding, dilation, groups, algo);
  }
  return Corr2dFunction::apply(x, w, b, stride, padding, dilation, groups, algo);
}

std::tuple<Tensor, Tensor, Tensor> corr2d_backward_autograd(const Tensor& gy, const Tensor& x, const Tensor& w,
                                                            IntArrayRef stride, IntArrayRef padding,
                                                            IntArrayRef dilation, int64_t groups,
                                                            std::array<bool, 3> mask, c10::string_view algo) {
  if (!any_requires_grad({&gy, &x, &w})) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return corr2d_backward_call(gy, x, w, stride, padding, dilation, groups, mask, algo);
  }
  auto r = Corr2dBackwardFunction::apply(gy, x, w, stride, padding, dilation, groups, mask, algo);
  Tensor g[3];
  for (size_t i = 0, k = 0; i < 3; ++i)
    if (mask[i]) g[i] = r[k++];
  return {g[0], g[1], g[2]};
}

std::tuple<Tensor, Tensor> pool2d_autograd(const Tensor& x, c10::string_view mode, IntArrayRef kernel,
                                           IntArrayRef stride, IntArrayRef padding, IntArrayRef dilation,
                                           bool ceil_mode, bool count_include_pad,
                                           c10::optional<int64_t> divisor_override, bool return_indices) {
  if (!any_requires_grad({&x})) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return convkit::pool2d_call(x, mode, kernel, stride, padding, dilation, ceil_mode, count_include_pad,
                                divisor_override, return_indices);
  }
  auto node = make_node<Pool2dBackwardNode>();
  node->set_next_edges(torch::autograd::collect_next_edges(x));
  Tensor y, idx;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    std::tie(y, idx) = convkit::pool2d_call(x, mode, kernel, stride, padding, dilation, ceil_mode,
                                            count_include_pad, divisor_override, return_indices);
  }
  node->x_ = torch::autograd::SavedVariable(x, false);
  node->idx_ = torch::autograd::SavedVariable(idx, false);
  PoolConf& c = node->conf;
  c.mode = mode == "max" ? "max" : "avg";  // a literal: the caller's string need not outlive the graph
  // the kernel checked these lengths; a fake kernel (torch.compile) need not have, so check before copying
  const std::pair<IntArrayRef, std::array<int64_t, 2>*> pairs[] = {
      {kernel, &c.kernel}, {stride, &c.stride}, {padding, &c.padding}, {dilation, &c.dilation}};
  for (const auto& [from, to] : pairs) {
    TORCH_CHECK(from.size() == 2, "convkit::pool2d: kernel, stride, padding and dilation must be 2 ints each, got ",
                from);
    std::copy(from.begin(), from.end(), to->begin());
  }
  c.ceil_mode = ceil_mode;
  c.count_include_pad = count_include_pad;
  c.divisor_override = divisor_override;
  torch::autograd::set_history(y, node);  // idx gets no history: it is not differentiable
  return {y, idx};
}

Tensor pool2d_backward_autograd(const Tensor& gy, const Tensor& x, const Tensor& idx, c10::string_view mode,
                                IntArrayRef kernel, IntArrayRef stride, IntArrayRef padding, IntArrayRef dilation,
                                bool ceil_mode, bool count_include_pad, c10::optional<int64_t> divisor_override) {
  if (!any_requires_grad({&gy, &x, &idx})) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return pool2d_backward_call(gy, x, idx, mode, kernel, stride, padding, dilation, ceil_mode, count_include_pad,
                                divisor_override);
  }
  return Pool2dBackwardFunction::apply(gy, x, idx, mode, kernel, stride, padding, dilation, ceil_mode,
                                       count_include_pad, divisor_override);
}

}  // namespace

TORCH_LIBRARY_IMPL(convkit, Autograd, m) {
  m.impl("corr2d", &corr2d_autograd);
  m.impl("corr2d_backward", &corr2d_backward_autograd);
  m.impl("pool2d", &pool2d_autograd);
  m.impl("pool2d_backward", &pool2d_backward_autograd);
}

}  // namespace convkit
