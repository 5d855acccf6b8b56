// 2-D stride-1 convolutions (NHWC activations, HWIO kernels, float32) and
// their input and kernel gradients, run by oneDNN, as XLA FFI handlers for
// the CPU. Built and loaded by jaxsr/cpu/onednn_conv.py (the bias and any
// activation are XLA's, fused there with other elementwise work).
#include <array>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using tag = dnnl::memory::format_tag;

namespace {

constexpr auto kF32 = memory::data_type::f32;

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// n, h, w, c (input), kh, kw, k (kernel), ho, wo (output), pads t, b, l, r.
using Key = std::array<int64_t, 13>;

struct Geometry {
  Key key;
  memory::desc src, dst, weights_any, weights_user;
  memory::dims strides{1, 1}, pad_l, pad_r;
};

// From the dimensions of the input (NHWC), kernel (HWIO) and output (NHWC).
template <typename Dims>
Geometry MakeGeometry(Dims x, Dims w, Dims y, int64_t pt, int64_t pb, int64_t pl,
                      int64_t pr) {
  int64_t n = x[0], h = x[1], wd = x[2], c = x[3], kh = w[0], kw = w[1], k = w[3];
  int64_t ho = y[1], wo = y[2];
  Geometry g;
  g.key = {n, h, wd, c, kh, kw, k, ho, wo, pt, pb, pl, pr};
  g.src = memory::desc({n, c, h, wd}, kF32, tag::nhwc);
  g.dst = memory::desc({n, k, ho, wo}, kF32, tag::nhwc);
  g.weights_any = memory::desc({k, c, kh, kw}, kF32, tag::any);
  g.weights_user = memory::desc({k, c, kh, kw}, kF32, tag::hwio);
  g.pad_l = {pt, pl};
  g.pad_r = {pb, pr};
  return g;
}

dnnl::primitive_attr UserScratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

dnnl::convolution_forward::primitive_desc ForwardDesc(const Geometry& g) {
  return dnnl::convolution_forward::primitive_desc(
      Engine(), dnnl::prop_kind::forward_training,
      dnnl::algorithm::convolution_direct, g.src, g.weights_any, g.dst, g.strides,
      g.pad_l, g.pad_r, UserScratchpad());
}

// Primitives are built once per geometry (their JIT kernels with them) and
// shared; every call brings its own stream and scratchpad.
struct Primitives {
  dnnl::convolution_forward::primitive_desc fwd_pd;
  dnnl::convolution_forward fwd;
  dnnl::convolution_backward_data::primitive_desc data_pd;
  dnnl::convolution_backward_data data;
  dnnl::convolution_backward_weights::primitive_desc weights_pd;
  dnnl::convolution_backward_weights weights;
};

const Primitives& GetPrimitives(const Geometry& g) {
  static std::mutex mutex;
  static std::map<Key, std::unique_ptr<Primitives>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = cache[g.key];
  if (!slot) {
    auto p = std::make_unique<Primitives>();
    p->fwd_pd = ForwardDesc(g);
    p->fwd = dnnl::convolution_forward(p->fwd_pd);
    p->data_pd = dnnl::convolution_backward_data::primitive_desc(
        Engine(), dnnl::algorithm::convolution_direct, g.src, g.weights_any,
        g.dst, g.strides, g.pad_l, g.pad_r, p->fwd_pd, UserScratchpad());
    p->data = dnnl::convolution_backward_data(p->data_pd);
    p->weights_pd = dnnl::convolution_backward_weights::primitive_desc(
        Engine(), dnnl::algorithm::convolution_direct, g.src, g.weights_any,
        g.dst, g.strides, g.pad_l, g.pad_r, p->fwd_pd, UserScratchpad());
    p->weights = dnnl::convolution_backward_weights(p->weights_pd);
    slot = std::move(p);
  }
  return *slot;
}

// Per-thread buffers for packed kernels and scratchpads, reused across calls
// (fresh allocations of this size are page-faulted on every call).
void* Buffer(int slot, size_t bytes) {
  struct Slot {
    void* data = nullptr;
    size_t size = 0;
    ~Slot() { std::free(data); }
  };
  thread_local Slot slots[3];
  Slot& s = slots[slot];
  if (s.size < bytes) {
    std::free(s.data);
    s.size = (bytes + 63) / 64 * 64;
    s.data = std::aligned_alloc(64, s.size);
    if (!s.data) throw std::bad_alloc();
  }
  return s.data;
}

memory Scratchpad(const memory::desc& desc) {
  return memory(desc, Engine(), Buffer(0, desc.get_size()));
}

// The kernel in the primitive's preferred layout (a copy when it is not HWIO).
memory KernelFor(const memory::desc& wanted, const Geometry& g, float* hwio,
                 dnnl::stream& stream) {
  memory user(g.weights_user, Engine(), hwio);
  if (wanted == g.weights_user) return user;
  memory packed(wanted, Engine(), Buffer(1, wanted.get_size()));
  dnnl::reorder(user, packed).execute(stream, user, packed);
  return packed;
}

template <typename T>
float* Data(T& buffer) {
  return const_cast<float*>(reinterpret_cast<const float*>(buffer.untyped_data()));
}

ffi::Error Catch(const std::function<void()>& body) {
  try {
    body();
  } catch (const dnnl::error& e) {
    return ffi::Error(ffi::ErrorCode::kInternal, std::string("oneDNN: ") + e.what());
  } catch (const std::bad_alloc&) {
    return ffi::Error(ffi::ErrorCode::kResourceExhausted, "oneDNN convolution: out of memory");
  }
  return ffi::Error::Success();
}

void RunForward(const Geometry& g, float* x, float* w, float* y) {
  const Primitives& p = GetPrimitives(g);
  dnnl::stream stream(Engine());
  memory kernel = KernelFor(p.fwd_pd.weights_desc(), g, w, stream);
  p.fwd.execute(stream, {{DNNL_ARG_SRC, memory(g.src, Engine(), x)},
                         {DNNL_ARG_WEIGHTS, kernel},
                         {DNNL_ARG_DST, memory(g.dst, Engine(), y)},
                         {DNNL_ARG_SCRATCHPAD, Scratchpad(p.fwd_pd.scratchpad_desc())}});
  stream.wait();
}

void RunBackwardWeights(const Geometry& g, float* x, float* dy, float* dw) {
  const Primitives& p = GetPrimitives(g);
  dnnl::stream stream(Engine());
  memory user(g.weights_user, Engine(), dw);
  const memory::desc& got = p.weights_pd.diff_weights_desc();
  bool packed = !(got == g.weights_user);
  memory diff = packed ? memory(got, Engine(), Buffer(2, got.get_size())) : user;
  p.weights.execute(stream, {{DNNL_ARG_SRC, memory(g.src, Engine(), x)},
                             {DNNL_ARG_DIFF_DST, memory(g.dst, Engine(), dy)},
                             {DNNL_ARG_DIFF_WEIGHTS, diff},
                             {DNNL_ARG_SCRATCHPAD, Scratchpad(p.weights_pd.scratchpad_desc())}});
  if (packed) dnnl::reorder(diff, user).execute(stream, diff, user);
  stream.wait();
}

void RunBackwardData(const Geometry& g, float* dy, float* w, float* dx) {
  const Primitives& p = GetPrimitives(g);
  dnnl::stream stream(Engine());
  memory kernel = KernelFor(p.data_pd.weights_desc(), g, w, stream);
  p.data.execute(stream, {{DNNL_ARG_DIFF_DST, memory(g.dst, Engine(), dy)},
                          {DNNL_ARG_WEIGHTS, kernel},
                          {DNNL_ARG_DIFF_SRC, memory(g.src, Engine(), dx)},
                          {DNNL_ARG_SCRATCHPAD, Scratchpad(p.data_pd.scratchpad_desc())}});
  stream.wait();
}

using Buf = ffi::Buffer<ffi::F32>;
using Out = ffi::ResultBuffer<ffi::F32>;

// x: NHWC, w: HWIO, y: NHWC.
ffi::Error Forward(Buf x, Buf w, Out y, int64_t pt, int64_t pb, int64_t pl, int64_t pr) {
  Geometry g = MakeGeometry(x.dimensions(), w.dimensions(), y->dimensions(), pt, pb, pl, pr);
  return Catch([&] { RunForward(g, Data(x), Data(w), Data(*y)); });
}

ffi::Error BackwardWeights(Buf x, Buf dy, Out dw, int64_t pt, int64_t pb, int64_t pl,
                           int64_t pr) {
  Geometry g = MakeGeometry(x.dimensions(), dw->dimensions(), dy.dimensions(), pt, pb,
                            pl, pr);
  return Catch([&] { RunBackwardWeights(g, Data(x), Data(dy), Data(*dw)); });
}

// after: the kernel gradient, unused: it orders the two gradients' calls
// (XLA could run them at once, and two oneDNN thread teams share the cores
// badly), while XLA can still drop this one where dx is not needed.
ffi::Error BackwardData(Buf dy, Buf w, Buf after, Out dx, int64_t pt, int64_t pb,
                        int64_t pl, int64_t pr) {
  Geometry g = MakeGeometry(dx->dimensions(), w.dimensions(), dy.dimensions(), pt, pb,
                            pl, pr);
  return Catch([&] { RunBackwardData(g, Data(dy), Data(w), Data(*dx)); });
}

#define JAXSR_ATTRS                \
  .Attr<int64_t>("pad_top")        \
      .Attr<int64_t>("pad_bottom") \
      .Attr<int64_t>("pad_left")   \
      .Attr<int64_t>("pad_right")

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(
    JaxsrConvForward, Forward,
    ffi::Ffi::Bind().Arg<Buf>().Arg<Buf>().Ret<Buf>() JAXSR_ATTRS);
XLA_FFI_DEFINE_HANDLER_SYMBOL(
    JaxsrConvBackwardWeights, BackwardWeights,
    ffi::Ffi::Bind().Arg<Buf>().Arg<Buf>().Ret<Buf>() JAXSR_ATTRS);
XLA_FFI_DEFINE_HANDLER_SYMBOL(
    JaxsrConvBackwardData, BackwardData,
    ffi::Ffi::Bind().Arg<Buf>().Arg<Buf>().Arg<Buf>().Ret<Buf>() JAXSR_ATTRS);
