// Just enough of CUDA to run Keel's kernels (../*.cu) on the CPU as C++20: force-included
// (`-include`) before each .cu file by build.rs, so the kernel sources stay NVRTC-clean.
//
// Two execution models:
// - `launch` runs every (block, thread) of a 1-D grid one after another on the calling OS
//   thread. That is exact for kernels whose threads do not communicate — the grid-stride loops —
//   whose only cross-thread effect is atomicAdd (emulated with std::atomic_ref, so it stays
//   correct if launches ever run threads concurrently).
// - `launch_cooperative`, for kernels that synchronise (the row reductions): one OS thread per
//   CUDA thread of a block, running the blocks one after another, with `__syncthreads()` a
//   barrier of the block's threads, `__shfl_down_sync` an exchange through per-warp storage
//   between two barriers of the warp's 32 threads, and `__shared__` plain `static` storage (the
//   blocks run one at a time, and every thread passes a barrier at the end of its block before
//   the next block starts, so a static array is exactly the block's shared memory). Blocks must
//   be whole warps, and every lane of a warp must reach each shuffle (a full mask), as the
//   kernels' shuffles do.
//
// blockDim and gridDim are process-wide, as on a device; launches from concurrent callers (the
// Rust test harness runs tests in parallel) are serialised by a mutex.
#pragma once

#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

// Device math: <cmath> puts C's float and double functions in the global namespace — expf,
// logf, log1pf, tanhf, sinf, cosf, sqrtf, powf, fabsf take and return float (the same C
// library functions Rust's f32 methods call), exp, log, … take double: the names the kernels
// use on the device. isnan is C++'s overload set.
using std::isnan;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
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

// The cooperative launch in progress (launches are serialised): the block's barrier, one barrier
// per warp and per-warp exchange storage for the shuffles (8 bytes a lane).
struct Cooperative {
    explicit Cooperative(unsigned block) : all(block), exchange(block * 8) {
        for (unsigned w = 0; w < block / 32; ++w) {
            warps.push_back(std::make_unique<std::barrier<>>(32));
        }
    }
    std::barrier<> all;
    std::vector<std::unique_ptr<std::barrier<>>> warps;
    std::vector<unsigned char> exchange;
};

inline Cooperative* cooperative = nullptr;

// Runs `kernel(args...)` as a <<<grid, block>>> launch (1-D) of a kernel that synchronises: see
// the note at the top. `block` must be a multiple of 32 (the wrappers check; abort otherwise).
template <class K, class... A>
void launch_cooperative(unsigned grid, unsigned block, K kernel, A... args) {
    std::lock_guard<std::mutex> guard(launch_lock());
    if (block == 0 || block % 32 != 0) {
        std::abort();
    }
    gridDim = dim3{grid, 1, 1};
    blockDim = dim3{block, 1, 1};
    Cooperative c(block);
    cooperative = &c;
    std::vector<std::thread> threads;
    threads.reserve(block);
    for (unsigned t = 0; t < block; ++t) {
        threads.emplace_back([&c, t, grid, kernel, args...] {
            threadIdx = dim3{t, 0, 0};
            for (unsigned b = 0; b < grid; ++b) {
                blockIdx = dim3{b, 0, 0};
                kernel(args...);
                c.all.arrive_and_wait();
            }
        });
    }
    for (auto& th : threads) {
        th.join();
    }
    cooperative = nullptr;
}

}  // namespace keel_emu

inline void __syncthreads() { keel_emu::cooperative->all.arrive_and_wait(); }

// `var` of lane `lane + delta` of the caller's warp (its own `var` past the warp's end).
template <class T>
inline T __shfl_down_sync(unsigned /*mask: always full here*/, T var, unsigned delta) {
    static_assert(sizeof(T) <= 8, "8 bytes of exchange per lane");
    keel_emu::Cooperative& c = *keel_emu::cooperative;
    const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    unsigned char* ex = c.exchange.data() + warp * 32 * 8;
    std::memcpy(ex + lane * 8, &var, sizeof(T));
    c.warps[warp]->arrive_and_wait();
    T r = var;
    if (lane + delta < 32) {
        std::memcpy(&r, ex + (lane + delta) * 8, sizeof(T));
    }
    c.warps[warp]->arrive_and_wait();
    return r;
}
