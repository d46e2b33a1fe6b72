// Sparse optimizer rules on the GPU (recis.core.optim on CuPy arrays): one fused pass per rule
// over the gathered rows, their gradients and slots, writing new rows and slots.
//
// The math is float32 with the CPU rules' operations in the same order, each rounded separately
// (see recis_rows::fadd: no fused multiply-add, no flush to zero), so results equal the CPU's bit for bit. Scalars that
// the CPU computes in double from the hyper-parameters, the step and the learning rate (bias
// corrections, decayed learning rates) are computed by the host the same way and passed rounded
// to float32, as NumPy rounds a Python float combined with a float32 array.
//
// Element-wise rules take `total` = rows * dim items; row-wise Adagrad takes one item per row.
// Inputs and outputs are C-contiguous float32; an output may be its input (in-place update).
#include "row_blocks.cuh"

using recis_rows::fadd;
using recis_rows::fdiv;
using recis_rows::first_item;
using recis_rows::fmul;
using recis_rows::fsqrt;
using recis_rows::fsub;
using recis_rows::item_stride;

namespace {

// Coupled L2 decay: g + weight_decay * w, or g itself when the rule has no decay.
__device__ __forceinline__ float decayed(float grad, float param, int has_decay,
                                         float weight_decay) {
  return has_decay ? fadd(grad, fmul(weight_decay, param)) : grad;
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
  m.first = fadd(exp_avg, fmul(one_minus_beta1, fsub(grad, exp_avg)));
  m.second = fadd(fmul(beta2, exp_avg_sq),
                       fmul(one_minus_beta2, fmul(grad, grad)));
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
    return fmul(g, g);
  }
};

// NumPy's pairwise float32 sum of values(0..n-1): what np.sum / np.mean reduce a contiguous row
// with (blocks of 8 partial sums up to 128 values, halves above).
__device__ float pairwise_sum(const SquaredGradient& values, long long first, long long n) {
  if (n < 8) {
    float sum = 0.0f;
    for (long long k = 0; k < n; ++k) sum = fadd(sum, values(first + k));
    return sum;
  }
  if (n <= 128) {
    float partial[8];
    for (int j = 0; j < 8; ++j) partial[j] = values(first + j);
    long long k = 8;
    for (; k < n - (n % 8); k += 8) {
      for (int j = 0; j < 8; ++j) partial[j] = fadd(partial[j], values(first + k + j));
    }
    float sum = fadd(fadd(fadd(partial[0], partial[1]),
                                    fadd(partial[2], partial[3])),
                          fadd(fadd(partial[4], partial[5]),
                                    fadd(partial[6], partial[7])));
    for (; k < n; ++k) sum = fadd(sum, values(first + k));
    return sum;
  }
  long long half = n / 2;
  half -= half % 8;
  return fadd(pairwise_sum(values, first, half),
                   pairwise_sum(values, first + half, n - half));
}

// accumulator ** power as NumPy computes it for a float32 array and a Python float exponent.
__device__ __forceinline__ float ftrl_root(float accumulator, int square_root, double power) {
  if (square_root) return fsqrt(accumulator);
  return recis_rows::to_float(pow(static_cast<double>(accumulator), power));
}

}  // namespace

// SGD: w - lr·(g + weight_decay·w).
extern "C" __global__ void sgd_update(const float* params, const float* grads, int has_decay,
                                      float weight_decay, float lr, float* new_params,
                                      long long total) {
  for (long long t = first_item(); t < total; t += item_stride()) {
    const float g = decayed(grads[t], params[t], has_decay, weight_decay);
    new_params[t] = fsub(params[t], fmul(lr, g));
  }
}

// Adagrad: sum += g²; w - clr·g / (sqrt(sum) + eps), g with coupled decay.
extern "C" __global__ void adagrad_update(const float* params, const float* grads,
                                          const float* sum, int has_decay, float weight_decay,
                                          float clr, float eps, float* new_params,
                                          float* new_sum, long long total) {
  for (long long t = first_item(); t < total; t += item_stride()) {
    const float g = decayed(grads[t], params[t], has_decay, weight_decay);
    const float accumulated = fadd(sum[t], fmul(g, g));
    const float step = fdiv(g, fadd(fsqrt(accumulated), eps));
    new_params[t] = fsub(params[t], fmul(clr, step));
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
    const float mean = fdiv(pairwise_sum(squares, first, dim), static_cast<float>(dim));
    const float accumulated = fadd(sum[row], mean);
    const float scale = fdiv(lr, fadd(fsqrt(accumulated), eps));
    for (long long k = first; k < first + dim; ++k) {
      const float g = decayed(grads[k], params[k], has_decay, weight_decay);
      new_params[k] = fsub(params[k], fmul(scale, g));
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
    const float w = decoupled ? fmul(params[t], decay_factor) : params[t];
    const float g = decayed(grads[t], params[t], has_decay, weight_decay);
    const Moments m =
        advance_moments(g, exp_avg[t], exp_avg_sq[t], one_minus_beta1, beta2, one_minus_beta2);
    float second = m.second;
    if (max_exp_avg_sq != nullptr) {
      second = nan_maximum(max_exp_avg_sq[t], m.second);
      new_max_exp_avg_sq[t] = second;
    }
    const float denom = fadd(fdiv(fsqrt(second), bias_correction2_sqrt), eps);
    new_params[t] = fsub(w, fmul(step_size, fdiv(m.first, denom)));
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
    const float w = fmul(params[t], decay_factor);
    const Moments m = advance_moments(grads[t], exp_avg[t], exp_avg_sq[t], one_minus_beta1,
                                      beta2, one_minus_beta2);
    const float direction = fdiv(m.first, fadd(fsqrt(m.second), eps));
    new_params[t] = fsub(w, fmul(alpha, direction));
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
    const float accumulated = fadd(accumulator[t], fmul(g, g));
    const float new_root = ftrl_root(accumulated, square_root, power);
    const float old_root = ftrl_root(accumulator[t], square_root, power);
    const float sigma = fdiv(fsub(new_root, old_root), lr);
    const float lin = fsub(fadd(linear[t], g), fmul(sigma, params[t]));
    const float quadratic = fadd(fdiv(new_root, lr), quadratic_extra);
    float w = 0.0f;
    if (fabsf(lin) > l1) {
      const float sign = lin > 0.0f ? 1.0f : -1.0f;
      w = fdiv(fsub(fmul(l1, sign), lin), quadratic);
    }
    new_params[t] = w;
    new_accumulator[t] = accumulated;
    new_linear[t] = lin;
  }
}
