/* SPDX-License-Identifier: MIT */

/*
 * Framed TCP connections.  The owner creates each Connection with
 * connection_new() and it lives until connection_close(), called by the
 * owner or by the connection itself (end of stream, I/O error, bad frame,
 * drain timeout, doomed at a flush); either way on_close() tells the owner
 * just before the Connection is freed.  A connection owns its socket, its
 * event source, its frame decoder and its output buffers.  The pool lives
 * longer than every connection in it and owns none of them: a connection
 * sits in the pool's dirty list while it has output or a pending close, in
 * its held list while it keeps output buffers, and in its drain queue while
 * it closes.
 *
 * Output buffers are kept while a connection is busy, so that a storm of
 * pushes does not allocate and free them at every flush (large ones are
 * mmap()ed: each cycle costs page faults, munmap() and TLB flushes), and
 * released by connection_pool_release_idle() once a connection had nothing
 * to send for a housekeeping period, so that idle sessions hold none.
 *
 * With a cipher, the plaintext queued is sealed at the flush straight into
 * the pool's scratch buffer, a few transport messages at a time, and sent
 * from there: one encryption per message and no copy but the one into the
 * kernel.  Only what the kernel does not take is copied, into the
 * connection's sealed buffer, and nothing more is sealed until that is
 * written: a slow reader holds its plaintext (bounded by the output cap)
 * and at most one scratch of sealed bytes.
 */

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/noise-stream.h"
#include "coordinator/connection.h"
#include "coordinator/list.h"
#include "coordinator/timeout-queue.h"

/* Read at most this much per wakeup, so one connection cannot starve the rest. */
#define READ_BUDGET (64u * 1024u)
/* The address space an output buffer starts with (its pages are touched as used). */
#define BUFFER_MIN (64u * 1024u)
/* Sealed per send(): two whole transport messages with their length prefixes. */
#define SCRATCH_SIZE (2u * (NOISE_MAX_MESSAGE + 3u))

struct ConnectionPool {
	sd_event *event;
	size_t output_cap;
	size_t max_frame;
	ListNode dirty;            /* connections with output or a pending close */
	ListNode held;             /* connections that keep output buffers */
	TimeoutQueue drain_queue;  /* closing connections */
	size_t page_size;
	uint8_t *scratch;          /* SCRATCH_SIZE: messages sealed on their way out */
	bool scratch_used;         /* since the last connection_pool_release_idle() */
	size_t n_connections;
	uint64_t n_frames, n_reads, n_writes;
};

struct Connection {
	ConnectionPool *pool;      /* not owned */
	const ConnectionCallbacks *callbacks;
	void *userdata;
	ListNode dirty_node;       /* ConnectionPool.dirty */
	ListNode held_node;        /* ConnectionPool.held while out or sealed is allocated */
	TimeoutLink drain;         /* ConnectionPool.drain_queue while closing */
	int fd;
	sd_event_source *io;
	Endpoint peer;
	WireFrameDecoder decoder;  /* of what arrives: text, or binary Noise messages */
	uint8_t *out;              /* frames to send (their plaintext, with a cipher) */
	size_t out_start, out_end, out_cap;
	NoiseStream *cipher;       /* once the session's handshake is done */
	WireFrameDecoder inner;    /* with a cipher: the frames inside the messages */
	uint8_t *sealed;           /* with a cipher: sealed bytes the kernel did not take */
	size_t sealed_start, sealed_end, sealed_cap;
	const char *doomed;        /* why to close at the next flush, output and all */
	bool closing;              /* writes its last output, then waits for EOF */
	bool shut;                 /* SHUT_WR done */
	bool want_out;             /* EPOLLOUT is enabled */
	bool heard;                /* input since connection_take_heard() */
	bool used;                 /* output since the last connection_pool_release_idle() */
};

static void on_drain_timeout(TimeoutQueue *q, TimeoutLink *link, void *userdata) {
	connection_close(container_of(link, Connection, drain), "drain timeout");
}

int connection_pool_new(sd_event *event, size_t output_cap, size_t max_frame,
		uint64_t drain_timeout, ConnectionPool **ret) {
	_cleanup_(connection_pool_freep) ConnectionPool *pool = NULL;
	int r;

	pool = calloc(1, sizeof(ConnectionPool));
	if (!pool) {
		return -ENOMEM;
	}
	pool->event = sd_event_ref(event);
	pool->output_cap = output_cap;
	pool->max_frame = max_frame;
	list_head_init(&pool->dirty);
	list_head_init(&pool->held);
	pool->page_size = (size_t) sysconf(_SC_PAGESIZE);

	r = timeout_queue_init(&pool->drain_queue, event, drain_timeout, on_drain_timeout, pool);
	if (r < 0) {
		return r;
	}
	*ret = TAKE_PTR(pool);
	return 0;
}

