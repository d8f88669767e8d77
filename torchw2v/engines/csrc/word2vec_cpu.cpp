// torchw2v compiled CPU engine: word2vec (skip-gram or CBOW; negative sampling, hierarchical
// softmax or both), Hogwild threads.
//
// One call of the op torchw2v::train_chunk trains one chunk of sentences in place on syn0
// (input vectors), syn1neg (negative-sampling output vectors) and syn1 (hierarchical-softmax
// output vectors). The math is word2vec.c's / gensim's, in gensim's direction (the input side
// predicts the center word), with two deliberate changes to skip-gram with NS alone: a
// center word's K negatives are drawn once and shared by all of its contexts (Ji et al.,
// 2016), and the center is trained as one small matrix product, all its dot products taken
// from the same values.
//
// A center word's targets are output rows with a label: for negative sampling (NS) the center
// word (label 1) and its K negatives (label 0) in syn1neg; for hierarchical softmax (HS) the
// nodes of the center word's Huffman path in syn1, labelled 1 - code. With both, a center is
// trained against both lists at once (gensim runs HS, then NS from the updated input vectors).
//   Skip-gram: the C context rows of syn0 against the T targets. NS alone: a (C, T) matrix
//     of scores; every context row gets the sum of its updates and every target row the sum
//     of its. With HS: one context row after the other, in gensim's order, each from the
//     target rows the contexts before it updated (taken at once, every path node would get
//     C updates from the same values: measured 1-3 points lower semantic analogies).
//   CBOW: neu1 = the sum of the C context rows (their mean with cbow_mean) against the T
//     targets; each target row gets g * neu1 and each context row the error sum_t g_t o_t
//     (divided by C without cbow_mean), as gensim does.
// Gradients g = (label - sigmoid(score)) * alpha, sigmoid read from word2vec.c's table
// (EXP_TABLE_SIZE 1000, MAX_EXP 6) as word2vec.c and gensim read it. Beyond -+MAX_EXP, NS
// saturates as word2vec.c does (g = (label - 1) * alpha above, label * alpha below) and HS
// skips the node (g = 0) as word2vec.c and gensim do. A negative equal to its center word is
// dropped, as gensim does. The loss (compute_loss) is the exact -log sigmoid(+-score) of
// every target, saturated ones included, summed in double.
//
// Threads: the chunk's sentences are split into `workers` contiguous parts of about equal
// token counts, trained concurrently without locks (Hogwild). Sentence s draws from its own
// random stream, seeded from seed + s, and trains at the rate of its first token on the line
// from alpha_start (the chunk's first token) to alpha_end (past its last), so that neither
// the draws nor the rates depend on how the chunk is split: among threads, or among ranks
// that each pass their part of a chunk with seed + its first sentence. With HS and
// several parts, each part trains its own copies of the kHotNodes most used Huffman nodes
// (every path starts at the root, so every center of every part writes them, and their cache
// lines would move between the cores at each center) and adds what it changed to the shared
// rows every merge_every(parts) centers and at its end (see HotNodes); a single part trains syn1
// itself.
//
// Safety: every id, offset, cum_table entry and Huffman entry is checked once at entry and
// the settings are bounded (kMaxNegative, kMaxWorkers, kMaxScratchValues), so no index or
// buffer size comes from an unchecked value; buffers grow with the longest sentence, never
// with the window. Divergence: a NaN or infinite score updates nothing; its part stops, the
// others stop at their next sentence, and the result says so (a final update that overflows
// is not seen here: the caller checks the vectors once per epoch).
//
// Random stream (per sentence; the NumPy reference in tests/test_engine_compiled.py replays
// it exactly): the state is word2vec.c's 48-bit LCG, seeded with splitmix64(seed + s); a
// draw returns state >> 16 (gensim's random_int32) and then advances the state. One draw per
// token for subsampling (keep the token when draw < sample_int[word]); if at least two
// tokens are kept, then per kept position, in order: one draw for the reduced window
// b = draw % window (only if shrink_windows; the window is then window - b) and K draws for
// the negatives, target = bisect_left(cum_table, draw % cum_table[V-1]). HS draws nothing.

#include <ATen/core/Tensor.h>
#include <ATen/EmptyTensor.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

constexpr int kExpTableSize = 1000;
constexpr float kMaxExp = 6.0f;
// A score f reads the table at int((f + MAX_EXP) * kExpScale). word2vec.c and gensim compute
// the scale EXP_TABLE_SIZE / MAX_EXP / 2 in integer arithmetic, 83 rather than 83.33; so do we,
// to take the same steps.
constexpr float kExpScale = float(kExpTableSize / int(kMaxExp) / 2);
constexpr uint64_t kLcgMask = (uint64_t(1) << 48) - 1;

struct SigmoidTable {
  float v[kExpTableSize];
  SigmoidTable() {
    // word2vec.c: expTable[i] = exp((i / EXP_TABLE_SIZE * 2 - 1) * MAX_EXP), then e / (e + 1)
    for (int i = 0; i < kExpTableSize; ++i) {
      float e = static_cast<float>(std::exp((i / double(kExpTableSize) * 2 - 1) * kMaxExp));
      v[i] = e / (e + 1.0f);
    }
  }
};
const SigmoidTable kSigmoid;

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

struct Lcg {
  uint64_t state;
  explicit Lcg(uint64_t seed) : state(seed & kLcgMask) {}
  inline uint64_t next() {  // gensim's random_int32: a uniform 32-bit value
    uint64_t r = state >> 16;
    state = (state * 25214903917ULL + 11) & kLcgMask;
    return r;
  }
};

// -log(sigmoid(x)) = log(1 + exp(-x)), computed stably.
inline double softplus_neg_exact(double x) {
  return (x > 0.0 ? 0.0 : -x) + std::log1p(std::exp(-std::fabs(x)));
}

// The same, linearly interpolated in a table over [-MAX_EXP, MAX_EXP] (error < 2e-6),
// exact outside: the loss costs a few operations per score instead of an exp and a log.
struct SoftplusTable {
  static constexpr int kSize = 2048;
  static constexpr float kScale = kSize / (2.0f * kMaxExp);
  float v[kSize + 1];
  SoftplusTable() {
    for (int i = 0; i <= kSize; ++i) v[i] = float(softplus_neg_exact(i / double(kScale) - kMaxExp));
  }
  inline double operator()(float x) const {
    if (!(x > -kMaxExp && x < kMaxExp)) return softplus_neg_exact(x);
    const float pos = (x + kMaxExp) * kScale;
    const int i = std::min(int(pos), kSize - 1);
    const float frac = pos - float(i);
    return v[i] + frac * (v[i + 1] - v[i]);
  }
};
const SoftplusTable kSoftplus;

struct Problem {
  float* syn0;
  float* syn1neg;
  float* syn1;  // HS only
  const int32_t* ids;
  const int64_t* offsets;
  const int64_t* sample_int;
  const int64_t* cum_table;
  // HS only: word w's Huffman path is points[w * depth + l], codes[...], l < lengths[w]
  const int32_t* points;
  const uint8_t* codes;
  const int32_t* lengths;
  int64_t depth;
  int64_t longest_path;  // HS only: max(lengths)
  bool simple_paths;     // HS only: no path passes a node twice (true of every Huffman tree)
  int64_t vocab;
  int64_t dim;
  int64_t window;
  int64_t negative;
  bool hs;
  bool sg;
  bool cbow_mean;
  bool shrink_windows;
  bool compute_loss;
  double alpha_start;
  double alpha_end;
  std::atomic<bool>* stop;  // set when a part diverges or fails: every part stops
};

struct Totals {
  double words = 0, loss = 0, pairs = 0;
  bool diverged = false;  // a score was NaN or infinite
};

// Lanes of the hand-blocked loops below: the width of one SIMD register in floats, so that
// a block's accumulators stay in registers (GCC tunes Zen 1, which splits 256-bit ops, to
// 128-bit vectors). Columns past the last full block take a 4-lane block, then scalars.
#if defined(__AVX__) && !defined(__tune_znver1__)
constexpr int kLanes = 8;
#else
constexpr int kLanes = 4;
#endif
// SIMD registers the kernels may keep values in: AVX-512 has 32 (for 256-bit vectors too).
#if defined(__AVX512VL__)
constexpr int kVecRegisters = 32;
#else
constexpr int kVecRegisters = 16;
#endif
// Numbers of targets (1 + negative) with a kernel specialised at compile time; others
// take the generic path.
constexpr int64_t kMaxFixedTargets = 11;
// Largest window whose contexts the fixed kernels keep on the stack.
constexpr int64_t kMaxWindowFixed = 10;

