/* SPDX-License-Identifier: MIT */

/*
 * coordinator-storm: a login storm against p2pchat-coordinator, next to the
 * same storm as JOINs on a local ngircd, and the UDP (reference dialect)
 * forwards next to a raw sendmmsg() floor.  It prints figures; it is not a
 * test and asserts nothing about speed.
 *
 * One process, one epoll loop, N simulated clients:
 *   native   login,NAME,EP,native1 (UTF-8) -> Accept -> TCP: the clear hello
 *            (native1+noise1) and Noise message 1, message 2, message 3
 *            (common/noise-stream.h, a fresh identity per client) -> welcome,
 *            list, pushes, all sealed; done when every client knows all N
 *            users.
 *   ngircd   NICK/USER/JOIN #bench; done when every client has seen all N
 *            members (NAMES + later JOINs).
 *   udp      login,NAME,EP in UTF-16LE, no session; done when every forward
 *            (N(N-1)/2) arrived.  The floor sends as many datagrams of the
 *            same size to the same sockets with sendmmsg().
 * Every phase is bounded by --timeout.  Child processes are killed by pid.
 *
 * Each coordinator gets a fresh --state-dir (its key and its name bindings)
 * under a temporary directory in $TMPDIR or /tmp: every run binds its names
 * anew, to new keys.  The whole directory is removed at the end.
 */

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <malloc.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/identity.h"
#include "common/noise-stream.h"

#define MAX_EVENTS 256
#define LOOPBACK htonl(INADDR_LOOPBACK)

typedef union Addr {
	struct sockaddr sa;
	struct sockaddr_in in;
} Addr;

/* 127.0.0.1:@port */
static Addr loopback(uint16_t port) {
	return (Addr) { .in = { .sin_family = AF_INET, .sin_port = htons(port),
		.sin_addr.s_addr = LOOPBACK } };
}

static const char *arg_coordinator = "coordinator/p2pchat-coordinator";
static const char *arg_ngircd = "/usr/sbin/ngircd";
static double arg_timeout = 120;
static char arg_sizes[256] = "1000,2000,5000";
static char arg_udp_sizes[256] = "1000,2000";
static char tmpdir[256];

static double now(void) {
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The running server, killed by die() too. */
static pid_t child_pid = -1;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
	(void) remove(path);
	return 0;
}

/* Removes @path and everything below it; never follows a symlink. */
static void rm_rf(const char *path) {
	(void) nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void die(const char *fmt, ...) {
	va_list ap;

	if (child_pid > 0) {
		kill(child_pid, SIGKILL);
		(void) waitpid(child_pid, NULL, 0);
	}
	if (tmpdir[0]) {
		rm_rf(tmpdir);
	}

	va_start(ap, fmt);
	fprintf(stderr, "coordinator-storm: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(EXIT_FAILURE);
}

/* --- child processes --------------------------------------------------- */

static pid_t spawn(char *const argv[], const char *log) {
	pid_t pid = fork();

	if (pid < 0) {
		die("fork: %m");
	}
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0) {
			_exit(127);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	child_pid = pid;
	return pid;
}

static void stop(pid_t pid) {
	int status;

	if (pid <= 0) {
		return;
	}
	kill(pid, SIGTERM);
	for (int i = 0; i < 500; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			child_pid = -1;
			return;
		}
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	child_pid = -1;
}

/* The first 64 KiB of @path, or with @tail its last 64 KiB. */
static char *slurp_at(const char *path, bool tail) {
	static char buf[1 << 16];
	FILE *f = fopen(path, "r");
	size_t n;

	buf[0] = 0;
	if (!f) {
		return buf;
	}
	if (tail && fseek(f, -(long) (sizeof(buf) - 1), SEEK_END) < 0) {
		rewind(f);
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

static char *slurp(const char *path) {
	return slurp_at(path, false);
}

/* CPU seconds (user + system) of @pid. */
static double proc_cpu(pid_t pid) {
	char path[64], *p;
	unsigned long ut = 0, st = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
	p = strrchr(slurp(path), ')');
	/* Fields 14 and 15, after the command name in parentheses. */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
			&ut, &st) != 2) {
		return 0;
	}
	return (double) (ut + st) / sysconf(_SC_CLK_TCK);
}

/* User + system seconds of a struct rusage. */
static double rusage_cpu(const struct rusage *ru) {
	return ru->ru_utime.tv_sec + ru->ru_stime.tv_sec +
		(ru->ru_utime.tv_usec + ru->ru_stime.tv_usec) / 1e6;
}

/* A "Key:   N kB" field of /proc/PID/status, in KiB. */
static long proc_status_kb(pid_t pid, const char *key) {
	char path[64], *p;

	snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
	p = strstr(slurp(path), key);
	return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

/* --- sockets ------------------------------------------------------------ */

static int udp_socket(int rcvbuf) {
	Addr a = loopback(0);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, &a.sa, sizeof(a.in)) < 0) {
		die("udp socket: %m");
	}
	if (rcvbuf > 0) {
		(void) setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
	}
	return fd;
}

static uint16_t local_port(int fd) {
	Addr a = {};
	socklen_t len = sizeof(a);

	getsockname(fd, &a.sa, &len);
	return ntohs(a.in.sin_port);
}

static int tcp_connect(uint16_t port) {
	Addr a = loopback(port);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		die("tcp socket: %m");
	}
	if (connect(fd, &a.sa, sizeof(a.in)) < 0 && errno != EINPROGRESS) {
		die("connect: %m");
	}
	return fd;
}

static void ep_add(int ep, int fd, uint32_t events, uint64_t data) {
	struct epoll_event ev = { .events = events, .data.u64 = data };

	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		die("epoll_ctl: %m");
	}
}

