// Training-mode BatchNorm followed by SiLU, in one pass over memory each way, for channels-last
// CPU tensors (float32 or bfloat16 activations, float32 parameters and statistics).
//
// Why: in eager PyTorch a BatchNorm + SiLU pair reads and writes its activation map in many separate
// passes, and autograd clones the in-place SiLU's input; on small CPUs these memory-bound passes took
// about 40% of a depthwise YOLOX training step. Here the forward reads x twice (statistics, then
// output) and writes y once; the backward reads dy and x (writing dz), then x and dz (writing dx).
//
// A channels-last [N, C, H, W] tensor is a row-major [M, C] matrix with M = N * H * W, so every
// loop runs over rows and vectorises over channels.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

// Sixteen float lanes as a GCC vector: the compiler maps it onto AVX-512 registers, or pairs of
// AVX2 ones, so the same source runs on both CPU generations this project targets (`-march=native`
// at build time). Every loop body below is written once, as a template over the lane type, and
// runs on Vec16 for the full groups of 16 channels and on plain float for the tail.
typedef float Vec16 __attribute__((vector_size(64)));
typedef int32_t Int16 __attribute__((vector_size(64)));
typedef uint32_t Uint16 __attribute__((vector_size(64)));
typedef uint16_t Half16 __attribute__((vector_size(32)));
constexpr int64_t kLanes = 16;

template <typename To, typename From>
inline To bit_cast(const From& from) {
  static_assert(sizeof(To) == sizeof(From), "bit_cast needs equal sizes");
  To to;
  std::memcpy(&to, &from, sizeof to);
  return to;
}

// Lane type -> matching 32-bit integer types and conversions.
template <typename V> struct Lanes;
template <> struct Lanes<float> {
  using I = int32_t;
  using U = uint32_t;
  using H = uint16_t;
  static I to_int(float v) { return static_cast<int32_t>(v); }
  static U widen(H h) { return h; }
  static H narrow(U u) { return static_cast<uint16_t>(u); }
  static float splat(float v) { return v; }
};
template <> struct Lanes<Vec16> {
  using I = Int16;
  using U = Uint16;
  using H = Half16;
  static I to_int(Vec16 v) { return __builtin_convertvector(v, Int16); }
  static U widen(H h) { return __builtin_convertvector(h, Uint16); }
  static H narrow(U u) { return __builtin_convertvector(u, Half16); }
  static Vec16 splat(float v) { return Vec16{} + v; }
};

template <typename V>
inline V load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// bfloat16 is the top half of a float32.
template <typename V>
inline V load(const uint16_t* p) {
  using L = Lanes<V>;
  typename L::H h;
  std::memcpy(&h, p, sizeof h);
  return bit_cast<V>(typename L::U(L::widen(h) << 16));
}

template <typename V>
inline void store(float* p, V v) { std::memcpy(p, &v, sizeof v); }

// Round to nearest even, as PyTorch's float -> bfloat16 conversion does; NaN stays NaN.
template <typename V>
inline void store(uint16_t* p, V v) {
  using L = Lanes<V>;
  using U = typename L::U;
  U bits = bit_cast<U>(v);
  U rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
  rounded = v != v ? U{} + 0x7FC0u : rounded;
  typename L::H h = L::narrow(rounded);
  std::memcpy(p, &h, sizeof h);
}

// exp(x) for the sigmoid: 2^(x log2 e) split into an integer power (written into the exponent
// bits) and a degree-6 Taylor polynomial of 2^f on [-0.5, 0.5]; relative error about 3e-7 near 0,
// growing with |x| from the rounding of x * log2(e) to about 1e-5 at the clamp (+-87).
template <typename V>
inline V fast_exp(V x) {
  using L = Lanes<V>;
  x = x < -87.0f ? L::splat(-87.0f) : x;
  x = x > 87.0f ? L::splat(87.0f) : x;
  const V t = x * 1.44269504088896341f;
  const float round_magic = 12582912.0f;  // 1.5 * 2^23: adding and subtracting it rounds to an integer
  const V n = (t + round_magic) - round_magic;
  const V f = t - n;
  V p = L::splat(1.5403530e-4f);
  p = p * f + 1.3333558e-3f;
  p = p * f + 9.6181291e-3f;
  p = p * f + 5.5504109e-2f;
  p = p * f + 2.4022651e-1f;
  p = p * f + 6.9314718e-1f;
  p = p * f + 1.0f;
  return p * bit_cast<V>(typename L::I((L::to_int(n) + 127) << 23));
}

