// Post-accumulate-grad hooks on leaf tensors, which tch 0.24 does not bind: data-parallel training
// starts a gradient bucket's all-reduce as soon as the backward pass has written the bucket's last
// gradient, as PyTorch DDP's Reducer does, instead of waiting for the whole backward pass.
#include <memory>

#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

extern "C" typedef void (*txfm_grad_ready_fn)(void *ctx, size_t index);

namespace {
// Runs after AccumulateGrad has written the tensor's .grad, on the thread executing the backward
// pass (the caller's for CPU graphs, the device's autograd thread for CUDA graphs).
struct ReadyHook : torch::autograd::PostAccumulateGradHook {
  ReadyHook(txfm_grad_ready_fn fn, void *ctx, size_t index) : fn(fn), ctx(ctx), index(index) {}
  void operator()(const torch::autograd::Variable &) override { fn(ctx, index); }
  txfm_grad_ready_fn fn;
  void *ctx;
  size_t index;
};
}  // namespace

extern "C" {

// Sets (fn non-null) or removes (fn null) the tensor's hook; a tensor has at most one, so this
// replaces any earlier one. `tensor` is a tch tensor's `at::Tensor*`. Returns 0, or 1 if libtorch
// refused (the tensor is not a leaf that requires grad).
int txfm_set_grad_ready_hook(void *tensor, txfm_grad_ready_fn fn, void *ctx, size_t index) {
  try {
    const at::Tensor &t = *static_cast<const at::Tensor *>(tensor);
    if (fn != nullptr && !(t.is_leaf() && t.requires_grad())) {
      return 1;
    }
    std::unique_ptr<torch::autograd::PostAccumulateGradHook> hook;
    if (fn != nullptr) {
      hook = std::make_unique<ReadyHook>(fn, ctx, index);
    }
    torch::autograd::impl::set_post_acc_grad_hooks(t, std::move(hook));
    return 0;
  } catch (...) {
    return 1;
  }
}

}  // extern "C"
