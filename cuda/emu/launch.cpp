// The C entry points the Rust wrappers call: emu_<kernel>(grid, block, kernel arguments...) runs
// the kernel as a <<<grid, block>>> launch through the emulator (cuda_emu.hpp), one per line of
// kernels.hpp.
#include "cuda_emu.hpp"
#include "kernels.hpp"

#define KEEL_STRIP(...) __VA_ARGS__
#define KEEL_EMU_ENTRY(name, params, args)                                                       \
    extern "C" void emu_##name(unsigned grid, unsigned block, KEEL_STRIP params) {               \
        keel_emu::launch(grid, block, name, KEEL_STRIP args);                                    \
    }

KEEL_KERNELS(KEEL_EMU_ENTRY)