template <typename V>
inline V sigmoid(V z) { return 1.0f / (1.0f + fast_exp(-z)); }

// Runs `body(lane_tag, j)` over channels [0, c): in groups of 16 lanes, then one by one.
template <typename F>
inline void over_channels(int64_t c, const F& body) {
  int64_t j = 0;
  for (; j + kLanes <= c; j += kLanes) body(Vec16{}, j);
  for (; j < c; ++j) body(0.0f, j);
}

// Split rows [0, m) into one contiguous range per thread; `body(thread, begin, end)`. Each thread
// gets the same rows in every pass, and second passes walk them backwards: the rows a thread
// touched last in the first pass are still in its cache (maps are a few MB, read cold otherwise).
template <typename F>
void for_each_thread_rows(int64_t m, int64_t threads, const F& body) {
  at::parallel_for(0, threads, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      int64_t begin = m * t / threads, end = m * (t + 1) / threads;
      body(t, begin, end);
    }
  });
}

// Rows accumulate in float for at most this many rows, then into double: float keeps the inner
// loop in vector registers, the double totals keep large maps (M in the hundreds of thousands)
// exact enough.
constexpr int64_t kBlockRows = 64;

int64_t thread_count(int64_t m) {
  return std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), m / kBlockRows + 1));
}

// Per-thread blocked sums of two per-channel quantities over rows: `terms(lane_tag, row, j, s1, s2)`
// adds its row's values into the float block sums s1[j..], s2[j..]; returns the totals in double.
template <typename F>
void row_sums(int64_t m, int64_t c, int64_t threads, const F& terms, std::vector<double>& total1,
              std::vector<double>& total2) {
  std::vector<double> sum1(threads * c, 0.0), sum2(threads * c, 0.0);
  for_each_thread_rows(m, threads, [&](int64_t t, int64_t begin, int64_t end) {
    std::vector<float> block1(c), block2(c);
    for (int64_t r0 = begin; r0 < end; r0 += kBlockRows) {
      std::fill(block1.begin(), block1.end(), 0.0f);
      std::fill(block2.begin(), block2.end(), 0.0f);
      const int64_t r1 = std::min(end, r0 + kBlockRows);
      for (int64_t r = r0; r < r1; ++r) {
        over_channels(c, [&](auto lane, int64_t j) { terms(lane, r, j, block1.data() + j, block2.data() + j); });
      }
      for (int64_t j = 0; j < c; ++j) {
        sum1[t * c + j] += block1[j];
        sum2[t * c + j] += block2[j];
      }
    }
  });
  total1.assign(c, 0.0);
  total2.assign(c, 0.0);
  for (int64_t t = 0; t < threads; ++t) {
    for (int64_t j = 0; j < c; ++j) {
      total1[j] += sum1[t * c + j];
      total2[j] += sum2[t * c + j];
    }
  }
}

// A second pass over every element: `body(lane_tag, i, j)` for element i = row * c + j, each thread
// walking its rows backwards (see for_each_thread_rows).
template <typename F>
void rows_backwards(int64_t m, int64_t c, int64_t threads, const F& body) {
  for_each_thread_rows(m, threads, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t r = end - 1; r >= begin; --r) {
      over_channels(c, [&](auto lane, int64_t j) { body(lane, r * c + j, j); });
    }
  });
}

template <typename V>
inline void accumulate(float* acc, V v) { store(acc, load<V>(acc) + v); }

// The value a float becomes when stored in the activations' type (identity for float32).
template <typename V>
inline V as_stored(V v, const float*) { return v; }

template <typename V>
inline V as_stored(V v, const uint16_t*) {
  uint16_t rounded[sizeof(V) / sizeof(float)];
  store(rounded, v);
  return load<V>(rounded);
}

