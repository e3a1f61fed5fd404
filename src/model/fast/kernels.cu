// steerlab's own CUDA kernels for the gradient path (compiled at run time with NVRTC; see
// kernels.rs). No headers: bf16 values travel as their 16-bit patterns and every computation is
// in f32. Each kernel exists for float ("_f32") and bf16 ("_bf16") storage.

typedef unsigned short bf16_t;
#define NEG_INF (-__int_as_float(0x7f800000))

__device__ __forceinline__ float ld(const float *p, long long i) { return p[i]; }
__device__ __forceinline__ float ld(const bf16_t *p, long long i) {
    return __uint_as_float(((unsigned)p[i]) << 16);
}
__device__ __forceinline__ void st(float *p, long long i, float v) { p[i] = v; }
// Round to nearest even, as candle's f32 -> bf16 cast does; NaN stays NaN.
__device__ __forceinline__ void st(bf16_t *p, long long i, float v) {
    unsigned u = __float_as_uint(v);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        p[i] = (bf16_t)((u >> 16) | 0x40u);
        return;
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    p[i] = (bf16_t)(u >> 16);
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
__device__ float block_sum(float v, float *sh) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    const int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = blockDim.x >> 5;
    __syncthreads();
    if (l == 0) sh[w] = v;
    __syncthreads();
    if (w == 0) {
        v = l < nw ? sh[l] : 0.f;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        if (l == 0) sh[0] = v;
    }
    __syncthreads();
    return sh[0];
}

// (max, sum of exp(x - max)) pairs merged.
__device__ __forceinline__ void lse_merge(float &m, float &s, float m2, float s2) {
    if (m2 > m) {
        s = s * expf(m - m2) + s2;
        m = m2;
    } else if (m2 > NEG_INF) {
        s += s2 * expf(m2 - m);
    }
}

// Per row of logits [n, v]: out[2 r] = log-sum-exp, out[2 r + 1] = logit[target] - lse.
template <typename T>
__device__ void xent_fwd(const T *x, const unsigned *tgt, float *out, int n, int v) {
    __shared__ float shm[32], shs[32];
    for (int row = blockIdx.x; row < n; row += gridDim.x) {
        const T *xr = x + (long long)row * v;
        float m = NEG_INF, s = 0.f;
        for (int j = threadIdx.x; j < v; j += blockDim.x) {
            const float a = ld(xr, j);
            if (a > m) {
                s = s * expf(m - a) + 1.f;
                m = a;
            } else if (a > NEG_INF) {
                s += expf(a - m);
            }
        }
        for (int o = 16; o > 0; o >>= 1)
            lse_merge(m, s, __shfl_xor_sync(0xffffffffu, m, o), __shfl_xor_sync(0xffffffffu, s, o));
        const int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = blockDim.x >> 5;
        __syncthreads();
        if (l == 0) {
            shm[w] = m;
            shs[w] = s;
        }
        __syncthreads();
        if (w == 0) {
            m = l < nw ? shm[l] : NEG_INF;
            s = l < nw ? shs[l] : 0.f;
            for (int o = 16; o > 0; o >>= 1)
                lse_merge(m, s, __shfl_xor_sync(0xffffffffu, m, o), __shfl_xor_sync(0xffffffffu, s, o));
            if (l == 0) {
                const float lse = m + logf(s);
                out[2 * (long long)row] = lse;
                out[2 * (long long)row + 1] = ld(xr, tgt[row]) - lse;
            }
        }
    }
}

// dx[r, j] = dy[r] (onehot(j == target[r]) - exp(x[r, j] - lse[r])).
template <typename T>
__device__ void xent_bwd(const T *x, const unsigned *tgt, const float *lse_, const float *dy, T *dx,
                         int n, int v) {
    for (int row = blockIdx.y; row < n; row += gridDim.y) {
        const long long base = (long long)row * v;
        const float lse = lse_[row], g = dy[row];
        const int t = (int)tgt[row];
        for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < v; j += gridDim.x * blockDim.x) {
            float d = -g * expf(ld(x, base + j) - lse);
            if (j == t) d += g;
            st(dx, base + j, d);
        }
    }
}

