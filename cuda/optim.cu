// Sparse optimizer rules on the GPU (recis.core.optim on CuPy arrays): one fused pass per rule
// over the gathered rows, their gradients and slots, writing new rows and slots.
//
// The math is float32 with the CPU rules' operations in the same order, each rounded separately
// (see recis_rows::fadd: no fused multiply-add, no flush to zero), so results equal the CPU's bit for bit. Scalars that
// the CPU computes in double from the hyper-parameters, the step and the learning rate (bias
// corrections, decayed learning rates) are computed by the host the same way and passed rounded
// to float32, as NumPy rounds a Python float combined with a float32 array.
//
// Two forms of each rule share its element (or row) function:
//   <rule>_update          over gathered arrays: element-wise rules take `total` = rows * dim
//                          items, row-wise Adagrad one item per row; inputs and outputs are
//                          C-contiguous float32, an output may be its input.
//   <rule>_update_blocks   in place in the row store's blocks (float32 rows and slots, see
//                          BlockRows): rows[u] (-1: none) gets the summed gradient grads[u]
//                          (divided by `divisor` when `divide`), and the non-finite check is
//                          part of the pass (see BlockUpdate).
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


// Is every one of the `dim` values finite (no NaN, no infinity)?
__device__ __forceinline__ bool all_finite(const float* values, long long dim) {
  for (long long d = 0; d < dim; ++d) {
    if ((__float_as_uint(values[d]) & 0x7F800000u) == 0x7F800000u) return false;
  }
  return true;
}

// The rules' element functions: new values of one element from its old values and gradient.
__device__ __forceinline__ float sgd_element(float w, float grad, int has_decay,
                                             float weight_decay, float lr) {
  return fsub(w, fmul(lr, decayed(grad, w, has_decay, weight_decay)));
}

__device__ __forceinline__ void adagrad_element(float* w, float grad, float* sum, int has_decay,
                                                float weight_decay, float clr, float eps) {
  const float g = decayed(grad, *w, has_decay, weight_decay);
  const float accumulated = fadd(*sum, fmul(g, g));
  const float step = fdiv(g, fadd(fsqrt(accumulated), eps));
  *w = fsub(*w, fmul(clr, step));
  *sum = accumulated;
}

struct AdamFactors {
  int has_decay;
  float weight_decay;
  int decoupled;
  float decay_factor, one_minus_beta1, beta2, one_minus_beta2, step_size, bias_correction2_sqrt,
      eps;
};

// max_exp_avg_sq is null without amsgrad.
__device__ __forceinline__ void adam_element(float* w, float grad, float* exp_avg,
                                             float* exp_avg_sq, float* max_exp_avg_sq,
                                             const AdamFactors& f) {
  const float param = *w;
  const float decayed_param = f.decoupled ? fmul(param, f.decay_factor) : param;
  const float g = decayed(grad, param, f.has_decay, f.weight_decay);
  const Moments m = advance_moments(g, *exp_avg, *exp_avg_sq, f.one_minus_beta1, f.beta2,
                                    f.one_minus_beta2);
  float second = m.second;
  if (max_exp_avg_sq != nullptr) {
    second = nan_maximum(*max_exp_avg_sq, m.second);
    *max_exp_avg_sq = second;
  }
  const float denom = fadd(fdiv(fsqrt(second), f.bias_correction2_sqrt), f.eps);
  *w = fsub(decayed_param, fmul(f.step_size, fdiv(m.first, denom)));
  *exp_avg = m.first;
  *exp_avg_sq = m.second;
}

__device__ __forceinline__ void adamw_tf_element(float* w, float grad, float* exp_avg,
                                                 float* exp_avg_sq, float decay_factor,
                                                 float one_minus_beta1, float beta2,
                                                 float one_minus_beta2, float alpha, float eps) {
  const float decayed_param = fmul(*w, decay_factor);
  const Moments m =
      advance_moments(grad, *exp_avg, *exp_avg_sq, one_minus_beta1, beta2, one_minus_beta2);
  const float direction = fdiv(m.first, fadd(fsqrt(m.second), eps));
  *w = fsub(decayed_param, fmul(alpha, direction));
  *exp_avg = m.first;
  *exp_avg_sq = m.second;
}