// SIMD registers of L floats (GCC/Clang vector extension; a plain array elsewhere).
#if defined(__GNUC__)
template <int L>
struct VecOf {
  typedef float type __attribute__((vector_size(L * sizeof(float))));
};
template <int L>
using vec = typename VecOf<L>::type;
template <int L>
inline vec<L> vzero() {
  return vec<L>{};
}
template <int L>
inline vec<L> vset(float x) {  // x - 0 is x, even -0: a broadcast (x + 0 would be an add)
  return x - vec<L>{};
}
#else
template <int L>
struct vec {
  float v[L];
  float operator[](int l) const { return v[l]; }
  vec operator+(vec b) const {
    vec r = *this;
    for (int l = 0; l < L; ++l) r.v[l] += b.v[l];
    return r;
  }
  vec operator*(vec b) const {
    vec r = *this;
    for (int l = 0; l < L; ++l) r.v[l] *= b.v[l];
    return r;
  }
  vec& operator+=(vec b) { return *this = *this + b; }
};
template <int L>
inline vec<L> vzero() {
  return vec<L>{};
}
template <int L>
inline vec<L> vset(float x) {
  vec<L> r;
  for (int l = 0; l < L; ++l) r.v[l] = x;
  return r;
}
#endif
#if defined(__GNUC__)
#define TORCHW2V_NOINLINE __attribute__((noinline))
#else
#define TORCHW2V_NOINLINE
#endif

