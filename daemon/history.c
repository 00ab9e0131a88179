/* SPDX-License-Identifier: MIT */
/*
 * The message store.  A History owns one SQLite connection and a cache of
 * prepared statements; it lives as long as the daemon (history_open() at
 * start, history_free() at exit).  The daemon is single-threaded and the only
 * writer.
 *
 * Durability: writing and making durable are two steps.  The database runs
 * in WAL mode with synchronous=NORMAL, so COMMIT appends the transaction's
 * pages to the WAL with write() and syncs nothing: the commit survives a
 * crash (kill -9) of the daemon, as the pages are in the OS page cache, but
 * not yet a power loss.  history_commit() is the barrier: it commits, then
 * fsyncs the WAL through SQLite's own file object
 * (SQLITE_FCNTL_JOURNAL_POINTER, xSync), and only once that returned is
 * anything promised to anyone (an ack: "stored", a SendMessage reply).
 * The WAL is written in order, so one fsync covers every commit before it.
 *
 * Checkpoints keep that promise: an automatic checkpoint (at COMMIT, once the
 * WAL holds 1000 pages) with synchronous=NORMAL fsyncs the WAL before it
 * copies pages into the database file, and fsyncs the database file after;
 * the WAL is only rewritten from its start by the next write after a complete
 * checkpoint, when everything in it is in the synced database file.  Frames
 * of a half-rewritten WAL carry new salts, and recovery after a power loss
 * stops at the first frame whose salt or checksum does not match: it may
 * drop commits that were never synced (never promised), never a synced one.
 *
 * Not every write is a promise: an outgoing message becoming "sent"
 * (history_requeue_sent() turns it back to "queued" at start-up anyway) or
 * "delivered" (the peer acked: it is stored there) is lost by a power loss
 * only if no barrier followed, and then the message goes out once more and
 * the peer, which keeps each id once, acks it again.  A batch of only such
 * writes commits without an fsync.
 *
 * Batching (history_set_batching()): the daemon gathers the writes of one
 * pass of its event loop in one transaction and commits it with one barrier
 * (group commit: one fsync for many messages).  Without batching, which is
 * how the tests and tools open a History, every write is its own transaction
 * and barrier.  When SQLite rolls the batch's transaction back by itself
 * (I/O error, disk full, out of memory), the batch is lost as a whole: every
 * later write in it and its history_commit() fail, so nothing of it is ever
 * acknowledged.
 *
 * The schema lives in migrations[]: entry N takes PRAGMA user_version from N
 * to N+1, in one transaction with the version bump.  A later version appends
 * an entry and never edits an old one.
 */

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "daemon/history.h"
#include "daemon/xdg.h"

/*
 * Messages get an INTEGER PRIMARY KEY "seq" as well as the unique text id:
 * the full-text index refers to rows by rowid, and only an INTEGER PRIMARY
 * KEY keeps rowids stable across VACUUM.  seq is also the order of arrival.
 */
static const char *const migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE messages ("
	"  seq INTEGER PRIMARY KEY,"
	"  id TEXT NOT NULL UNIQUE,"
	"  peer TEXT NOT NULL,"
	"  direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),"
	"  text TEXT NOT NULL,"
	"  sent_usec INTEGER NOT NULL,"
	"  received_usec INTEGER NOT NULL,"
	"  state TEXT NOT NULL"
	"    CHECK (state IN ('queued', 'sent', 'delivered', 'failed', 'read'))"
	");"
	"CREATE INDEX messages_by_peer ON messages (peer);"
	"CREATE INDEX messages_by_state ON messages (state, peer);"
	"CREATE VIRTUAL TABLE messages_fts USING fts5("
	"  text, content='messages', content_rowid='seq', tokenize='trigram');"
	"CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN"
	"  INSERT INTO messages_fts (rowid, text) VALUES (new.seq, new.text);"
	"END;"
	"CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN"
	"  INSERT INTO messages_fts (messages_fts, rowid, text)"
	"    VALUES ('delete', old.seq, old.text);"
	"END;"
	"CREATE TRIGGER messages_au AFTER UPDATE OF text ON messages BEGIN"
	"  INSERT INTO messages_fts (messages_fts, rowid, text)"
	"    VALUES ('delete', old.seq, old.text);"
	"  INSERT INTO messages_fts (rowid, text) VALUES (new.seq, new.text);"
	"END;",
	/*
	 * 1 -> 2: "final" marks a message sent to a reference peer: the
	 * reference protocol has no acks, so "sent" is its last state.  It is
	 * never requeued at start-up and never expires.
	 */
	"ALTER TABLE messages ADD COLUMN final INTEGER NOT NULL DEFAULT 0;",
	/*
	 * 2 -> 3: the full-text index is written once per transaction, by
	 * history_commit() (fts_catch_up()), not per row by a trigger: FTS5
	 * flushes its pending terms at every statement of a transaction, so a
	 * trigger made one index segment (and merges) per message.  The
	 * pending messages of a peer are counted on an index of their own
	 * (the outbox limit is checked at every SendMessage()).
	 */
	"DROP TRIGGER messages_ai;"
	"CREATE INDEX messages_pending ON messages (peer)"
	"  WHERE state IN ('queued', 'sent') AND final = 0;",
	/*
	 * 3 -> 4: the unread messages of a peer on an index of their own:
	 * "delivered" is also the state of nearly every outgoing message, so
	 * messages_by_state made counting a peer's unread messages visit all
	 * of them (ListConversations() counts them for every peer).
	 */
	("CREATE INDEX messages_unread ON messages (peer)"
	 "  WHERE direction = 'in' AND state = 'delivered';"),
	/*
	 * 4 -> 5: end-to-end encryption.  peer_keys holds the identity key
	 * pinned for each native peer (the first one seen, until the user
	 * accepts another) and whether the user verified it.  An outgoing
	 * message records the key it is for, so that it is delivered only to
	 * that key; NULL for incoming messages, messages to reference peers
	 * and rows written before this version.
	 */
	("CREATE TABLE peer_keys ("
	 "  peer TEXT PRIMARY KEY,"
	 "  key BLOB NOT NULL CHECK (length(key) = 32),"
	 "  verified INTEGER NOT NULL DEFAULT 0,"
	 "  pinned_usec INTEGER NOT NULL"
	 ");"
	 "ALTER TABLE messages ADD COLUMN peer_key BLOB"
	 "  CHECK (peer_key IS NULL OR length(peer_key) = 32);"),
};

#define INSERT_COLUMNS "id, peer, direction, text, sent_usec, received_usec, state"
#define COLUMNS INSERT_COLUMNS ", peer_key"

typedef enum Statement {
	STMT_BEGIN,
	STMT_COMMIT,
	STMT_ROLLBACK,
	STMT_INSERT_IN,
	STMT_INSERT_OUT,
	STMT_FIND_ID,
	STMT_COUNT_PENDING,
	STMT_GET_MESSAGE,
	STMT_UPDATE_STATE,
	STMT_LIST_QUEUED,
	STMT_REQUEUE,
	STMT_SENT_FINAL,
	STMT_QUEUED_PEERS,
	STMT_LIST_UNREAD,
	STMT_LIST_EXPIRED,
	STMT_OLDEST_PENDING,
	STMT_SEQ_OF,
	STMT_GET_LATEST,
	STMT_GET_BEFORE,
	STMT_SEARCH_FTS,
	STMT_SEARCH_LIKE,
	STMT_MARK_READ,
	STMT_UNREAD,
	STMT_UNREAD_ALL,
	STMT_FTS_INDEX,
	STMT_HAS_QUEUED,
	STMT_HAS_PEER,
	STMT_CONVERSATIONS,
	STMT_SET_MESSAGE_KEY,
	STMT_GET_PEER_KEY,
	STMT_SET_PEER_KEY,
	STMT_SET_PEER_VERIFIED,
	STMT_BIND_UNKEYED,
	_STMT_MAX,
} Statement;

