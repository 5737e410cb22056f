// Test-only: the WMMA API (nvcuda::wmma of <mma.h>) for the CPU emulator, included by cuda_emu.h.
//
// Fragments are opaque on the GPU (the element-to-lane mapping is unspecified), so here every lane holds the
// whole matrix: load_matrix_sync reads all of it, mma_sync computes all of it, store_matrix_sync writes the
// elements e with e % 32 == lane (so the lanes' stores do not overlap, as on the GPU). What the hardware
// requires is checked: every WMMA op except fill_fragment is a warp op that all 32 lanes of the warp must
// reach at the same call site (a divergent or partial-warp mma_sync is an error), pointers 256-bit aligned,
// ldm a multiple of 16 bytes, and tf32 operands already rounded with __float_to_tf32 (the kernels round
// explicitly; what the hardware does with the 13 low bits of an unrounded operand is not relied upon).
// Products of half, bfloat16 and tf32 operands are exact in float, so the emulated mma_sync is a float sum
// in k order; the hardware's summation order and rounding differ within float32 accumulation error.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

// The 16-bit element types of <cuda_fp16.h> / <cuda_bf16.h>, as raw bits: the kernels store c10::Half /
// c10::BFloat16 values (same bits) and hand their addresses to load_matrix_sync.
struct __half {
  uint16_t bits;
};
struct __nv_bfloat16 {
  uint16_t bits;
};

namespace dc_emu {

inline float float_from_bits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline uint32_t bits_from_float(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return bits;
}
inline float to_float(__nv_bfloat16 v) { return float_from_bits(uint32_t(v.bits) << 16); }
inline float to_float(__half v) {
  const uint32_t sign = uint32_t(v.bits >> 15) << 31, exponent = (v.bits >> 10) & 0x1F, mantissa = v.bits & 0x3FF;
  if (exponent == 0x1F) return float_from_bits(sign | 0x7F800000u | (mantissa << 13));  // inf, NaN
  const float magnitude = exponent == 0 ? std::ldexp(float(mantissa), -24)                  // subnormal
                                        : std::ldexp(float(mantissa | 0x400), int(exponent) - 25);
  return sign ? -magnitude : magnitude;
}
inline float to_float(float v) { return v; }

}  // namespace dc_emu

namespace nvcuda {
namespace wmma {

struct row_major {};
struct col_major {};
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
namespace precision {
struct tf32 {};
}  // namespace precision
enum layout_t { mem_row_major, mem_col_major };

// cvt.rna.tf32.f32 (the instruction behind CUDA's __float_to_tf32, crt/mma.h): round to 10 mantissa bits,
// to nearest with ties away from zero; the 13 dropped bits read as zero. Infinities and NaNs pass through.
inline float __float_to_tf32(float in) {
  uint32_t bits = dc_emu::bits_from_float(in);
  if ((bits & 0x7F800000u) == 0x7F800000u) return in;
  bits = (bits + 0x1000u) & ~0x1FFFu;  // sign-magnitude: adding half an ulp to the magnitude rounds away
  return dc_emu::float_from_bits(bits);
}

// Shapes and element types that sm_80+ WMMA offers with float accumulators.
template <typename T, int M, int N, int K>
constexpr bool supported_shape() {
  if constexpr (std::is_same_v<T, precision::tf32>) return M == 16 && N == 16 && K == 8;
  else if constexpr (std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>)
    return (M == 16 && N == 16 && K == 16) || (M == 32 && N == 8 && K == 16) || (M == 8 && N == 32 && K == 16);
  else return std::is_same_v<T, float>;  // accumulators
}

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
class fragment {
  static_assert(supported_shape<T, M, N, K>(), "emulated WMMA: unsupported shape or element type");
  static_assert(!std::is_same_v<Use, accumulator> || std::is_same_v<T, float>, "emulated WMMA: float accumulators");

