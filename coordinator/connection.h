/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Framed TCP I/O: a Connection reads LEB128-framed UTF-8 frames and hands
 * each to its owner, buffers what is queued on it (up to a cap) and writes it
 * once per loop iteration, so many frames cost one write(), and closes either
 * gracefully (flush, FIN, then wait for EOF within the drain timeout) or at
 * the next flush.  It knows nothing of what the frames mean: every decision
 * goes to the owner through the ConnectionCallbacks given at construction.
 *
 * The ConnectionPool holds what all connections share: the loop, the output
 * cap, the list of connections with output, the list of those holding
 * output buffers, the scratch buffer output is sealed into, the drain timer
 * and the I/O counters.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "common/endpoint.h"
#include "common/macro.h"
#include "common/wire.h"

typedef struct NoiseStream NoiseStream;
typedef struct ConnectionPool ConnectionPool;
typedef struct Connection Connection;

typedef struct ConnectionCallbacks {
	/* A complete frame (validated UTF-8, NUL-terminated, borrowed).  Must not close @c. */
	void (*on_frame)(Connection *c, const char *text, size_t len, void *userdata);
	/*
	 * The stream holds a bad frame (@error from the frame decoder).  Return
	 * why @c is to be closed at once, or NULL to keep it (the handler has
	 * e.g. shut it down): what follows is then read and discarded.  Must not
	 * close @c.
	 */
	const char *(*on_bad_frame)(Connection *c, int error, void *userdata);
	/*
	 * @c is being closed (@why is NULL when its owner closes it without a
	 * reason, e.g. on exit).  @c is freed when this returns.
	 */
	void (*on_close)(Connection *c, const char *why, void *userdata);
} ConnectionCallbacks;

/*
 * connection_pool_new() - the shared state of connections on @event.
 * @output_cap: bytes buffered per connection; more dooms it
 * @max_frame: the largest frame read, in bytes
 * @drain_timeout: usec a closing connection has to take its output and end
 */
int connection_pool_new(sd_event *event, size_t output_cap, size_t max_frame,
		uint64_t drain_timeout, ConnectionPool **ret);
/* Every connection of @pool must be closed first. */
ConnectionPool *connection_pool_free(ConnectionPool *pool);
DEFINE_TRIVIAL_CLEANUP_FUNC(ConnectionPool *, connection_pool_free);

/*
 * connection_pool_flush() - write each connection with new output once, and
 * close the doomed ones.  Closing may queue output on other connections:
 * they are handled in the same pass.
 * Return: whether any connection had anything to do.
 */
bool connection_pool_flush(ConnectionPool *pool);

/*
 * connection_pool_release_idle() - free the output buffers of the
 * connections that had nothing to send since the last call, and the pool's
 * own; call it periodically (once a second).  Busy connections keep theirs.
 * Return: whether anything was freed.
 */
bool connection_pool_release_idle(ConnectionPool *pool);

/* Frames queued, and recv()/send()/sendmsg() calls made, by all connections. */
uint64_t connection_pool_get_n_frames(const ConnectionPool *pool);
uint64_t connection_pool_get_n_reads(const ConnectionPool *pool);
uint64_t connection_pool_get_n_writes(const ConnectionPool *pool);

/*
 * connection_new() - take @fd (connected, non-blocking) from @peer.
 * @callbacks must outlive the connection (a static table).  On failure @fd
 * is closed and no callback is called.
 */
int connection_new(ConnectionPool *pool, int fd, const Endpoint *peer,
		const ConnectionCallbacks *callbacks, void *userdata, Connection **ret);

/* Closes @c now: on_close() is called, then @c is freed.  Not from a callback of @c. */
void connection_close(Connection *c, const char *why);

const Endpoint *connection_get_peer(const Connection *c);

/*
 * connection_queue_frame() - append one frame (LEB128 length + @text).
 * Over the output cap @c is doomed.
 * Return: 0, -ECONNRESET when @c is doomed, -ENOBUFS, -ENOMEM.
 */
int connection_queue_frame(Connection *c, const char *text, size_t len);

/* Formats @m as a line and queues it as a frame. */
int connection_queue_line(Connection *c, const WireMessage *m);

/*
 * connection_send_frame() - write one large frame whose @text the caller
 * keeps (e.g. the roster list): it goes to the kernel at once, after what is
 * pending, and only what the kernel does not take is copied.
 * Return: as connection_queue_frame(), or a send error.
 */
int connection_send_frame(Connection *c, const char *text, size_t len);

/*
 * connection_shutdown() - stop reading frames; once the output is written,
 * send a FIN and wait for the peer's EOF, at most the drain timeout.
 */
void connection_shutdown(Connection *c);

/* Marks @c to be closed with @why at the next flush, output and all. */
void connection_doom(Connection *c, const char *why);
bool connection_is_doomed(const Connection *c);

/*
 * connection_set_binary() - the frames that follow the current one are
 * binary (a Noise handshake), at most @max bytes each.
 */
void connection_set_binary(Connection *c, size_t max);

/*
 * connection_start_cipher() - from now on every frame read is a transport
 * message of @cipher (a completed handshake; owned by @c from now on): it is
 * decrypted and the frames inside it go to on_frame(); a message that fails
 * authentication is a bad frame.  Every frame queued is sealed at the next
 * flush.
 */
void connection_start_cipher(Connection *c, NoiseStream *cipher);

/* Whether anything was read since the last call. */
bool connection_take_heard(Connection *c);