static const char *const statement_sql[_STMT_MAX] = {
	[STMT_BEGIN] = "BEGIN IMMEDIATE",
	[STMT_COMMIT] = "COMMIT",
	[STMT_ROLLBACK] = "ROLLBACK",
	[STMT_INSERT_IN] = "INSERT INTO messages (" INSERT_COLUMNS ") "
			   "VALUES (?1, ?2, 'in', ?3, ?4, ?5, 'delivered') "
			   "ON CONFLICT (id) DO NOTHING",
	[STMT_INSERT_OUT] = "INSERT INTO messages (" COLUMNS ") "
			    "VALUES (?1, ?2, 'out', ?3, ?4, 0, ?5, ?6)",
	[STMT_FIND_ID] = "SELECT peer, direction FROM messages WHERE id = ?1",
	[STMT_COUNT_PENDING] = "SELECT count(*) FROM messages INDEXED BY messages_pending "
			       "WHERE state IN ('queued', 'sent') AND final = 0 AND peer = ?1",
	[STMT_GET_MESSAGE] = "SELECT " COLUMNS " FROM messages WHERE id = ?1",
	[STMT_UPDATE_STATE] = "UPDATE messages SET state = ?2 WHERE id = ?1 AND state = ?3",
	[STMT_LIST_QUEUED] = "SELECT " COLUMNS " FROM messages "
			     "WHERE state = 'queued' AND peer = ?1 ORDER BY seq LIMIT ?2",
	[STMT_REQUEUE] = "UPDATE messages SET state = 'queued' WHERE state = 'sent' AND final = 0",
	[STMT_SENT_FINAL] = "UPDATE messages SET state = 'sent', final = 1 "
			    "WHERE id = ?1 AND direction = 'out' AND state IN ('queued', 'sent')",
	[STMT_QUEUED_PEERS] = "SELECT DISTINCT peer FROM messages WHERE state = 'queued' "
			      "ORDER BY peer",
	[STMT_LIST_UNREAD] = "SELECT id FROM messages "
			     "WHERE state = 'delivered' AND peer = ?1 AND direction = 'in' "
			     "ORDER BY seq",
	[STMT_LIST_EXPIRED] = "SELECT " COLUMNS " FROM messages "
			      "WHERE state IN ('queued', 'sent') AND final = 0 AND sent_usec < ?1 "
			      "ORDER BY seq LIMIT ?2",
	[STMT_OLDEST_PENDING] = "SELECT min(sent_usec) FROM messages "
				"WHERE state IN ('queued', 'sent') AND final = 0 HAVING count(*) > 0",
	[STMT_SEQ_OF] = "SELECT seq FROM messages WHERE id = ?1 AND peer = ?2",
	[STMT_GET_LATEST] = "SELECT " COLUMNS " FROM ("
			    "  SELECT * FROM messages WHERE peer = ?1 ORDER BY seq DESC LIMIT ?2"
			    ") ORDER BY seq",
	[STMT_GET_BEFORE] = "SELECT " COLUMNS " FROM ("
			    "  SELECT * FROM messages WHERE peer = ?1 AND seq < ?3"
			    "  ORDER BY seq DESC LIMIT ?2"
			    ") ORDER BY seq",
	[STMT_SEARCH_FTS] = "SELECT " COLUMNS " FROM messages WHERE seq IN ("
			    "  SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?1"
			    ") ORDER BY seq DESC LIMIT ?2",
	[STMT_SEARCH_LIKE] = "SELECT " COLUMNS " FROM messages "
			     "WHERE text LIKE ?1 ESCAPE '\\' ORDER BY seq DESC LIMIT ?2",
	[STMT_MARK_READ] = "UPDATE messages SET state = 'read' "
			   "WHERE peer = ?1 AND direction = 'in' AND state = 'delivered'",
	[STMT_UNREAD] = "SELECT count(*) FROM messages "
			"WHERE state = 'delivered' AND peer = ?1 AND direction = 'in'",
	[STMT_UNREAD_ALL] = "SELECT peer, count(*) FROM messages "
			    "WHERE state = 'delivered' AND direction = 'in' "
			    "GROUP BY peer ORDER BY peer",
	[STMT_FTS_INDEX] = "INSERT INTO messages_fts (rowid, text) "
			   "SELECT seq, text FROM messages WHERE seq >= ?1",
	[STMT_HAS_QUEUED] = "SELECT count(*) FROM ("
			    "  SELECT 1 FROM messages WHERE state = 'queued' AND peer = ?1 LIMIT 1"
			    ")",
	[STMT_HAS_PEER] = "SELECT count(*) FROM ("
			  "  SELECT 1 FROM messages WHERE peer = ?1 LIMIT 1"
			  ")",
	/*
	 * The peers are walked on messages_by_peer one distinct name at a
	 * time (a skip scan: one index search per peer, not one step per
	 * message as GROUP BY would take), and each peer's newest message is
	 * one more search there (the index holds seq).  The unread counts
	 * are searches on messages_unread.
	 */
	[STMT_CONVERSATIONS] = "WITH RECURSIVE peers (name) AS ("
			       "  SELECT min(peer) FROM messages"
			       "  UNION ALL"
			       "  SELECT (SELECT min(peer) FROM messages WHERE peer > peers.name)"
			       "  FROM peers WHERE peers.name IS NOT NULL"
			       ") "
			       "SELECT m.id, m.peer, m.direction, m.text, m.sent_usec,"
			       "  m.received_usec, m.state, m.peer_key,"
			       "  (SELECT count(*) FROM messages INDEXED BY messages_unread"
			       "   WHERE direction = 'in' AND state = 'delivered'"
			       "   AND peer = m.peer) "
			       "FROM peers JOIN messages AS m"
			       "  ON m.seq = (SELECT max(seq) FROM messages"
			       "              WHERE peer = peers.name) "
			       "ORDER BY m.seq DESC LIMIT ?1",
	[STMT_SET_MESSAGE_KEY] = "UPDATE messages SET peer_key = ?2 "
				 "WHERE id = ?1 AND direction = 'out'",
	[STMT_GET_PEER_KEY] = "SELECT key, verified, pinned_usec FROM peer_keys WHERE peer = ?1",
	/* SET reads the old row on the right: pinned_usec compares the old key. */
	[STMT_SET_PEER_KEY] = "INSERT INTO peer_keys (peer, key, verified, pinned_usec) "
			      "VALUES (?1, ?2, ?3, ?4) "
			      "ON CONFLICT (peer) DO UPDATE SET key = excluded.key,"
			      "  verified = excluded.verified,"
			      "  pinned_usec = CASE WHEN key = excluded.key THEN pinned_usec"
			      "    ELSE excluded.pinned_usec END",
	[STMT_SET_PEER_VERIFIED] = "UPDATE peer_keys SET verified = ?2 WHERE peer = ?1",
	/* messages_by_peer finds the peer's messages; few are pending. */
	[STMT_BIND_UNKEYED] = "UPDATE messages SET peer_key = ?2 "
			      "WHERE peer = ?1 AND direction = 'out' AND peer_key IS NULL"
			      "  AND state IN ('queued', 'sent', 'failed') AND final = 0",
};

struct History {
	sqlite3 *db;
	sqlite3_stmt *stmts[_STMT_MAX];
	bool batching;     /* writes wait for history_commit() */
	bool in_batch;     /* our BEGIN is open */
	bool need_sync;    /* a write in it is a promise: fsync at the commit */
	bool sync_owed;    /* the last barrier failed: the next commit fsyncs anyway */
	unsigned n_writes; /* in the open transaction */
	int64_t fts_from;  /* the first message not in the full-text index yet; 0: none */
	int error;         /* the batch was lost: its writes and commit fail */
};