// SwiGLU backward: with s = sigmoid(g), out[i] = da u s (1 + g (1 - s)) (the gate's gradient)
// and out[n + i] = da g s (the up projection's gradient).
template <typename T>
__device__ void silu_mul_bwd(const T *da, const T *g, const T *u, T *out, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const float a = ld(da, i), gi = ld(g, i), ui = ld(u, i);
        const float s = 1.f / (1.f + expf(-gi));
        st(out, i, a * ui * s * (1.f + gi * (1.f - s)));
        st(out, n + i, a * gi * s);
    }
}

// RMSNorm backward per row of h: y = x r w, r = 1/sqrt(mean(x^2) + eps);
// dx = r (dy w) - x r^3 sum(dy w x) / h, plus res (when not null).
template <typename T>
__device__ void rms_bwd(const T *x, const T *w, const T *dy, const T *res, T *dx, int n, int h,
                        float eps) {
    __shared__ float sh[32];
    for (int row = blockIdx.x; row < n; row += gridDim.x) {
        const long long base = (long long)row * h;
        float ss = 0.f, dot = 0.f;
        for (int j = threadIdx.x; j < h; j += blockDim.x) {
            const float a = ld(x, base + j);
            ss += a * a;
            dot += ld(dy, base + j) * ld(w, j) * a;
        }
        ss = block_sum(ss, sh);
        dot = block_sum(dot, sh);
        const float r = rsqrtf(ss / h + eps);
        const float c = r * r * r * dot / h;
        for (int j = threadIdx.x; j < h; j += blockDim.x) {
            float d = r * ld(dy, base + j) * ld(w, j) - ld(x, base + j) * c;
            if (res) d += ld(res, base + j);
            st(dx, base + j, d);
        }
    }
}

// Softmax backward per row of s, scaled: ds = scale p (dp - sum(dp p)); p in f32.
template <typename T>
__device__ void softmax_bwd(const float *p, const T *dp, T *ds, int n, int s, float scale) {
    __shared__ float sh[32];
    for (int row = blockIdx.x; row < n; row += gridDim.x) {
        const long long base = (long long)row * s;
        float acc = 0.f;
        for (int j = threadIdx.x; j < s; j += blockDim.x) acc += ld(dp, base + j) * p[base + j];
        acc = block_sum(acc, sh);
        for (int j = threadIdx.x; j < s; j += blockDim.x)
            st(ds, base + j, scale * p[base + j] * (ld(dp, base + j) - acc));
    }
}

#define INSTANTIATE(SUF, T)                                                                       \
    extern "C" __global__ void xent_fwd_##SUF(const T *x, const unsigned *tgt, float *out, int n,  \
                                              int v) {                                             \
        xent_fwd<T>(x, tgt, out, n, v);                                                            \
    }                                                                                              \
    extern "C" __global__ void xent_bwd_##SUF(const T *x, const unsigned *tgt, const float *lse,   \
                                              const float *dy, T *dx, int n, int v) {              \
        xent_bwd<T>(x, tgt, lse, dy, dx, n, v);                                                    \
    }                                                                                              \
    extern "C" __global__ void silu_mul_bwd_##SUF(const T *da, const T *g, const T *u, T *out,     \
                                                  long long n) {                                   \
        silu_mul_bwd<T>(da, g, u, out, n);                                                         \
    }                                                                                              \
    extern "C" __global__ void rms_bwd_##SUF(const T *x, const T *w, const T *dy, const T *res,    \
                                             T *dx, int n, int h, float eps) {                     \
        rms_bwd<T>(x, w, dy, res, dx, n, h, eps);                                                  \
    }                                                                                              \
    extern "C" __global__ void softmax_bwd_##SUF(const float *p, const T *dp, T *ds, int n, int s, \
                                                 float scale) {                                    \
        softmax_bwd<T>(p, dp, ds, n, s, scale);                                                    \
    }

INSTANTIATE(f32, float)
INSTANTIATE(bf16, bf16_t)
