/* SPDX-License-Identifier: MIT */

/*
 * The registry owns every User (from registry_add() until registry_remove())
 * and every per-IP record (IpRecord: a login token bucket and a TCP
 * connection count), which live until registry_gc_ips() finds them idle.  It
 * also keeps the roster text "e1;...;end" that list frames are cut from: a
 * login appends to it, a logout marks it stale and the next reader rebuilds
 * it, so a login storm costs O(1) per login instead of O(users).
 */

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "coordinator/user.h"

typedef struct IpRecord {
	HashNode hash_node;
	Endpoint ip;          /* port 0 */
	uint64_t tokens;      /* in millionths of a login */
	uint64_t refilled_at; /* usec */
	unsigned conns;
} IpRecord;

struct Registry {
	RegistryLimits limits;
	HashTable users;
	ListNode roster;
	HashTable ips;

	char *list;           /* "e1;e2;...;end" */
	size_t list_len, list_cap;
	bool list_stale;
};

#define TOKEN_UNIT ((uint64_t) 1000000)
#define LIST_END "end"

int registry_new(const RegistryLimits *limits, Registry **ret) {
	Registry *reg;

	reg = calloc(1, sizeof(Registry));
	if (!reg) {
		return -ENOMEM;
	}
	reg->limits = *limits;
	hash_table_init(&reg->users);
	hash_table_init(&reg->ips);
	list_head_init(&reg->roster);
	reg->list_stale = true;
	*ret = reg;
	return 0;
}

static void free_ip(HashNode *node, void *userdata) {
	free(container_of(node, IpRecord, hash_node));
}

Registry *registry_free(Registry *reg) {
	ListNode *n;

	if (!reg) {
		return NULL;
	}
	while ((n = list_first(&reg->roster))) {
		registry_remove(reg, container_of(n, User, roster_node));
	}
	hash_table_foreach(&reg->ips, free_ip, NULL);
	hash_table_done(&reg->ips);
	hash_table_done(&reg->users);
	free(reg->list);
	free(reg);
	return NULL;
}

size_t registry_n_users(const Registry *reg) {
	return reg->users.n_entries;
}

User *registry_find(const Registry *reg, const char *name) {
	size_t n = strlen(name);
	uint64_t h = hash_table_hash(&reg->users, name, n);

	for (HashNode *node = hash_table_first(&reg->users, h); node;
			node = hash_table_next(node)) {
		User *u = container_of(node, User, hash_node);

		if (u->name_len == n && memcmp(u->name, name, n) == 0) {
			return u;
		}
	}
	return NULL;
}

User *registry_first(const Registry *reg) {
	ListNode *n = list_first(&reg->roster);

	return n ? container_of(n, User, roster_node) : NULL;
}

User *registry_next(const Registry *reg, const User *u) {
	ListNode *n = u->roster_node.next;

	return n == &reg->roster ? NULL : container_of(n, User, roster_node);
}

/* Appends @n bytes to the roster text, growing it geometrically. */
static int list_append_bytes(Registry *reg, const char *s, size_t n) {
	if (reg->list_len + n + 1 > reg->list_cap) {
		size_t cap = MAX(reg->list_cap * 2, reg->list_len + n + 1);
		char *p;

		cap = MAX(cap, (size_t) 256);
		p = realloc(reg->list, cap);
		if (!p) {
			return -ENOMEM;
		}
		reg->list = p;
		reg->list_cap = cap;
	}
	memcpy(reg->list + reg->list_len, s, n);
	reg->list_len += n;
	reg->list[reg->list_len] = '\0';
	return 0;
}

static int list_rebuild(Registry *reg) {
	int r;

	reg->list_len = 0;
	for (User *u = registry_first(reg); u; u = registry_next(reg, u)) {
		r = list_append_bytes(reg, u->entry, u->entry_len);
		if (r < 0) {
			return r;
		}
		r = list_append_bytes(reg, ";", 1);
		if (r < 0) {
			return r;
		}
	}
	r = list_append_bytes(reg, LIST_END, strlen(LIST_END));
	if (r < 0) {
		return r;
	}
	reg->list_stale = false;
	return 0;
}