typedef enum WriteFlags {
	WRITE_DURABLE = 1 << 0, /* a promise: the commit fsyncs */
	WRITE_MULTI = 1 << 1,   /* several statements: a failure spoils the batch */
} WriteFlags;

static const char *const state_table[_HISTORY_STATE_MAX] = {
	[HISTORY_STATE_QUEUED] = "queued",
	[HISTORY_STATE_SENT] = "sent",
	[HISTORY_STATE_DELIVERED] = "delivered",
	[HISTORY_STATE_FAILED] = "failed",
	[HISTORY_STATE_READ] = "read",
};

static const char *const direction_table[_HISTORY_DIRECTION_MAX] = {
	[HISTORY_DIRECTION_IN] = "in",
	[HISTORY_DIRECTION_OUT] = "out",
};

/* allowed[direction][from] is the set of states a message may move to. */
#define S(x) (1u << HISTORY_STATE_##x)
static const unsigned allowed[_HISTORY_DIRECTION_MAX][_HISTORY_STATE_MAX] = {
	[HISTORY_DIRECTION_OUT] = {
		[HISTORY_STATE_QUEUED] = S(SENT) | S(DELIVERED) | S(FAILED),
		[HISTORY_STATE_SENT] = S(QUEUED) | S(DELIVERED) | S(FAILED),
		[HISTORY_STATE_DELIVERED] = S(READ),
		[HISTORY_STATE_FAILED] = S(QUEUED) | S(DELIVERED),
		[HISTORY_STATE_READ] = 0,
	},
	[HISTORY_DIRECTION_IN] = {
		[HISTORY_STATE_DELIVERED] = S(READ),
	},
};
#undef S

const char *history_state_to_string(HistoryState s) {
	return string_table_lookup(state_table, ELEMENTSOF(state_table), s);
}

HistoryState history_state_from_string(const char *s) {
	return (HistoryState) string_table_find(state_table, ELEMENTSOF(state_table), s);
}

const char *history_direction_to_string(HistoryDirection d) {
	return string_table_lookup(direction_table, ELEMENTSOF(direction_table), d);
}

static HistoryDirection direction_from_string(const char *s) {
	return (HistoryDirection) string_table_find(direction_table, ELEMENTSOF(direction_table), s);
}

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
		return -EEXIST;
	case SQLITE_TOOBIG:
		return -E2BIG;
	case SQLITE_ERROR:
		return -EINVAL; /* an SQL error, e.g. a malformed FTS5 query */
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

static int history_error(History *h, int rc, const char *what) {
	int r = sqlite_to_errno(h->db, rc);

	log_debug("history: %s failed: %s", what, sqlite3_errmsg(h->db));
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
static int stmt_get(History *h, Statement id, sqlite3_stmt **ret) {
	int rc;

	if (!h->stmts[id]) {
		rc = sqlite3_prepare_v3(h->db, statement_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
				&h->stmts[id], NULL);
		if (rc != SQLITE_OK) {
			return history_error(h, rc, statement_sql[id]);
		}
	}

	*ret = h->stmts[id];
	return 0;
}

/* Runs a statement that returns no rows. */
static int stmt_exec(History *h, sqlite3_stmt *s) {
	int rc = sqlite3_step(s);

	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		return history_error(h, rc, sqlite3_sql(s));
	}
	return 0;
}

static int exec_simple(History *h, Statement id) {
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	r = stmt_get(h, id, &s);
	if (r < 0) {
		return r;
	}
	return stmt_exec(h, s);
}

static int bind_text(History *h, sqlite3_stmt *s, int i, const char *t) {
	int rc = sqlite3_bind_text(s, i, t, -1, SQLITE_STATIC);

	if (rc != SQLITE_OK) {
		return history_error(h, rc, "bind");
	}
	return 0;
}

static int bind_int64(History *h, sqlite3_stmt *s, int i, uint64_t v) {
	int rc;

	if (v > INT64_MAX) {
		return -ERANGE;
	}
	rc = sqlite3_bind_int64(s, i, (sqlite3_int64) v);
	if (rc != SQLITE_OK) {
		return history_error(h, rc, "bind");
	}
	return 0;
}

/* Binds the @n bytes at @p, or NULL when @p is NULL. */
static int bind_blob(History *h, sqlite3_stmt *s, int i, const void *p, size_t n) {
	int rc;

	rc = p ? sqlite3_bind_blob(s, i, p, (int) n, SQLITE_STATIC) : sqlite3_bind_null(s, i);
	if (rc != SQLITE_OK) {
		return history_error(h, rc, "bind");
	}
	return 0;
}

/* Single-value SELECT returning a non-negative integer (count(*), seq). */
static int query_int(History *h, sqlite3_stmt *s, int64_t *ret) {
	int rc = sqlite3_step(s);

	if (rc == SQLITE_DONE) {
		return -ENOENT;
	}
	if (rc != SQLITE_ROW) {
		return history_error(h, rc, sqlite3_sql(s));
	}
	*ret = sqlite3_column_int64(s, 0);
	return 0;
}

static bool id_is_valid(const char *id) {
	size_t n;

	if (!id) {
		return false;
	}
	n = strlen(id);
	if (n == 0 || n > HISTORY_ID_MAX) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		char c = id[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
				(c >= 'A' && c <= 'Z') || c == '-' || c == '_')) {
			return false;
		}
	}
	return true;
}

static bool peer_is_valid(const char *peer) {
	return peer && peer[0] && strlen(peer) <= HISTORY_PEER_MAX;
}

/* Returns cached statement @id with @text bound to ?1. */
static int stmt_get_bound(History *h, Statement id, const char *text, sqlite3_stmt **ret) {
	sqlite3_stmt *s = NULL;
	int r;

	r = stmt_get(h, id, &s);
	if (r < 0) {
		return r;
	}
	r = bind_text(h, s, 1, text);
	if (r < 0) {
		stmt_resetp(&s);
		return r;
	}
	*ret = s;
	return 0;
}

/* Returns cached statement @id with a valid @peer bound to ?1. */
static int stmt_get_peer(History *h, Statement id, const char *peer, sqlite3_stmt **ret) {
	if (!peer_is_valid(peer)) {
		return -EINVAL;
	}
	return stmt_get_bound(h, id, peer, ret);
}

static bool text_is_valid(const char *text) {
	return text && strlen(text) <= HISTORY_TEXT_MAX;
}

void history_message_done(HistoryMessage *m) {
	m->id = mfree(m->id);
	m->peer = mfree(m->peer);
	m->text = mfree(m->text);
}

void history_list_done(HistoryList *l) {
	if (!l) {
		return;
	}
	for (size_t i = 0; i < l->n; i++) {
		history_message_done(&l->messages[i]);
	}
	l->messages = mfree(l->messages);
	l->n = 0;
}

static void history_list_donep(HistoryList *l) {
	history_list_done(l);
}

static char *column_strdup(sqlite3_stmt *s, int i) {
	const unsigned char *t = sqlite3_column_text(s, i);

	return strdup(t ? (const char *) t : "");
}

/* Reads a row of COLUMNS into @ret. */
static int message_from_row(sqlite3_stmt *s, HistoryMessage *ret) {
	_cleanup_(history_message_done) HistoryMessage m = {};
	HistoryDirection d;
	HistoryState st;

	d = direction_from_string((const char *) sqlite3_column_text(s, 2));
	st = history_state_from_string((const char *) sqlite3_column_text(s, 6));
	if (d < 0 || st < 0) {
		return -EBADMSG;
	}

	m.id = column_strdup(s, 0);
	m.peer = column_strdup(s, 1);
	m.text = column_strdup(s, 3);
	if (!m.id || !m.peer || !m.text) {
		return -ENOMEM;
	}
	m.direction = d;
	m.sent_usec = (uint64_t) MAX(sqlite3_column_int64(s, 4), 0);
	m.received_usec = (uint64_t) MAX(sqlite3_column_int64(s, 5), 0);
	m.state = st;
	if (sqlite3_column_type(s, 7) != SQLITE_NULL) {
		const void *k = sqlite3_column_blob(s, 7);

		if (!k || sqlite3_column_bytes(s, 7) != HISTORY_PEER_KEY_SIZE) {
			return -EBADMSG;
		}
		memcpy(m.peer_key, k, HISTORY_PEER_KEY_SIZE);
		m.has_peer_key = true;
	}

	*ret = m;
	m = (HistoryMessage) {};
	return 0;
}