// The sum of v's lanes as a tree: half plus half, down to two lanes.
template <int L>
inline float vsum(vec<L> v) {
  if constexpr (L == 2) {
    return v[0] + v[1];
  } else {
    vec<L / 2> lo, hi;
    std::memcpy(&lo, &v, sizeof lo);
    std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof lo, sizeof hi);
    return vsum<L / 2>(lo + hi);
  }
}
template <int L>
inline vec<L> vload(const float* p) {
  vec<L> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <int L>
inline void vstore(float* p, vec<L> v) {
  std::memcpy(p, &v, sizeof v);
}

// scores[c * stride + t] (+)= the part of <x_c, o_t> over columns [k0, k1), a multiple of L
// apart. Two contexts at a time when their 2 * NT accumulators fit in registers: each
// output block loaded then serves both.
template <int NT, int L>
void scores_range(float* const* x, int64_t nc, float* const* o, int64_t k0, int64_t k1,
                  float* scores, int64_t stride, bool add) {
  using V = vec<L>;
  int64_t c = 0;
  if constexpr (2 * NT + 3 <= kVecRegisters) {
    for (; c + 2 <= nc; c += 2) {
      const float* x0 = x[c];
      const float* x1 = x[c + 1];
      V acc0[NT], acc1[NT];
      for (int t = 0; t < NT; ++t) acc0[t] = acc1[t] = vzero<L>();
      for (int64_t k = k0; k < k1; k += L) {
        const V xv0 = vload<L>(x0 + k), xv1 = vload<L>(x1 + k);
        for (int t = 0; t < NT; ++t) {
          const V ov = vload<L>(o[t] + k);
          acc0[t] += xv0 * ov;
          acc1[t] += xv1 * ov;
        }
      }
      float* s0 = scores + c * stride;
      float* s1 = s0 + stride;
      for (int t = 0; t < NT; ++t) {
        s0[t] = (add ? s0[t] : 0.0f) + vsum<L>(acc0[t]);
        s1[t] = (add ? s1[t] : 0.0f) + vsum<L>(acc1[t]);
      }
    }
  }
  for (; c < nc; ++c) {
    const float* xc = x[c];
    V acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = vzero<L>();
    for (int64_t k = k0; k < k1; k += L) {
      const V xv = vload<L>(xc + k);
      for (int t = 0; t < NT; ++t) acc[t] += xv * vload<L>(o[t] + k);
    }
    float* sc = scores + c * stride;
    for (int t = 0; t < NT; ++t) sc[t] = (add ? sc[t] : 0.0f) + vsum<L>(acc[t]);
  }
}

// scores[c * stride + t] = <x_c, o_t> for every context c and target t < NT.
template <int NT>
void scores_block(float* const* x, int64_t nc, float* const* o, int64_t d, float* scores,
                  int64_t stride) {
  const int64_t full = d - d % kLanes;
  scores_range<NT, kLanes>(x, nc, o, 0, full, scores, stride, false);
  int64_t k = full;
  if constexpr (kLanes > 4) {
    if (d - k >= 4) {
      scores_range<NT, 4>(x, nc, o, k, k + 4, scores, stride, true);
      k += 4;
    }
  }
  for (; k < d; ++k)
    for (int64_t c = 0; c < nc; ++c)
      for (int t = 0; t < NT; ++t) scores[c * stride + t] += x[c][k] * o[t][k];
}

// scores[c * NT + t] = <x_c, o_t> for every context c and target t.
template <int NT>
void scores_fixed(float* const* x, int64_t nc, float* const* o, int64_t d, float* scores) {
  scores_block<NT>(x, nc, o, d, scores, NT);
}

// Columns [k0, k1) of the update, one column at a time (the last few columns).
void update_columns(float* const* x, int64_t nc, float* const* o, int64_t nt, int64_t k0,
                    int64_t k1, const float* g, float* oldx, float* oldo) {
  for (int64_t k = k0; k < k1; ++k) {
    for (int64_t c = 0; c < nc; ++c) oldx[c] = x[c][k];
    for (int64_t t = 0; t < nt; ++t) oldo[t] = o[t][k];
    for (int64_t c = 0; c < nc; ++c) {
      float s = 0.0f;
      for (int64_t t = 0; t < nt; ++t) s += g[c * nt + t] * oldo[t];
      x[c][k] += s;
    }
    for (int64_t t = 0; t < nt; ++t) {
      float s = 0.0f;
      for (int64_t c = 0; c < nc; ++c) s += g[c * nt + t] * oldx[c];
      o[t][k] += s;
    }
  }
}

// Columns [k0, k1) (a multiple of L apart) of the update, given the gradients broadcast
// in gb (C * NT registers): per block of L columns the NT output values and their NT
// updates stay in registers, and every row is read once and updated once.
template <int NT, int L>
void update_range(float* const* x, int64_t nc, float* const* o, int64_t k0, int64_t k1,
                  const vec<L>* gb, float* dxbuf) {
  using V = vec<L>;
  for (int64_t k = k0; k < k1; k += L) {
    V ov[NT], dov[NT];
    for (int t = 0; t < NT; ++t) {
      ov[t] = vload<L>(o[t] + k);
      dov[t] = vzero<L>();
    }
    for (int64_t c = 0; c < nc; ++c) {
      const V xv = vload<L>(x[c] + k);
      const V* gc = gb + c * NT;
      V dx0 = vzero<L>(), dx1 = vzero<L>();
      for (int t = 0; t < NT; ++t) {
        if (t % 2 == 0) dx0 += gc[t] * ov[t];
        else dx1 += gc[t] * ov[t];
        dov[t] += gc[t] * xv;
      }
      vstore<L>(dxbuf + c * L, dx0 + dx1);
    }
    // stores only after every context of the block was read: all updates use old values;
    // read-modify-write, so a word occurring twice among the contexts (or the targets)
    // gets the sum of its updates
    for (int64_t c = 0; c < nc; ++c)
      vstore<L>(x[c] + k, vload<L>(x[c] + k) + vload<L>(dxbuf + c * L));
    for (int t = 0; t < NT; ++t) vstore<L>(o[t] + k, vload<L>(o[t] + k) + dov[t]);
  }
}

// With g (C, NT): x_c += sum_t g[c,t] o_t and o_t += sum_c g[c,t] x_c, both computed from
// the values before the call.
template <int NT>
void update_fixed(float* const* x, int64_t nc, float* const* o, int64_t d, const float* g,
                  float* dxbuf, float* oldx, float* oldo) {
  // needs nc <= 2 * kMaxWindowFixed
  const int64_t full = d - d % kLanes;
  vec<kLanes> gb[2 * kMaxWindowFixed * NT];  // gradients broadcast once: loads, no shuffles
  for (int64_t q = 0; q < nc * NT; ++q) gb[q] = vset<kLanes>(g[q]);
  update_range<NT, kLanes>(x, nc, o, 0, full, gb, dxbuf);
  int64_t k = full;
  if constexpr (kLanes > 4) {
    if (d - k >= 4) {
      vec<4> gb4[2 * kMaxWindowFixed * NT];
      for (int64_t q = 0; q < nc * NT; ++q) gb4[q] = vset<4>(g[q]);
      update_range<NT, 4>(x, nc, o, k, k + 4, gb4, dxbuf);
      k += 4;
    }
  }
  if (k < d) update_columns(x, nc, o, NT, k, d, g, oldx, oldo);
}

// The generic kernels, for any number of targets (HS paths are long) and of contexts. The
// targets go kTargetBlock at a time, their values in registers, like the fixed kernels' NT.
constexpr int kTargetBlock = kVecRegisters >= 32 ? 12 : 6;

// f(std::integral_constant<int, R>{}) for R = r, given 1 <= r < TB: the last, partial block.
template <int TB, class F>
inline void with_block_size(int64_t r, F&& f) {
  if constexpr (TB > 1) {
    if (r == TB - 1) f(std::integral_constant<int, TB - 1>{});
    else with_block_size<TB - 1>(r, f);
  }
}

// scores[c * nt + t] = <x_c, o_t> for every context c and target t.
void scores_generic(float* const* x, int64_t nc, float* const* o, int64_t nt, int64_t d,
                    float* scores) {
  int64_t t = 0;
  for (; t + kTargetBlock <= nt; t += kTargetBlock)
    scores_block<kTargetBlock>(x, nc, o + t, d, scores + t, nt);
  with_block_size<kTargetBlock>(nt - t, [&](auto tb) {
    scores_block<decltype(tb)::value>(x, nc, o + t, d, scores + t, nt);
  });
}

// Targets [t0, t0 + TB) of one block of L columns at k: dx_c += sum_t g[c,t] o_t (dx: nc
// vectors) and dov_t = sum_c g[c,t] x_c (dov: nt vectors), from the values in x and o.
template <int TB, int L>
void update_block(float* const* x, int64_t nc, float* const* o, int64_t nt, int64_t t0,
                  int64_t k, const float* g, float* dx, float* dov) {
  using V = vec<L>;
  V ov[TB], acc[TB];
  for (int i = 0; i < TB; ++i) {
    ov[i] = vload<L>(o[t0 + i] + k);
    acc[i] = vzero<L>();
  }
  for (int64_t c = 0; c < nc; ++c) {
    const V xv = vload<L>(x[c] + k);
    const float* gc = g + c * nt + t0;
    V dxc = vload<L>(dx + c * L);
    for (int i = 0; i < TB; ++i) {
      const V gv = vset<L>(gc[i]);
      dxc += gv * ov[i];
      acc[i] += gv * xv;
    }
    vstore<L>(dx + c * L, dxc);
  }
  for (int i = 0; i < TB; ++i) vstore<L>(dov + (t0 + i) * L, acc[i]);
}

// Columns [k0, k1) (a multiple of L apart) of the update for any nt and nc. Per block of L
// columns every product is taken first, the rows written after (read-modify-write, so a word
// occurring twice gets the sum of its updates): all updates use the values before the call.
template <int L>
void update_range_generic(float* const* x, int64_t nc, float* const* o, int64_t nt, int64_t k0,
                          int64_t k1, const float* g, float* dx, float* dov) {
  for (int64_t k = k0; k < k1; k += L) {
    for (int64_t c = 0; c < nc; ++c) vstore<L>(dx + c * L, vzero<L>());
    int64_t t = 0;
    for (; t + kTargetBlock <= nt; t += kTargetBlock)
      update_block<kTargetBlock, L>(x, nc, o, nt, t, k, g, dx, dov);
    with_block_size<kTargetBlock>(nt - t, [&](auto tb) {
      update_block<decltype(tb)::value, L>(x, nc, o, nt, t, k, g, dx, dov);
    });
    for (int64_t c = 0; c < nc; ++c)
      vstore<L>(x[c] + k, vload<L>(x[c] + k) + vload<L>(dx + c * L));
    for (int64_t q = 0; q < nt; ++q)
      vstore<L>(o[q] + k, vload<L>(o[q] + k) + vload<L>(dov + q * L));
  }
}

// update_fixed for any nt and nc; dx holds nc * kLanes floats, dov nt * kLanes.
void update_generic(float* const* x, int64_t nc, float* const* o, int64_t nt, int64_t d,
                    const float* g, float* dx, float* dov, float* oldx, float* oldo) {
  const int64_t full = d - d % kLanes;
  update_range_generic<kLanes>(x, nc, o, nt, 0, full, g, dx, dov);
  int64_t k = full;
  if constexpr (kLanes > 4) {
    if (d - k >= 4) {
      update_range_generic<4>(x, nc, o, nt, k, k + 4, g, dx, dov);
      k += 4;
    }
  }
  if (k < d) update_columns(x, nc, o, nt, k, d, g, oldx, oldo);
}

// The one-row kernels: one input row x (a skip-gram context, or CBOW's neu1) against the
// targets of a center, scores then updates. (scores_generic with one row computes what
// row_scores does, but CBOW-HS trained 5% fewer words/s through it: op alone, AVX2, 2 threads.)

// Targets whose dot products with the input row are taken together: enough independent
// sums to keep the FMA units busy, the row's values loaded once for all of them.
constexpr int kDotBlock = 8;

// s[i] = <x, o_i> for TB targets.
template <int TB>
inline void dots(const float* __restrict x, float* const* o, int64_t d, float* s) {
  using V = vec<kLanes>;
  V acc[TB];
  for (int i = 0; i < TB; ++i) acc[i] = vzero<kLanes>();
  int64_t k = 0;
  for (; k + kLanes <= d; k += kLanes) {
    const V xv = vload<kLanes>(x + k);
    for (int i = 0; i < TB; ++i) acc[i] += xv * vload<kLanes>(o[i] + k);
  }
  float sum[TB];
  for (int i = 0; i < TB; ++i) sum[i] = vsum<kLanes>(acc[i]);
  if constexpr (kLanes > 4) {
    if (k + 4 <= d) {
      const vec<4> xv = vload<4>(x + k);
      for (int i = 0; i < TB; ++i) sum[i] += vsum<4>(xv * vload<4>(o[i] + k));
      k += 4;
    }
  }
  for (; k < d; ++k)
    for (int i = 0; i < TB; ++i) sum[i] += x[k] * o[i][k];
  for (int i = 0; i < TB; ++i) s[i] = sum[i];
}

// s[t] = <x, o_t> for the nt targets.
void row_scores(const float* x, float* const* o, int64_t nt, int64_t d, float* s) {
  int64_t t = 0;
  for (; t + kDotBlock <= nt; t += kDotBlock) dots<kDotBlock>(x, o + t, d, s + t);
  with_block_size<kDotBlock>(nt - t, [&](auto tb) {
    dots<decltype(tb)::value>(x, o + t, d, s + t);
  });
}

// Columns [k, k + CB * L) of the row update: out = x + sum_t g_t o_t (or the sum alone,
// without kAddRow) and o_t += g_t x, all from the values before. With kDistinct (no row is
// two targets) each target row is read once and written at once; otherwise all sums are
// taken first and the rows written after, so that a row that is two targets gets both
// updates. Without kAddRow (CBOW's error), two sums per block of columns (even and odd
// targets): 2 * CB chains of FMAs in flight. With kAddRow (a skip-gram context), one sum
// from x in the targets' order, the order of the fused step (row_update_scoring_next), so
// that a context's update rounds the same whichever of the two trains it.
template <int CB, int L, bool kAddRow, bool kDistinct>
inline void row_update_block(const float* x, float* const* o, int64_t nt, int64_t k,
                             const float* g, float* out) {
  using V = vec<L>;
  V xv[CB], even[CB], odd[CB];
  for (int b = 0; b < CB; ++b) {
    xv[b] = vload<L>(x + k + b * L);
    even[b] = kAddRow ? xv[b] : vzero<L>();
    odd[b] = vzero<L>();
  }
  // One target: its sum, and with kDistinct its row's update from the same loaded values.
  // The row's address is a local: GCC would reload o[t] after every store (a vstore may
  // alias anything).
  auto train = [&](float* row, V gv, V* sum) {
    for (int b = 0; b < CB; ++b) {
      const V ov = vload<L>(row + b * L);
      sum[b] += gv * ov;
      if constexpr (kDistinct) vstore<L>(row + b * L, ov + gv * xv[b]);
    }
  };
  int64_t t = 0;
  if constexpr (!kAddRow) {
    for (; t + 2 <= nt; t += 2) {
      train(o[t] + k, vset<L>(g[t]), even);
      train(o[t + 1] + k, vset<L>(g[t + 1]), odd);
    }
  }
  for (; t < nt; ++t) train(o[t] + k, vset<L>(g[t]), even);
  if constexpr (!kDistinct) {
    for (int64_t q = 0; q < nt; ++q) {
      const V gq = vset<L>(g[q]);
      float* const row = o[q] + k;
      for (int b = 0; b < CB; ++b) vstore<L>(row + b * L, vload<L>(row + b * L) + gq * xv[b]);
    }
  }
  for (int b = 0; b < CB; ++b) vstore<L>(out + k + b * L, kAddRow ? even[b] : even[b] + odd[b]);
}

// The whole row update (see row_update_block): out may be x itself.
template <bool kAddRow, bool kDistinct>
void row_update(const float* x, float* const* o, int64_t nt, int64_t d, const float* g,
                float* out) {
  constexpr int CB = 4;
  int64_t k = 0;
  for (; k + CB * kLanes <= d; k += CB * kLanes)
    row_update_block<CB, kLanes, kAddRow, kDistinct>(x, o, nt, k, g, out);
  for (; k + kLanes <= d; k += kLanes)
    row_update_block<1, kLanes, kAddRow, kDistinct>(x, o, nt, k, g, out);
  if constexpr (kLanes > 4) {
    if (k + 4 <= d) {
      row_update_block<1, 4, kAddRow, kDistinct>(x, o, nt, k, g, out);
      k += 4;
    }
  }
  for (; k < d; ++k) {
    const float xk = x[k];
    float sum = kAddRow ? xk : 0.0f;
    for (int64_t t = 0; t < nt; ++t) sum += g[t] * o[t][k];
    for (int64_t t = 0; t < nt; ++t) o[t][k] += g[t] * xk;
    out[k] = sum;
  }
}

// Skip-gram's step in gensim's order, fused, for TB targets: x_new += sum_t g_t o_t and
// o_t += g_t x, and scores[t] = <xn, o_t> of the next context row xn from o_t as updated, each
// target row read and written once (row_update and row_scores read it twice: measured 1.06x
// (1 thread) and 1.09-1.12x (2) the words/s of SG-HS, op alone, AVX2). x_new starts as x and
// is written back after the last targets (x stays the input of every update until then); its
// sums are row_update<true, ...>'s, in its order. The TB dot products stay in registers over
// all columns: no horizontal sum until the end.
template <int TB>
void row_update_scoring_next_block(const float* x, float* const* o, int64_t d, const float* g,
                                   const float* xn, float* x_new, float* scores) {
  float* row[TB];
  float sum[TB];
  int64_t k = 0;
  {
    using V = vec<kLanes>;
    V gv[TB], dot[TB];
    for (int i = 0; i < TB; ++i) {
      row[i] = o[i];
      gv[i] = vset<kLanes>(g[i]);
      dot[i] = vzero<kLanes>();
    }
    for (; k + kLanes <= d; k += kLanes) {
      const V xv = vload<kLanes>(x + k), xnv = vload<kLanes>(xn + k);
      V acc = vload<kLanes>(x_new + k);
      for (int i = 0; i < TB; ++i) {
        V ov = vload<kLanes>(row[i] + k);
        acc += gv[i] * ov;
        ov += gv[i] * xv;
        vstore<kLanes>(row[i] + k, ov);
        dot[i] += xnv * ov;
      }
      vstore<kLanes>(x_new + k, acc);
    }
    for (int i = 0; i < TB; ++i) sum[i] = vsum<kLanes>(dot[i]);
  }
  if constexpr (kLanes > 4) {
    if (k + 4 <= d) {
      using V = vec<4>;
      const V xv = vload<4>(x + k), xnv = vload<4>(xn + k);
      V acc = vload<4>(x_new + k);
      for (int i = 0; i < TB; ++i) {
        const V gv = vset<4>(g[i]);
        V ov = vload<4>(row[i] + k);
        acc += gv * ov;
        ov += gv * xv;
        vstore<4>(row[i] + k, ov);
        sum[i] += vsum<4>(xnv * ov);
      }
      vstore<4>(x_new + k, acc);
      k += 4;
    }
  }
  for (; k < d; ++k)
    for (int i = 0; i < TB; ++i) {
      x_new[k] += g[i] * row[i][k];
      row[i][k] += g[i] * x[k];
      sum[i] += xn[k] * row[i][k];
    }
  for (int i = 0; i < TB; ++i) scores[i] = sum[i];
}

// The fused step (row_update_scoring_next_block) for nt distinct targets; xn is another row
// than x. x_new: d floats of scratch.
void row_update_scoring_next(float* x, float* const* o, int64_t nt, int64_t d, const float* g,
                             const float* xn, float* scores, float* x_new) {
  constexpr int TB = kTargetBlock;  // 2 * TB + 4 vectors in registers
  std::copy(x, x + d, x_new);
  int64_t t = 0;
  for (; t + TB <= nt; t += TB)
    row_update_scoring_next_block<TB>(x, o + t, d, g + t, xn, x_new, scores + t);
  with_block_size<TB>(nt - t, [&](auto tb) {
    row_update_scoring_next_block<decltype(tb)::value>(x, o + t, d, g + t, xn, x_new,
                                                       scores + t);
  });
  std::copy(x_new, x_new + d, x);
}

struct Kernels {
  void (*scores)(float* const*, int64_t, float* const*, int64_t, float*);
  void (*update)(float* const*, int64_t, float* const*, int64_t, const float*, float*, float*,
                 float*);
};

template <int NT>
constexpr Kernels fixed_kernels() {
  return {&scores_fixed<NT>, &update_fixed<NT>};
}

// The fixed kernels by number of targets: kFixed[nt] for nt in 1..kMaxFixedTargets.
template <int... NTs>
constexpr std::array<Kernels, kMaxFixedTargets + 1> fixed_kernel_table(
    std::integer_sequence<int, NTs...>) {
  return {Kernels{nullptr, nullptr}, fixed_kernels<NTs + 1>()...};
}
constexpr auto kFixed = fixed_kernel_table(std::make_integer_sequence<int, kMaxFixedTargets>{});

// The fixed kernels for nt targets, or nulls: then the generic ones.
inline Kernels kernels_for(int64_t nt) {
  return nt <= kMaxFixedTargets ? kFixed[nt] : Kernels{nullptr, nullptr};
}

// x % m for 32-bit x and m without a division (Lemire, Kaser & Kurz 2019): exact.
struct FastMod {
  uint64_t m, magic;
  explicit FastMod(uint64_t divisor) : m(divisor), magic(~uint64_t(0) / divisor + 1) {}
  inline uint64_t operator()(uint64_t x) const {
#if defined(__SIZEOF_INT128__)
    if (m <= 0xFFFFFFFFULL) {
      const uint64_t low = magic * x;
      return uint64_t((static_cast<unsigned __int128>(low) * m) >> 64);
    }
#endif
    return x % m;
  }
};

// bisect_left(cum_table, r) through a bucket index: bucket b = r >> shift holds the answers
// for r in [b << shift, (b + 1) << shift), all within [first[b], first[b + 1]], so only a
// few steps of bisection are left (none for the frequent words that fill whole buckets).
struct NegativeIndex {
  const int64_t* cum = nullptr;
  int64_t vocab = 0;
  int shift = 0;
  std::vector<int32_t> first;

  NegativeIndex(const int64_t* cum_table, int64_t v) : cum(cum_table), vocab(v) {
    const uint64_t end = uint64_t(cum[v - 1]);
    const uint64_t max_buckets = uint64_t(std::max<int64_t>(2 * v, 1024));
    while (((end - 1) >> shift) + 1 > max_buckets) ++shift;
    const uint64_t buckets = ((end - 1) >> shift) + 1;
    first.resize(buckets + 1);
    int64_t idx = 0;
    for (uint64_t b = 0; b <= buckets; ++b) {  // first[b] = bisect_left(cum, b << shift)
      const uint64_t x = b << shift;
      while (idx < v - 1 && uint64_t(cum[idx]) < x) ++idx;
      first[b] = int32_t(idx);
    }
  }
  inline int64_t operator()(uint64_t r) const {
    const uint64_t b = r >> shift;
    int64_t a = first[b], e = first[b + 1];
    while (a < e) {
      const int64_t mid = (a + e) >> 1;
      if (uint64_t(cum[mid]) >= r) e = mid; else a = mid + 1;
    }
    return a;
  }
};

inline void prefetch_row(const float* row, int64_t d) {
#if defined(__GNUC__)
  for (int64_t k = 0; k < d; k += 64 / int64_t(sizeof(float))) __builtin_prefetch(row + k, 1, 3);
#else
  (void)row;
  (void)d;
#endif
}

// The syn1 rows of word w's Huffman path below node `cold_below` (the others are a part's own).
inline void prefetch_path(const Problem& p, int64_t w, int64_t cold_below) {
  const int32_t* point = p.points + w * p.depth;
  for (int64_t l = 0; l < p.lengths[w]; ++l)
    if (point[l] < cold_below) prefetch_row(p.syn1 + int64_t(point[l]) * p.dim, p.dim);
}

// How many centers ahead the rows of a center are prefetched.
constexpr int64_t kPrefetchAhead = 2;

// Hot Huffman nodes per part: at most kHotNodes rows and kHotValues floats per copy. Measured
// on 33k words (op alone, 2 threads): SG-HS 1.56x, CBOW-HS 1.32x the words/s of shared rows.
constexpr int64_t kHotNodes = 256, kHotValues = int64_t(1) << 16;

// Centers a part trains between two merges of its hot nodes: kMergeCenters / (parts - 1)
// within [kMergeEveryMin, kMergeCenters], so that the other parts train about kMergeCenters
// centers that a part's copies do not see (as many as 256 did with 9 parts). A merge moves
// every hot row between the cores twice (merged, then copied again); with 2 parts, merging
// every 2,048 centers instead of 256 trained 1.20x the words/s of CBOW-HS and 1.05x of SG-HS
// (op alone, AVX-512), with the same scores (benchmarks/RESULTS.md).
constexpr int64_t kMergeCenters = 2048, kMergeEveryMin = 256;

inline int64_t merge_every(int64_t parts) {
  return std::clamp<int64_t>(kMergeCenters / std::max<int64_t>(1, parts - 1), kMergeEveryMin,
                             kMergeCenters);
}

// A part's own copies of the syn1 rows of nodes [first, vocab): the nodes built last by
// word2vec.c's Huffman tree, the heaviest, the root first (with any other table, only slower).
// row() copies a shared row the first time it is asked for after a merge; merge() gives each
// shared row its copy's change since then (Hogwild: a concurrent merge may lose a change, as
// a concurrent update may), and the next row() reads the shared row again. An entry that
// nobody else changed becomes the copy's exactly, and one the copy did not change stays as it
// is: adding the difference would turn an infinite entry into NaN (inf - inf).
struct HotNodes {
  float* syn1;
  int64_t d, first;               // first == vocab: no copies
  std::vector<float> mine, base;  // the copies, and the shared rows they were copied from
  std::vector<uint8_t> copied;
  std::vector<int32_t> dirty;     // the copied slots

  HotNodes(const Problem& p, int64_t count)
      : syn1(p.syn1),
        d(p.dim),
        first(p.vocab - count),
        mine(count * p.dim),
        base(count * p.dim),
        copied(count, 0) {
    dirty.reserve(count);
  }

  // The row to train for node: its copy if it is hot, else syn1's.
  inline float* row(int64_t node) {
    if (node < first) return syn1 + node * d;
    const int64_t slot = node - first;
    float* own = mine.data() + slot * d;
    if (!copied[slot]) {
      copied[slot] = 1;
      dirty.push_back(int32_t(slot));
      std::memcpy(own, syn1 + node * d, sizeof(float) * d);
      std::memcpy(base.data() + slot * d, own, sizeof(float) * d);
    }
    return own;
  }

  void merge() {
    for (const int32_t slot : dirty) {
      float* __restrict out = syn1 + (first + slot) * d;
      const float* __restrict own = mine.data() + int64_t(slot) * d;
      const float* __restrict was = base.data() + int64_t(slot) * d;
#pragma omp simd
      for (int64_t k = 0; k < d; ++k) {
        const float shared = out[k], copy = own[k], start = was[k];
        out[k] = shared == start ? copy : (copy == start ? shared : shared + (copy - start));
      }
      copied[slot] = 0;
    }
    dirty.clear();
  }
};

// The hot nodes a part copies: none with one part (or without HS), else as many of the
// kHotNodes as kHotValues floats hold.
inline int64_t hot_node_count(const Problem& p, int64_t parts) {
  if (!p.hs || parts < 2) return 0;
  return std::min({kHotNodes, p.vocab, std::max<int64_t>(1, kHotValues / p.dim)});
}

// What one center word is trained against (see the top of the file): rows[0, ns) are the NS
// targets (the center word, then its negatives other than the center word), rows[ns, n) the
// nodes of its Huffman path; label[t] is 1 or 0.
struct Targets {
  std::vector<float*> rows;
  std::vector<float> label;
  int64_t ns = 0, n = 0;
  bool distinct = true;  // no row is two targets (a negative drawn twice would be)

  explicit Targets(int64_t capacity) : rows(capacity), label(capacity, 0.0f) {}

  void gather(const Problem& p, int64_t center, const int64_t* negs, HotNodes& hot) {
    const int64_t d = p.dim;
    n = 0;
    if (p.negative > 0) {
      rows[n] = p.syn1neg + center * d;
      label[n++] = 1.0f;
      for (int64_t k = 0; k < p.negative; ++k)
        if (negs[k] != center) {
          rows[n] = p.syn1neg + negs[k] * d;
          label[n++] = 0.0f;
        }
    }
    ns = n;
    distinct = !p.hs || p.simple_paths;
    for (int64_t a = 1; a < ns && distinct; ++a)
      for (int64_t b = 1; b < a; ++b) distinct &= rows[a] != rows[b];
    if (p.hs) {
      const int32_t* point = p.points + center * p.depth;
      const uint8_t* code = p.codes + center * p.depth;
      for (int64_t l = 0; l < p.lengths[center]; ++l) {
        rows[n] = hot.row(point[l]);
        label[n++] = 1.0f - float(code[l]);
      }
    }
  }
};

// The one-row update of x against tg's targets (row_update), into out.
template <bool kAddRow>
inline void row_update_targets(const float* x, const Targets& tg, int64_t d, const float* g,
                               float* out) {
  if (tg.distinct) row_update<kAddRow, true>(x, tg.rows.data(), tg.n, d, g, out);
  else row_update<kAddRow, false>(x, tg.rows.data(), tg.n, d, g, out);
}

// Per-thread buffers, sized for the most contexts (skip-gram; CBOW has one input row) and
// the most targets of a center.
struct Scratch {
  std::vector<float> scores;      // (contexts, targets): scores, then gradients
  std::vector<float> dx;          // (contexts, kLanes): the kernels' context updates
  std::vector<float> dov;         // (targets, kLanes): the generic kernel's target updates
  std::vector<float> oldx, oldo;  // one column of the contexts, of the targets
  std::vector<float> neu1, neu1e;  // (d,): CBOW's input and its error; neu1e: skip-gram's new row
  Scratch(int64_t contexts, int64_t targets, int64_t d)
      : scores(contexts * targets),
        dx(contexts * kLanes),
        dov(targets * kLanes),
        oldx(contexts),
        oldo(targets),
        neu1(d),
        neu1e(d) {}
};

// sigmoid(f) from word2vec.c's table; 0 or 1 beyond -+MAX_EXP. The index is clamped before
// the conversion to int, which is undefined for NaN and out-of-range floats: a NaN score
// reads entry 0 (the caller reports it as divergence, see scores_to_gradients).
inline float table_sigmoid(float f) {
  const float pos = (f + kMaxExp) * kExpScale;
  const int idx = pos > 0.0f ? int(std::min(pos, float(kExpTableSize - 1))) : 0;
  float sig = kSigmoid.v[idx];
  sig = f >= kMaxExp ? 1.0f : sig;
  return f <= -kMaxExp ? 0.0f : sig;
}

constexpr float kFloatMax = std::numeric_limits<float>::max();

// rows x tg.n scores -> gradients (label - sigmoid(score)) * alpha, in place; beyond -+MAX_EXP
// NS targets saturate (table_sigmoid) and HS nodes are skipped (g = 0). Returns false if a
// score is NaN or infinite: training diverged, and the gradients are not to be applied.
bool scores_to_gradients(float* scores, int64_t rows, const Targets& tg, float alpha) {
  bool finite = true;
  for (int64_t r = 0; r < rows; ++r) {
    float* f = scores + r * tg.n;
    for (int64_t t = 0; t < tg.ns; ++t) {
      finite &= std::fabs(f[t]) <= kFloatMax;
      f[t] = (tg.label[t] - table_sigmoid(f[t])) * alpha;
    }
    for (int64_t t = tg.ns; t < tg.n; ++t) {
      finite &= std::fabs(f[t]) <= kFloatMax;
      const bool inside = f[t] > -kMaxExp && f[t] < kMaxExp;
      f[t] = inside ? (tg.label[t] - table_sigmoid(f[t])) * alpha : 0.0f;
    }
  }
  return finite;
}

// Sum over rows x tg.n scores of -log sigmoid(score) (label 1) or -log sigmoid(-score) (label 0).
// Kept out of train_part: inlined there, it made compute_loss runs of SGNS ~3% slower.
TORCHW2V_NOINLINE double loss_of(const float* scores, int64_t rows, const Targets& tg) {
  const float* label = tg.label.data();
  const int64_t nt = tg.n;
  double loss = 0.0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t t = 0; t < nt; ++t) {
      const float f = scores[r * nt + t];
      loss += kSoftplus(label[t] > 0.0f ? f : -f);
    }
  return loss;
}

