/* SPDX-License-Identifier: MIT */
/*
 * The binding store on SQLite: <state_dir>/bindings.sqlite, one table.  A
 * BindingStore owns one connection and its prepared statements; the
 * coordinator opens it at start (main.c) and frees it at exit.  Operator
 * commands (--release, --list-bindings) open the same file from another
 * process while the coordinator runs: WAL lets them read beside it, and
 * their short writes wait for its lock (busy timeout).
 *
 * Durability: every bind is its own transaction (autocommit), committed
 * before binding_store_bind() returns.  The database runs in WAL mode with
 * synchronous=NORMAL: COMMIT appends the transaction's frames to the WAL
 * with write() and syncs nothing.  Those frames are in the kernel's page
 * cache once write() returned, so a crash of the process (kill -9) never
 * loses an acknowledged binding and never leaves a broken file: the next
 * open replays the WAL up to its last complete commit.  A power loss may
 * lose the last commits (never the file: checkpoints fsync the WAL before
 * copying it, and the database after); such a name is free again, as if
 * it had never been bound.  That is the trade: one fsync per new name
 * would make a storm of first logins cost milliseconds each; without it a
 * new name costs about 35 us on ext4, checkpoints included, and a name
 * bound already (a read) about 5 us.
 *
 * The schema lives in migrations[]: entry N takes PRAGMA user_version from
 * N to N+1, in one transaction with the version bump.  A later version
 * appends an entry and never edits an old one.
 */

#include <assert.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/wire.h"
#include "coordinator/bindings.h"

#define BINDINGS_FILE "bindings.sqlite"

/* How long a write waits for another process's lock (an operator command). */
#define BUSY_TIMEOUT_MSEC 2000

/* last_seen_usec is rewritten only when it is older than this. */
#define LAST_SEEN_GRANULARITY (24 * 3600 * USEC_PER_SEC)

static const char *const migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE bindings ("
	"  name TEXT PRIMARY KEY,"
	"  key BLOB NOT NULL CHECK (length(key) = 32),"
	"  created_usec INTEGER,"
	"  last_seen_usec INTEGER"
	") WITHOUT ROWID;",
};

typedef enum Statement {
	STMT_LOOKUP,
	STMT_INSERT,
	STMT_TOUCH,
	STMT_DELETE,
	STMT_LIST,
	_STMT_MAX,
	_STMT_INVALID = -EINVAL,
} Statement;

static const char *const statement_sql[_STMT_MAX] = {
	[STMT_LOOKUP] = "SELECT key, last_seen_usec FROM bindings WHERE name = ?1",
	[STMT_INSERT] = "INSERT INTO bindings (name, key, created_usec, last_seen_usec)"
			" VALUES (?1, ?2, ?3, ?3) ON CONFLICT (name) DO NOTHING",
	[STMT_TOUCH] = "UPDATE bindings SET last_seen_usec = ?3 WHERE name = ?1",
	[STMT_DELETE] = "DELETE FROM bindings WHERE name = ?1",
	[STMT_LIST] = "SELECT name, key, created_usec, last_seen_usec FROM bindings"
			" ORDER BY name",
};

struct BindingStore {
	sqlite3 *db;
	sqlite3_stmt *stmts[_STMT_MAX];
};

_Static_assert(BINDING_KEY_SIZE == 32, "the schema checks length(key) = 32");

/* Maps an SQLite result code to a negative errno, preferring the OS error. */
static int sqlite_to_errno(sqlite3 *db, int rc) {
	switch (rc & 0xff) {
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EBADMSG;
	case SQLITE_CONSTRAINT:
		return -EINVAL;
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
	case SQLITE_PERM:
		if (db && sqlite3_system_errno(db) > 0) {
			return -sqlite3_system_errno(db);
		}
		return (rc & 0xff) == SQLITE_PERM ? -EACCES : -EIO;
	default:
		return -EIO;
	}
}

static int store_error(BindingStore *s, int rc, const char *what) {
	int r = sqlite_to_errno(s->db, rc);

	log_debug("bindings: %s failed: %s", what, sqlite3_errmsg(s->db));
	return r;
}

static void stmt_resetp(sqlite3_stmt **s) {
	if (*s) {
		(void) sqlite3_reset(*s);
		(void) sqlite3_clear_bindings(*s);
	}
}
#define _cleanup_stmt_ _cleanup_(stmt_resetp)

static void stmt_finalizep(sqlite3_stmt **s) {
	(void) sqlite3_finalize(*s);
}

/* Returns the cached statement @id, preparing it on first use. */
static int stmt_get(BindingStore *s, Statement id, sqlite3_stmt **ret) {
	int rc;

	if (!s->stmts[id]) {
		rc = sqlite3_prepare_v3(s->db, statement_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
				&s->stmts[id], NULL);
		if (rc != SQLITE_OK) {
			return store_error(s, rc, statement_sql[id]);
		}
	}

	*ret = s->stmts[id];
	return 0;
}