/* Steps @s to the end and collects every row into @ret. */
static int collect_rows(History *h, sqlite3_stmt *s, HistoryList *ret) {
	_cleanup_(history_list_donep) HistoryList l = {};

	for (;;) {
		int rc = sqlite3_step(s);
		HistoryMessage *a;
		int r;

		if (rc == SQLITE_DONE) {
			break;
		}
		if (rc != SQLITE_ROW) {
			return history_error(h, rc, sqlite3_sql(s));
		}

		a = reallocarray(l.messages, l.n + 1, sizeof(HistoryMessage));
		if (!a) {
			return -ENOMEM;
		}
		l.messages = a;

		r = message_from_row(s, &l.messages[l.n]);
		if (r < 0) {
			return r;
		}
		l.n++;
	}

	*ret = l;
	l = (HistoryList) {};
	return 0;
}

static int exec_sql(History *h, const char *sql) {
	int rc = sqlite3_exec(h->db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK) {
		return history_error(h, rc, sql);
	}
	return 0;
}

static int pragma_int(History *h, const char *sql, int *ret) {
	_cleanup_(stmt_finalizep) sqlite3_stmt *s = NULL;
	int rc;

	rc = sqlite3_prepare_v2(h->db, sql, -1, &s, NULL);
	if (rc != SQLITE_OK) {
		return history_error(h, rc, sql);
	}
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		return history_error(h, rc, sql);
	}
	*ret = sqlite3_column_int(s, 0);
	return 0;
}

int history_schema_version(History *h) {
	int v = 0, r;

	assert(h);

	r = pragma_int(h, "PRAGMA user_version", &v);
	if (r < 0) {
		return r;
	}
	return v;
}

int history_schema_version_latest(void) {
	return (int) ELEMENTSOF(migrations);
}

static int migrate(History *h) {
	int version;

	version = history_schema_version(h);
	if (version < 0) {
		return version;
	}
	if (version > history_schema_version_latest()) {
		log_debug("history: schema version %d is newer than %d", version,
				history_schema_version_latest());
		return -EPROTONOSUPPORT;
	}

	for (int v = version; v < history_schema_version_latest(); v++) {
		_cleanup_free_ char *bump = NULL;
		int r;

		if (asprintf(&bump, "PRAGMA user_version = %d", v + 1) < 0) {
			return -ENOMEM;
		}

		r = exec_sql(h, "BEGIN IMMEDIATE");
		if (r < 0) {
			return r;
		}
		r = exec_sql(h, migrations[v]);
		if (r >= 0) {
			r = exec_sql(h, bump);
		}
		if (r >= 0) {
			r = exec_sql(h, "COMMIT");
		}
		if (r < 0) {
			(void) sqlite3_exec(h->db, "ROLLBACK", NULL, NULL, NULL);
			return r;
		}
		log_debug("history: migrated schema to version %d", v + 1);
	}

	return 0;
}

int history_default_path(char **ret) {
	return xdg_build_path(XDG_DIR_DATA, "history.db", true, ret);
}

History *history_free(History *h) {
	int r;

	if (!h) {
		return NULL;
	}
	r = history_commit(h);
	if (r < 0) {
		log_warning_errno(r, "history: failed to commit the last writes: %m");
	}
	for (size_t i = 0; i < _STMT_MAX; i++) {
		(void) sqlite3_finalize(h->stmts[i]);
	}
	(void) sqlite3_close_v2(h->db);
	return mfree(h);
}

int history_open(const char *path, History **ret) {
	_cleanup_(history_freep) History *h = NULL;
	int persist_wal, rc, r;

	assert(path);
	assert(ret);

	h = calloc(1, sizeof(History));
	if (!h) {
		return -ENOMEM;
	}

	rc = sqlite3_open_v2(path, &h->db,
			SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		if (!h->db) {
			return -ENOMEM;
		}
		return history_error(h, rc, "open");
	}
	(void) sqlite3_extended_result_codes(h->db, 1);
	/*
	 * SQLite opens a file it may not write read-only without a word, and
	 * the first write would fail: say it now, before anything is promised.
	 */
	if (sqlite3_db_readonly(h->db, "main") == 1) {
		return -EROFS;
	}
	/*
	 * Until the file proved to be a database of ours, a connection closed
	 * after a failure must not delete its WAL, as SQLite does by default:
	 * the caller may set the set aside (history_move_aside()), whole.
	 */
	persist_wal = 1;
	(void) sqlite3_file_control(h->db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist_wal);

	rc = sqlite3_busy_timeout(h->db, 5000);
	if (rc != SQLITE_OK) {
		return history_error(h, rc, "busy_timeout");
	}

	/* journal_mode answers with the mode it got; anything but "wal" is an error. */
	{
		_cleanup_(stmt_finalizep) sqlite3_stmt *s = NULL;

		rc = sqlite3_prepare_v2(h->db, "PRAGMA journal_mode = WAL", -1, &s, NULL);
		if (rc == SQLITE_OK) {
			rc = sqlite3_step(s);
		}
		if (rc != SQLITE_ROW) {
			return history_error(h, rc, "journal_mode");
		}
		if (!streq_ptr((const char *) sqlite3_column_text(s, 0), "wal")) {
			return -EOPNOTSUPP;
		}
	}

	r = exec_sql(h, "PRAGMA synchronous = NORMAL");
	if (r < 0) {
		return r;
	}

	r = migrate(h);
	if (r < 0) {
		return r;
	}
	persist_wal = 0;
	(void) sqlite3_file_control(h->db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist_wal);

	*ret = TAKE_PTR(h);
	return 0;
}

/* Renames @from to @to, never over an existing file. */
static int rename_noreplace(const char *from, const char *to) {
	if (access(to, F_OK) == 0) {
		return -EEXIST;
	}
	if (rename(from, to) < 0) {
		return -errno;
	}
	return 0;
}

int history_move_aside(const char *path, uint64_t now_usec, char **ret_path) {
	static const char *const suffixes[] = { "-wal", "-shm", "" };
	_cleanup_free_ char *aside = NULL;
	char date[32];
	time_t t = (time_t) (now_usec / 1000000);
	struct tm tm;
	size_t done = 0;
	int r = 0;

	assert(path);
	assert(ret_path);

	if (!gmtime_r(&t, &tm) || strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
		return -EINVAL;
	}
	if (asprintf(&aside, "%s.corrupt-%s", path, date) < 0) {
		return -ENOMEM;
	}
	/*
	 * The WAL first: a new database next to the old WAL would take the old
	 * pages back in.  The main file last, so that the database is never
	 * moved without its WAL.
	 */
	for (; done < ELEMENTSOF(suffixes); done++) {
		_cleanup_free_ char *from = NULL, *to = NULL;

		if (asprintf(&from, "%s%s", path, suffixes[done]) < 0 ||
				asprintf(&to, "%s%s", aside, suffixes[done]) < 0) {
			r = -ENOMEM;
			break;
		}
		r = rename_noreplace(from, to);
		if (r == -ENOENT && suffixes[done][0] != '\0') {
			r = 0; /* no WAL, or no shared memory file */
		}
		if (r < 0) {
			break;
		}
	}
	if (r < 0) {
		/* Put back what was moved: the set stays together. */
		while (done > 0) {
			_cleanup_free_ char *from = NULL, *to = NULL;

			done--;
			if (asprintf(&from, "%s%s", aside, suffixes[done]) >= 0 &&
					asprintf(&to, "%s%s", path, suffixes[done]) >= 0) {
				(void) rename(from, to);
			}
		}
		return r;
	}
	*ret_path = TAKE_PTR(aside);
	return 0;
}