__device__ __forceinline__ void ftrl_element(float* w, float g, float* accumulator, float* linear,
                                             int square_root, double power, float lr, float l1,
                                             float quadratic_extra) {
  const float accumulated = fadd(*accumulator, fmul(g, g));
  const float new_root = ftrl_root(accumulated, square_root, power);
  const float old_root = ftrl_root(*accumulator, square_root, power);
  const float sigma = fdiv(fsub(new_root, old_root), lr);
  const float lin = fsub(fadd(*linear, g), fmul(sigma, *w));
  const float quadratic = fadd(fdiv(new_root, lr), quadratic_extra);
  float result = 0.0f;
  if (fabsf(lin) > l1) {
    const float sign = lin > 0.0f ? 1.0f : -1.0f;
    result = fdiv(fsub(fmul(l1, sign), lin), quadratic);
  }
  *w = result;
  *accumulator = accumulated;
  *linear = lin;
}

// Row-wise Adagrad on one row of `dim` values: sum += mean of g'^2; w -= lr / (sqrt(sum) + eps)·g'.
__device__ __forceinline__ void rowwise_adagrad_row(const float* params, const float* grads,
                                                    float* sum, long long dim, int has_decay,
                                                    float weight_decay, float lr, float eps,
                                                    float* new_params) {
  const SquaredGradient squares{params, grads, has_decay, weight_decay};
  const float mean = fdiv(pairwise_sum(squares, 0, dim), static_cast<float>(dim));
  const float accumulated = fadd(*sum, mean);
  const float scale = fdiv(lr, fadd(fsqrt(accumulated), eps));
  for (long long k = 0; k < dim; ++k) {
    const float g = decayed(grads[k], params[k], has_decay, weight_decay);
    new_params[k] = fsub(params[k], fmul(scale, g));
  }
  *sum = accumulated;
}

}  // namespace

// SGD: w - lr·(g + weight_decay·w).
extern "C" __global__ void sgd_update(const float* params, const float* grads, int has_decay,
                                      float weight_decay, float lr, float* new_params,
                                      long long total) {
  for (long long t = first_item(); t < total; t += item_stride()) {
    new_params[t] = sgd_element(params[t], grads[t], has_decay, weight_decay, lr);
  }
}