template <typename T>
void forward_kernel(const T* x, T* y, const float* weight, const float* bias, float* mean_out, float* invstd_out,
                    float* var_out, int64_t m, int64_t c, double eps) {
  const int64_t threads = thread_count(m);
  // Sums of (x - shift) and its square, shift = the first row: keeps E[x^2] - E[x]^2 well conditioned.
  std::vector<float> shift(c);
  for (int64_t j = 0; j < c; ++j) shift[j] = load<float>(x + j);
  const float* shift_of = shift.data();
  std::vector<double> sum_shifted, sum_shifted_sq;
  row_sums(m, c, threads, [&](auto lane, int64_t r, int64_t j, float* acc1, float* acc2) {
    using V = decltype(lane);
    V v = load<V>(x + r * c + j) - load<V>(shift_of + j);
    accumulate(acc1, v);
    accumulate(acc2, v * v);
  }, sum_shifted, sum_shifted_sq);
  std::vector<float> scale(c), offset(c);
  for (int64_t j = 0; j < c; ++j) {
    double mu = sum_shifted[j] / m;
    double var = std::max(sum_shifted_sq[j] / m - mu * mu, 0.0);
    double invstd = 1.0 / std::sqrt(var + eps);
    mean_out[j] = static_cast<float>(shift[j] + mu);
    invstd_out[j] = static_cast<float>(invstd);
    var_out[j] = static_cast<float>(var);
    scale[j] = static_cast<float>(weight[j] * invstd);
    offset[j] = static_cast<float>(bias[j] - (shift[j] + mu) * weight[j] * invstd);
  }
  const float* scale_of = scale.data();
  const float* offset_of = offset.data();
  rows_backwards(m, c, threads, [&](auto lane, int64_t i, int64_t j) {
    using V = decltype(lane);
    V z = load<V>(x + i) * load<V>(scale_of + j) + load<V>(offset_of + j);
    store(y + i, z * sigmoid(z));
  });
}

template <typename T>
void backward_kernel(const T* dy, const T* x, T* dx, const float* weight, const float* bias, const float* mean,
                     const float* invstd, float* dweight, float* dbias, int64_t m, int64_t c) {
  const int64_t threads = thread_count(m);
  std::vector<float> scale(c), offset(c);
  for (int64_t j = 0; j < c; ++j) {
    scale[j] = weight[j] * invstd[j];
    offset[j] = bias[j] - mean[j] * scale[j];
  }
  const float* scale_of = scale.data();
  const float* offset_of = offset.data();
  // Pass 1: dz = dy * SiLU'(z), stored in dx in the activations' type (as eager autograd passes it
  // from SiLU to BatchNorm), and the per-channel sums of that stored dz and of dz * xhat.
  std::vector<double> sum_dz, sum_dz_xhat;
  row_sums(m, c, threads, [&](auto lane, int64_t r, int64_t j, float* acc1, float* acc2) {
    using V = decltype(lane);
    const int64_t i = r * c + j;
    V xv = load<V>(x + i);
    V z = xv * load<V>(scale_of + j) + load<V>(offset_of + j);
    V s = sigmoid(z);
    V dz = as_stored(load<V>(dy + i) * s * (1.0f + z * (1.0f - s)), dx);
    store(dx + i, dz);
    accumulate(acc1, dz);
    accumulate(acc2, dz * ((xv - load<V>(mean + j)) * load<V>(invstd + j)));
  }, sum_dz, sum_dz_xhat);
  std::vector<float> mean_dz(c), mean_dz_xhat(c);
  for (int64_t j = 0; j < c; ++j) {
    dbias[j] = static_cast<float>(sum_dz[j]);
    dweight[j] = static_cast<float>(sum_dz_xhat[j]);
    mean_dz[j] = static_cast<float>(sum_dz[j] / m);
    mean_dz_xhat[j] = static_cast<float>(sum_dz_xhat[j] / m);
  }
  const float* mean_dz_of = mean_dz.data();
  const float* mean_dz_xhat_of = mean_dz_xhat.data();
  // Pass 2 (x read again, the stored dz once): dx = weight * invstd * (dz - mean(dz) - xhat * mean(dz * xhat)).
  rows_backwards(m, c, threads, [&](auto lane, int64_t i, int64_t j) {
    using V = decltype(lane);
    V xhat = (load<V>(x + i) - load<V>(mean + j)) * load<V>(invstd + j);
    store(dx + i, load<V>(scale_of + j) *
                      (load<V>(dx + i) - load<V>(mean_dz_of + j) - xhat * load<V>(mean_dz_xhat_of + j)));
  });
}