ConnectionPool *connection_pool_free(ConnectionPool *pool) {
	if (!pool) {
		return NULL;
	}
	assert(pool->n_connections == 0);
	timeout_queue_done(&pool->drain_queue);
	free(pool->scratch);
	sd_event_unref(pool->event);
	free(pool);
	return NULL;
}

uint64_t connection_pool_get_n_frames(const ConnectionPool *pool) {
	return pool->n_frames;
}

uint64_t connection_pool_get_n_reads(const ConnectionPool *pool) {
	return pool->n_reads;
}

uint64_t connection_pool_get_n_writes(const ConnectionPool *pool) {
	return pool->n_writes;
}

/*
 * Output buffers are pages mapped for them alone, not heap: held for
 * seconds by thousands of busy sessions, heap buffers would leave the heap
 * fragmented around the sessions' long-lived objects once freed (idle
 * memory per user rose by a quarter).  A mapping goes back whole, and
 * grows by mremap(), without copying.
 */
static int buffer_reserve(const ConnectionPool *pool, uint8_t **buf, size_t *cap, size_t need) {
	size_t n;
	void *p;

	if (need <= *cap) {
		return 0;
	}
	/* Untouched pages cost nothing: start large, and mremap() (which
	 * flushes every CPU's TLB) only for large backlogs. */
	n = MAX(MAX(need, *cap * 2), (size_t) BUFFER_MIN);
	n = (n + pool->page_size - 1) / pool->page_size * pool->page_size;
	if (*buf) {
		p = mremap(*buf, *cap, n, MREMAP_MAYMOVE);
	} else {
		p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	}
	if (p == MAP_FAILED) {
		return -ENOMEM;
	}
	*buf = p;
	*cap = n;
	return 0;
}

static uint8_t *buffer_free(uint8_t *buf, size_t cap) {
	if (buf) {
		(void) munmap(buf, cap);
	}
	return NULL;
}

static void connection_mark_dirty(Connection *c) {
	if (!list_node_is_linked(&c->dirty_node)) {
		list_append(&c->pool->dirty, &c->dirty_node);
	}
}

static int on_connection_io(sd_event_source *source, int fd, uint32_t revents, void *userdata);

int connection_new(ConnectionPool *pool, int fd, const Endpoint *peer,
		const ConnectionCallbacks *callbacks, void *userdata, Connection **ret) {
	Connection *c;
	int r;

	c = calloc(1, sizeof(Connection));
	if (!c) {
		(void) safe_close(fd);
		return -ENOMEM;
	}
	c->pool = pool;
	c->callbacks = callbacks;
	c->userdata = userdata;
	c->fd = fd;
	c->peer = *peer;
	wire_frame_decoder_init(&c->decoder, pool->max_frame);
	pool->n_connections++;

	r = sd_event_add_io(pool->event, &c->io, fd, EPOLLIN, on_connection_io, c);
	if (r < 0) {
		c->callbacks = NULL;
		connection_close(c, NULL);
		return r;
	}
	*ret = c;
	return 0;
}

void connection_close(Connection *c, const char *why) {
	ConnectionPool *pool = c->pool;

	if (c->callbacks) {
		c->callbacks->on_close(c, why, c->userdata);
	}

	list_remove(&c->dirty_node);
	list_remove(&c->held_node);
	timeout_link_remove(&c->drain);
	pool->n_connections--;
	c->io = sd_event_source_disable_unref(c->io);
	(void) safe_close(c->fd);
	wire_frame_decoder_done(&c->decoder);
	wire_frame_decoder_done(&c->inner);
	noise_stream_free(c->cipher);
	buffer_free(c->out, c->out_cap);
	buffer_free(c->sealed, c->sealed_cap);
	free(c);
}

void connection_set_binary(Connection *c, size_t max) {
	wire_frame_decoder_set_binary(&c->decoder, max);
}

void connection_start_cipher(Connection *c, NoiseStream *cipher) {
	assert(!c->cipher && noise_stream_is_ready(cipher));
	c->cipher = cipher;
	wire_frame_decoder_init(&c->inner, c->pool->max_frame);
}

const Endpoint *connection_get_peer(const Connection *c) {
	return &c->peer;
}

void connection_doom(Connection *c, const char *why) {
	c->doomed = why;
	connection_mark_dirty(c);
}

bool connection_is_doomed(const Connection *c) {
	return !!c->doomed;
}