// Adagrad: sum += g²; w - clr·g / (sqrt(sum) + eps), g with coupled decay.
extern "C" __global__ void adagrad_update(const float* params, const float* grads,
                                          const float* sum, int has_decay, float weight_decay,
                                          float clr, float eps, float* new_params,
                                          float* new_sum, long long total) {
  for (long long t = first_item(); t < total; t += item_stride()) {
    float w = params[t], accumulated = sum[t];
    adagrad_element(&w, grads[t], &accumulated, has_decay, weight_decay, clr, eps);
    new_params[t] = w;
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
    float accumulated = sum[row];
    rowwise_adagrad_row(params + row * dim, grads + row * dim, &accumulated, dim, has_decay,
                        weight_decay, lr, eps, new_params + row * dim);
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
  const AdamFactors f{has_decay,      weight_decay,    decoupled,
                      decay_factor,   one_minus_beta1, beta2,
                      one_minus_beta2, step_size,      bias_correction2_sqrt,
                      eps};
  for (long long t = first_item(); t < total; t += item_stride()) {
    float w = params[t], m = exp_avg[t], v = exp_avg_sq[t], v_max = 0.0f;
    if (max_exp_avg_sq != nullptr) v_max = max_exp_avg_sq[t];
    adam_element(&w, grads[t], &m, &v, max_exp_avg_sq != nullptr ? &v_max : nullptr, f);
    new_params[t] = w;
    new_exp_avg[t] = m;
    new_exp_avg_sq[t] = v;
    if (max_exp_avg_sq != nullptr) new_max_exp_avg_sq[t] = v_max;
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
    float w = params[t], m = exp_avg[t], v = exp_avg_sq[t];
    adamw_tf_element(&w, grads[t], &m, &v, decay_factor, one_minus_beta1, beta2, one_minus_beta2,
                     alpha, eps);
    new_params[t] = w;
    new_exp_avg[t] = m;
    new_exp_avg_sq[t] = v;
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
    float w = params[t], acc = accumulator[t], lin = linear[t];
    ftrl_element(&w, grads[t], &acc, &lin, square_root, power, lr, l1, quadratic_extra);
    new_params[t] = w;
    new_accumulator[t] = acc;
    new_linear[t] = lin;
  }
}

// ---- In place in the row store ------------------------------------------------------------------
//
// Every <rule>_update_blocks kernel starts with the BlockUpdate arguments:
//   rows, n          the distinct rows updated (-1: none), grads [n, dim] float32 their summed
//   grads, dim       gradients, divided by `divisor` where `divide` (gradient accumulation)
//   divide, divisor
//   counters, parity int64[2] of non-finite row counts; with `check` (on_nonfinite="raise"),
//   check, skipped,  count_nonfinite_rows counted this update's rows into counters[parity]
//   host             first, and a count above 0 leaves every row as it was; without it, each
//                    row whose gradient is not finite is left alone and counted in *skipped.
//                    The pass's first thread publishes counters[parity] to `host` (when not null: the
//                    count, then 1, as DeferredErrors reads it) and zeroes counters[1 - parity]
//                    for the next update.
//   rows_blocks...   the embedding field (float32, width dim)
// then each slot field (float32; width dim, or 1 for row-wise Adagrad's sum; a field of null
// blocks is absent), then the rule's scalars and `total` (the items of the pass: n * dim, or n
// for row-wise Adagrad). Launched over at least one item, so that item 0 always runs.
namespace {

struct BlockUpdate {
  const long long* rows;
  long long n;
  const float* grads;
  long long dim;
  int divide;
  float divisor;
  long long* counters;
  long long parity;
  int check;
  long long* skipped;
  volatile long long* host;

  // The first thread's bookkeeping: publish this update's count, zero the next one's.
  __device__ void finish() const {
    if (first_item() != 0) return;
    if (host != nullptr) {
      host[0] = counters[parity];
      __threadfence_system();
      host[1] = 1;
    }
    counters[1 - parity] = 0;
  }

  // Whether row u is updated, counting it in *skipped when its gradient is not finite (once:
  // by its element `d` 0).
  __device__ bool updates(long long u, long long d) const {
    if (rows[u] < 0) return false;
    if (check) return counters[parity] == 0;
    if (all_finite(grads + u * dim, dim)) return true;
    if (d == 0) atomicAdd(reinterpret_cast<unsigned long long*>(skipped), 1ULL);
    return false;
  }

  __device__ float grad(long long t) const { return divide ? fdiv(grads[t], divisor) : grads[t]; }
};

}  // namespace

#define RECIS_BLOCK_UPDATE                                                                       \
  const long long *rows, long long n, const float *grads, long long dim, int divide,            \
      float divisor, long long *counters, long long parity, int check, long long *skipped,      \
      volatile long long *host, const unsigned long long *row_blocks, long long row_log2,       \
      long long row_capacity
#define RECIS_SLOT_BLOCKS(NAME)                                                                  \
  const unsigned long long *NAME##_blocks, long long NAME##_log2, long long NAME##_capacity
#define RECIS_UPDATE BlockUpdate{rows, n, grads, dim, divide, divisor, counters, parity, check, \
                                 skipped, host}
#define RECIS_FIELD(NAME) recis_rows::BlockRows{NAME##_blocks, NAME##_log2, NAME##_capacity}

// Element-wise passes: item t is element d of row u; `w`, `s0`, `s1`, `s2` point at the
// element of the row and of its slots (s2 null where that field is absent).
#define RECIS_ELEMENTS(BODY)                                                                     \
  const BlockUpdate update = RECIS_UPDATE;                                                       \
  const recis_rows::BlockRows params = recis_rows::BlockRows{row_blocks, row_log2, row_capacity}; \
  update.finish();                                                                               \
  for (long long t = first_item(); t < total; t += item_stride()) {                              \
    const long long u = t / dim, d = t - u * dim;                                                \
    if (!update.updates(u, d)) continue;                                                         \
    const long long row = update.rows[u];                                                        \
    float* w = params.row<float>(row, dim) + d;                                                  \
    const float g = update.grad(t);                                                              \
    BODY                                                                                         \
  }

// counters[parity] += the rows >= 0 among rows[0..n) whose gradient is not finite.
extern "C" __global__ void count_nonfinite_rows(const long long* rows, long long n,
                                                const float* grads, long long dim,
                                                long long* counters, long long parity) {
  for (long long u = first_item(); u < n; u += item_stride()) {
    if (rows[u] >= 0 && !all_finite(grads + u * dim, dim)) {
      atomicAdd(reinterpret_cast<unsigned long long*>(&counters[parity]), 1ULL);
    }
  }
}