// Skip-gram, all nc context rows x at once: every prediction from the values before the
// call. Returns false, having updated nothing, if a score is not finite.
bool train_skipgram(float* const* x, int64_t nc, const Targets& tg, float alpha, const Problem& p,
                    Scratch& s, Totals& t) {
  const Kernels fixed = kernels_for(tg.n);
  float* const* o = tg.rows.data();
  float* g = s.scores.data();  // (nc, T)
  if (fixed.scores) fixed.scores(x, nc, o, p.dim, g);
  else scores_generic(x, nc, o, tg.n, p.dim, g);
  if (p.compute_loss) t.loss += loss_of(g, nc, tg);
  if (!scores_to_gradients(g, nc, tg, alpha)) return false;
  if (fixed.update && nc <= 2 * kMaxWindowFixed)
    fixed.update(x, nc, o, p.dim, g, s.dx.data(), s.oldx.data(), s.oldo.data());
  else
    update_generic(x, nc, o, tg.n, p.dim, g, s.dx.data(), s.dov.data(), s.oldx.data(),
                   s.oldo.data());
  t.pairs += double(nc);
  return true;
}

// Skip-gram, one context row at a time in gensim's order: each context's predictions see the
// target rows as the contexts before it left them. A context's update and the next one's
// scores take one pass over the target rows where they can (distinct targets, and the next
// context another row). Returns false at the first context with a score that is not finite,
// that context's update not applied.
bool train_skipgram_in_order(float* const* x, int64_t nc, const Targets& tg, float alpha,
                             const Problem& p, Scratch& s, Totals& t) {
  const int64_t nt = tg.n, d = p.dim;
  float* const* o = tg.rows.data();
  float* g = s.scores.data();  // (T,): this context's scores, then gradients
  float* next = g + nt;        // (T,): the next context's scores (nc >= 2 rows of scratch)
  row_scores(x[0], o, nt, d, g);
  for (int64_t c = 0; c < nc; ++c) {
    if (p.compute_loss) t.loss += loss_of(g, 1, tg);
    if (!scores_to_gradients(g, 1, tg, alpha)) return false;
    if (c + 1 < nc && tg.distinct && x[c + 1] != x[c]) {
      row_update_scoring_next(x[c], o, nt, d, g, x[c + 1], next, s.neu1e.data());
    } else {
      row_update_targets<true>(x[c], tg, d, g, x[c]);
      if (c + 1 < nc) row_scores(x[c + 1], o, nt, d, next);
    }
    std::swap(g, next);
    t.pairs += 1.0;
  }
  return true;
}

