// Sparse optimizer rules on the GPU (recis.core.optim on CuPy arrays): one fused pass per rule
// over the gathered rows, their gradients and slots, writing new rows and slots.
//
// The math is float32 with the CPU rules' operations in the same order, each rounded separately
// (explicit __f*_rn: no fused multiply-add), so results equal the CPU's bit for bit. Scalars that
// the CPU computes in double from the hyper-parameters, the step and the learning rate (bias
// corrections, decayed learning rates) are computed by the host the same way and passed rounded
// to float32, as NumPy rounds a Python float combined with a float32 array.
//
// Element-wise rules take `total` = rows * dim items; row-wise Adagrad takes one item per row.
// Inputs and outputs are C-contiguous float32; an output may be its input (in-place update).
#include "row_blocks.cuh"

using recis_rows::first_item;
using recis_rows::item_stride;

namespace {

// Coupled L2 decay: g + weight_decay * w, or g itself when the rule has no decay.
__device__ __forceinline__ float decayed(float grad, float param, int has_decay,
                                         float weight_decay) {
  return has_decay ? __fadd_rn(grad, __fmul_rn(weight_decay, param)) : grad;
}

// NumPy's maximum: a NaN in either argument is the result.
__device__ __forceinline__ float nan_maximum(float a, float b) {
  if (a != a) return a;
  if (b != b) return b;
  return a >= b ? a : b;
}

struct Moments {
  float first, second;
};

// exp_avg + (1 - beta1)·(g - exp_avg) and beta2·exp_avg_sq + (1 - beta2)·g².
__device__ __forceinline__ Moments advance_moments(float grad, float exp_avg, float exp_avg_sq,
                                                   float one_minus_beta1, float beta2,
                                                   float one_minus_beta2) {
  Moments m;
  m.first = __fadd_rn(exp_avg, __fmul_rn(one_minus_beta1, __fsub_rn(grad, exp_avg)));
  m.second = __fadd_rn(__fmul_rn(beta2, exp_avg_sq),
                       __fmul_rn(one_minus_beta2, __fmul_rn(grad, grad)));
  return m;
}

// g'[k]² of one row, g' the decayed gradient.
struct SquaredGradient {
  const float* params;
  const float* grads;
  int has_decay;
  float weight_decay;

  __device__ __forceinline__ float operator()(long long k) const {
    const float g = decayed(grads[k], params[k], has_decay, weight_decay);
    return __fmul_rn(g, g);
  }
};

// NumPy's pairwise float32 sum of values(0..n-1): what np.sum / np.mean reduce a contiguous row
// with (blocks of 8 partial sums up to 128 values, halves above).
__device__ float pairwise_sum(const SquaredGradient& values, long long first, long long n) {
  if (n < 8) {
    float sum = 0.0f;
    for (long long k = 0; k < n; ++k) sum = __fadd_rn(sum, values(first + k));
    return sum;
  }
  if (n <= 128) {
    float partial[8];
    for (int j = 0; j < 8; ++j) partial[j] = values(first + j);
    long long k = 8;
    for (; k < n - (n % 8); k += 8) {
      for (int j = 0; j < 8; ++j) partial[j] = __fadd_rn(partial[j], values(first + k + j));
    }
    float sum = __fadd_rn(__fadd_rn(__fadd_rn(partial[0], partial[1]),
                                    __fadd_rn(partial[2], partial[3])),
                          __fadd_rn(__fadd_rn(partial[4], partial[5]),
                                    __fadd_rn(partial[6], partial[7])));
    for (; k < n; ++k) sum = __fadd_rn(sum, values(first + k));
    return sum;
  }
  long long half = n / 2;
  half -= half % 8;
  return __fadd_rn(pairwise_sum(values, first, half),
                   pairwise_sum(values, first + half, n - half));
}

// accumulator ** power as NumPy computes it for a float32 array and a Python float exponent.
__device__ __forceinline__ float ftrl_root(float accumulator, int square_root, double power) {
  if (square_root) return __fsqrt_rn(accumulator);
  return __double2float_rn(pow(static_cast<double>(accumulator), power));
}

}  // namespace

// SGD: w - lr·(g + weight_decay·w).
extern "C" __global__ void sgd_update(const float* params, const float* grads, int has_decay,
                                      float weight_decay, float lr, float* new_params,
                                      long long total) {
  for (long long t = first_item(); t < total; t += item_stride()) {
    const float g = decayed(grads[t], params[t], has_decay, weight_decay);
    new_params[t] = __fsub_rn(params[t], __fmul_rn(lr, g));
  }
}

// Adagrad: sum += g²; w - clr·g / (sqrt(sum) + eps), g with coupled decay.
extern "C" __global__ void adagrad_update(const float* params, const float* grads,
                                          const float* sum, int has_decay, float weight_decay,
                                          float clr, float eps, float* new_params,
                                          float* new_sum, long long total) {
  for (long long t = first_item(); t < total; t += item_stride()) {
    const float g = decayed(grads[t], params[t], has_decay, weight_decay);
    const float accumulated = __fadd_rn(sum[t], __fmul_rn(g, g));
    const float step = __fdiv_rn(g, __fadd_rn(__fsqrt_rn(accumulated), eps));
    new_params[t] = __fsub_rn(params[t], __fmul_rn(clr, step));
    new_sum[t] = accumulated;
  }
}