static void ep_mod(int ep, int fd, uint32_t events, uint64_t data) {
	struct epoll_event ev = { .events = events, .data.u64 = data };

	(void) epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

static size_t leb128(uint64_t v, uint8_t *out) {
	size_t n = 0;

	do {
		out[n] = v & 0x7f;
		v >>= 7;
		if (v) {
			out[n] |= 0x80;
		}
		n++;
	} while (v);
	return n;
}

static size_t frame(const char *text, uint8_t *out) {
	size_t len = strlen(text), k = leb128(len, out);

	memcpy(out + k, text, len);
	return k + len;
}

static size_t utf16(const char *text, uint8_t *out) {
	size_t n = 0;

	for (; *text; text++) {
		out[n++] = (uint8_t) *text;
		out[n++] = 0;
	}
	return n;
}

/* --- clients ------------------------------------------------------------ */

typedef struct Client {
	int udp, tcp;
	uint16_t udp_port;
	bool accepted, connected, done, listed;
	long known;       /* roster size (native, ngircd) or forwards (udp) */
	uint8_t *buf;     /* what the socket gave, not yet parsed */
	size_t len, cap;
	Identity *id;     /* native: the key the session proves */
	NoiseStream *ns;  /* native: the handshake, then the session's cipher */
	uint8_t *plain;   /* native: decrypted frame stream, not yet parsed */
	size_t plain_len, plain_cap;
	char name[24];
} Client;

typedef struct Totals {
	uint64_t frames, bytes, reads;
	uint64_t sealed;  /* native: transport messages opened */
	size_t n_bound;   /* native: handshakes completed */
	double bound_at;  /* native: when the last one completed */
	double done_at;
	size_t n_done;
	size_t want; /* members to know: N, less those the server dropped */
} Totals;

static void bytes_append(uint8_t **buf, size_t *len, size_t *cap, const uint8_t *p, size_t n) {
	if (*len + n > *cap) {
		*cap = *len + n > 2 * *cap ? *len + n : 2 * *cap;
		*buf = realloc(*buf, *cap);
		if (!*buf) {
			die("out of memory");
		}
	}
	memcpy(*buf + *len, p, n);
	*len += n;
}

/* Room for @n more bytes at the end of @c's buffer. */
static uint8_t *buf_reserve(Client *c, size_t n) {
	if (c->len + n > c->cap) {
		c->cap = c->len + n > 2 * c->cap ? c->len + n : 2 * c->cap;
		c->buf = realloc(c->buf, c->cap);
		if (!c->buf) {
			die("out of memory");
		}
	}
	return c->buf + c->len;
}

static uint8_t *mfree_bytes(uint8_t *p) {
	free(p);
	return NULL;
}

static void clients_free(Client *cl, size_t n) {
	for (size_t i = 0; i < n; i++) {
		if (cl[i].udp >= 0) {
			close(cl[i].udp);
		}
		if (cl[i].tcp >= 0) {
			close(cl[i].tcp);
		}
		free(cl[i].buf);
		free(cl[i].plain);
		noise_stream_free(cl[i].ns);
		identity_free(cl[i].id);
	}
	free(cl);
}

/* @with_identity: a native client, which proves a key of its own. */
static Client *clients_new(size_t n, const char *prefix, bool with_udp, int rcvbuf,
		bool with_identity) {
	Client *cl = calloc(n, sizeof(Client));

	if (!cl) {
		die("out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		cl[i].tcp = cl[i].udp = -1;
		snprintf(cl[i].name, sizeof(cl[i].name), "%s%05zu", prefix, i);
		if (with_udp) {
			cl[i].udp = udp_socket(rcvbuf);
			cl[i].udp_port = local_port(cl[i].udp);
		}
		if (with_identity) {
			int r = identity_generate(&cl[i].id);

			if (r < 0) {
				die("identity_generate: %s", strerror(-r));
			}
		}
	}
	return cl;
}

static void mark_done(Client *c, size_t want, Totals *t) {
	if (t->want > 0 && t->want < want) {
		want = t->want;
	}
	if (!c->done && c->known >= (long) want) {
		c->done = true;
		t->n_done++;
		t->done_at = now();
	}
}

/*
 * The next frame (LEB128 length + bytes) of @buf at *@off: false when it is
 * not complete yet.
 */
static bool next_frame(const uint8_t *buf, size_t len, size_t *off, const uint8_t **ret,
		size_t *ret_len) {
	uint64_t n = 0;
	unsigned shift = 0;
	size_t k = *off;

	while (k < len && shift < 64) {
		uint8_t b = buf[k++];

		n |= (uint64_t) (b & 0x7f) << shift;
		shift += 7;
		if (!(b & 0x80)) {
			if (len - k < n) {
				return false;
			}
			*ret = buf + k;
			*ret_len = n;
			*off = k + n;
			return true;
		}
	}
	return false;
}

/* Seals the frame @text and writes it to @c's session. */
static void native_send(Client *c, const char *text) {
	uint8_t plain[64], *out = NULL;
	size_t size = 0, allocated = 0;
	int r;

	r = noise_stream_seal_frames(c->ns, plain, frame(text, plain), &out, &size, &allocated);
	if (r < 0) {
		die("native client %s: seal: %s", c->name, strerror(-r));
	}
	(void) !write(c->tcp, out, size);
	free(out);
}

/* The frame @f of @c's decrypted stream: counted exactly as before sessions were sealed. */
static void native_frame(Client *c, const char *f, size_t len, Totals *t) {
	t->frames++;
	if (len >= 6 && memcmp(f, "login,", 6) == 0) {
		c->known++;
	} else if (len >= 7 && memcmp(f, "logout,", 7) == 0) {
		c->known--;
	} else if (len == 4 && memcmp(f, "ping", 4) == 0) {
		native_send(c, "pong");
	} else if (len >= 7 && memcmp(f, "Reject,", 7) == 0) {
		die("native client %s: refused: %.*s", c->name, (int) len, f);
	} else if (!c->listed && !(len >= 8 && memcmp(f, "welcome,", 8) == 0)) {
		/* The list: entries are ';'-separated, then "end". */
		c->listed = true;
		for (size_t i = 0; i < len; i++) {
			c->known += f[i] == ';';
		}
	}
}

/*
 * The plaintext @p of one transport message: its frames are counted where
 * they lie; only a frame that goes on in the next message (the list) is
 * gathered in c->plain.
 */
static void native_plain(Client *c, const uint8_t *p, size_t n, Totals *t) {
	const uint8_t *f;
	size_t off = 0, len;

	if (c->plain_len > 0) {
		bytes_append(&c->plain, &c->plain_len, &c->plain_cap, p, n);
		p = c->plain;
		n = c->plain_len;
	}
	while (next_frame(p, n, &off, &f, &len)) {
		native_frame(c, (const char *) f, len, t);
	}
	if (p != c->plain) {
		if (off < n) {
			bytes_append(&c->plain, &c->plain_len, &c->plain_cap, p + off, n - off);
		}
		return;
	}
	memmove(c->plain, c->plain + off, n - off);
	c->plain_len = n - off;
	if (c->plain_len == 0 && c->plain_cap > 64 * 1024) {
		/* The list is done with: thousands of clients need not keep its room. */
		c->plain = mfree_bytes(c->plain);
		c->plain_cap = 0;
	}
}

/* The clear hello and Noise message 1, in one write, as p2pchatd sends them. */
static void native_hello(Client *c) {
	uint8_t out[160], msg[NOISE_STREAM_HANDSHAKE_MAX];
	char hello[64];
	size_t k, msg_len = 0;
	int r;

	(void) snprintf(hello, sizeof(hello), "hello,%s,native1+noise1", c->name);
	r = noise_stream_new(NOISE_ROLE_INITIATOR, c->id, hello, strlen(hello), &c->ns);
	if (r >= 0) {
		r = noise_stream_handshake(c->ns, NULL, 0, msg, &msg_len);
	}
	if (r < 0) {
		die("native client %s: handshake start: %s", c->name, strerror(-r));
	}
	k = frame(hello, out);
	k += leb128(msg_len, out + k);
	memcpy(out + k, msg, msg_len);
	k += msg_len;
	(void) !write(c->tcp, out, k);
}

/*
 * Parses the native frames buffered for @c: before the handshake is done,
 * message 2 (answered with message 3); then transport messages, whose
 * plaintexts, concatenated, are the frame stream that is counted.
 */
static size_t native_frames(Client *c, uint8_t *buf, size_t buf_len, size_t n_clients,
		Totals *t) {
	const uint8_t *f;
	size_t off = 0, len;
	int r;

	while (next_frame(buf, buf_len, &off, &f, &len)) {
		uint8_t out[NOISE_STREAM_HANDSHAKE_MAX];
		uint8_t msg3[10 + NOISE_STREAM_HANDSHAKE_MAX];
		size_t n = 0, k;

		if (noise_stream_is_ready(c->ns)) {
			if (len < NOISE_TAG_SIZE || len > NOISE_MAX_MESSAGE) {
				die("native client %s: bad transport message", c->name);
			}
			/* In place: a real client would not copy it first either. */
			r = noise_stream_open(c->ns, f, len, (uint8_t *) f);
			if (r < 0) {
				die("native client %s: open: %s", c->name, strerror(-r));
			}
			t->sealed++;
			native_plain(c, f, len - NOISE_TAG_SIZE, t);
			continue;
		}
		if (len >= 7 && memcmp(f, "Reject,", 7) == 0) {
			die("native client %s: refused: %.*s", c->name, (int) len, (const char *) f);
		}
		r = noise_stream_handshake(c->ns, f, len, out, &n);
		if (r <= 0) {
			/* A clear list here: the grace ran out before the hello was read. */
			die("native client %s: handshake: %s (a frame of %zu bytes: '%.*s')",
					c->name, r < 0 ? strerror(-r) : "not complete after message 2",
					len, (int) (len < 40 ? len : 40), (const char *) f);
		}
		/* Message 3: sealed frames follow it. */
		k = leb128(n, msg3);
		memcpy(msg3 + k, out, n);
		(void) !write(c->tcp, msg3, k + n);
		t->n_bound++;
		t->bound_at = now();
	}
	mark_done(c, n_clients, t);
	return off;
}

/*
 * Reads what @c's session has and parses it in a buffer all clients share,
 * as a client process would in its own: only an incomplete message is kept
 * in c->buf.  false at EOF or error.
 */
static bool native_read(Client *c, size_t n_clients, Totals *t) {
	static uint8_t shared[4 * 65536];

	for (;;) {
		size_t have = c->len, room = sizeof(shared) - have, used;
		ssize_t n;

		if (have > sizeof(shared) / 2) {
			die("native client %s: a frame of more than %zu bytes", c->name, have);
		}
		memcpy(shared, c->buf, have);
		n = read(c->tcp, shared + have, room);
		t->reads++;
		if (n < 0) {
			return errno == EAGAIN || errno == EINTR;
		}
		if (n == 0) {
			return false;
		}
		t->bytes += n;
		used = native_frames(c, shared, have + n, n_clients, t);
		c->len = 0;
		memcpy(buf_reserve(c, have + n - used), shared + used, have + n - used);
		c->len = have + n - used;
		if ((size_t) n < room) {
			return true;
		}
	}
}

/* Parses the IRC lines buffered for @c. */
static void irc_lines(Client *c, size_t n_clients, Totals *t) {
	size_t off = 0;

	for (;;) {
		uint8_t *nl = memchr(c->buf + off, '\n', c->len - off);
		char *line = (char *) c->buf + off;
		size_t len;

		if (!nl) {
			break;
		}
		len = (size_t) (nl - (c->buf + off));
		*nl = 0;
		t->frames++;
		if (strncmp(line, "PING ", 5) == 0) {
			char out[256];
			int n = snprintf(out, sizeof(out), "PONG %s\n", line + 5);

			(void) !write(c->tcp, out, n);
		} else {
			char *sp = strchr(line, ' ');

			if (sp && strncmp(sp + 1, "353 ", 4) == 0) {
				char *names = strstr(sp, " :");

				/* NAMES: one member per space-separated word. */
				for (char *p = names ? names + 2 : NULL; p && *p && *p != '\r';) {
					c->known++;
					p = strchr(p, ' ');
					p = p ? p + 1 : NULL;
				}
			} else if (sp && strncmp(sp + 1, "366 ", 4) == 0) {
				c->listed = true;
			} else if (c->listed && sp && strncmp(sp + 1, "JOIN ", 5) == 0) {
				c->known++;
			}
		}
		off += len + 1;
	}
	memmove(c->buf, c->buf + off, c->len - off);
	c->len -= off;
	mark_done(c, n_clients, t);
}

/* Reads what @fd has into @c; false at EOF or error. */
static bool read_into(Client *c, int fd, Totals *t) {
	const size_t want = 65536;

	for (;;) {
		ssize_t n = read(fd, buf_reserve(c, want), want);

		t->reads++;
		if (n < 0) {
			return errno == EAGAIN || errno == EINTR;
		}
		if (n == 0) {
			return false;
		}
		t->bytes += n;
		c->len += n;
		if ((size_t) n < want) {
			return true;
		}
	}
}

/* --- the coordinator ------------------------------------------------------ */

typedef struct Coordinator {
	pid_t pid;
	char log[512];
	char state_dir[512];  /* its key and bindings: fresh for each run */
	uint16_t udp_port, tcp_port;
} Coordinator;

/* @grace: --grace in ms, as text. */
static void coordinator_start(Coordinator *co, size_t n, const char *grace) {
	char users[32], conns[32];
	char *argv[] = {
		(char *) arg_coordinator, "--listen", "127.0.0.1:0", "--login-rate", "0",
		"--max-users", users, "--max-connections", conns,
		"--max-connections-per-ip", conns, "--max-names-per-ip", users,
		"--max-pending-per-ip", users, "--output-cap", "67108864",
		"--session-wait", "300", "--state-dir", co->state_dir,
		/* One process plays all clients: under load its hello can come later
		 * than the 100 ms a real client needs. */
		"--grace", (char *) grace,
		getenv("STORM_VERBOSE") ? "--verbose" : NULL, NULL,
	};
	double deadline = now() + 10;

	snprintf(users, sizeof(users), "%zu", n + 16);
	snprintf(conns, sizeof(conns), "%zu", n + 64);
	snprintf(co->log, sizeof(co->log), "%s/coordinator.log", tmpdir);
	(void) unlink(co->log); /* never read the last run's port */
	snprintf(co->state_dir, sizeof(co->state_dir), "%s/state-XXXXXX", tmpdir);
	if (!mkdtemp(co->state_dir)) {
		die("mkdtemp: %m");
	}
	co->pid = spawn(argv, co->log);
	while (now() < deadline) {
		char *p = strstr(slurp(co->log), "Listening on UDP 127.0.0.1:");
		unsigned u, t;

		if (p && sscanf(p, "Listening on UDP 127.0.0.1:%u, TCP port %u.", &u, &t) == 2) {
			co->udp_port = u;
			co->tcp_port = t;
			return;
		}
		usleep(10000);
	}
	stop(co->pid);
	die("coordinator did not start: %s", slurp(co->log));
}

/* Stops it, prints its own counters and removes its state. */
static void coordinator_stop(Coordinator *co) {
	char *p;

	stop(co->pid);
	rm_rf(co->state_dir);
	/* It logs a line per first login ("Bound ..."): the counters are at the end. */
	p = strstr(slurp_at(co->log, true), "Exiting: ");
	if (p) {
		char *e = strchr(p, '\n');

		if (e) {
			*e = 0;
		}
		printf("    coordinator counters: %s\n", p + strlen("Exiting: "));
	}
}

static Addr coordinator_addr(const Coordinator *co) {
	return loopback(co->udp_port);
}

typedef struct Result {
	double seconds, cpu;
	long rss_kb, hwm_kb, base_kb;
	size_t n_done, dropped;
} Result;

static void send_native_login(Client *c, const Addr *srv) {
	char text[96];
	int len = snprintf(text, sizeof(text), "login,%s,127.0.0.1:%u,native1", c->name,
			c->udp_port);

	(void) sendto(c->udp, text, len, 0, &srv->sa, sizeof(srv->in));
}

/* Native storm: returns the time until every client holds the whole roster. */
static Result storm_native(size_t n) {
	Coordinator co;
	Client *cl = clients_new(n, "b", true, 0, true);
	Addr srv;
	struct epoll_event evs[MAX_EVENTS];
	Totals t = {};
	Result res = {};
	size_t sent = 0, accepted = 0, resent = 0;
	double t0, cpu0, self0, last_send = 0, accepted_at = 0;
	struct rusage ru;
	int ep = epoll_create1(EPOLL_CLOEXEC);

	/* A hello the coordinator reads after the grace gets a clear list instead of the
	 * handshake: at N = 5,000 both processes can fall seconds behind. */
	coordinator_start(&co, n, "60000");
	srv = coordinator_addr(&co);
	res.base_kb = proc_status_kb(co.pid, "VmRSS:");
	cpu0 = proc_cpu(co.pid);
	for (size_t i = 0; i < n; i++) {
		ep_add(ep, cl[i].udp, EPOLLIN, i << 1);
	}

	(void) getrusage(RUSAGE_SELF, &ru);
	self0 = rusage_cpu(&ru);
	t0 = now();
	while (t.n_done < n && now() - t0 < arg_timeout) {
		/* Logins in bursts of 64, the event loop in between; resend lost ones. */
		if (sent < n) {
			for (size_t k = 0; k < 64 && sent < n; k++, sent++) {
				send_native_login(&cl[sent], &srv);
			}
			last_send = now();
		} else if (accepted < n && now() - last_send > 1.0) {
			for (size_t i = 0; i < n; i++) {
				if (!cl[i].accepted) {
					send_native_login(&cl[i], &srv);
					resent++;
				}
			}
			last_send = now();
		}

		int k = epoll_wait(ep, evs, MAX_EVENTS, sent < n ? 0 : 100);

		for (int e = 0; e < k; e++) {
			size_t i = evs[e].data.u64 >> 1;
			Client *c = &cl[i];

			if (!(evs[e].data.u64 & 1)) {
				char buf[64];
				ssize_t m = recv(c->udp, buf, sizeof(buf) - 1, 0);

				if (m > 7 && memcmp(buf, "Accept,", 7) == 0 && !c->accepted) {
					buf[m] = 0;
					c->accepted = true;
					accepted++;
					accepted_at = now();
					c->tcp = tcp_connect((uint16_t) atoi(buf + 7));
					ep_add(ep, c->tcp, EPOLLOUT, (i << 1) | 1);
				}
				continue;
			}
			if (!c->connected && (evs[e].events & EPOLLOUT)) {
				c->connected = true;
				native_hello(c);
				ep_mod(ep, c->tcp, EPOLLIN, (i << 1) | 1);
				continue;
			}
			if (!native_read(c, n, &t)) {
				die("native client %s: session closed (%zu of %zu done)", c->name,
						t.n_done, n);
			}
		}
	}

	res.seconds = (t.n_done == n ? t.done_at : now()) - t0;
	res.n_done = t.n_done;
	res.cpu = proc_cpu(co.pid) - cpu0;
	(void) getrusage(RUSAGE_SELF, &ru);
	/* RSS at rest: the coordinator frees the buffers of sessions idle for a
	 * whole housekeeping second, then trims the heap: at most 2 s after. */
	usleep(2500 * 1000);
	res.rss_kb = proc_status_kb(co.pid, "VmRSS:");
	res.hwm_kb = proc_status_kb(co.pid, "VmHWM:");
	printf("  native N=%zu: %s %.3f s (%zu/%zu clients done)\n", n,
			t.n_done == n ? "all rosters complete in" : "NOT all rosters complete after",
			res.seconds, res.n_done, n);
	printf("    phases: all %zu Accepts at %.3f s (%zu logins resent after 1 s), "
	       "%zu/%zu handshakes done at %.3f s\n", accepted, accepted_at - t0, resent,
	       t.n_bound, n, t.bound_at - t0);
	printf("    client side: %" PRIu64 " frames (in %" PRIu64 " sealed messages), %" PRIu64
			" bytes, %" PRIu64 " read calls, CPU %.3f s (N initiator handshakes "
			"included)\n", t.frames, t.sealed, t.bytes, t.reads, rusage_cpu(&ru) - self0);
	printf("    coordinator: CPU %.3f s, RSS %ld KiB (peak %ld KiB, idle %ld KiB), "
			"%.0f bytes per user\n", res.cpu, res.rss_kb, res.hwm_kb, res.base_kb,
			(res.rss_kb - res.base_kb) * 1024.0 / n);
	coordinator_stop(&co);
	clients_free(cl, n);
	close(ep);
	return res;
}

/* --- ngircd --------------------------------------------------------------- */

static uint16_t free_tcp_port(void) {
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	Addr a = loopback(0);
	uint16_t port;

	if (fd < 0 || bind(fd, &a.sa, sizeof(a.in)) < 0) {
		die("free port: %m");
	}
	port = local_port(fd);
	close(fd);
	return port;
}

static pid_t ngircd_start(uint16_t port) {
	char conf[512], log[512], motd[512];
	char *argv[] = { (char *) arg_ngircd, "--nodaemon", "--config", conf, NULL };
	FILE *f;
	pid_t pid;
	double deadline = now() + 10;

	snprintf(conf, sizeof(conf), "%s/ngircd.conf", tmpdir);
	snprintf(log, sizeof(log), "%s/ngircd.log", tmpdir);
	snprintf(motd, sizeof(motd), "%s/ngircd.motd", tmpdir);
	f = fopen(motd, "w");
	if (f) {
		fputs("bench\n", f);
		fclose(f);
	}
	f = fopen(conf, "w");
	if (!f) {
		die("%s: %m", conf);
	}
	fprintf(f, "[Global]\n\tName = bench.irc.local\n\tInfo = bench\n\tListen = 127.0.0.1\n"
		   "\tPorts = %u\n\tMotdFile = %s\n\tPidFile = %s/ngircd.pid\n"
		   "\tServerUID = %u\n\tServerGID = %u\n"
		   "[Limits]\n\tMaxConnections = 0\n\tMaxConnectionsIP = 0\n\tMaxJoins = 0\n"
		   "\tMaxNickLength = 16\n\tPingTimeout = 600\n\tPongTimeout = 600\n"
		   "\tMaxListSize = 100\n\tMaxPenaltyTime = 0\n"
		   "[Options]\n\tDNS = no\n\tIdent = no\n\tPAM = no\n\tRequireAuthPing = no\n"
		   "\tSyslog = no\n",
		   port, motd, tmpdir, (unsigned) getuid(), (unsigned) getgid());
	fclose(f);

	pid = spawn(argv, log);
	while (now() < deadline) {
		Addr a = loopback(port);
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (connect(fd, &a.sa, sizeof(a.in)) == 0) {
			close(fd);
			return pid;
		}
		close(fd);
		usleep(20000);
	}
	stop(pid);
	die("ngircd did not start: %s", slurp(log));
	return -1;
}

static Result storm_ngircd(size_t n) {
	uint16_t port = free_tcp_port();
	pid_t pid = ngircd_start(port);
	Client *cl = clients_new(n, "b", false, 0, false);
	struct epoll_event evs[MAX_EVENTS];
	Totals t = {};
	Result res = {};
	size_t started = 0, registered = 0, dropped = 0;
	double t0, cpu0;
	int ep = epoll_create1(EPOLL_CLOEXEC);

	res.base_kb = proc_status_kb(pid, "VmRSS:");
	cpu0 = proc_cpu(pid);
	t0 = now();
	while (t.n_done + dropped < n && now() - t0 < arg_timeout) {
		/* ngircd's listen backlog is short: beyond it SYNs are dropped and
		 * retried a second later.  Keep at most 16 registrations in flight,
		 * ngircd's best case. */
		for (; started < n && started - registered < 16; started++) {
			cl[started].tcp = tcp_connect(port);
			ep_add(ep, cl[started].tcp, EPOLLOUT, started);
		}

		int k = epoll_wait(ep, evs, MAX_EVENTS, 100);

		for (int e = 0; e < k; e++) {
			size_t i = evs[e].data.u64;
			Client *c = &cl[i];

			if (!c->connected && (evs[e].events & EPOLLOUT)) {
				char text[160];
				int len = snprintf(text, sizeof(text),
						"NICK %s\r\nUSER %s 0 * :%s\r\nJOIN #bench\r\n",
						c->name, c->name, c->name);

				c->connected = true;
				(void) !write(c->tcp, text, len);
				ep_mod(ep, c->tcp, EPOLLIN, i);
				continue;
			}
			if (!read_into(c, c->tcp, &t)) {
				/* ngircd drops a client whose send queue overflows. */
				(void) epoll_ctl(ep, EPOLL_CTL_DEL, c->tcp, NULL);
				if (!c->done) {
					/* Never counted as done; the others then know
					 * at least N - dropped (a QUIT is not counted). */
					dropped++;
					t.want = n - dropped;
					c->done = true;
					for (size_t j = 0; j < started; j++) {
						mark_done(&cl[j], n, &t);
					}
				}
				continue;
			}
			if (!c->accepted && c->len >= 1) {
				/* The welcome (001) or anything else: registration is under way. */
				c->accepted = true;
				registered++;
			}
			irc_lines(c, n, &t);
		}
	}
	/* Until the last client was done; the whole run when not all were. */
	res.seconds = (t.n_done + dropped == n ? t.done_at : now()) - t0;
	res.n_done = t.n_done;
	res.dropped = dropped;
	res.cpu = proc_cpu(pid) - cpu0;
	res.rss_kb = proc_status_kb(pid, "VmRSS:");
	res.hwm_kb = proc_status_kb(pid, "VmHWM:");
	printf("  ngircd N=%zu: %s %.3f s (%zu/%zu clients done, %zu dropped "
	       "by ngircd), %" PRIu64 " lines, %" PRIu64 " bytes\n", n,
	       t.n_done + dropped == n ? "all members seen in" : "NOT all members seen after",
	       res.seconds, res.n_done, n, dropped, t.frames, t.bytes);
	printf("    ngircd: CPU %.3f s, RSS %ld KiB (peak %ld KiB), %.0f bytes per user\n",
			res.cpu, res.rss_kb, res.hwm_kb, (res.rss_kb - res.base_kb) * 1024.0 / n);
	stop(pid);
	clients_free(cl, n);
	close(ep);
	return res;
}

/* --- UDP forwards and the sendmmsg floor ---------------------------------- */

/* Reads every datagram waiting on the sockets @ep reports ready, within @timeout_ms. */
static void drain_udp(int ep, Client *cl, uint64_t *count, int timeout_ms) {
	struct epoll_event evs[MAX_EVENTS];
	int k = epoll_wait(ep, evs, MAX_EVENTS, timeout_ms);

	for (int e = 0; e < k; e++) {
		Client *c = &cl[evs[e].data.u64];
		struct mmsghdr msgs[32];
		struct iovec iovs[32];
		uint8_t bufs[32][128];
		int m;

		for (int q = 0; q < 32; q++) {
			iovs[q] = (struct iovec) {
				.iov_base = bufs[q],
				.iov_len = sizeof(bufs[q]),
			};
			msgs[q] = (struct mmsghdr) {
				.msg_hdr = { .msg_iov = &iovs[q], .msg_iovlen = 1 },
			};
		}
		while ((m = recvmmsg(c->udp, msgs, 32, MSG_DONTWAIT, NULL)) > 0) {
			*count += m;
			c->known += m;
		}
	}
}

static void storm_udp(size_t n) {
	Coordinator co;
	Client *cl = clients_new(n, "r", true, 4 * 1024 * 1024, false);
	Addr srv;
	uint64_t want = (uint64_t) n * (n - 1) / 2 + n, got = 0, floor_got = 0;
	size_t sent = 0, text_len = 0;
	int fetch = -1;
	double t0, cpu0, cpu, secs, idle_since;
	struct mmsghdr *msgs;
	struct iovec iov;
	Addr *dests;
	uint8_t payload[128];
	double floor_time = 0, fcpu;

	int ep = epoll_create1(EPOLL_CLOEXEC);

	for (size_t i = 0; i < n; i++) {
		ep_add(ep, cl[i].udp, EPOLLIN, i);
	}
	/* Reference logins go online when their IP fetches the list: one
	 * connection after the logins confirms them all (grace 1 ms). */
	coordinator_start(&co, n, "1");
	srv = coordinator_addr(&co);
	cpu0 = proc_cpu(co.pid);

	t0 = idle_since = now();
	while (got < want && now() - idle_since < 3.0 && now() - t0 < arg_timeout) {
		uint64_t before = got;

		for (size_t k = 0; k < 16 && sent < n; k++, sent++) {
			char text[96];
			uint8_t data[192];
			size_t len;

			snprintf(text, sizeof(text), "login,%s,127.0.0.1:%u", cl[sent].name,
					cl[sent].udp_port);
			len = utf16(text, data);
			text_len = len;
			(void) sendto(cl[sent].udp, data, len, 0, &srv.sa, sizeof(srv.in));
		}
		if (sent == n && fetch < 0) {
			fetch = tcp_connect(co.tcp_port);
		}
		drain_udp(ep, cl, &got, sent < n ? 0 : 10);
		if (got != before || sent < n) {
			idle_since = now();
		}
	}
	secs = now() - t0;
	cpu = proc_cpu(co.pid) - cpu0;
	if (fetch >= 0) {
		(void) close(fetch);
	}
	/* Accepts are not forwards. */
	uint64_t forwards = got >= n ? got - n : 0, want_fwd = want - n;

	printf("  udp N=%zu: %" PRIu64 "/%" PRIu64 " forwards (+%zu Accepts) received in %.3f s "
	       "(%.0f per second); coordinator CPU %.3f s = %.0f datagrams per CPU second\n", n,
	       forwards, want_fwd, n, secs, secs > 0 ? forwards / secs : 0, cpu,
	       cpu > 0 ? (forwards + n) / cpu : 0);
	coordinator_stop(&co);

	/*
	 * The floor: the same datagrams to the same sockets from a child that does
	 * nothing but sendmmsg() (blocking, batches of 1024 like the coordinator),
	 * while this process drains as before.  Both sides are measured the same
	 * way: CPU seconds of the sending process per datagram.
	 */
	msgs = calloc(1024, sizeof(*msgs));
	dests = calloc(n, sizeof(*dests));
	if (!msgs || !dests) {
		die("out of memory");
	}
	memset(payload, 'x', sizeof(payload));
	for (size_t i = 0; i < n; i++) {
		dests[i] = loopback(cl[i].udp_port);
	}
	iov = (struct iovec) { .iov_base = payload, .iov_len = text_len };

	pid_t pid = fork();

	if (pid < 0) {
		die("fork: %m");
	}
	if (pid == 0) {
		int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		int sndbuf = 4 * 1024 * 1024;

		(void) setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf));
		for (size_t k = 1; k < n; k++) {
			/* Login k goes to clients 0..k-1. */
			for (size_t j = 0; j < k;) {
				size_t m = k - j < 1024 ? k - j : 1024;
				int r;

				for (size_t q = 0; q < m; q++) {
					msgs[q].msg_hdr = (struct msghdr) {
						.msg_name = &dests[j + q],
						.msg_namelen = sizeof(dests[0].in),
						.msg_iov = &iov,
						.msg_iovlen = 1,
					};
				}
				r = sendmmsg(fd, msgs, m, 0);
				j += r > 0 ? (size_t) r : 1;
			}
		}
		_exit(0);
	}

	t0 = idle_since = now();
	while (floor_got < want_fwd && now() - idle_since < 3.0 && now() - t0 < arg_timeout) {
		uint64_t before = floor_got;

		drain_udp(ep, cl, &floor_got, 10);
		if (floor_got != before) {
			idle_since = now();
		}
	}
	floor_time = now() - t0;

	struct rusage ru;
	int status;

	if (wait4(pid, &status, 0, &ru) != pid) {
		die("wait4: %m");
	}
	fcpu = rusage_cpu(&ru);
	printf("  udp floor N=%zu: %" PRIu64 " datagrams of %zu bytes by a bare sendmmsg() loop: "
	       "%" PRIu64 " received in %.3f s; sender CPU %.3f s = %.0f datagrams per CPU "
	       "second\n",
	       n, want_fwd, text_len, floor_got, floor_time, fcpu, fcpu > 0 ? want_fwd / fcpu : 0);
	if (cpu > 0 && fcpu > 0) {
		printf("  udp N=%zu: coordinator reaches %.0f%% of the raw sendmmsg floor "
		       "(datagrams per CPU second); all delivered in %.3f s vs %.3f s\n", n,
		       100.0 * (forwards / cpu) / (want_fwd / fcpu), secs, floor_time);
	}
	close(ep);
	free(msgs);
	free(dests);
	clients_free(cl, n);
}