// CBOW: the sum (or mean) neu1 of the nc context rows x predicts the targets. Returns false,
// having updated nothing, if a score is not finite.
bool train_cbow(float* const* x, int64_t nc, const Targets& tg, float alpha, const Problem& p,
                Scratch& s, Totals& t) {
  const int64_t d = p.dim;
  float* neu1 = s.neu1.data();
  float* __restrict neu1e = s.neu1e.data();
  const float inv_count = 1.0f / float(nc);
  std::fill(neu1, neu1 + d, 0.0f);
  for (int64_t c = 0; c < nc; ++c) {
    const float* __restrict xc = x[c];
#pragma omp simd
    for (int64_t k = 0; k < d; ++k) neu1[k] += xc[k];
  }
  if (p.cbow_mean)
    for (int64_t k = 0; k < d; ++k) neu1[k] *= inv_count;

  float* g = s.scores.data();  // (T,)
  row_scores(neu1, tg.rows.data(), tg.n, d, g);
  if (p.compute_loss) t.loss += loss_of(g, 1, tg);
  if (!scores_to_gradients(g, 1, tg, alpha)) return false;
  row_update_targets<false>(neu1, tg, d, g, neu1e);  // neu1e = sum_t g_t o_t, from the old o_t
  // with the sum, the error is shared among the contexts; with the mean each gets it whole
  if (!p.cbow_mean)
    for (int64_t k = 0; k < d; ++k) neu1e[k] *= inv_count;
  for (int64_t c = 0; c < nc; ++c) {
    float* __restrict xc = x[c];
#pragma omp simd
    for (int64_t k = 0; k < d; ++k) xc[k] += neu1e[k];
  }
  t.pairs += 1.0;
  return true;
}

