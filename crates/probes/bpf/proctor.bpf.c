/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* proctor's kernel side: one object, hook families in their own headers. Only tracked threads
 * produce records; everything else returns after one hash lookup. */
#include "lib/common.h"
#include "enforce.h"
#include "cgroup.h"
#include "process.h"
#include "file.h"
#include "net.h"
#include "ptrace.h"
#include "sched.h"
#include "tls.h"
#include "uring.h"
#include "pathops.h"
#include "privops.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";