bool connection_take_heard(Connection *c) {
	bool heard = c->heard;

	c->heard = false;
	return heard;
}

static void connection_hold(Connection *c) {
	if (!list_node_is_linked(&c->held_node)) {
		list_append(&c->pool->held, &c->held_node);
	}
}

/* Frees the output buffers of @c, which are empty. */
static void connection_release(Connection *c) {
	assert(c->out_start == c->out_end && c->sealed_start == c->sealed_end);
	c->out = buffer_free(c->out, c->out_cap);
	c->out_start = c->out_end = c->out_cap = 0;
	c->sealed = buffer_free(c->sealed, c->sealed_cap);
	c->sealed_start = c->sealed_end = c->sealed_cap = 0;
	list_remove(&c->held_node);
}

bool connection_pool_release_idle(ConnectionPool *pool) {
	bool released = false;
	ListNode *n, *next;

	/* Only the connections holding buffers are visited, not every session. */
	for (n = pool->held.next; n != &pool->held; n = next) {
		Connection *c = container_of(n, Connection, held_node);

		next = n->next;
		if (c->used || c->out_start != c->out_end || c->sealed_start != c->sealed_end) {
			c->used = false;
			continue;
		}
		connection_release(c);
		released = true;
	}
	if (pool->scratch && !pool->scratch_used) {
		pool->scratch = mfree(pool->scratch);
		released = true;
	}
	pool->scratch_used = false;
	return released;
}

static int connection_reserve(Connection *c, size_t need) {
	size_t pending = c->out_end - c->out_start;

	if (pending + (c->sealed_end - c->sealed_start) + need > c->pool->output_cap) {
		return -ENOBUFS;
	}
	c->used = true;
	if (c->out_end + need <= c->out_cap) {
		return 0;
	}
	if (c->out_start > 0) {
		memmove(c->out, c->out + c->out_start, pending);
		c->out_start = 0;
		c->out_end = pending;
		if (c->out_end + need <= c->out_cap) {
			return 0;
		}
	}

	connection_hold(c);
	return buffer_reserve(c->pool, &c->out, &c->out_cap, pending + need);
}

/* Appends @n bytes to the output buffer; over the cap dooms @c. */
static int connection_append(Connection *c, const void *p, size_t n) {
	int r;

	/* A reader that stops reading is dropped, not buffered forever. */
	r = connection_reserve(c, n);
	if (r < 0) {
		connection_doom(c, r == -ENOBUFS ? "output buffer full" : "out of memory");
		return r;
	}
	memcpy(c->out + c->out_end, p, n);
	c->out_end += n;
	connection_mark_dirty(c);
	return 0;
}

int connection_queue_frame(Connection *c, const char *text, size_t len) {
	uint8_t prefix[WIRE_LEB128_MAX];
	size_t k;
	int r;

	if (c->doomed) {
		return -ECONNRESET;
	}
	k = leb128_encode(len, prefix);
	r = connection_reserve(c, k + len);
	if (r < 0) {
		connection_doom(c, r == -ENOBUFS ? "output buffer full" : "out of memory");
		return r;
	}
	memcpy(c->out + c->out_end, prefix, k);
	memcpy(c->out + c->out_end + k, text, len);
	c->out_end += k + len;
	c->pool->n_frames++;
	connection_mark_dirty(c);
	return 0;
}

int connection_queue_line(Connection *c, const WireMessage *m) {
	_cleanup_free_ char *text = NULL;
	size_t len;
	int r;

	r = wire_format_line(m, &text, &len);
	if (r < 0) {
		return r;
	}
	return connection_queue_frame(c, text, len);
}

static int connection_set_want_out(Connection *c, bool b) {
	int r;

	if (c->want_out == b) {
		return 0;
	}
	r = sd_event_source_set_io_events(c->io, b ? EPOLLIN | EPOLLOUT : EPOLLIN);
	if (r < 0) {
		return r;
	}
	c->want_out = b;
	return 0;
}

/* Sends from @buf [*start, end): 0 when all went, 1 when the kernel is full, <0 on error. */
static int connection_write(Connection *c, const uint8_t *buf, size_t *start, size_t end) {
	while (*start < end) {
		ssize_t n = send(c->fd, buf + *start, end - *start, MSG_NOSIGNAL | MSG_DONTWAIT);

		c->pool->n_writes++;
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			if (errno != EAGAIN) {
				return -errno;
			}
			n = 0;
		}
		*start += n;
		if (*start < end) {
			/* The socket buffer is full: wait for EPOLLOUT, not spin. */
			int r = connection_set_want_out(c, true);

			return r < 0 ? r : 1;
		}
	}
	return 0;
}