/* --- one handshake, in-process ------------------------------------------- */

static double thread_cpu(void) {
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * The coordinator's CPU for one login's handshake, without the network: the
 * mean over @rounds XX handshakes of the responder's share only (its
 * noise_stream_new(), message 1 -> message 2, message 3 -> ready, and its
 * free), timed in thread CPU time, in microseconds.
 */
static double handshake_cpu_us(unsigned rounds) {
	static const char hello[] = "hello,b00000,native1+noise1";
	Identity *ini_id = NULL, *resp_id = NULL;
	double spent = 0;
	int r;

	r = identity_generate(&ini_id);
	if (r >= 0) {
		r = identity_generate(&resp_id);
	}
	if (r < 0) {
		die("identity_generate: %s", strerror(-r));
	}
	for (unsigned i = 0; i < rounds; i++) {
		uint8_t m1[NOISE_STREAM_HANDSHAKE_MAX], m2[NOISE_STREAM_HANDSHAKE_MAX];
		uint8_t m3[NOISE_STREAM_HANDSHAKE_MAX], none[NOISE_STREAM_HANDSHAKE_MAX];
		size_t n1 = 0, n2 = 0, n3 = 0, n4 = 0;
		NoiseStream *ini = NULL, *resp = NULL;
		double t0;
		int ri, rr;

		ri = noise_stream_new(NOISE_ROLE_INITIATOR, ini_id, hello, strlen(hello), &ini);
		if (ri >= 0) {
			ri = noise_stream_handshake(ini, NULL, 0, m1, &n1);
		}
		t0 = thread_cpu();
		rr = noise_stream_new(NOISE_ROLE_RESPONDER, resp_id, hello, strlen(hello), &resp);
		if (rr >= 0 && ri >= 0) {
			rr = noise_stream_handshake(resp, m1, n1, m2, &n2);
		}
		spent += thread_cpu() - t0;
		if (ri >= 0 && rr >= 0) {
			ri = noise_stream_handshake(ini, m2, n2, m3, &n3);
		}
		t0 = thread_cpu();
		if (ri > 0 && rr >= 0) {
			rr = noise_stream_handshake(resp, m3, n3, none, &n4);
		}
		resp = noise_stream_free(resp);
		spent += thread_cpu() - t0;
		ini = noise_stream_free(ini);
		if (ri <= 0 || rr <= 0) {
			die("in-process handshake failed: %s",
					strerror(ri < 0 ? -ri : rr < 0 ? -rr : EPROTO));
		}
	}
	identity_free(ini_id);
	identity_free(resp_id);
	return spent / rounds * 1e6;
}

