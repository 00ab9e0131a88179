/* SPDX-License-Identifier: MIT */

/*
 * The registry owns every User (from registry_add() or registry_add_pending()
 * until registry_remove()) and every per-IP record (IpRecord: a login token
 * bucket, a TCP connection count, the count of users online from the IP and
 * its pending logins), which live until registry_gc_ips() finds them idle
 * (no connection, no user, nothing pending, a full bucket).  A pending User
 * is on its IpRecord's list, not in the users table nor the roster, until
 * registry_confirm() moves it there; every User points at its IpRecord.  It
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
	unsigned n_users;     /* online from this IP */
	unsigned n_pending;
	ListNode pending;     /* pending Users, by roster_node, oldest first */
} IpRecord;

struct Registry {
	RegistryLimits limits;
	HashTable users;
	ListNode roster;
	HashTable ips;
	size_t n_pending;

	char *list;           /* "e1;e2;...;end" */
	size_t list_len, list_cap;
	bool list_stale;
};

#define TOKEN_UNIT ((uint64_t) 1000000)
#define LIST_END "end"

static int ip_get(Registry *reg, const Endpoint *ip, uint64_t now, IpRecord **ret);
static IpRecord *ip_find(const Registry *reg, const Endpoint *ip, uint64_t *ret_hash);
static User *user_free(User *u);

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
	IpRecord *rec = container_of(node, IpRecord, hash_node);
	ListNode *n;

	while ((n = list_first(&rec->pending))) {
		list_remove(n);
		user_free(container_of(n, User, roster_node));
	}
	free(rec);
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
	memcpy(e.key, u->key, sizeof(e.key));

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

int user_set_key(User *u, const char *hex) {
	char old[sizeof(u->key)];
	char *entry = u->entry;
	int r;

	assert(u->pending);
	assert(wire_key_is_valid(hex, strlen(hex)));
	memcpy(old, u->key, sizeof(old));
	memcpy(u->key, hex, WIRE_KEY_HEX_LEN + 1);
	r = user_format_entry(u);
	if (r < 0) {
		memcpy(u->key, old, sizeof(old));
		u->entry = entry;
		return r;
	}
	free(entry);
	return 0;
}