int history_check_integrity(History *h) {
	_cleanup_(stmt_finalizep) sqlite3_stmt *s = NULL;
	int rc;

	assert(h);

	rc = sqlite3_prepare_v2(h->db, "PRAGMA integrity_check", -1, &s, NULL);
	if (rc != SQLITE_OK) {
		return history_error(h, rc, "integrity_check");
	}
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		return history_error(h, rc, "integrity_check");
	}
	if (!streq_ptr((const char *) sqlite3_column_text(s, 0), "ok")) {
		log_debug("history: integrity_check: %s", sqlite3_column_text(s, 0));
		return -EBADMSG;
	}
	return 0;
}

/* The batch's transaction is gone: SQLite rolled it back after an error. */
static int batch_lost(History *h, int r) {
	h->in_batch = false;
	h->fts_from = 0;
	h->need_sync = false;
	h->n_writes = 0;
	if (h->batching) {
		h->error = r < 0 ? r : -EIO;
		log_debug("history: the batch was rolled back: %s", strerror(-h->error));
	}
	return r < 0 ? r : -EIO;
}

static void rollback(History *h) {
	if (!sqlite3_get_autocommit(h->db)) {
		(void) exec_simple(h, STMT_ROLLBACK);
	}
	h->in_batch = false;
	h->fts_from = 0;
	h->need_sync = false;
	h->n_writes = 0;
}

/* Before a write: opens the transaction (the batch's, or the write's own). */
static int write_begin(History *h) {
	int r;

	if (h->error < 0) {
		return h->error;
	}
	if (h->in_batch) {
		return sqlite3_get_autocommit(h->db) ? batch_lost(h, -EIO) : 0;
	}
	r = exec_simple(h, STMT_BEGIN);
	if (r < 0) {
		return r;
	}
	h->in_batch = true;
	return 0;
}

/* A message was inserted: it goes into the full-text index before the commit. */
static void fts_note_insert(History *h) {
	if (h->fts_from == 0) {
		h->fts_from = sqlite3_last_insert_rowid(h->db);
	}
}

/* Adds the messages inserted in the open transaction to the full-text index. */
static int fts_catch_up(History *h) {
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	if (h->fts_from == 0) {
		return 0;
	}
	r = stmt_get(h, STMT_FTS_INDEX, &s);
	if (r < 0) {
		return r;
	}
	r = bind_int64(h, s, 1, (uint64_t) h->fts_from);
	if (r < 0) {
		return r;
	}
	r = stmt_exec(h, s);
	if (r < 0) {
		return r;
	}
	h->fts_from = 0;
	return 0;
}

/* fsyncs the WAL: every commit so far is durable once this returned 0. */
static int sync_wal(History *h) {
	sqlite3_file *f = NULL;
	int rc;

	rc = sqlite3_file_control(h->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &f);
	if (rc != SQLITE_OK) {
		return history_error(h, rc, "journal pointer");
	}
	if (!f || !f->pMethods) {
		log_debug("history: no WAL file to sync");
		return -EIO;
	}
	rc = f->pMethods->xSync(f, SQLITE_SYNC_NORMAL);
	if (rc != SQLITE_OK) {
		log_debug("history: syncing the WAL failed (%d)", rc);
		return sqlite_to_errno(NULL, rc);
	}
	return 0;
}

int history_commit(History *h) {
	bool need_sync;
	int r;

	assert(h);

	if (h->error < 0) {
		r = h->error;
		h->error = 0;
		rollback(h);
		return r;
	}
	if (!h->in_batch) {
		return 0;
	}
	if (sqlite3_get_autocommit(h->db)) {
		r = batch_lost(h, -EIO);
		h->error = 0;
		return r;
	}
	need_sync = h->need_sync || h->sync_owed;
	r = fts_catch_up(h);
	if (r >= 0) {
		r = exec_simple(h, STMT_COMMIT);
	}
	if (r < 0) {
		rollback(h);
		return r;
	}
	h->in_batch = false;
	h->need_sync = false;
	h->n_writes = 0;
	if (!need_sync) {
		return 0;
	}

	/*
	 * After a failed barrier the commits before it are in the WAL but not
	 * durable, and a batch without a promise may still rely on them: a
	 * retransmission of a message they hold is acked again after it.  So
	 * the next commit is a barrier too, until one succeeds.
	 */
	r = sync_wal(h);
	h->sync_owed = r < 0;
	return r;
}

/*
 * After a write that returned @r: counts it in the batch, or, without
 * batching, commits it (or rolls it back on an error).
 */
static int write_end(History *h, int r, WriteFlags flags) {
	int q;

	if (sqlite3_get_autocommit(h->db)) {
		return batch_lost(h, r);
	}
	if (r < 0) {
		if (!h->batching) {
			rollback(h);
		} else if (flags & WRITE_MULTI) {
			/* Part of it may be written: nothing of the batch may stay. */
			rollback(h);
			h->error = r;
		}
		/* else: SQLite undid the one failed statement, the batch is intact. */
		return r;
	}
	h->n_writes++;
	if (flags & WRITE_DURABLE) {
		h->need_sync = true;
	}
	if (h->batching) {
		return r;
	}
	q = history_commit(h);
	return q < 0 ? q : r;
}

void history_set_batching(History *h, bool on) {
	assert(h);

	h->batching = on;
}

unsigned history_batch_size(History *h) {
	assert(h);

	return h->n_writes;
}

/* On a duplicate id: 0 when it is the same peer's incoming message, else -EEXIST. */
static int check_duplicate(History *h, const char *id, const char *peer) {
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int rc, r;

	r = stmt_get_bound(h, STMT_FIND_ID, id, &s);
	if (r < 0) {
		return r;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		return -EIO; /* the insert saw a row that is gone: cannot happen */
	}
	if (rc != SQLITE_ROW) {
		return history_error(h, rc, "find id");
	}
	if (!streq_ptr((const char *) sqlite3_column_text(s, 0), peer) ||
			!streq_ptr((const char *) sqlite3_column_text(s, 1), "in")) {
		return -EEXIST;
	}
	return 0;
}

static int insert_incoming(History *h, const char *id, const char *peer, const char *text,
		uint64_t sent_usec, uint64_t received_usec) {
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	r = stmt_get(h, STMT_INSERT_IN, &s);
	if (r < 0) {
		return r;
	}
	if ((r = bind_text(h, s, 1, id)) < 0 || (r = bind_text(h, s, 2, peer)) < 0 ||
			(r = bind_text(h, s, 3, text)) < 0 ||
			(r = bind_int64(h, s, 4, sent_usec)) < 0 ||
			(r = bind_int64(h, s, 5, received_usec)) < 0) {
		return r;
	}
	r = stmt_exec(h, s);
	if (r < 0) {
		return r;
	}
	if (sqlite3_changes(h->db) == 1) {
		fts_note_insert(h);
		return 1;
	}

	return check_duplicate(h, id, peer);
}

int history_add_incoming(History *h, const char *id, const char *peer, const char *text,
		uint64_t sent_usec, uint64_t received_usec) {
	int r;

	assert(h);

	if (!id_is_valid(id) || !peer_is_valid(peer) || !text_is_valid(text) ||
			sent_usec > INT64_MAX || received_usec > INT64_MAX) {
		return -EINVAL;
	}

	r = write_begin(h);
	if (r < 0) {
		return r;
	}
	r = insert_incoming(h, id, peer, text, sent_usec, received_usec);
	return write_end(h, r, r > 0 ? WRITE_DURABLE : 0);
}