// Tokens in the longest of sentences [sent_lo, sent_hi), at least 1.
int64_t longest_sentence(const int64_t* offsets, int64_t sent_lo, int64_t sent_hi) {
  int64_t longest = 1;
  for (int64_t s = sent_lo; s < sent_hi; ++s)
    longest = std::max(longest, offsets[s + 1] - offsets[s]);
  return longest;
}

// The most contexts of a center in sentences of at most `longest` tokens: a window wider than
// the sentence costs nothing more.
inline int64_t max_contexts(int64_t window, int64_t longest) {
  return std::min(2 * std::min(window, longest), longest);
}

// The most targets of a center: the word and its negatives, and its Huffman path.
inline int64_t max_targets(const Problem& p) {
  return (p.negative > 0 ? p.negative + 1 : 0) + (p.hs ? p.longest_path : 0);
}

// Values in a part's two buffers that grow with a product of settings: the negatives (K per
// token) and the scores (contexts x targets). In double, which cannot overflow.
double scratch_values(const Problem& p, int64_t longest) {
  const double rows = p.sg ? double(max_contexts(p.window, longest)) : 1.0;
  return double(longest) * double(p.negative) + rows * double(max_targets(p));
}

// Train sentences [sent_lo, sent_hi) of the chunk, whose longest has `longest` tokens, with
// their own random stream, with copies of the hot Huffman nodes if other parts share syn1.
// Stops early when a score is not finite (out->diverged) or when another part sets p.stop.
void train_part(const Problem& p, const NegativeIndex* negatives, int64_t sent_lo, int64_t sent_hi,
                int64_t longest, int64_t tokens, uint64_t seed, int64_t parts, Totals* out) {
  const int64_t d = p.dim, W = p.window, K = p.negative;
  const double span = tokens > 0 ? double(tokens) : 1.0;
  const uint64_t table_end = K > 0 ? uint64_t(p.cum_table[p.vocab - 1]) : 1;
  const FastMod mod_table{table_end}, mod_window{uint64_t(W)};

  const int64_t contexts = max_contexts(W, longest);
  std::vector<int32_t> kept(longest);
  std::vector<int64_t> reach(longest);  // a kept position's window, at most the sentence
  std::vector<int64_t> negs(longest * K + 8);  // K per kept position: draws, then words
  std::vector<float*> in_rows(contexts);
  Targets targets(max_targets(p));
  Scratch scratch(p.sg ? contexts : 1, max_targets(p), d);
  HotNodes hot(p, hot_node_count(p, parts));
  const int64_t centers_per_merge = merge_every(parts);
  int64_t since_merge = 0;
  Totals t;

  for (int64_t s = sent_lo; s < sent_hi && !t.diverged; ++s) {
    if (p.stop->load(std::memory_order_relaxed)) break;
    const float alpha = static_cast<float>(
        p.alpha_start + (p.alpha_end - p.alpha_start) * double(p.offsets[s]) / span);
    Lcg rng(splitmix64(seed + uint64_t(s)));  // the sentence's own stream: any split draws alike
    // 1. subsample; 2. per kept position, its reduced window and its negatives' draws
    int64_t n = 0;
    for (int64_t q = p.offsets[s]; q < p.offsets[s + 1]; ++q) {
      const int32_t w = p.ids[q];
      if (int64_t(rng.next()) < p.sample_int[w]) kept[n++] = w;
    }
    t.words += double(n);
    if (n < 2) continue;  // no contexts; nothing else is drawn for this sentence
    int64_t ndraws = 0;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t r = p.shrink_windows ? W - int64_t(mod_window(rng.next())) : W;
      reach[i] = std::min(r, n);
      for (int64_t k = 0; k < K; ++k) negs[ndraws++] = int64_t(mod_table(rng.next()));
    }
    // 3. negatives = bisect_left(cum_table, draw)
    for (int64_t q = 0; q < ndraws; ++q) negs[q] = (*negatives)(uint64_t(negs[q]));

    for (int64_t i = 0; i < n; ++i) {
      if (i + kPrefetchAhead < n) {  // the rows a later center will need first
        const int64_t a = i + kPrefetchAhead;
        if (K > 0) prefetch_row(p.syn1neg + int64_t(kept[a]) * d, d);
        for (int64_t k = 0; k < K; ++k) prefetch_row(p.syn1neg + negs[a * K + k] * d, d);
        if (p.hs) prefetch_path(p, kept[a], hot.first);
        const int64_t j = a + reach[a];
        if (j < n) prefetch_row(p.syn0 + int64_t(kept[j]) * d, d);
      }
      const int64_t lo = std::max<int64_t>(0, i - reach[i]);
      const int64_t hi = std::min<int64_t>(n, i + reach[i] + 1);
      const int64_t nc = hi - lo - 1;
      for (int64_t j = lo, c = 0; j < hi; ++j)
        if (j != i) in_rows[c++] = p.syn0 + int64_t(kept[j]) * d;
      targets.gather(p, kept[i], negs.data() + i * K, hot);
      const bool finite =
          !p.sg  ? train_cbow(in_rows.data(), nc, targets, alpha, p, scratch, t)
          : p.hs ? train_skipgram_in_order(in_rows.data(), nc, targets, alpha, p, scratch, t)
                 : train_skipgram(in_rows.data(), nc, targets, alpha, p, scratch, t);
      if (!finite) {
        t.diverged = true;
        p.stop->store(true, std::memory_order_relaxed);
        break;
      }
      if (++since_merge == centers_per_merge) {
        hot.merge();
        since_merge = 0;
      }
    }
  }
  hot.merge();
  *out = t;
}