static void help(void) {
	printf("coordinator-storm [--coordinator PATH] [--ngircd PATH] [--sizes N,N,...]\n"
	       "                  [--udp-sizes N,N,...] [--timeout SEC]\n\n"
	       "Login storm figures for p2pchat-coordinator (native clients, each with its\n"
	       "own key and a Noise XX session), next to ngircd and a raw sendmmsg() floor.\n"
	       "Defaults: --sizes 1000,2000,5000 --udp-sizes 1000,2000 --timeout 120 (per\n"
	       "phase).  --sizes '' or --udp-sizes '' skips a part.\n");
}

int main(int argc, char *argv[]) {
	char template[sizeof(tmpdir)];
	const char *tmp;
	struct rlimit rl;
	double hs_us;

	for (int i = 1; i < argc; i += 2) {
		const char *next = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			help();
			return 0;
		} else if (!next) {
			die("option '%s' needs a value (see --help)", argv[i]);
		} else if (strcmp(argv[i], "--coordinator") == 0) {
			arg_coordinator = next;
		} else if (strcmp(argv[i], "--ngircd") == 0) {
			arg_ngircd = next;
		} else if (strcmp(argv[i], "--sizes") == 0) {
			snprintf(arg_sizes, sizeof(arg_sizes), "%s", next);
		} else if (strcmp(argv[i], "--udp-sizes") == 0) {
			snprintf(arg_udp_sizes, sizeof(arg_udp_sizes), "%s", next);
		} else if (strcmp(argv[i], "--timeout") == 0) {
			arg_timeout = atof(next);
		} else {
			die("unknown option '%s' (see --help)", argv[i]);
		}
	}

	/* Thousands of client buffers grow and shrink here: with glibc's
	 * defaults they would move between the heap and mappings, and every
	 * move costs page faults, munmap() and TLB flushes in this process,
	 * which then paces the coordinator's storm.  Keep them in the heap. */
	(void) mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
	(void) mallopt(M_TRIM_THRESHOLD, 512 * 1024 * 1024);

	/* Two descriptors per client here, one per client in each server. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		(void) setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	if (access(arg_coordinator, X_OK) < 0) {
		die("%s: %m", arg_coordinator);
	}
	tmp = getenv("TMPDIR");
	snprintf(template, sizeof(template), "%s/coordinator-storm-XXXXXX",
			tmp && tmp[0] == '/' ? tmp : "/tmp");
	if (!mkdtemp(template)) {
		die("mkdtemp '%s': %m", template);
	}
	memcpy(tmpdir, template, sizeof(tmpdir));

	printf("coordinator-storm: %ld CPUs, RLIMIT_NOFILE %ld\n", sysconf(_SC_NPROCESSORS_ONLN),
			(long) rl.rlim_cur);
	hs_us = handshake_cpu_us(1000);
	printf("  handshake_cpu_us_per_login: %.1f (one Noise XX responder side, in-process, "
	       "mean of 1000)\n", hs_us);
	for (char *s = arg_sizes, *tok; (tok = strtok(s, ",")); s = NULL) {
		size_t n = strtoul(tok, NULL, 10);
		Result a, b;

		if (n < 2 || 2 * n + 64 > rl.rlim_cur) {
			printf("  N=%zu: skipped (needs %zu descriptors)\n", n, 2 * n + 64);
			continue;
		}
		a = storm_native(n);
		printf("  N=%zu: coordinator_cpu_us_per_login %.1f (coordinator CPU during the "
		       "storm / N; the handshake is %.0f%% of it)\n", n, a.cpu / n * 1e6,
		       a.cpu > 0 ? 100.0 * hs_us * 1e-6 * n / a.cpu : 0);
		printf("  N=%zu: coordinator_bytes_per_user %.0f (RSS delta / N, sessions idle; "
		       "goal <= 2048)\n", n, (a.rss_kb - a.base_kb) * 1024.0 / n);
		if (access(arg_ngircd, X_OK) == 0) {
			b = storm_ngircd(n);
			if (a.n_done == n && b.n_done + b.dropped == n && a.seconds > 0) {
				printf("  N=%zu: ngircd / coordinator time = %.1fx\n", n,
						b.seconds / a.seconds);
			} else if (a.n_done == n && a.seconds > 0) {
				/* ngircd did not finish: its time is at least the timeout. */
				printf("  N=%zu: ngircd / coordinator time > %.1fx (ngircd not done "
				       "within %g s)\n", n, arg_timeout / a.seconds, arg_timeout);
			} else {
				printf("  N=%zu: no ratio (a run did not finish within %.0f s)\n",
						n, arg_timeout);
			}
		} else {
			printf("  ngircd not found at %s: skipped\n", arg_ngircd);
		}
		fflush(stdout);
	}
	for (char *s = arg_udp_sizes, *tok; (tok = strtok(s, ",")); s = NULL) {
		size_t n = strtoul(tok, NULL, 10);

		if (n >= 2) {
			storm_udp(n);
		}
		fflush(stdout);
	}
	rm_rf(tmpdir);
	return 0;
}