/* Runs count statement @id for a valid @peer; returns the count (clamped). */
static int count_for_peer(History *h, Statement id, const char *peer) {
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int64_t n;
	int r;

	r = stmt_get_peer(h, id, peer, &s);
	if (r < 0) {
		return r;
	}
	r = query_int(h, s, &n);
	if (r < 0) {
		return r;
	}
	return (int) MIN(n, (int64_t) INT_MAX);
}

static int insert_outgoing(History *h, const char *id, const char *peer, const char *text,
		uint64_t sent_usec, const uint8_t *peer_key, HistoryState state) {
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	r = count_for_peer(h, STMT_COUNT_PENDING, peer);
	if (r < 0) {
		return r;
	}
	if ((unsigned) r >= HISTORY_QUEUE_MAX) {
		return -ENOBUFS;
	}

	r = stmt_get(h, STMT_INSERT_OUT, &s);
	if (r < 0) {
		return r;
	}
	if ((r = bind_text(h, s, 1, id)) < 0 || (r = bind_text(h, s, 2, peer)) < 0 ||
			(r = bind_text(h, s, 3, text)) < 0 ||
			(r = bind_int64(h, s, 4, sent_usec)) < 0 ||
			(r = bind_text(h, s, 5, state_table[state])) < 0 ||
			(r = bind_blob(h, s, 6, peer_key, HISTORY_PEER_KEY_SIZE)) < 0) {
		return r;
	}
	r = stmt_exec(h, s);
	if (r < 0) {
		return r;
	}
	fts_note_insert(h);
	return 0;
}

int history_add_outgoing(History *h, const char *id, const char *peer, const char *text,
		uint64_t sent_usec, const uint8_t *peer_key) {
	return history_add_outgoing_as(h, id, peer, text, sent_usec, peer_key,
			HISTORY_STATE_QUEUED);
}

int history_add_outgoing_as(History *h, const char *id, const char *peer, const char *text,
		uint64_t sent_usec, const uint8_t *peer_key, HistoryState state) {
	int r;

	assert(h);

	if (!id_is_valid(id) || !peer_is_valid(peer) || !text_is_valid(text) ||
			sent_usec > INT64_MAX ||
			(state != HISTORY_STATE_QUEUED && state != HISTORY_STATE_SENT)) {
		return -EINVAL;
	}

	/* The count and the insert are in one transaction, so the limit holds. */
	r = write_begin(h);
	if (r < 0) {
		return r;
	}
	return write_end(h, insert_outgoing(h, id, peer, text, sent_usec, peer_key, state),
			WRITE_DURABLE);
}

int history_set_message_key(History *h, const char *id,
		const uint8_t key[HISTORY_PEER_KEY_SIZE]) {
	int r;

	assert(h);
	assert(key);

	if (!id_is_valid(id)) {
		return -ENOENT;
	}

	r = write_begin(h);
	if (r < 0) {
		return r;
	}
	{
		_cleanup_stmt_ sqlite3_stmt *s = NULL;

		r = stmt_get_bound(h, STMT_SET_MESSAGE_KEY, id, &s);
		if (r >= 0) {
			r = bind_blob(h, s, 2, key, HISTORY_PEER_KEY_SIZE);
		}
		if (r >= 0) {
			r = stmt_exec(h, s);
		}
		if (r >= 0) {
			r = sqlite3_changes(h->db);
		}
	}
	/* Where a queued message may go is a promise like the message itself. */
	r = write_end(h, r, WRITE_DURABLE);
	if (r < 0) {
		return r;
	}
	return r > 0 ? 0 : -ENOENT;
}

int history_get_peer_key(History *h, const char *peer, HistoryPeerKey *ret) {
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	const void *k;
	int rc, r;

	assert(h);
	assert(ret);

	r = stmt_get_peer(h, STMT_GET_PEER_KEY, peer, &s);
	if (r < 0) {
		return r;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		return 0;
	}
	if (rc != SQLITE_ROW) {
		return history_error(h, rc, "get peer key");
	}
	k = sqlite3_column_blob(s, 0);
	if (!k || sqlite3_column_bytes(s, 0) != HISTORY_PEER_KEY_SIZE) {
		return -EBADMSG;
	}
	memcpy(ret->key, k, HISTORY_PEER_KEY_SIZE);
	ret->verified = sqlite3_column_int64(s, 1) != 0;
	ret->pinned_usec = (uint64_t) MAX(sqlite3_column_int64(s, 2), 0);
	return 1;
}

/* Pins @key for @peer; on the first pin, binds the peer's unkeyed outgoing messages. */
static int set_peer_key(History *h, const char *peer, const uint8_t *key, bool verified,
		uint64_t now_usec, bool first, bool *ret_multi) {
	int r;

	{
		_cleanup_stmt_ sqlite3_stmt *s = NULL;

		r = stmt_get_bound(h, STMT_SET_PEER_KEY, peer, &s);
		if (r < 0) {
			return r;
		}
		if ((r = bind_blob(h, s, 2, key, HISTORY_PEER_KEY_SIZE)) < 0 ||
				(r = bind_int64(h, s, 3, verified)) < 0 ||
				(r = bind_int64(h, s, 4, now_usec)) < 0) {
			return r;
		}
		r = stmt_exec(h, s);
		if (r < 0) {
			return r;
		}
	}
	if (!first) {
		return 0;
	}

	/*
	 * Messages queued before any key of the peer was known go to the
	 * first key pinned, and to no other.  In the same transaction as the
	 * pin, so that no commit holds the one without the other.
	 */
	*ret_multi = true;
	{
		_cleanup_stmt_ sqlite3_stmt *s = NULL;

		r = stmt_get_bound(h, STMT_BIND_UNKEYED, peer, &s);
		if (r < 0) {
			return r;
		}
		r = bind_blob(h, s, 2, key, HISTORY_PEER_KEY_SIZE);
		if (r < 0) {
			return r;
		}
		r = stmt_exec(h, s);
		if (r < 0) {
			return r;
		}
		if (sqlite3_changes(h->db) > 0) {
			log_debug("history: bound %d queued message(s) to the first key of '%s'",
					sqlite3_changes(h->db), peer);
		}
	}
	return 0;
}

int history_set_peer_key(History *h, const char *peer,
		const uint8_t key[HISTORY_PEER_KEY_SIZE], bool verified, uint64_t now_usec) {
	HistoryPeerKey old = {};
	bool multi = false, first, changed;
	int r;

	assert(h);
	assert(key);

	if (!peer_is_valid(peer) || now_usec > INT64_MAX) {
		return -EINVAL;
	}

	r = history_get_peer_key(h, peer, &old);
	if (r < 0) {
		return r;
	}
	first = r == 0;
	changed = first || memcmp(old.key, key, HISTORY_PEER_KEY_SIZE) != 0;
	if (!changed && old.verified == verified) {
		return 0;
	}

	r = write_begin(h);
	if (r < 0) {
		return r;
	}
	r = set_peer_key(h, peer, key, verified, now_usec, first, &multi);
	/* A pin is a promise: it decides where messages may go. */
	r = write_end(h, r, WRITE_DURABLE | (multi ? WRITE_MULTI : 0));
	if (r < 0) {
		return r;
	}
	return changed;
}

int history_set_peer_verified(History *h, const char *peer, bool verified) {
	int r;

	assert(h);

	if (!peer_is_valid(peer)) {
		return -EINVAL;
	}

	r = write_begin(h);
	if (r < 0) {
		return r;
	}
	{
		_cleanup_stmt_ sqlite3_stmt *s = NULL;

		r = stmt_get_bound(h, STMT_SET_PEER_VERIFIED, peer, &s);
		if (r >= 0) {
			r = bind_int64(h, s, 2, verified);
		}
		if (r >= 0) {
			r = stmt_exec(h, s);
		}
		if (r >= 0) {
			r = sqlite3_changes(h->db);
		}
	}
	r = write_end(h, r, WRITE_DURABLE);
	if (r < 0) {
		return r;
	}
	return r > 0 ? 0 : -ENOENT;
}