// Limits on the settings, far beyond any useful value; torchw2v/engines/compiled.py checks the
// same ones. The scratch limit bounds a chunk's buffers that grow with a product of settings
// (see scratch_values): 2**28 values, 1-2 GiB.
constexpr int64_t kMaxNegative = 10000;
constexpr int64_t kMaxWorkers = 1024;
constexpr double kMaxScratchValues = double(int64_t(1) << 28);

struct PathFacts {
  int64_t longest = 0;
  bool simple = true;  // no path passes a node twice
};

// The HS tables describe Huffman paths through syn1's rows: shapes, dtypes and ranges.
// Returns the longest path, and whether every path is simple (the tables are any the caller
// gives, not necessarily a tree's).
PathFacts check_huffman(const at::Tensor& points, const at::Tensor& codes,
                        const at::Tensor& lengths, int64_t V) {
  TORCH_CHECK(points.scalar_type() == at::kInt && points.dim() == 2 && points.size(0) == V &&
                  points.is_contiguous(),
              "train_chunk: points must be a contiguous (V, L) int32 tensor with V=", V, ", got ",
              points.scalar_type(), " of shape ", points.sizes());
  TORCH_CHECK(codes.scalar_type() == at::kByte && codes.sizes() == points.sizes() &&
                  codes.is_contiguous(),
              "train_chunk: codes must be a contiguous uint8 tensor shaped like points ",
              points.sizes(), ", got ", codes.scalar_type(), " of shape ", codes.sizes());
  TORCH_CHECK(lengths.scalar_type() == at::kInt && lengths.dim() == 1 && lengths.numel() == V &&
                  lengths.is_contiguous(),
              "train_chunk: lengths must be a contiguous (V,) int32 tensor with V=", V, ", got ",
              lengths.scalar_type(), " of shape ", lengths.sizes());
  const int64_t L = points.size(1);
  const int32_t* pt = points.data_ptr<int32_t>();
  const uint8_t* cd = codes.data_ptr<uint8_t>();
  const int32_t* len = lengths.data_ptr<int32_t>();
  PathFacts facts;
  std::vector<int32_t> seen_in(V, -1);  // seen_in[node]: the last word whose path has it
  for (int64_t w = 0; w < V; ++w) {
    TORCH_CHECK(len[w] >= 0 && len[w] <= L, "train_chunk: lengths[", w, "]=", len[w],
                " is out of range [0, ", L, "]");
    facts.longest = std::max<int64_t>(facts.longest, len[w]);
    for (int64_t l = 0; l < len[w]; ++l) {
      const int32_t node = pt[w * L + l];
      TORCH_CHECK(node >= 0 && node < V, "train_chunk: points[", w, ", ", l, "]=", node,
                  " is out of range [0, ", V, ")");
      TORCH_CHECK(cd[w * L + l] <= 1, "train_chunk: codes[", w, ", ", l, "]=", int(cd[w * L + l]),
                  " is not 0 or 1");
      facts.simple &= seen_in[node] != int32_t(w);
      seen_in[node] = int32_t(w);
    }
  }
  return facts;
}