extern "C" __global__ void sgd_update_blocks(RECIS_BLOCK_UPDATE, int has_decay,
                                             float weight_decay, float lr, long long total) {
  RECIS_ELEMENTS(*w = sgd_element(*w, g, has_decay, weight_decay, lr);)
}

extern "C" __global__ void adagrad_update_blocks(RECIS_BLOCK_UPDATE, RECIS_SLOT_BLOCKS(sum),
                                                 int has_decay, float weight_decay, float clr,
                                                 float eps, long long total) {
  const recis_rows::BlockRows sums = RECIS_FIELD(sum);
  RECIS_ELEMENTS(adagrad_element(w, g, sums.row<float>(row, dim) + d, has_decay, weight_decay,
                                 clr, eps);)
}

extern "C" __global__ void adam_update_blocks(RECIS_BLOCK_UPDATE, RECIS_SLOT_BLOCKS(exp_avg),
                                              RECIS_SLOT_BLOCKS(exp_avg_sq),
                                              RECIS_SLOT_BLOCKS(max_exp_avg_sq), int has_decay,
                                              float weight_decay, int decoupled,
                                              float decay_factor, float one_minus_beta1,
                                              float beta2, float one_minus_beta2,
                                              float step_size, float bias_correction2_sqrt,
                                              float eps, long long total) {
  const recis_rows::BlockRows first = RECIS_FIELD(exp_avg), second = RECIS_FIELD(exp_avg_sq);
  const recis_rows::BlockRows most = RECIS_FIELD(max_exp_avg_sq);
  const AdamFactors f{has_decay,      weight_decay,    decoupled,
                      decay_factor,   one_minus_beta1, beta2,
                      one_minus_beta2, step_size,      bias_correction2_sqrt,
                      eps};
  RECIS_ELEMENTS(
      float* v_max = most.capacity > 0 ? most.row<float>(row, dim) + d : nullptr;
      adam_element(w, g, first.row<float>(row, dim) + d, second.row<float>(row, dim) + d, v_max,
                   f);)
}

extern "C" __global__ void adamw_tf_update_blocks(RECIS_BLOCK_UPDATE, RECIS_SLOT_BLOCKS(exp_avg),
                                                  RECIS_SLOT_BLOCKS(exp_avg_sq),
                                                  float decay_factor, float one_minus_beta1,
                                                  float beta2, float one_minus_beta2, float alpha,
                                                  float eps, long long total) {
  const recis_rows::BlockRows first = RECIS_FIELD(exp_avg), second = RECIS_FIELD(exp_avg_sq);
  RECIS_ELEMENTS(adamw_tf_element(w, g, first.row<float>(row, dim) + d,
                                  second.row<float>(row, dim) + d, decay_factor, one_minus_beta1,
                                  beta2, one_minus_beta2, alpha, eps);)
}

extern "C" __global__ void ftrl_update_blocks(RECIS_BLOCK_UPDATE, RECIS_SLOT_BLOCKS(accumulator),
                                              RECIS_SLOT_BLOCKS(linear), int square_root,
                                              double power, float lr, float l1,
                                              float quadratic_extra, long long total) {
  const recis_rows::BlockRows acc = RECIS_FIELD(accumulator), lin = RECIS_FIELD(linear);
  RECIS_ELEMENTS(ftrl_element(w, g, acc.row<float>(row, dim) + d, lin.row<float>(row, dim) + d,
                              square_root, power, lr, l1, quadratic_extra);)
}

// Row-wise Adagrad: one item per row (total = n); `divide` must be 0 (the caller divides the
// gradients first).
extern "C" __global__ void rowwise_adagrad_update_blocks(RECIS_BLOCK_UPDATE,
                                                         RECIS_SLOT_BLOCKS(sum), int has_decay,
                                                         float weight_decay, float lr, float eps,
                                                         long long total) {
  const BlockUpdate update = RECIS_UPDATE;
  const recis_rows::BlockRows params{row_blocks, row_log2, row_capacity}, sums = RECIS_FIELD(sum);
  update.finish();
  for (long long u = first_item(); u < total; u += item_stride()) {
    if (!update.updates(u, 0)) continue;
    const long long row = rows[u];
    float* w = params.row<float>(row, dim);
    rowwise_adagrad_row(w, grads + u * dim, sums.row<float>(row, 1), dim, has_decay,
                        weight_decay, lr, eps, w);
  }
}