// Row-wise Adagrad: sum += mean of g² over the row; w - lr / (sqrt(sum) + eps)·g. One item per
// row: total = rows.
extern "C" __global__ void rowwise_adagrad_update(const float* params, const float* grads,
                                                  const float* sum, long long dim, int has_decay,
                                                  float weight_decay, float lr, float eps,
                                                  float* new_params, float* new_sum,
                                                  long long total) {
  for (long long row = first_item(); row < total; row += item_stride()) {
    const long long first = row * dim;
    const SquaredGradient squares{params, grads, has_decay, weight_decay};
    const float mean = __fdiv_rn(pairwise_sum(squares, first, dim), static_cast<float>(dim));
    const float accumulated = __fadd_rn(sum[row], mean);
    const float scale = __fdiv_rn(lr, __fadd_rn(__fsqrt_rn(accumulated), eps));
    for (long long k = first; k < first + dim; ++k) {
      const float g = decayed(grads[k], params[k], has_decay, weight_decay);
      new_params[k] = __fsub_rn(params[k], __fmul_rn(scale, g));
    }
    new_sum[row] = accumulated;
  }
}

// Adam / AdamW as torch: w' = decoupled ? w·decay_factor : w; moments advance by g (with coupled
// decay when has_decay); second = amsgrad ? max(max_exp_avg_sq, exp_avg_sq) : exp_avg_sq;
// w' - step_size·exp_avg / (sqrt(second) / bias_correction2_sqrt + eps). The max_exp_avg_sq
// pointers are null without amsgrad.
extern "C" __global__ void adam_update(const float* params, const float* grads,
                                       const float* exp_avg, const float* exp_avg_sq,
                                       const float* max_exp_avg_sq, int has_decay,
                                       float weight_decay, int decoupled, float decay_factor,
                                       float one_minus_beta1, float beta2, float one_minus_beta2,
                                       float step_size, float bias_correction2_sqrt, float eps,
                                       float* new_params, float* new_exp_avg,
                                       float* new_exp_avg_sq, float* new_max_exp_avg_sq,
                                       long long total) {
  for (long long t = first_item(); t < total; t += item_stride()) {
    const float w = decoupled ? __fmul_rn(params[t], decay_factor) : params[t];
    const float g = decayed(grads[t], params[t], has_decay, weight_decay);
    const Moments m =
        advance_moments(g, exp_avg[t], exp_avg_sq[t], one_minus_beta1, beta2, one_minus_beta2);
    float second = m.second;
    if (max_exp_avg_sq != nullptr) {
      second = nan_maximum(max_exp_avg_sq[t], m.second);
      new_max_exp_avg_sq[t] = second;
    }
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(second), bias_correction2_sqrt), eps);
    new_params[t] = __fsub_rn(w, __fmul_rn(step_size, __fdiv_rn(m.first, denom)));
    new_exp_avg[t] = m.first;
    new_exp_avg_sq[t] = m.second;
  }
}

// AdamW-TF: w·decay_factor - alpha·exp_avg / (sqrt(exp_avg_sq) + eps), moments as Adam.
extern "C" __global__ void adamw_tf_update(const float* params, const float* grads,
                                           const float* exp_avg, const float* exp_avg_sq,
                                           float decay_factor, float one_minus_beta1, float beta2,
                                           float one_minus_beta2, float alpha, float eps,
                                           float* new_params, float* new_exp_avg,
                                           float* new_exp_avg_sq, long long total) {
  for (long long t = first_item(); t < total; t += item_stride()) {
    const float w = __fmul_rn(params[t], decay_factor);
    const Moments m = advance_moments(grads[t], exp_avg[t], exp_avg_sq[t], one_minus_beta1,
                                      beta2, one_minus_beta2);
    const float direction = __fdiv_rn(m.first, __fadd_rn(__fsqrt_rn(m.second), eps));
    new_params[t] = __fsub_rn(w, __fmul_rn(alpha, direction));
    new_exp_avg[t] = m.first;
    new_exp_avg_sq[t] = m.second;
  }
}

// FTRL-proximal: acc' = acc + g²; linear += g - (acc'^p - acc^p) / lr·w;
// w = (l1·sign(linear) - linear) / (acc'^p / lr + quadratic_extra) where |linear| > l1, else 0.
// `square_root` says p is 0.5 (computed as a correctly rounded square root, as NumPy does).
extern "C" __global__ void ftrl_update(const float* params, const float* grads,
                                       const float* accumulator, const float* linear,
                                       int square_root, double power, float lr, float l1,
                                       float quadratic_extra, float* new_params,
                                       float* new_accumulator, float* new_linear,
                                       long long total) {
  for (long long t = first_item(); t < total; t += item_stride()) {
    const float g = grads[t];
    const float accumulated = __fadd_rn(accumulator[t], __fmul_rn(g, g));
    const float new_root = ftrl_root(accumulated, square_root, power);
    const float old_root = ftrl_root(accumulator[t], square_root, power);
    const float sigma = __fdiv_rn(__fsub_rn(new_root, old_root), lr);
    const float lin = __fsub_rn(__fadd_rn(linear[t], g), __fmul_rn(sigma, params[t]));
    const float quadratic = __fadd_rn(__fdiv_rn(new_root, lr), quadratic_extra);
    float w = 0.0f;
    if (fabsf(lin) > l1) {
      const float sign = lin > 0.0f ? 1.0f : -1.0f;
      w = __fdiv_rn(__fsub_rn(__fmul_rn(l1, sign), lin), quadratic);
    }
    new_params[t] = w;
    new_accumulator[t] = accumulated;
    new_linear[t] = lin;
  }
}