at::Tensor train_chunk(const at::Tensor& syn0, const at::Tensor& syn1neg, const at::Tensor& syn1,
                       const at::Tensor& ids, const at::Tensor& offsets,
                       const at::Tensor& sample_int, const at::Tensor& cum_table,
                       const at::Tensor& points, const at::Tensor& codes,
                       const at::Tensor& lengths, int64_t window, int64_t negative, bool hs,
                       bool sg, bool cbow_mean, bool shrink_windows, double alpha_start,
                       double alpha_end, int64_t seed, int64_t workers, bool compute_loss) {
  for (const at::Tensor* t :
       {&syn0, &syn1neg, &syn1, &ids, &offsets, &sample_int, &cum_table, &points, &codes, &lengths})
    TORCH_CHECK(t->device().is_cpu(), "train_chunk: all tensors must be on the CPU");
  TORCH_CHECK(syn0.scalar_type() == at::kFloat && syn0.dim() == 2 && syn0.is_contiguous(),
              "train_chunk: syn0 must be a contiguous (V, d) float32 tensor, got ",
              syn0.scalar_type(), " of shape ", syn0.sizes());
  const int64_t V = syn0.size(0), d = syn0.size(1), N = ids.numel();
  TORCH_CHECK(V >= 1 && d >= 1, "train_chunk: empty embedding matrix ", syn0.sizes());
  TORCH_CHECK(V <= std::numeric_limits<int32_t>::max(),
              "train_chunk: at most 2**31 - 1 words (ids are int32), got ", V);
  TORCH_CHECK(negative >= 0 && negative <= kMaxNegative, "train_chunk: negative must be in [0, ",
              kMaxNegative, "], got ", negative);
  TORCH_CHECK(negative > 0 || hs, "train_chunk: nothing to train: negative=0 and hs=false");
  // an output matrix that is not trained (syn1neg when negative == 0, syn1 without hs) is not read
  auto check_output = [&](const char* name, const at::Tensor& t) {
    TORCH_CHECK(t.scalar_type() == at::kFloat && t.sizes() == syn0.sizes() && t.is_contiguous(),
                "train_chunk: ", name, " must be a contiguous float32 tensor of syn0's shape ",
                syn0.sizes(), ", got ", t.scalar_type(), " of shape ", t.sizes());
  };
  if (negative > 0) check_output("syn1neg", syn1neg);
  if (hs) check_output("syn1", syn1);
  TORCH_CHECK(ids.scalar_type() == at::kInt && ids.dim() == 1 && ids.is_contiguous(),
              "train_chunk: ids must be a contiguous 1-D int32 tensor, got ", ids.scalar_type(),
              " of shape ", ids.sizes());
  TORCH_CHECK(offsets.scalar_type() == at::kLong && offsets.dim() == 1 &&
                  offsets.is_contiguous() && offsets.numel() >= 1,
              "train_chunk: offsets must be a contiguous 1-D int64 tensor of length S+1, got ",
              offsets.scalar_type(), " of shape ", offsets.sizes());
  const int64_t S = offsets.numel() - 1;
  for (const at::Tensor* t : {&sample_int, &cum_table})
    TORCH_CHECK(t->scalar_type() == at::kLong && t->dim() == 1 && t->is_contiguous() &&
                    t->numel() == V,
                "train_chunk: sample_int and cum_table must be contiguous (V,) int64 with V=", V,
                ", got ", t->scalar_type(), " of shape ", t->sizes());
  TORCH_CHECK(window >= 1, "train_chunk: window must be >= 1, got ", window);
  TORCH_CHECK(workers >= 1 && workers <= kMaxWorkers, "train_chunk: workers must be in [1, ",
              kMaxWorkers, "], got ", workers);
  // the learning rate is used as a float32
  TORCH_CHECK(std::fabs(alpha_start) <= kFloatMax && std::fabs(alpha_end) <= kFloatMax,
              "train_chunk: alpha_start and alpha_end must be finite float32 values, got ",
              alpha_start, " and ", alpha_end);

  const int64_t* off = offsets.data_ptr<int64_t>();
  TORCH_CHECK(off[0] == 0 && off[S] == N, "train_chunk: offsets must start at 0 and end at ",
              "len(ids)=", N, ", got ", off[0], " and ", off[S]);
  for (int64_t s = 0; s < S; ++s)
    TORCH_CHECK(off[s] <= off[s + 1], "train_chunk: offsets must be non-decreasing (at ", s, ")");
  const int32_t* idp = ids.data_ptr<int32_t>();
  int64_t bad = -1;
  for (int64_t q = 0; q < N; ++q)
    if (idp[q] < 0 || idp[q] >= V) { bad = q; break; }
  TORCH_CHECK(bad < 0, "train_chunk: ids[", bad, "]=", bad < 0 ? 0 : idp[bad],
              " is out of range [0, ", V, ")");
  const int64_t* cum = cum_table.data_ptr<int64_t>();
  if (negative > 0) {
    TORCH_CHECK(cum[V - 1] > 0, "train_chunk: cum_table[-1] must be > 0 to draw negatives");
    TORCH_CHECK(cum[0] >= 0, "train_chunk: cum_table must be >= 0");
    for (int64_t v = 1; v < V; ++v)
      TORCH_CHECK(cum[v - 1] <= cum[v], "train_chunk: cum_table must be non-decreasing (at ", v,
                  ")");
  }
  const PathFacts paths = hs ? check_huffman(points, codes, lengths, V) : PathFacts{};

  std::atomic<bool> stop{false};
  Problem p{syn0.data_ptr<float>(),
            negative > 0 ? syn1neg.data_ptr<float>() : nullptr,
            hs ? syn1.data_ptr<float>() : nullptr,
            idp,
            off,
            sample_int.data_ptr<int64_t>(),
            cum,
            hs ? points.data_ptr<int32_t>() : nullptr,
            hs ? codes.data_ptr<uint8_t>() : nullptr,
            hs ? lengths.data_ptr<int32_t>() : nullptr,
            hs ? points.size(1) : 0,
            paths.longest,
            paths.simple,
            V,
            d,
            window,
            negative,
            hs,
            sg,
            cbow_mean,
            shrink_windows,
            compute_loss,
            alpha_start,
            alpha_end,
            &stop};

  // Split the sentences into `workers` contiguous parts of about equal token counts.
  const int64_t nw = std::max<int64_t>(1, std::min<int64_t>(workers, std::max<int64_t>(S, 1)));
  std::vector<int64_t> bounds(nw + 1, S);
  bounds[0] = 0;
  for (int64_t w = 1; w < nw; ++w) {
    const int64_t target = N * w / nw;
    bounds[w] = std::lower_bound(off, off + S + 1, target) - off;
    bounds[w] = std::max(bounds[w], bounds[w - 1]);
  }
  std::vector<int64_t> longest(nw);
  double scratch = 0.0;
  for (int64_t w = 0; w < nw; ++w) {
    longest[w] = longest_sentence(off, bounds[w], bounds[w + 1]);
    scratch += scratch_values(p, longest[w]);
  }
  TORCH_CHECK(scratch <= kMaxScratchValues, "train_chunk: this chunk needs ", scratch,
              " values of scratch memory, more than ", kMaxScratchValues, " (longest sentence ",
              *std::max_element(longest.begin(), longest.end()), " tokens, window=", window,
              ", negative=", negative, ", workers=", nw,
              "): split the long sentences, or lower window or negative");
  std::vector<Totals> totals(nw);
  std::unique_ptr<NegativeIndex> negatives;
  if (negative > 0) negatives = std::make_unique<NegativeIndex>(cum, V);
  std::vector<std::exception_ptr> errors(nw);
  auto run_part = [&](int64_t w) {
    try {
      train_part(p, negatives.get(), bounds[w], bounds[w + 1], longest[w], N, uint64_t(seed), nw,
                 &totals[w]);
    } catch (...) {  // an exception leaving a thread would terminate the process
      errors[w] = std::current_exception();
      stop = true;
    }
  };
  if (nw == 1) {
    run_part(0);
  } else {
    std::vector<std::thread> threads;
    threads.reserve(nw);
    try {
      for (int64_t w = 0; w < nw; ++w) threads.emplace_back(run_part, w);
    } catch (...) {  // no more threads: stop and join the started ones before reporting it
      stop = true;
      for (auto& th : threads) th.join();
      throw;
    }
    for (auto& th : threads) th.join();
  }
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);

  at::Tensor result = at::detail::empty_cpu({4}, at::kDouble, /*pin_memory=*/false, std::nullopt);
  double* r = result.data_ptr<double>();
  r[0] = r[1] = r[2] = r[3] = 0.0;
  for (const Totals& t : totals) {
    r[0] += t.words;
    r[1] += t.loss;
    r[2] += t.pairs;
    r[3] = std::max(r[3], t.diverged ? 1.0 : 0.0);
  }
  return result;
}

}  // namespace

// Returns (words, loss, pairs, diverged) as float64, diverged 1.0 if training stopped at a NaN
// or infinite score; see torchw2v/engines/compiled.py for the arguments.
TORCH_LIBRARY(torchw2v, m) {
  m.def(
      "train_chunk(Tensor(a!) syn0, Tensor(b!) syn1neg, Tensor(c!) syn1, Tensor ids, "
      "Tensor offsets, Tensor sample_int, Tensor cum_table, Tensor points, Tensor codes, "
      "Tensor lengths, int window, int negative, bool hs, bool sg, bool cbow_mean, "
      "bool shrink_windows, float alpha_start, float alpha_end, int seed, int workers, "
      "bool compute_loss) -> Tensor");
}

TORCH_LIBRARY_IMPL(torchw2v, CPU, m) { m.impl("train_chunk", &train_chunk); }