/*
 * With a cipher: seals plaintext from @p into the pool's scratch, a few
 * transport messages at a time (each as large as the plaintext allows, so a
 * flush of many small pushes is one encryption), and sends them.  Sealed
 * bytes the kernel does not take go to c->sealed, which must be empty, and
 * sealing stops.  *@ret_done is how much of @p was sealed.
 * Return: 0 when all went, 1 when the kernel is full, <0 on error (the
 * session is then lost).
 */
static int connection_seal_send(Connection *c, const uint8_t *p, size_t len, size_t *ret_done) {
	ConnectionPool *pool = c->pool;
	size_t done = 0;
	int r = 0;

	assert(c->sealed_start == c->sealed_end);

	if (len == 0) {
		*ret_done = 0;
		return 0;
	}
	if (!pool->scratch) {
		pool->scratch = malloc(SCRATCH_SIZE);
		if (!pool->scratch) {
			return -ENOMEM;
		}
	}
	pool->scratch_used = true;

	while (done < len && r == 0) {
		size_t n = 0, sent = 0;

		while (done < len) {
			size_t chunk = MIN(len - done, (size_t) NOISE_MAX_PAYLOAD);

			if (n + noise_stream_sealed_size(chunk) > SCRATCH_SIZE) {
				break;
			}
			r = noise_stream_seal_frame(c->cipher, p + done, chunk, pool->scratch + n);
			if (r < 0) {
				return r;
			}
			n += r;
			done += chunk;
		}
		r = connection_write(c, pool->scratch, &sent, n);
		if (r < 0) {
			return r;
		}
		if (sent < n) {
			/* Their nonces are spent: they go before anything sealed later. */
			int k = buffer_reserve(pool, &c->sealed, &c->sealed_cap, n - sent);

			if (k < 0) {
				return k;
			}
			connection_hold(c);
			memcpy(c->sealed, pool->scratch + sent, n - sent);
			c->sealed_start = 0;
			c->sealed_end = n - sent;
		}
	}
	*ret_done = done;
	return r;
}

/* With a cipher: writes the sealed rest, then seals and sends what is queued. */
static int connection_flush_sealed(Connection *c) {
	size_t done;
	int r;

	r = connection_write(c, c->sealed, &c->sealed_start, c->sealed_end);
	if (r != 0) {
		return r;
	}
	c->sealed_start = c->sealed_end = 0;

	r = connection_seal_send(c, c->out + c->out_start, c->out_end - c->out_start, &done);
	if (r < 0) {
		return r;
	}
	c->out_start += done;
	return r;
}

/*
 * With a cipher: the frame (@prefix, then @text, which the caller keeps) is
 * sealed straight from @text after what is pending, and only the plaintext
 * that is not sealed yet (the kernel is full) is copied.
 */
static int connection_send_frame_sealed(Connection *c, const uint8_t *prefix, size_t k,
		const char *text, size_t len) {
	size_t done = 0;
	int r;

	c->pool->n_frames++;
	r = connection_append(c, prefix, k);
	if (r < 0) {
		return r;
	}
	if (!c->want_out) {
		r = connection_flush_sealed(c);
		if (r < 0) {
			return r;
		}
		if (r == 0) {
			c->out_start = c->out_end = 0;
			r = connection_seal_send(c, (const uint8_t *) text, len, &done);
			if (r < 0) {
				return r;
			}
		}
	}
	if (done < len) {
		return connection_append(c, text + done, len - done);
	}
	connection_mark_dirty(c);
	return 0;
}

/* Writes what is buffered: 0 when done, 1 when the kernel is full, <0 on error. */
static int connection_flush(Connection *c) {
	int r;

	if (c->cipher) {
		r = connection_flush_sealed(c);
	} else {
		r = connection_write(c, c->out, &c->out_start, c->out_end);
	}
	if (r != 0) {
		return r;
	}

	/* The empty buffers stay while @c is busy: connection_pool_release_idle(). */
	c->out_start = c->out_end = 0;
	(void) connection_set_want_out(c, false);

	if (c->closing && !c->shut) {
		/* The peer reads up to our FIN, then closes; we close on its EOF. */
		(void) shutdown(c->fd, SHUT_WR);
		c->shut = true;
	}
	return 0;
}

