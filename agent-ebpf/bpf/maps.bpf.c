// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/* The one definition of every shared map declared in lib/maps.h. */
#define GR_DEFINE_MAPS
#include "lib/maps.h"

/* bpf_probe_read_* and bpf_send_signal are GPL-only helpers. */
char LICENSE[] SEC("license") = "GPL";