 public:
  using element_type = T;
  using layout = Layout;
  static constexpr int rows = std::is_same_v<Use, matrix_b> ? K : M;
  static constexpr int cols = std::is_same_v<Use, matrix_a> ? K : N;
  static constexpr int num_elements = rows * cols;
  float x[num_elements];  // row-major, the whole matrix (see the header comment)
};

namespace detail {

// A warp op of all 32 lanes at one call site, else an emulator error naming the op.
inline void warp_collective(const char* what, const char* file, int line) {
  dc_emu::Runtime& r = dc_emu::rt();
  const uint64_t call_site = reinterpret_cast<uintptr_t>(file) * 1000003u + uint64_t(line);
  const uint64_t lane0_site = dc_emu::warp_op(dc_emu::WarpOpKind::wmma, 0xffffffffu, call_site, 0, 32, file, line);
  const unsigned group = r.threads[r.current].group;
  if (group != 0xffffffffu)
    dc_emu::fail(std::string(what) + " at " + file + ":" + std::to_string(line) + " reached by lanes mask 0x" +
                 [&] { char b[16]; std::snprintf(b, sizeof b, "%08x", group); return std::string(b); }() +
                 " only, " + dc_emu::where(r.current) + ": WMMA needs all 32 lanes of the warp");
  if (lane0_site != call_site)
    dc_emu::fail(std::string(what) + " at " + file + ":" + std::to_string(line) + ", " + dc_emu::where(r.current) +
                 ": lane 0 of the warp is at a different WMMA call (divergent warp)");
}

inline void check_pointer(const void* p, unsigned ldm, size_t element_bytes, const char* what) {
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0)
    dc_emu::fail(std::string(what) + ": pointer not 256-bit aligned, " + dc_emu::where(dc_emu::rt().current));
  if ((ldm * element_bytes) % 16 != 0)
    dc_emu::fail(std::string(what) + ": ldm " + std::to_string(ldm) + " is not a multiple of 16 bytes, " +
                 dc_emu::where(dc_emu::rt().current));
}

#if defined(DC_EMU_COUNT)
// Counting build: the warp loads the tile once, not once per lane as emulated. Counted as the hardware's
// loads are shaped: the tile's contiguous lines (rows, or columns when column-major) cut into pieces of up to
// 16 bytes, piece k loaded by lane k % 32. 16-bit tiles as ldmatrix (LDSM, what nvcc emits for them on sm_80+)
// reads them: 8x8 matrices, the 16-byte pieces of 8 consecutive lines at the same place in the line together
// (one quarter-warp phase), so 8 lines one pitch apart meet on the banks as they do on the GPU.
template <typename T>
void count_tile_load(const T* p, unsigned ldm, int lines, int line_elements) {
  const int lane = dc_emu::rt().current % 32;
  const size_t line_bytes = size_t(line_elements) * sizeof(T), piece = std::min<size_t>(16, line_bytes);
  const size_t pieces_per_line = line_bytes / piece;
  const bool ldmatrix = sizeof(T) == 2 && piece == 16 && lines % 8 == 0;
  for (size_t k = lane; k < size_t(lines) * pieces_per_line; k += 32) {
    // k -> (line, piece): consecutive k along the lines (8 at a time, ldmatrix) or along the pieces
    const size_t line = ldmatrix ? k / (8 * pieces_per_line) * 8 + k % 8 : k / pieces_per_line;
    const size_t at = ldmatrix ? k / 8 % pieces_per_line : k % pieces_per_line;
    dc_emu::count_access(reinterpret_cast<uintptr_t>(p + line * ldm) + at * piece, uint32_t(piece), false);
  }
}

// Counting build: the warp's store of a 16 x 16 float accumulator tile as nvcc compiles it for sm_80+ (read off
// cuobjdump of store_matrix_sync on sm_90): the fragment is two m16n8 mma accumulator tiles, lane l holding
// rows l/4 and l/4 + 8 by columns 2*(l%4), +1, +8, +9. Column-major: 8 32-bit stores per lane (STS, one per
// element); row-major: 4 64-bit stores (STS.64) of the column pairs. (The emulated loop below, element e by
// lane e % 32, would store 16 columns of 2 rows at a time, a different bank pattern.)
inline void count_accumulator_store(const float* p, unsigned ldm, bool row_major) {
  const int lane = dc_emu::rt().current % 32, row = lane / 4, col = 2 * (lane % 4);
  for (int half = 0; half < 2; ++half)      // columns col, col + 8
    for (int lower = 0; lower < 2; ++lower) {  // rows row, row + 8
      const size_t i = size_t(row + 8 * lower), j = size_t(col + 8 * half);
      if (row_major) {
        dc_emu::count_access(reinterpret_cast<uintptr_t>(p + i * ldm + j), 8, true);
      } else {
        dc_emu::count_access(reinterpret_cast<uintptr_t>(p + j * ldm + i), 4, true);
        dc_emu::count_access(reinterpret_cast<uintptr_t>(p + (j + 1) * ldm + i), 4, true);
      }
    }
}
#endif

template <typename Frag, typename T>
void load(Frag& f, const T* p, unsigned ldm, bool row_major) {
#if defined(DC_EMU_COUNT)
  const bool busy = dc_emu::counting_busy;
  dc_emu::counting_busy = true;  // the emulated per-lane loads below are not counted
#endif
  for (int i = 0; i < Frag::rows; ++i)
    for (int j = 0; j < Frag::cols; ++j)
      f.x[i * Frag::cols + j] = dc_emu::to_float(row_major ? p[size_t(i) * ldm + j] : p[size_t(j) * ldm + i]);
#if defined(DC_EMU_COUNT)
  dc_emu::counting_busy = busy;
  if (row_major) count_tile_load(p, ldm, Frag::rows, Frag::cols);
  else count_tile_load(p, ldm, Frag::cols, Frag::rows);
#endif
}

}  // namespace detail

template <typename Use, int M, int N, int K, typename T, typename Layout>
void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, float value) {
  for (float& v : f.x) v = value;
}

