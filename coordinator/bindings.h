/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The name -> key bindings (trust on first use): the first Ed25519 public
 * key that logs in with a name owns it until an operator releases it.  The
 * store is opaque so that another one (shared by several coordinators) can
 * take the place of the SQLite file behind the same calls.
 */

#include <stdint.h>

#include "common/identity.h"
#include "common/macro.h"

#define BINDING_KEY_SIZE IDENTITY_PUBLIC_KEY_SIZE

typedef struct BindingStore BindingStore;

/* One binding, as binding_store_foreach() shows it; borrowed for the call. */
typedef struct Binding {
	const char *name;
	const uint8_t *key;        /* BINDING_KEY_SIZE bytes */
	uint64_t created_usec;     /* CLOCK_REALTIME */
	uint64_t last_seen_usec;   /* CLOCK_REALTIME, updated at most once a day */
} Binding;

/*
 * binding_store_open() - open the store in @state_dir (a directory that
 * exists), creating it when there is none.
 * Return: 0; -EBADMSG when the file is not a database (corrupt);
 * -EPROTONOSUPPORT when it was written by a newer version; -EROFS, -EACCES,
 * -EIO, ... when it cannot be written.
 */
int binding_store_open(const char *state_dir, BindingStore **ret);

/*
 * binding_store_open_existing() - the same, but -ENOENT instead of creating
 * a store (the operator commands: a store created by another user than the
 * service's would be one the service cannot write).
 */
int binding_store_open_existing(const char *state_dir, BindingStore **ret);

/* Closes the store; NULL-safe; returns NULL. */
BindingStore *binding_store_free(BindingStore *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(BindingStore *, binding_store_free);

/*
 * binding_store_lookup() - the key @name is bound to.
 * Return: 1 and *ret_key set when bound; 0 when not; <0 on error
 * (-EINVAL for a name that no login may carry).
 */
int binding_store_lookup(BindingStore *s, const char *name,
		uint8_t ret_key[static BINDING_KEY_SIZE]);

/*
 * binding_store_bind() - bind @name to @key unless it is bound already.
 * A new binding is durable against a crash of the process when this
 * returns (committed): the caller may acknowledge the login at once.
 * Return: 1 when the binding is new (stored); 0 when @name was bound to
 * @key already (its last-seen time is refreshed, lazily); -EEXIST when
 * @name is bound to another key (nothing changed); -EINVAL for a name
 * that no login may carry (wire_name_is_valid()); other <0 on error.
 */
int binding_store_bind(BindingStore *s, const char *name,
		const uint8_t key[static BINDING_KEY_SIZE], uint64_t now_usec);

/*
 * binding_store_release() - forget @name's binding: the next key that logs
 * in with it owns it.
 * Return: 0; -ENOENT when @name is not bound (or is no valid name).
 */
int binding_store_release(BindingStore *s, const char *name);

/*
 * binding_store_foreach() - call @f for every binding, in name order.  @f
 * must not call into the store; a negative return from it stops the walk
 * and is returned.
 * Return: 0, or the first error (@f's or the store's).
 */
typedef int (*BindingStoreForeachFunc)(const Binding *b, void *userdata);
int binding_store_foreach(BindingStore *s, BindingStoreForeachFunc f, void *userdata);