bool user_login_is_same_user(const User *u, const User *pending) {
	return endpoint_equal(&u->announced, &pending->announced) &&
		endpoint_equal(&u->declared, &pending->declared) &&
		endpoint_same_ip(&u->source, &pending->source) &&
		u->encoding == pending->encoding && streq(u->caps, pending->caps) &&
		streq(u->key, pending->key);
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

/* A User for the login @m from @source, linked nowhere yet. */
static int user_new(const WireMessage *m, const Endpoint *source, WireEncoding enc,
		User **ret) {
	_cleanup_(user_freep) User *u = NULL;
	int r;

	assert(m->type == WIRE_TYPE_LOGIN);

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
	*ret = TAKE_PTR(u);
	return 0;
}

/* Whether one more user may go online from @rec's IP. */
static bool ip_may_add_user(const Registry *reg, const IpRecord *rec) {
	return reg->limits.max_names_per_ip == 0 || rec->n_users < reg->limits.max_names_per_ip;
}

/* Puts @u (new or pending) online: in the users table, the roster and the list text. */
static int registry_link(Registry *reg, User *u) {
	int r;

	u->hash_node.hash = hash_table_hash(&reg->users, u->name, u->name_len);
	r = hash_table_add(&reg->users, &u->hash_node);
	if (r < 0) {
		return r;
	}
	if (u->pending) {
		list_remove(&u->roster_node);
		u->ip->n_pending--;
		reg->n_pending--;
		u->pending = false;
	}
	list_append(&reg->roster, &u->roster_node);
	u->ip->n_users++;

	if (!reg->list_stale) {
		/* Replace the trailing "end" with "entry;end". */
		reg->list_len -= strlen(LIST_END);
		if (list_append_bytes(reg, u->entry, u->entry_len) < 0 ||
				list_append_bytes(reg, ";" LIST_END, strlen(";" LIST_END)) < 0) {
			reg->list_stale = true;
		}
	}
	return 0;
}

int registry_add(Registry *reg, const WireMessage *m, const Endpoint *source, WireEncoding enc,
		User **ret) {
	_cleanup_(user_freep) User *u = NULL;
	IpRecord *rec;
	int r;

	if (registry_n_users(reg) >= reg->limits.max_users) {
		return -ENOSPC;
	}
	/* Time 0: the bucket is not refilled here (registry_take_login_token() does). */
	r = ip_get(reg, source, 0, &rec);
	if (r < 0) {
		return r;
	}
	if (!ip_may_add_user(reg, rec)) {
		return -EUSERS;
	}

	r = user_new(m, source, enc, &u);
	if (r < 0) {
		return r;
	}
	u->ip = rec;
	r = registry_link(reg, u);
	if (r < 0) {
		return r;
	}
	*ret = TAKE_PTR(u);
	return 0;
}

int registry_add_pending(Registry *reg, const WireMessage *m, const Endpoint *source,
		WireEncoding enc, User **ret) {
	User *online, *u;
	IpRecord *rec;
	int r;

	r = ip_get(reg, source, 0, &rec);
	if (r < 0) {
		return r;
	}
	if (reg->limits.max_pending_per_ip > 0 &&
			rec->n_pending >= reg->limits.max_pending_per_ip) {
		return -EUSERS;
	}
	/* A new login for a name online from this IP replaces it: no new name. */
	online = registry_find(reg, m->name);
	if (!ip_may_add_user(reg, rec) && !(online && online->ip == rec)) {
		return -EUSERS;
	}

	r = user_new(m, source, enc, &u);
	if (r < 0) {
		return r;
	}
	u->ip = rec;
	u->pending = true;
	list_append(&rec->pending, &u->roster_node);
	rec->n_pending++;
	reg->n_pending++;
	*ret = u;
	return 0;
}

User *registry_find_pending(const Registry *reg, const Endpoint *ip, const char *name) {
	IpRecord *rec;
	uint64_t h;

	rec = ip_find(reg, ip, &h);
	if (!rec) {
		return NULL;
	}
	for (ListNode *n = rec->pending.next; n != &rec->pending; n = n->next) {
		User *u = container_of(n, User, roster_node);

		if (streq(u->name, name)) {
			return u;
		}
	}
	return NULL;
}

User *registry_first_pending(const Registry *reg, const Endpoint *ip) {
	IpRecord *rec;
	ListNode *n;
	uint64_t h;

	rec = ip_find(reg, ip, &h);
	if (!rec) {
		return NULL;
	}
	n = list_first(&rec->pending);
	return n ? container_of(n, User, roster_node) : NULL;
}

User *registry_next_pending(const Registry *reg, const User *u) {
	assert(u->pending);
	if (u->roster_node.next == &u->ip->pending) {
		return NULL;
	}
	return container_of(u->roster_node.next, User, roster_node);
}

size_t registry_n_pending(const Registry *reg) {
	return reg->n_pending;
}

int registry_confirm(Registry *reg, User *u) {
	assert(u->pending);

	if (registry_n_users(reg) >= reg->limits.max_users) {
		return -ENOSPC;
	}
	if (!ip_may_add_user(reg, u->ip)) {
		return -EUSERS;
	}
	return registry_link(reg, u);
}

bool registry_may_confirm(const Registry *reg, const User *u, const User *replaced) {
	size_t users = registry_n_users(reg) - (replaced ? 1 : 0);
	unsigned from_ip = u->ip->n_users - (replaced && replaced->ip == u->ip ? 1 : 0);

	assert(u->pending);
	return users < reg->limits.max_users &&
		(reg->limits.max_names_per_ip == 0 || from_ip < reg->limits.max_names_per_ip);
}

bool user_login_is_same(const User *u, const WireMessage *m, WireEncoding enc) {
	return endpoint_equal(&u->declared, &m->endpoint) && streq(u->caps, m->caps) &&
		u->encoding == enc;
}

void registry_remove(Registry *reg, User *u) {
	if (!u) {
		return;
	}
	list_remove(&u->roster_node);
	if (u->pending) {
		u->ip->n_pending--;
		reg->n_pending--;
	} else {
		hash_table_remove(&reg->users, &u->hash_node);
		u->ip->n_users--;
		reg->list_stale = true;
	}
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
	list_head_init(&rec->pending);
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
	if (rec->conns == 0 && rec->n_users == 0 && rec->n_pending == 0 &&
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
