/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Agent rules of `proctor daemon`: an exec that matches one joins the tracked set in the exec
 * tracepoint, before the new image runs its first instruction. Userspace fills both maps from the
 * config (names and build-ids resolved to files); they stay empty for `run` and `attach`, where a
 * miss costs one lookup per untracked exec (plus one per cgroup level while cgroup rules exist). */
#pragma once

#include "lib/common.h"

/* Deepest cgroup level whose ancestors are compared with the cgroup rules. */
#define PR_AGENT_CGROUP_DEPTH 16

/* Executables by identity (kernel dev_t, inode) -> rule number (1-based). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct pr_file_key);
	__type(value, __u32);
} agent_exec SEC(".maps");

/* cgroup v2 ids (a cgroup directory's inode) -> rule number: the cgroup and everything below. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u32);
} agent_cgroup SEC(".maps");

/* Nonzero while agent_cgroup holds an entry: spares the ancestor walk otherwise. */
__u32 agent_cgroup_rules = 0;

/* The rule an exec of `key` by the current task matches, or 0. */
static __always_inline __u32 agent_rule(struct pr_file_key *key)
{
	__u32 *rule = bpf_map_lookup_elem(&agent_exec, key);

	if (rule)
		return *rule;
	if (!agent_cgroup_rules)
		return 0;
	for (int level = 0; level < PR_AGENT_CGROUP_DEPTH; level++) {
		__u64 id = bpf_get_current_ancestor_cgroup_id(level);

		if (!id)
			break;
		rule = bpf_map_lookup_elem(&agent_cgroup, &id);
		if (rule)
			return *rule;
	}
	return 0;
}

/* Where the next search for a free session slot starts (a hint: the compare-and-swap decides). */
__u32 pr_session_hint = 0;

/* Take a free session slot for a tree that starts at an exec matching agent rule `rule`: its
 * record counter restarts at 0 and its mode is the sensor's until userspace sets one. Returns 0,
 * counted, when every slot is in use: the tree is then tracked without a session. */
static __always_inline __u32 session_alloc(__u32 rule)
{
	__u32 start = pr_session_hint;
	__u64 zero = 0;

	for (__u32 i = 0; i < PR_SESSIONS - PR_SESSION_FIRST; i++) {
		__u32 slot = PR_SESSION_FIRST + (start + i) % (PR_SESSIONS - PR_SESSION_FIRST);
		struct pr_session *s = bpf_map_lookup_elem(&sessions, &slot);

		if (!s || s->used)
			continue;
		if (__sync_val_compare_and_swap(&s->used, 0, 1) != 0)
			continue;
		s->mode = PR_SMODE_GLOBAL;
		s->rule = rule;
		bpf_map_update_elem(&session_seq, &slot, &zero, BPF_ANY);
		pr_session_hint = start + i + 1;
		return slot;
	}
	count_lost(PR_LOST_SESSION_FULL);
	return 0;
}