void check_input(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be on the CPU");
  TORCH_CHECK(t.dim() == 4, name, " must be 4-D [N, C, H, W]");
  TORCH_CHECK(t.is_contiguous(at::MemoryFormat::ChannelsLast), name, " must be channels-last");
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kBFloat16, name,
              " must be float32 or bfloat16");
}

void check_param(const torch::Tensor& t, int64_t c, const char* name) {
  TORCH_CHECK(t.scalar_type() == at::kFloat && t.is_contiguous() && t.numel() == c, name,
              " must be a contiguous float32 vector of the channel count");
}

}  // namespace

// Returns (y, mean, invstd, var): the batch statistics, var biased (invstd = 1 / sqrt(var + eps)).
std::vector<torch::Tensor> bn_silu_forward(torch::Tensor x, torch::Tensor weight, torch::Tensor bias, double eps) {
  check_input(x, "x");
  const int64_t c = x.size(1), m = x.numel() / std::max<int64_t>(c, 1);
  TORCH_CHECK(m > 1, "BatchNorm in training needs more than one value per channel");
  check_param(weight, c, "weight");
  check_param(bias, c, "bias");
  auto y = torch::empty_like(x, at::MemoryFormat::ChannelsLast);
  auto mean = torch::empty({c}, weight.options());
  auto invstd = torch::empty({c}, weight.options());
  auto var = torch::empty({c}, weight.options());
  if (x.scalar_type() == at::kFloat) {
    forward_kernel(x.data_ptr<float>(), y.data_ptr<float>(), weight.data_ptr<float>(), bias.data_ptr<float>(),
                   mean.data_ptr<float>(), invstd.data_ptr<float>(), var.data_ptr<float>(), m, c, eps);
  } else {
    forward_kernel(reinterpret_cast<const uint16_t*>(x.data_ptr<at::BFloat16>()),
                   reinterpret_cast<uint16_t*>(y.data_ptr<at::BFloat16>()), weight.data_ptr<float>(),
                   bias.data_ptr<float>(), mean.data_ptr<float>(), invstd.data_ptr<float>(), var.data_ptr<float>(),
                   m, c, eps);
  }
  return {y, mean, invstd, var};
}

// Returns (dx, dweight, dbias).
std::vector<torch::Tensor> bn_silu_backward(torch::Tensor dy, torch::Tensor x, torch::Tensor weight,
                                            torch::Tensor bias, torch::Tensor mean, torch::Tensor invstd) {
  check_input(x, "x");
  check_input(dy, "dy");
  TORCH_CHECK(dy.sizes() == x.sizes() && dy.scalar_type() == x.scalar_type(), "dy must match x");
  const int64_t c = x.size(1), m = x.numel() / std::max<int64_t>(c, 1);
  check_param(weight, c, "weight");
  check_param(bias, c, "bias");
  check_param(mean, c, "mean");
  check_param(invstd, c, "invstd");
  auto dx = torch::empty_like(x, at::MemoryFormat::ChannelsLast);
  auto dweight = torch::empty({c}, weight.options());
  auto dbias = torch::empty({c}, weight.options());
  if (x.scalar_type() == at::kFloat) {
    backward_kernel(dy.data_ptr<float>(), x.data_ptr<float>(), dx.data_ptr<float>(), weight.data_ptr<float>(),
                    bias.data_ptr<float>(), mean.data_ptr<float>(), invstd.data_ptr<float>(),
                    dweight.data_ptr<float>(), dbias.data_ptr<float>(), m, c);
  } else {
    backward_kernel(reinterpret_cast<const uint16_t*>(dy.data_ptr<at::BFloat16>()),
                    reinterpret_cast<const uint16_t*>(x.data_ptr<at::BFloat16>()),
                    reinterpret_cast<uint16_t*>(dx.data_ptr<at::BFloat16>()), weight.data_ptr<float>(),
                    bias.data_ptr<float>(), mean.data_ptr<float>(), invstd.data_ptr<float>(),
                    dweight.data_ptr<float>(), dbias.data_ptr<float>(), m, c);
  }
  return {dx, dweight, dbias};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, module) {
  module.def("forward", &bn_silu_forward, "BatchNorm (training) + SiLU forward, channels-last");
  module.def("backward", &bn_silu_backward, "BatchNorm (training) + SiLU backward, channels-last");
}