static int exec_sql(BindingStore *s, const char *sql) {
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK) {
		return store_error(s, rc, sql);
	}
	return 0;
}

/*
 * Runs the pragma @sql and gives its answer as text in @ret_text (of @size
 * bytes) when that is given, else as an integer in *ret_int.
 */
static int pragma_get(BindingStore *s, const char *sql, char *ret_text, size_t size,
		int *ret_int) {
	_cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		return store_error(s, rc, sql);
	}
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		return store_error(s, rc, sql);
	}
	if (ret_text) {
		const char *text = (const char *) sqlite3_column_text(st, 0);

		(void) snprintf(ret_text, size, "%s", strempty(text));
	} else {
		*ret_int = sqlite3_column_int(st, 0);
	}
	return 0;
}

static int migrate(BindingStore *s) {
	int version = 0, r;

	r = pragma_get(s, "PRAGMA user_version", NULL, 0, &version);
	if (r < 0) {
		return r;
	}
	if (version > (int) ELEMENTSOF(migrations)) {
		log_debug("bindings: schema version %d is newer than %zu", version,
				ELEMENTSOF(migrations));
		return -EPROTONOSUPPORT;
	}

	for (int v = version; v < (int) ELEMENTSOF(migrations); v++) {
		_cleanup_free_ char *bump = NULL;

		if (asprintf(&bump, "PRAGMA user_version = %d", v + 1) < 0) {
			return -ENOMEM;
		}

		r = exec_sql(s, "BEGIN IMMEDIATE");
		if (r < 0) {
			return r;
		}
		r = exec_sql(s, migrations[v]);
		if (r >= 0) {
			r = exec_sql(s, bump);
		}
		if (r >= 0) {
			r = exec_sql(s, "COMMIT");
		}
		if (r < 0) {
			(void) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			return r;
		}
		log_debug("bindings: migrated schema to version %d", v + 1);
	}
	return 0;
}

BindingStore *binding_store_free(BindingStore *s) {
	if (!s) {
		return NULL;
	}
	for (size_t i = 0; i < _STMT_MAX; i++) {
		(void) sqlite3_finalize(s->stmts[i]);
	}
	(void) sqlite3_close_v2(s->db);
	return mfree(s);
}

static int store_open(const char *state_dir, bool create, BindingStore **ret) {
	_cleanup_(binding_store_freep) BindingStore *s = NULL;
	_cleanup_free_ char *path = NULL;
	char mode[16];
	int flags, rc, r;

	assert(state_dir);
	assert(ret);

	if (asprintf(&path, "%s/%s", state_dir, BINDINGS_FILE) < 0) {
		return -ENOMEM;
	}
	/* SQLite says SQLITE_CANTOPEN for a missing file; tell -ENOENT apart. */
	if (!create && access(path, F_OK) < 0) {
		return -errno;
	}

	s = calloc(1, sizeof(BindingStore));
	if (!s) {
		return -ENOMEM;
	}

	flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
	if (create) {
		flags |= SQLITE_OPEN_CREATE;
	}
	rc = sqlite3_open_v2(path, &s->db, flags, NULL);
	if (rc != SQLITE_OK) {
		if (!s->db) {
			return -ENOMEM;
		}
		return store_error(s, rc, "open");
	}
	(void) sqlite3_extended_result_codes(s->db, 1);
	/* SQLite opens a file it may not write read-only without a word. */
	if (sqlite3_db_readonly(s->db, "main") == 1) {
		return -EROFS;
	}
	rc = sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MSEC);
	if (rc != SQLITE_OK) {
		return store_error(s, rc, "busy_timeout");
	}

	/*
	 * The first statement reads the file: a file that is not a database
	 * fails here.  journal_mode answers with the mode it got; anything
	 * but "wal" would break the durability promise above.
	 */
	r = pragma_get(s, "PRAGMA journal_mode = WAL", mode, sizeof(mode), NULL);
	if (r < 0) {
		return r;
	}
	if (!streq(mode, "wal")) {
		return -EOPNOTSUPP;
	}

	r = exec_sql(s, "PRAGMA synchronous = NORMAL");
	if (r < 0) {
		return r;
	}

	r = migrate(s);
	if (r < 0) {
		return r;
	}

	*ret = TAKE_PTR(s);
	return 0;
}

int binding_store_open(const char *state_dir, BindingStore **ret) {
	return store_open(state_dir, true, ret);
}

int binding_store_open_existing(const char *state_dir, BindingStore **ret) {
	return store_open(state_dir, false, ret);
}

/* Only names a login may carry: no control characters (tabs in listings). */
static bool name_is_valid(const char *name) {
	return name && wire_name_is_valid(name, strlen(name));
}