int connection_send_frame(Connection *c, const char *text, size_t len) {
	ConnectionPool *pool = c->pool;
	uint8_t prefix[WIRE_LEB128_MAX];
	size_t k, pending = c->out_end - c->out_start;
	ssize_t n = 0;
	int r;

	if (c->doomed) {
		return -ECONNRESET;
	}
	k = leb128_encode(len, prefix);
	if (c->cipher) {
		return connection_send_frame_sealed(c, prefix, k, text, len);
	}
	pool->n_frames++;

	if (!c->want_out) {
		struct iovec iov[3] = {
			{ .iov_base = pending > 0 ? c->out + c->out_start : NULL,
				.iov_len = pending },
			{ .iov_base = prefix, .iov_len = k },
			{ .iov_base = (void *) text, .iov_len = len },
		};
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 3 };

		n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		pool->n_writes++;
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR) {
				return -errno;
			}
			n = 0;
		}
	}

	/* Drop what went out, keep the rest in order. */
	if ((size_t) n < pending) {
		c->out_start += n;
		n = 0;
	} else {
		c->out_start = c->out_end = 0;
		n -= pending;
	}
	if ((size_t) n < k) {
		r = connection_append(c, prefix + n, k - n);
		if (r < 0) {
			return r;
		}
		n = 0;
	} else {
		n -= k;
	}
	if ((size_t) n < len) {
		return connection_append(c, text + n, len - n);
	}
	connection_mark_dirty(c);
	return 0;
}

bool connection_pool_flush(ConnectionPool *pool) {
	bool busy = !list_is_empty(&pool->dirty);
	ListNode *n;

	/* Closing a connection may dirty (or doom) other connections: they are
	 * appended and handled in this same pass. */
	while ((n = list_first(&pool->dirty))) {
		Connection *c = container_of(n, Connection, dirty_node);
		int r;

		list_remove(n);
		if (c->doomed) {
			connection_close(c, c->doomed);
			continue;
		}
		if (c->want_out) {
			/* The kernel is full: EPOLLOUT flushes it, no send() to fail now. */
			continue;
		}
		r = connection_flush(c);
		if (r < 0) {
			connection_close(c, "write failed");
		}
	}
	return busy;
}

void connection_shutdown(Connection *c) {
	c->closing = true;
	if (timeout_queue_push(&c->pool->drain_queue, &c->drain) < 0) {
		c->doomed = "cannot queue for draining";
	}
	connection_mark_dirty(c);
}

/* Feeds bytes to @d and hands each complete frame to the owner; <0 is a bad frame. */
static int connection_feed_frames(Connection *c, WireFrameDecoder *d, const uint8_t *buf,
		size_t n, bool open) {
	while (n > 0 && !c->closing && !c->doomed) {
		_cleanup_free_ char *frame = NULL;
		size_t used = 0, len;
		int r;

		r = wire_frame_decoder_feed(d, buf, n, &used);
		if (r < 0) {
			return r;
		}
		buf += used;
		n -= used;
		if (r == 0) {
			break;
		}
		r = wire_frame_decoder_take(d, &frame, &len);
		if (r < 0) {
			return r;
		}
		if (!open) {
			c->callbacks->on_frame(c, frame, len, c->userdata);
			continue;
		}
		/* A transport message: decrypted in place, its bytes are frames again. */
		r = noise_stream_open(c->cipher, (const uint8_t *) frame, len, (uint8_t *) frame);
		if (r < 0) {
			return r;
		}
		r = connection_feed_frames(c, &c->inner, (const uint8_t *) frame,
				len - NOISE_TAG_SIZE, false);
		if (r < 0) {
			return r;
		}
	}
	return 0;
}

static int connection_feed(Connection *c, const uint8_t *buf, size_t n) {
	return connection_feed_frames(c, &c->decoder, buf, n, !!c->cipher);
}

static int on_connection_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
	Connection *c = userdata;
	uint8_t buf[4096];
	size_t budget = READ_BUDGET;
	int r;

	if (revents & EPOLLOUT) {
		r = connection_flush(c);
		if (r < 0) {
			connection_close(c, "write failed");
			return 0;
		}
	}
	if (!(revents & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
		return 0;
	}

	while (budget > 0) {
		ssize_t n = recv(fd, buf, MIN(sizeof(buf), budget), MSG_DONTWAIT);

		c->pool->n_reads++;
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			if (errno == EAGAIN) {
				return 0;
			}
			connection_close(c, "read failed");
			return 0;
		}
		if (n == 0) {
			connection_close(c, "end of stream");
			return 0;
		}
		budget -= n;
		c->heard = true;
		if (c->closing || c->doomed) {
			continue; /* discard until EOF */
		}
		r = connection_feed(c, buf, n);
		if (r < 0) {
			const char *why = c->callbacks->on_bad_frame(c, r, c->userdata);

			if (why) {
				connection_close(c, why);
				return 0;
			}
		}
	}
	return 0;
}
