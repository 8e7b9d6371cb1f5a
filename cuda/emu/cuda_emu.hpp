// Just enough of CUDA to run Keel's kernels (../*.cu) on the CPU as C++20: force-included
// (`-include`) before each .cu file by build.rs, so the kernel sources stay NVRTC-clean.
//
// Execution model emulated: `launch` runs every (block, thread) of a 1-D grid one after another
// on the calling OS thread. That is exact for kernels whose threads do not communicate — Keel's
// kernels are all grid-stride loops with no __syncthreads, shared memory or warp shuffles, and
// their only cross-thread effect is atomicAdd (emulated with std::atomic_ref, so it stays
// correct if launches ever run threads concurrently). __syncthreads and __shared__ are
// deliberately NOT defined: a kernel that needs them fails to compile here, and the launcher
// must then grow one OS thread per CUDA thread per block sharing a std::barrier
// (shared/recipes/cuda.md, "Running the kernel sources on the CPU").
//
// blockDim and gridDim are process-wide, as on a device; launches from concurrent callers (the
// Rust test harness runs tests in parallel) are serialised by a mutex.
#pragma once

#include <atomic>
#include <cmath>
#include <mutex>

// Device math: <cmath> puts C's float and double functions in the global namespace — expf,
// logf, log1pf, tanhf, sinf, cosf, sqrtf, powf, fabsf take and return float (the same C
// library functions Rust's f32 methods call), exp, log, … take double: the names the kernels
// use on the device. isnan is C++'s overload set.
using std::isnan;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
// __restrict__ is left alone: g++ understands it with CUDA's meaning.

struct dim3 {
    unsigned int x = 1, y = 1, z = 1;
};

inline thread_local dim3 threadIdx;
inline thread_local dim3 blockIdx;
inline dim3 blockDim;
inline dim3 gridDim;

template <class T>
inline T atomicAdd(T* address, T val) {
    return std::atomic_ref<T>(*address).fetch_add(val);
}

namespace keel_emu {

inline std::mutex& launch_lock() {
    static std::mutex m;
    return m;
}

// Runs `kernel(args...)` as a <<<grid, block>>> launch (1-D): every block in order, and in each
// block every thread in order (see the note at the top for why sequential execution is exact).
template <class K, class... A>
void launch(unsigned grid, unsigned block, K kernel, A... args) {
    std::lock_guard<std::mutex> guard(launch_lock());
    gridDim = dim3{grid, 1, 1};
    blockDim = dim3{block, 1, 1};
    for (unsigned b = 0; b < grid; ++b) {
        blockIdx = dim3{b, 0, 0};
        for (unsigned t = 0; t < block; ++t) {
            threadIdx = dim3{t, 0, 0};
            kernel(args...);
        }
    }
}

}  // namespace keel_emu
