// The C entry points the Rust wrappers call: emu_<kernel>(grid, block, kernel arguments...) runs
// the kernel as a <<<grid, block>>> launch through the emulator (cuda_emu.hpp), one per line of
// kernels.hpp (the cooperative launcher for the kernels that synchronise).
#include "cuda_emu.hpp"
#include "kernels.hpp"

#define KEEL_STRIP(...) __VA_ARGS__
#define KEEL_EMU_ENTRY(name, params, args)                                                       \
    extern "C" void emu_##name(unsigned grid, unsigned block, KEEL_STRIP params) {               \
        keel_emu::launch(grid, block, name, KEEL_STRIP args);                                    \
    }

#define KEEL_EMU_COOPERATIVE_ENTRY(name, params, args)                                           \
    extern "C" void emu_##name(unsigned grid, unsigned block, KEEL_STRIP params) {               \
        keel_emu::launch_cooperative(grid, block, name, KEEL_STRIP args);                        \
    }

KEEL_KERNELS(KEEL_EMU_ENTRY)
KEEL_COOPERATIVE_KERNELS(KEEL_EMU_COOPERATIVE_ENTRY)