/* The key and last-seen time of @name: 1 found, 0 not, <0 error. */
static int lookup(BindingStore *s, const char *name, uint8_t ret_key[static BINDING_KEY_SIZE],
		uint64_t *ret_last_seen) {
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	const void *key;
	int rc, r;

	r = stmt_get(s, STMT_LOOKUP, &st);
	if (r < 0) {
		return r;
	}
	rc = sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (rc != SQLITE_OK) {
		return store_error(s, rc, "bind name");
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		return 0;
	}
	if (rc != SQLITE_ROW) {
		return store_error(s, rc, "lookup");
	}
	key = sqlite3_column_blob(st, 0);
	if (!key || sqlite3_column_bytes(st, 0) != BINDING_KEY_SIZE) {
		return -EBADMSG; /* the CHECK constraint makes this impossible */
	}
	memcpy(ret_key, key, BINDING_KEY_SIZE);
	if (ret_last_seen) {
		*ret_last_seen = (uint64_t) sqlite3_column_int64(st, 1);
	}
	return 1;
}

int binding_store_lookup(BindingStore *s, const char *name,
		uint8_t ret_key[static BINDING_KEY_SIZE]) {
	assert(s);
	assert(ret_key);

	if (!name_is_valid(name)) {
		return -EINVAL;
	}
	return lookup(s, name, ret_key, NULL);
}

/*
 * Runs the cached write statement @id: ?1 is @name, ?2 @key (when given),
 * ?3 @usec (when the statement has it).  Returns the rows changed.
 */
static int run_write(BindingStore *s, Statement id, const char *name, const uint8_t *key,
		uint64_t usec) {
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int rc, r;

	r = stmt_get(s, id, &st);
	if (r < 0) {
		return r;
	}
	rc = sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK && key) {
		rc = sqlite3_bind_blob(st, 2, key, BINDING_KEY_SIZE, SQLITE_STATIC);
	}
	if (rc == SQLITE_OK && sqlite3_bind_parameter_count(st) >= 3) {
		rc = sqlite3_bind_int64(st, 3, (sqlite3_int64) usec);
	}
	if (rc != SQLITE_OK) {
		return store_error(s, rc, "bind");
	}
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		return store_error(s, rc, statement_sql[id]);
	}
	return sqlite3_changes(s->db);
}

int binding_store_bind(BindingStore *s, const char *name,
		const uint8_t key[static BINDING_KEY_SIZE], uint64_t now_usec) {
	uint8_t bound[BINDING_KEY_SIZE];
	uint64_t last_seen = 0;
	int r;

	assert(s);
	assert(key);

	if (!name_is_valid(name)) {
		return -EINVAL;
	}

	/*
	 * A read first: nearly every login is of a name bound long ago, and a
	 * read takes no write lock.  Then an insert that does nothing when
	 * another process bound the name in between, which a second read
	 * sees.
	 */
	r = lookup(s, name, bound, &last_seen);
	if (r < 0) {
		return r;
	}
	if (r == 0) {
		r = run_write(s, STMT_INSERT, name, key, now_usec);
		if (r < 0) {
			return r;
		}
		if (r > 0) {
			return 1;
		}
		r = lookup(s, name, bound, &last_seen);
		if (r < 0) {
			return r;
		}
		if (r == 0) {
			return -EBUSY; /* bound and released again in between */
		}
	}

	if (memcmp(bound, key, BINDING_KEY_SIZE) != 0) {
		return -EEXIST;
	}
	/* Not a write per login: last-seen is for operators, a day is enough. */
	if (now_usec > last_seen && now_usec - last_seen >= LAST_SEEN_GRANULARITY) {
		r = run_write(s, STMT_TOUCH, name, NULL, now_usec);
		if (r < 0) {
			log_debug_errno(r, "bindings: failed to update last-seen of '%s', "
					"ignoring: %m", name);
		}
	}
	return 0;
}

int binding_store_release(BindingStore *s, const char *name) {
	int r;

	assert(s);

	if (!name_is_valid(name)) {
		return -ENOENT;
	}
	r = run_write(s, STMT_DELETE, name, NULL, 0);
	if (r < 0) {
		return r;
	}
	return r > 0 ? 0 : -ENOENT;
}

int binding_store_foreach(BindingStore *s, BindingStoreForeachFunc f, void *userdata) {
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int rc, r;

	assert(s);
	assert(f);

	r = stmt_get(s, STMT_LIST, &st);
	if (r < 0) {
		return r;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		Binding b = {
			.name = (const char *) sqlite3_column_text(st, 0),
			.key = sqlite3_column_blob(st, 1),
			.created_usec = (uint64_t) sqlite3_column_int64(st, 2),
			.last_seen_usec = (uint64_t) sqlite3_column_int64(st, 3),
		};

		if (!b.name || !b.key || sqlite3_column_bytes(st, 1) != BINDING_KEY_SIZE) {
			return -EBADMSG;
		}
		r = f(&b, userdata);
		if (r < 0) {
			return r;
		}
	}
	if (rc != SQLITE_DONE) {
		return store_error(s, rc, "list");
	}
	return 0;
}
