/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/* Kernel types for CO-RE: one committed dump per architecture, each naming the
 * kernel it came from. Field offsets are relocated at load time against the
 * running kernel's BTF, so the dump need not match it. */
#if defined(__TARGET_ARCH_x86)
#include "vmlinux_x86.h"
#else
#error "no vmlinux dump for this architecture: add one with `cargo xtask vmlinux`"
#endif