int registry_get_list(Registry *reg, const char **ret, size_t *ret_len) {
	int r;

	if (reg->list_stale) {
		r = list_rebuild(reg);
		if (r < 0) {
			reg->list_stale = true;
			return r;
		}
	}
	*ret = reg->list;
	*ret_len = reg->list_len;
	return 0;
}

/* The list entry of @u, formatted by the codec: "name,ep[,caps]". */
static int user_format_entry(User *u) {
	WireListEntry e = {};
	_cleanup_free_ char *text = NULL;
	size_t len;
	int r;

	memcpy(e.name, u->name, u->name_len + 1);
	e.endpoint = u->announced;
	memcpy(e.caps, u->caps, sizeof(e.caps));

	r = wire_format_list(&e, 1, &text, &len);
	if (r < 0) {
		return r;
	}
	/* One entry is "entry;end". */
	if (len < strlen(";" LIST_END) + 1) {
		return -EBADMSG;
	}
	len -= strlen(";" LIST_END);
	text[len] = '\0';

	u->entry = TAKE_PTR(text);
	u->entry_len = len;
	return 0;
}

static User *user_free(User *u) {
	if (!u) {
		return NULL;
	}
	timeout_link_remove(&u->timeout);
	free(u->entry);
	free(u);
	return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(User *, user_free);

int registry_add(Registry *reg, const WireMessage *m, const Endpoint *source, WireEncoding enc,
		User **ret) {
	_cleanup_(user_freep) User *u = NULL;
	int r;

	assert(m->type == WIRE_TYPE_LOGIN);

	if (registry_n_users(reg) >= reg->limits.max_users) {
		return -ENOSPC;
	}

	u = calloc(1, sizeof(User));
	if (!u) {
		return -ENOMEM;
	}
	u->name_len = strlen(m->name);
	memcpy(u->name, m->name, u->name_len + 1);
	memcpy(u->caps, m->caps, sizeof(u->caps));
	u->declared = m->endpoint;
	u->source = *source;
	u->encoding = enc;
	u->native = wire_caps_has(m->caps, WIRE_CAPS_NATIVE);
	/* A declared endpoint on another IP is never used: it could name a third
	 * party.  Others are told the login's source address instead, which is
	 * the NAT mapping of a client that logs in from its listening socket. */
	u->udp_reachable = endpoint_same_ip(&m->endpoint, source);
	u->announced = u->udp_reachable ? m->endpoint : *source;

	r = user_format_entry(u);
	if (r < 0) {
		return r;
	}

	u->hash_node.hash = hash_table_hash(&reg->users, u->name, u->name_len);
	r = hash_table_add(&reg->users, &u->hash_node);
	if (r < 0) {
		return r;
	}
	list_append(&reg->roster, &u->roster_node);

	if (!reg->list_stale) {
		/* Replace the trailing "end" with "entry;end". */
		reg->list_len -= strlen(LIST_END);
		if (list_append_bytes(reg, u->entry, u->entry_len) < 0 ||
				list_append_bytes(reg, ";" LIST_END, strlen(";" LIST_END)) < 0) {
			reg->list_stale = true;
		}
	}

	*ret = TAKE_PTR(u);
	return 0;
}

bool user_login_is_same(const User *u, const WireMessage *m, WireEncoding enc) {
	return endpoint_equal(&u->declared, &m->endpoint) && streq(u->caps, m->caps) &&
		u->encoding == enc;
}

void registry_remove(Registry *reg, User *u) {
	if (!u) {
		return;
	}
	hash_table_remove(&reg->users, &u->hash_node);
	list_remove(&u->roster_node);
	reg->list_stale = true;
	user_free(u);
}

/* The hash key of an IP: family and address bytes, no port. */
static size_t ip_key(const Endpoint *ip, const void **ret) {
	if (endpoint_family(ip) == AF_INET6) {
		*ret = &ip->in6.sin6_addr;
		return sizeof(ip->in6.sin6_addr);
	}
	*ret = &ip->in.sin_addr;
	return sizeof(ip->in.sin_addr);
}

static IpRecord *ip_find(const Registry *reg, const Endpoint *ip, uint64_t *ret_hash) {
	const void *key;
	size_t n = ip_key(ip, &key);
	uint64_t h = hash_table_hash(&reg->ips, key, n);

	*ret_hash = h;
	for (HashNode *node = hash_table_first(&reg->ips, h); node; node = hash_table_next(node)) {
		IpRecord *rec = container_of(node, IpRecord, hash_node);

		if (endpoint_same_ip(&rec->ip, ip)) {
			return rec;
		}
	}
	return NULL;
}

static void ip_refill(const Registry *reg, IpRecord *rec, uint64_t now) {
	uint64_t full = (uint64_t) reg->limits.login_burst * TOKEN_UNIT;

	if (now > rec->refilled_at) {
		uint64_t add = (now - rec->refilled_at) * reg->limits.login_rate;

		rec->tokens = add >= full - rec->tokens ? full : rec->tokens + add;
		rec->refilled_at = now;
	}
}

static int ip_get(Registry *reg, const Endpoint *ip, uint64_t now, IpRecord **ret) {
	IpRecord *rec;
	uint64_t h;
	int r;

	rec = ip_find(reg, ip, &h);
	if (rec) {
		ip_refill(reg, rec, now);
		*ret = rec;
		return 0;
	}

	if (registry_n_ips(reg) >= reg->limits.max_ips && registry_gc_ips(reg, now) == 0) {
		return -ENOSPC;
	}

	rec = calloc(1, sizeof(IpRecord));
	if (!rec) {
		return -ENOMEM;
	}
	rec->ip = *ip;
	endpoint_set_port(&rec->ip, 0);
	rec->tokens = (uint64_t) reg->limits.login_burst * TOKEN_UNIT;
	rec->refilled_at = now;
	rec->hash_node.hash = h;
	r = hash_table_add(&reg->ips, &rec->hash_node);
	if (r < 0) {
		free(rec);
		return r;
	}
	*ret = rec;
	return 0;
}

int registry_take_login_token(Registry *reg, const Endpoint *ip, uint64_t now) {
	IpRecord *rec;
	int r;

	if (reg->limits.login_rate == 0) {
		return 1;
	}
	r = ip_get(reg, ip, now, &rec);
	if (r < 0) {
		return r;
	}
	if (rec->tokens < TOKEN_UNIT) {
		return 0;
	}
	rec->tokens -= TOKEN_UNIT;
	return 1;
}

int registry_conn_add(Registry *reg, const Endpoint *ip, uint64_t now) {
	IpRecord *rec;
	int r;

	r = ip_get(reg, ip, now, &rec);
	if (r < 0) {
		return r;
	}
	if (rec->conns >= reg->limits.max_conns_per_ip) {
		return 0;
	}
	rec->conns++;
	return 1;
}

void registry_conn_remove(Registry *reg, const Endpoint *ip) {
	IpRecord *rec;
	uint64_t h;

	rec = ip_find(reg, ip, &h);
	if (rec && rec->conns > 0) {
		rec->conns--;
	}
}

typedef struct GcContext {
	Registry *reg;
	uint64_t now;
	size_t n_freed;
} GcContext;

static void gc_ip(HashNode *node, void *userdata) {
	GcContext *c = userdata;
	IpRecord *rec = container_of(node, IpRecord, hash_node);

	ip_refill(c->reg, rec, c->now);
	if (rec->conns == 0 &&
			rec->tokens >= (uint64_t) c->reg->limits.login_burst * TOKEN_UNIT) {
		hash_table_remove(&c->reg->ips, node);
		free(rec);
		c->n_freed++;
	}
}

size_t registry_gc_ips(Registry *reg, uint64_t now) {
	GcContext c = { .reg = reg, .now = now };

	hash_table_foreach(&reg->ips, gc_ip, &c);
	return c.n_freed;
}

size_t registry_n_ips(const Registry *reg) {
	return reg->ips.n_entries;
}