// matrix_a / matrix_b: the layout is the fragment's; tf32 fragments load from float memory.
template <typename Use, int M, int N, int K, typename T, typename Layout, typename P>
void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const P* p, unsigned ldm,
                      const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  static_assert(!std::is_same_v<Use, accumulator>, "accumulator loads take a layout_t");
  static_assert(std::is_same_v<P, std::conditional_t<std::is_same_v<T, precision::tf32>, float, T>>,
                "emulated WMMA: pointer type does not match the fragment's element type");
  detail::warp_collective("load_matrix_sync", file, line);
  detail::check_pointer(p, ldm, sizeof(P), "load_matrix_sync");
  detail::load(f, p, ldm, std::is_same_v<Layout, row_major>);
}

template <int M, int N, int K>
void load_matrix_sync(fragment<accumulator, M, N, K, float>& f, const float* p, unsigned ldm, layout_t layout,
                      const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  detail::warp_collective("load_matrix_sync", file, line);
  detail::check_pointer(p, ldm, sizeof(float), "load_matrix_sync");
  detail::load(f, p, ldm, layout == mem_row_major);
}

template <int M, int N, int K>
void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, float>& f, unsigned ldm, layout_t layout,
                       const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  detail::warp_collective("store_matrix_sync", file, line);
  detail::check_pointer(p, ldm, sizeof(float), "store_matrix_sync");
  const int lane = dc_emu::rt().current % 32;
#if defined(DC_EMU_COUNT)
  const bool busy = dc_emu::counting_busy, modelled = M == 16 && N == 16;
  if (modelled) dc_emu::counting_busy = true;  // the emulated per-lane stores below are not counted
#endif
  for (int e = lane; e < M * N; e += 32) {
    const int i = e / N, j = e % N;
    p[layout == mem_row_major ? size_t(i) * ldm + j : size_t(j) * ldm + i] = f.x[e];
  }
#if defined(DC_EMU_COUNT)
  dc_emu::counting_busy = busy;
  if (modelled) detail::count_accumulator_store(p, ldm, layout == mem_row_major);
#endif
}

// d = a * b + c (d may alias c).
template <int M, int N, int K, typename T, typename LayoutA, typename LayoutB>
void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, T, LayoutA>& a,
              const fragment<matrix_b, M, N, K, T, LayoutB>& b, const fragment<accumulator, M, N, K, float>& c,
              const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  detail::warp_collective("mma_sync", file, line);
#if defined(DC_EMU_COUNT)
  dc_emu::count_tensor_fma(double(M) * N * K);  // the warp's multiply-adds; the loops below are the emulator's
  const dc_emu::UncountedBlocks uncounted;
#endif
  if constexpr (std::is_same_v<T, precision::tf32>) {
    for (float v : a.x)
      if (__float_to_tf32(v) != v && v == v)
        dc_emu::fail("mma_sync: tf32 operand " + std::to_string(v) + " not rounded with __float_to_tf32, " +
                     dc_emu::where(dc_emu::rt().current));
    for (float v : b.x)
      if (__float_to_tf32(v) != v && v == v)
        dc_emu::fail("mma_sync: tf32 operand " + std::to_string(v) + " not rounded with __float_to_tf32, " +
                     dc_emu::where(dc_emu::rt().current));
  }
  float result[M * N];
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      float sum = c.x[i * N + j];
      for (int k = 0; k < K; ++k) sum += a.x[i * K + k] * b.x[k * N + j];  // exact products
      result[i * N + j] = sum;
    }
  std::memcpy(d.x, result, sizeof result);
}

}  // namespace wmma
}  // namespace nvcuda