int history_get_message(History *h, const char *id, HistoryMessage *ret) {
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int rc, r;

	assert(h);
	assert(ret);

	if (!id_is_valid(id)) {
		return -ENOENT;
	}
	r = stmt_get_bound(h, STMT_GET_MESSAGE, id, &s);
	if (r < 0) {
		return r;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		return -ENOENT;
	}
	if (rc != SQLITE_ROW) {
		return history_error(h, rc, "get message");
	}
	return message_from_row(s, ret);
}

/* Compare-and-set: moves @id from @from to @to; returns the rows changed. */
static int update_state(History *h, const char *id, HistoryState from, HistoryState to) {
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	r = stmt_get(h, STMT_UPDATE_STATE, &s);
	if (r < 0) {
		return r;
	}
	if ((r = bind_text(h, s, 1, id)) < 0 ||
			(r = bind_text(h, s, 2, state_table[to])) < 0 ||
			(r = bind_text(h, s, 3, state_table[from])) < 0) {
		return r;
	}
	r = stmt_exec(h, s);
	if (r < 0) {
		return r;
	}
	return sqlite3_changes(h->db);
}

int history_set_state(History *h, const char *id, HistoryState state) {
	_cleanup_(history_message_done) HistoryMessage m = {};
	int r;

	assert(h);

	if (state < 0 || state >= _HISTORY_STATE_MAX) {
		return -EINVAL;
	}

	r = history_get_message(h, id, &m);
	if (r < 0) {
		return r;
	}
	if (m.state == state) {
		return 0;
	}
	if (!(allowed[m.direction][m.state] & (1u << state))) {
		return -EPERM;
	}

	r = write_begin(h);
	if (r < 0) {
		return r;
	}
	r = update_state(h, id, m.state, state);
	/* Not a promise: see "Not every write is a promise" at the top. */
	r = write_end(h, r, m.direction == HISTORY_DIRECTION_OUT &&
			(state == HISTORY_STATE_SENT || state == HISTORY_STATE_DELIVERED) ?
			0 : WRITE_DURABLE);
	if (r < 0) {
		return r;
	}
	return r > 0 ? 1 : -EAGAIN;
}

int history_list_queued(History *h, const char *peer, HistoryList *ret) {
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	assert(h);
	assert(ret);

	r = stmt_get_peer(h, STMT_LIST_QUEUED, peer, &s);
	if (r < 0) {
		return r;
	}
	r = bind_int64(h, s, 2, HISTORY_QUEUE_MAX);
	if (r < 0) {
		return r;
	}
	return collect_rows(h, s, ret);
}

int history_has_queued(History *h, const char *peer) {
	int r;

	assert(h);

	r = count_for_peer(h, STMT_HAS_QUEUED, peer);
	return r < 0 ? r : r > 0;
}

int history_requeue_sent(History *h) {
	int r;

	assert(h);

	r = write_begin(h);
	if (r < 0) {
		return r;
	}
	r = exec_simple(h, STMT_REQUEUE);
	return write_end(h, r < 0 ? r : sqlite3_changes(h->db), WRITE_DURABLE);
}

/* Runs statement @id with @text bound to ?1 as one write; returns the rows changed. */
static int write_bound(History *h, Statement id, const char *text) {
	int r;

	r = write_begin(h);
	if (r < 0) {
		return r;
	}
	{
		_cleanup_stmt_ sqlite3_stmt *s = NULL;

		r = stmt_get_bound(h, id, text, &s);
		if (r >= 0) {
			r = stmt_exec(h, s);
		}
		if (r >= 0) {
			r = sqlite3_changes(h->db);
		}
	}
	return write_end(h, r, WRITE_DURABLE);
}

int history_set_sent_final(History *h, const char *id) {
	int r;

	assert(h);

	if (!id_is_valid(id)) {
		return -ENOENT;
	}
	r = write_bound(h, STMT_SENT_FINAL, id);
	if (r < 0) {
		return r;
	}
	return r > 0 ? 0 : -ENOENT;
}

/* Steps @s to the end and collects column 0 of every row. */
static int collect_strings(History *h, sqlite3_stmt *s, char ***ret) {
	char **l = NULL;
	size_t n = 0;
	int r;

	for (;;) {
		int rc = sqlite3_step(s);
		char **a;

		if (rc == SQLITE_DONE) {
			break;
		}
		if (rc != SQLITE_ROW) {
			r = history_error(h, rc, sqlite3_sql(s));
			goto fail;
		}
		a = reallocarray(l, n + 2, sizeof(char *));
		if (!a) {
			r = -ENOMEM;
			goto fail;
		}
		l = a;
		l[n] = column_strdup(s, 0);
		if (!l[n]) {
			r = -ENOMEM;
			goto fail;
		}
		l[++n] = NULL;
	}
	if (!l) {
		l = calloc(1, sizeof(char *));
		if (!l) {
			return -ENOMEM;
		}
	}
	*ret = l;
	return (int) MIN(n, (size_t) INT_MAX);

fail:
	history_strv_free(l);
	return r;
}

int history_list_queued_peers(History *h, char ***ret) {
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	assert(h);
	assert(ret);

	r = stmt_get(h, STMT_QUEUED_PEERS, &s);
	if (r < 0) {
		return r;
	}
	return collect_strings(h, s, ret);
}

int history_list_unread(History *h, const char *peer, char ***ret) {
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	assert(h);
	assert(ret);

	r = stmt_get_peer(h, STMT_LIST_UNREAD, peer, &s);
	if (r < 0) {
		return r;
	}
	return collect_strings(h, s, ret);
}

char **history_strv_free(char **l) {
	if (!l) {
		return NULL;
	}
	for (char **i = l; *i; i++) {
		free(*i);
	}
	return mfree(l);
}

int history_oldest_pending(History *h, uint64_t *ret_usec) {
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int64_t v;
	int r;

	assert(h);
	assert(ret_usec);

	r = stmt_get(h, STMT_OLDEST_PENDING, &s);
	if (r < 0) {
		return r;
	}
	r = query_int(h, s, &v);
	if (r < 0) {
		return r;
	}
	*ret_usec = (uint64_t) MAX(v, 0);
	return 0;
}

static int expire_locked(History *h, uint64_t cutoff, HistoryList *ret) {
	_cleanup_(history_list_donep) HistoryList l = {};
	int r;

	{
		_cleanup_stmt_ sqlite3_stmt *s = NULL;

		r = stmt_get(h, STMT_LIST_EXPIRED, &s);
		if (r < 0) {
			return r;
		}
		if ((r = bind_int64(h, s, 1, cutoff)) < 0 ||
				(r = bind_int64(h, s, 2, HISTORY_LIMIT_MAX)) < 0) {
			return r;
		}
		r = collect_rows(h, s, &l);
		if (r < 0) {
			return r;
		}
	}

	for (size_t i = 0; i < l.n; i++) {
		r = update_state(h, l.messages[i].id, l.messages[i].state, HISTORY_STATE_FAILED);
		if (r < 0) {
			return r;
		}
		l.messages[i].state = HISTORY_STATE_FAILED;
	}

	*ret = l;
	l = (HistoryList) {};
	return (int) ret->n;
}

