/* ARM semihosting (ARM DUI 0471, "Semihosting operations"): QEMU's -semihosting-config
   enable=on,target=native turns `bkpt 0xAB` into host I/O. */
#ifndef SEMIHOSTING_H
#define SEMIHOSTING_H

/* SYS_WRITE0: a NUL-terminated string to the debugger's console (QEMU's stdout). */
void semihosting_write(const char *s);
/* SYS_EXIT: ends the QEMU run with status 0 if `success`, 1 otherwise. */
__attribute__((noreturn)) void semihosting_exit(int success);

#endif
