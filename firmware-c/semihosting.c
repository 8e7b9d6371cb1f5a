#include "semihosting.h"

#include <stdint.h>

enum { SYS_WRITE0 = 0x04, SYS_EXIT = 0x18 };
/* Exit reasons (ADP_Stopped_*): QEMU exits 0 for ApplicationExit, 1 for anything else. */
enum { APPLICATION_EXIT = 0x20026, RUNTIME_ERROR_UNKNOWN = 0x20023 };

static uint32_t call(uint32_t op, uint32_t arg) {
    register uint32_t r0 __asm__("r0") = op;
    register uint32_t r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void semihosting_write(const char *s) { call(SYS_WRITE0, (uint32_t)(uintptr_t)s); }

void semihosting_exit(int success) {
    call(SYS_EXIT, success ? APPLICATION_EXIT : RUNTIME_ERROR_UNKNOWN);
    for (;;) __asm__ volatile("bkpt 0");
}