int history_expire(History *h, uint64_t now_usec, uint64_t max_age_usec, HistoryList *ret) {
	HistoryList l = {};
	int r;

	assert(h);
	assert(ret);

	if (now_usec > INT64_MAX) {
		return -EINVAL;
	}

	r = write_begin(h);
	if (r < 0) {
		return r;
	}
	r = expire_locked(h, now_usec > max_age_usec ? now_usec - max_age_usec : 0, &l);
	r = write_end(h, r, WRITE_DURABLE | WRITE_MULTI);
	if (r < 0) {
		history_list_done(&l);
		return r;
	}

	*ret = l;
	return (int) l.n;
}

int history_get(History *h, const char *peer, unsigned limit, const char *before_id,
		HistoryList *ret) {
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	bool before = before_id && before_id[0];
	int64_t seq = 0;
	int r;

	assert(h);
	assert(ret);

	if (!peer_is_valid(peer)) {
		return -EINVAL;
	}
	limit = MIN(limit, HISTORY_LIMIT_MAX);

	if (before) {
		_cleanup_stmt_ sqlite3_stmt *q = NULL;

		if (!id_is_valid(before_id)) {
			return -ENOENT;
		}
		r = stmt_get(h, STMT_SEQ_OF, &q);
		if (r < 0) {
			return r;
		}
		if ((r = bind_text(h, q, 1, before_id)) < 0 || (r = bind_text(h, q, 2, peer)) < 0) {
			return r;
		}
		r = query_int(h, q, &seq);
		if (r < 0) {
			return r;
		}
	}

	r = stmt_get(h, before ? STMT_GET_BEFORE : STMT_GET_LATEST, &s);
	if (r < 0) {
		return r;
	}
	if ((r = bind_text(h, s, 1, peer)) < 0 || (r = bind_int64(h, s, 2, limit)) < 0) {
		return r;
	}
	if (before) {
		r = bind_int64(h, s, 3, (uint64_t) seq);
		if (r < 0) {
			return r;
		}
	}
	return collect_rows(h, s, ret);
}

static size_t utf8_chars(const char *s) {
	size_t n = 0;

	for (; *s; s++) {
		if (((unsigned char) *s & 0xc0) != 0x80) {
			n++;
		}
	}
	return n;
}

/*
 * Returns @q between two @wrap characters, with @escape put before each
 * character of @specials.  Makes user text literal for FTS5 ("…" with inner
 * quotes doubled: a phrase, never operators) and for LIKE (%…% with %, _
 * and \ escaped).
 */
static char *quote_literal(const char *q, char wrap, const char *specials, char escape) {
	char *buf, *p;

	buf = malloc(strlen(q) * 2 + 3);
	if (!buf) {
		return NULL;
	}
	p = buf;
	*p++ = wrap;
	for (; *q; q++) {
		if (strchr(specials, *q)) {
			*p++ = escape;
		}
		*p++ = *q;
	}
	*p++ = wrap;
	*p = '\0';
	return buf;
}

int history_search(History *h, const char *query, unsigned limit, HistoryList *ret) {
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	_cleanup_free_ char *pattern = NULL;
	bool fts;
	int r;

	assert(h);
	assert(ret);

	if (!query || !query[0] || strlen(query) > HISTORY_QUERY_MAX) {
		return -EINVAL;
	}
	limit = MIN(limit, HISTORY_LIMIT_MAX);

	/*
	 * The trigram index finds substrings of three characters or more;
	 * shorter text (a two-character CJK word, say) is looked for with
	 * LIKE, a scan of the table.
	 */
	fts = utf8_chars(query) >= 3;
	if (fts) {
		/* The open batch's messages too. */
		r = fts_catch_up(h);
		if (r < 0) {
			return r;
		}
	}
	pattern = fts ? quote_literal(query, '"', "\"", '"')
		      : quote_literal(query, '%', "%_\\", '\\');
	if (!pattern) {
		return -ENOMEM;
	}

	r = stmt_get(h, fts ? STMT_SEARCH_FTS : STMT_SEARCH_LIKE, &s);
	if (r < 0) {
		return r;
	}
	if ((r = bind_text(h, s, 1, pattern)) < 0 || (r = bind_int64(h, s, 2, limit)) < 0) {
		return r;
	}
	return collect_rows(h, s, ret);
}

int history_mark_read(History *h, const char *peer) {
	assert(h);

	if (!peer_is_valid(peer)) {
		return -EINVAL;
	}
	return write_bound(h, STMT_MARK_READ, peer);
}

int history_unread(History *h, const char *peer) {
	assert(h);

	return count_for_peer(h, STMT_UNREAD, peer);
}

void history_unread_list_done(HistoryUnreadList *l) {
	if (!l) {
		return;
	}
	for (size_t i = 0; i < l->n; i++) {
		free(l->peers[i].peer);
	}
	l->peers = mfree(l->peers);
	l->n = 0;
}

int history_unread_all(History *h, HistoryUnreadList *ret) {
	_cleanup_(history_unread_list_done) HistoryUnreadList l = {};
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	assert(h);
	assert(ret);

	r = stmt_get(h, STMT_UNREAD_ALL, &s);
	if (r < 0) {
		return r;
	}
	for (;;) {
		int rc = sqlite3_step(s);
		HistoryUnread *a;

		if (rc == SQLITE_DONE) {
			break;
		}
		if (rc != SQLITE_ROW) {
			return history_error(h, rc, sqlite3_sql(s));
		}
		a = reallocarray(l.peers, l.n + 1, sizeof(HistoryUnread));
		if (!a) {
			return -ENOMEM;
		}
		l.peers = a;
		l.peers[l.n].peer = column_strdup(s, 0);
		if (!l.peers[l.n].peer) {
			return -ENOMEM;
		}
		l.peers[l.n++].count = (unsigned) MIN(MAX(sqlite3_column_int64(s, 1), 0),
				(int64_t) UINT_MAX);
	}
	*ret = l;
	l = (HistoryUnreadList) {};
	return 0;
}

int history_has_peer(History *h, const char *peer) {
	int r;

	assert(h);

	r = count_for_peer(h, STMT_HAS_PEER, peer);
	return r < 0 ? r : r > 0;
}

void history_conversation_list_done(HistoryConversationList *l) {
	if (!l) {
		return;
	}
	for (size_t i = 0; i < l->n; i++) {
		history_message_done(&l->conversations[i].last);
	}
	l->conversations = mfree(l->conversations);
	l->n = 0;
}

int history_list_conversations(History *h, HistoryConversationList *ret) {
	_cleanup_(history_conversation_list_done) HistoryConversationList l = {};
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	assert(h);
	assert(ret);

	r = stmt_get(h, STMT_CONVERSATIONS, &s);
	if (r < 0) {
		return r;
	}
	r = bind_int64(h, s, 1, HISTORY_CONVERSATIONS_MAX);
	if (r < 0) {
		return r;
	}
	for (;;) {
		int rc = sqlite3_step(s);
		HistoryConversation *a;

		if (rc == SQLITE_DONE) {
			break;
		}
		if (rc != SQLITE_ROW) {
			return history_error(h, rc, sqlite3_sql(s));
		}
		a = reallocarray(l.conversations, l.n + 1, sizeof(HistoryConversation));
		if (!a) {
			return -ENOMEM;
		}
		l.conversations = a;
		r = message_from_row(s, &l.conversations[l.n].last);
		if (r < 0) {
			return r;
		}
		l.conversations[l.n++].unread = (unsigned) MIN(MAX(sqlite3_column_int64(s, 8), 0),
				(int64_t) UINT_MAX);
	}
	*ret = l;
	l = (HistoryConversationList) {};
	return 0;
}

unsigned history_unread_lookup(const HistoryUnreadList *l, const char *peer) {
	size_t lo = 0, hi = l->n;

	/* Sorted by ORDER BY peer: SQLite's BINARY collation is memcmp(), like strcmp(). */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(l->peers[mid].peer, peer);

		if (c == 0) {
			return l->peers[mid].count;
		}
		if (c < 0) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return 0;
}
