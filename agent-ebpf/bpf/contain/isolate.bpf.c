// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * Network isolation of a cgroup: attached to a cgroup v2 directory for ingress
 * and egress, these programs pass only packets whose remote endpoint is on the
 * allow-list (egress: the destination, ingress: the source) and drop the rest,
 * counting drops per isolated cgroup.
 *
 * Both hooks see whole packets: egress runs before IP fragmentation and ingress
 * after reassembly, at the socket. A packet without a TCP or UDP header where
 * we expect one is dropped.
 */
#include "contain/contain.h"
#include <bpf/bpf_endian.h>

#define GR_ETH_P_IP 0x0800
#define GR_ETH_P_IPV6 0x86DD
#define GR_IP_OFFSET_MASK 0x1fff

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, GR_ALLOW_MAX);
	__type(key, __u32);
	__type(value, struct gr_allow_rule);
} gr_allow SEC(".maps");

/* Keyed by the cgroup v2 id of an isolated cgroup; the agent adds the key on
 * isolate and removes it on lift. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GR_CONTAINED_MAX);
	__type(key, __u64);
	__type(value, struct gr_drops);
} gr_drops SEC(".maps");

/* The remote end of a packet, as the allow-list describes endpoints. */
struct remote {
	__u32 addr[4];
	__u16 port;
	__u8 proto;
	__u8 family;
};

static __always_inline bool prefix_matches(const __u32 *want, const __u32 *have, __u32 prefix_len)
{
	for (int i = 0; i < 4; i++) {
		int bits = (int)prefix_len - 32 * i;
		if (bits <= 0)
			break;
		__u32 mask = bits >= 32 ? 0xffffffff : bpf_htonl(0xffffffff << (32 - bits));
		if ((want[i] ^ have[i]) & mask)
			return false;
	}
	return true;
}

static __always_inline bool allowed(const struct remote *remote)
{
	for (__u32 i = 0; i < GR_ALLOW_MAX; i++) {
		__u32 key = i;
		struct gr_allow_rule *rule = bpf_map_lookup_elem(&gr_allow, &key);
		if (!rule || !rule->used)
			return false;
		if (rule->proto && rule->proto != remote->proto)
			continue;
		if (rule->port != remote->port)
			continue;
		if (rule->family == GR_ALLOW_ANY_ADDR)
			return true;
		if (rule->family == remote->family &&
		    prefix_matches(rule->addr, remote->addr, rule->prefix_len))
			return true;
	}
	return false;
}

/* Reads the remote end of the packet; false if it has no TCP or UDP header. */
static __always_inline bool read_remote(struct __sk_buff *skb, bool egress, struct remote *remote)
{
	__u32 l4;
	if (skb->protocol == bpf_htons(GR_ETH_P_IP)) {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
			return false;
		if (ip.frag_off & bpf_htons(GR_IP_OFFSET_MASK))
			return false;
		remote->family = GR_ALLOW_IPV4;
		remote->proto = ip.protocol;
		remote->addr[0] = egress ? ip.daddr : ip.saddr;
		l4 = ip.ihl * 4;
	} else if (skb->protocol == bpf_htons(GR_ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return false;
		remote->family = GR_ALLOW_IPV6;
		/* Extension headers are not walked: sockets of a container do not
		 * send them, and what cannot be read is dropped. */
		remote->proto = ip6.nexthdr;
		__builtin_memcpy(remote->addr, egress ? &ip6.daddr : &ip6.saddr, 16);
		l4 = sizeof(ip6);
	} else {
		return false;
	}
	if (remote->proto != IPPROTO_TCP && remote->proto != IPPROTO_UDP)
		return false;
	/* TCP and UDP both start with the source port, then the destination port. */
	__be16 ports[2];
	if (bpf_skb_load_bytes(skb, l4, ports, sizeof(ports)))
		return false;
	remote->port = bpf_ntohs(egress ? ports[1] : ports[0]);
	return true;
}

/* Counts a drop for the deepest isolated cgroup at or above the socket's. */
static __always_inline void count_drop(struct __sk_buff *skb, bool egress)
{
	for (int level = GR_CONTAIN_MAX_DEPTH - 1; level >= 0; level--) {
		__u64 id = bpf_skb_ancestor_cgroup_id(skb, level);
		if (!id)
			continue;
		struct gr_drops *drops = bpf_map_lookup_elem(&gr_drops, &id);
		if (!drops)
			continue;
		if (egress)
			__sync_fetch_and_add(&drops->egress, 1);
		else
			__sync_fetch_and_add(&drops->ingress, 1);
		return;
	}
}

static __always_inline int filter(struct __sk_buff *skb, bool egress)
{
	struct remote remote = {};
	if (read_remote(skb, egress, &remote) && allowed(&remote))
		return 1;
	count_drop(skb, egress);
	return 0;
}

SEC("cgroup_skb/egress")
int gr_isolate_egress(struct __sk_buff *skb)
{
	return filter(skb, true);
}

SEC("cgroup_skb/ingress")
int gr_isolate_ingress(struct __sk_buff *skb)
{
	return filter(skb, false);
}

char LICENSE[] SEC("license") = "GPL";
