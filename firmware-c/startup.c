/*
 * Start-up for the mps2-an386 board (Cortex-M4F) under QEMU: the vector table, the reset
 * handler (copy .data, zero .bss, enable the FPU, run main, exit through semihosting), and a
 * fault handler that reports and exits with failure instead of hanging QEMU.
 */
#include <stdint.h>

#include "semihosting.h"

extern uint32_t _data_start[], _data_end[], _data_load[], _bss_start[], _bss_end[];
extern uint32_t _stack_top[];
int main(void);

void reset_handler(void);
void fault_handler(void);

/* Cortex-M: initial stack pointer, then the exception handlers (ARMv7-M ARM, B1.5.3). */
__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))_stack_top,
    reset_handler,
    fault_handler, /* NMI */
    fault_handler, /* HardFault (a Rust panic traps with `udf` and ends here) */
    fault_handler, /* MemManage */
    fault_handler, /* BusFault */
    fault_handler, /* UsageFault */
    0, 0, 0, 0,
    fault_handler, /* SVCall */
    fault_handler, /* DebugMonitor */
    0,
    fault_handler, /* PendSV */
    fault_handler, /* SysTick */
};

void reset_handler(void) {
    for (uint32_t *s = _data_load, *d = _data_start; d < _data_end;) *d++ = *s++;
    for (uint32_t *d = _bss_start; d < _bss_end;) *d++ = 0;
    /* Full access to the FPU (CP10, CP11) before any floating-point instruction runs. */
    volatile uint32_t *cpacr = (volatile uint32_t *)0xE000ED88u;
    *cpacr |= 0xFu << 20;
    __asm__ volatile("dsb\n isb" ::: "memory");
    semihosting_exit(main() == 0);
}

void fault_handler(void) {
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    char line[] = "KEEL-FW hardfault exception=00\n";
    line[sizeof line - 4] = (char)('0' + (ipsr / 10) % 10);
    line[sizeof line - 3] = (char)('0' + ipsr % 10);
    semihosting_write(line);
    semihosting_exit(0);
}
