/* SPDX-License-Identifier: MIT */

/*
 * coordinator-storm: a login storm against p2pchat-coordinator, next to the
 * same storm as JOINs on a local ngircd, and the UDP (reference dialect)
 * forwards next to a raw sendmmsg() floor.  It prints figures; it is not a
 * test and asserts nothing about speed.
 *
 * One process, one epoll loop, N simulated clients:
 *   native   login,NAME,EP,native1 (UTF-8) -> Accept -> TCP hello -> welcome,
 *            list, pushes; done when every client knows all N users.
 *   ngircd   NICK/USER/JOIN #bench; done when every client has seen all N
 *            members (NAMES + later JOINs).
 *   udp      login,NAME,EP in UTF-16LE, no session; done when every forward
 *            (N(N-1)/2) arrived.  The floor sends as many datagrams of the
 *            same size to the same sockets with sendmmsg().
 * Every phase is bounded by --timeout.  Child processes are killed by pid.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
static char arg_sizes[256] = "1000,3000,5000";
static char arg_udp_sizes[256] = "1000,2000";
static char tmpdir[64];

static double now(void) {
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The running server, killed by die() too. */
static pid_t child_pid = -1;

static void die(const char *fmt, ...) {
	va_list ap;

	if (child_pid > 0) {
		kill(child_pid, SIGKILL);
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

static char *slurp(const char *path) {
	static char buf[1 << 16];
	FILE *f = fopen(path, "r");
	size_t n;

	buf[0] = 0;
	if (!f) {
		return buf;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	fclose(f);
	return buf;
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
	uint8_t *buf;
	size_t len, cap;
	char name[24];
} Client;

typedef struct Totals {
	uint64_t frames, bytes, reads;
	double done_at;
	size_t n_done;
	size_t want; /* members to know: N, less those the server dropped */
} Totals;

static void buf_append(Client *c, const uint8_t *p, size_t n) {
	if (c->len + n > c->cap) {
		c->cap = c->len + n > 2 * c->cap ? c->len + n : 2 * c->cap;
		c->buf = realloc(c->buf, c->cap);
		if (!c->buf) {
			die("out of memory");
		}
	}
	memcpy(c->buf + c->len, p, n);
	c->len += n;
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
	}
	free(cl);
}

static Client *clients_new(size_t n, const char *prefix, bool with_udp, int rcvbuf) {
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

/* Parses the native frames buffered for @c. */
static void native_frames(Client *c, size_t n_clients, Totals *t) {
	size_t off = 0;

	for (;;) {
		uint64_t len = 0;
		unsigned shift = 0;
		size_t k = off;
		bool have = false;

		while (k < c->len && shift < 64) {
			uint8_t b = c->buf[k++];

			len |= (uint64_t) (b & 0x7f) << shift;
			shift += 7;
			if (!(b & 0x80)) {
				have = true;
				break;
			}
		}
		if (!have || c->len - k < len) {
			break;
		}
		const char *f = (const char *) c->buf + k;

		t->frames++;
		if (len >= 6 && memcmp(f, "login,", 6) == 0) {
			c->known++;
		} else if (len >= 7 && memcmp(f, "logout,", 7) == 0) {
			c->known--;
		} else if (len == 4 && memcmp(f, "ping", 4) == 0) {
			uint8_t out[8];

			(void) !write(c->tcp, out, frame("pong", out));
		} else if (!c->listed && !(len >= 8 && memcmp(f, "welcome,", 8) == 0)) {
			/* The list: entries are ';'-separated, then "end". */
			c->listed = true;
			for (size_t i = 0; i < len; i++) {
				c->known += f[i] == ';';
			}
		}
		off = k + len;
	}
	memmove(c->buf, c->buf + off, c->len - off);
	c->len -= off;
	mark_done(c, n_clients, t);
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
	uint8_t buf[65536];

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		t->reads++;
		if (n < 0) {
			return errno == EAGAIN || errno == EINTR;
		}
		if (n == 0) {
			return false;
		}
		t->bytes += n;
		buf_append(c, buf, n);
		if ((size_t) n < sizeof(buf)) {
			return true;
		}
	}
}

/* --- the coordinator ------------------------------------------------------ */

typedef struct Coordinator {
	pid_t pid;
	char log[128];
	uint16_t udp_port, tcp_port;
} Coordinator;

static void coordinator_start(Coordinator *co, size_t n) {
	char users[32], conns[32];
	char *argv[] = {
		(char *) arg_coordinator, "--listen", "127.0.0.1:0", "--login-rate", "0",
		"--max-users", users, "--max-connections", conns,
		"--max-connections-per-ip", conns, "--output-cap", "67108864",
		"--session-wait", "300",
		/* One process plays all clients: under load its hello can come later
		 * than the 100 ms a real client needs. */
		"--grace", "5000",
		getenv("STORM_VERBOSE") ? "--verbose" : NULL, NULL,
	};
	double deadline = now() + 10;

	snprintf(users, sizeof(users), "%zu", n + 16);
	snprintf(conns, sizeof(conns), "%zu", n + 64);
	snprintf(co->log, sizeof(co->log), "%s/coordinator.log", tmpdir);
	(void) unlink(co->log); /* never read the last run's port */
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

/* Stops it and prints its own counters. */
static void coordinator_stop(Coordinator *co) {
	char *p;

	stop(co->pid);
	p = strstr(slurp(co->log), "Exiting: ");
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
	Client *cl = clients_new(n, "b", true, 0);
	Addr srv;
	struct epoll_event evs[MAX_EVENTS];
	Totals t = {};
	Result res = {};
	size_t sent = 0, accepted = 0;
	double t0, cpu0, last_send = 0;
	int ep = epoll_create1(EPOLL_CLOEXEC);

	coordinator_start(&co, n);
	srv = coordinator_addr(&co);
	res.base_kb = proc_status_kb(co.pid, "VmRSS:");
	cpu0 = proc_cpu(co.pid);
	for (size_t i = 0; i < n; i++) {
		ep_add(ep, cl[i].udp, EPOLLIN, i << 1);
	}

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
					c->tcp = tcp_connect((uint16_t) atoi(buf + 7));
					ep_add(ep, c->tcp, EPOLLOUT, (i << 1) | 1);
				}
				continue;
			}
			if (!c->connected && (evs[e].events & EPOLLOUT)) {
				char hello[64];
				uint8_t out[80];

				snprintf(hello, sizeof(hello), "hello,%s,native1", c->name);
				c->connected = true;
				(void) !write(c->tcp, out, frame(hello, out));
				ep_mod(ep, c->tcp, EPOLLIN, (i << 1) | 1);
				continue;
			}
			if (!read_into(c, c->tcp, &t)) {
				die("native client %s: session closed (%zu of %zu done)", c->name,
						t.n_done, n);
			}
			native_frames(c, n, &t);
		}
	}

	res.seconds = t.done_at - t0;
	res.n_done = t.n_done;
	res.cpu = proc_cpu(co.pid) - cpu0;
	/* RSS at rest: after the coordinator's once-a-second heap trim. */
	usleep(1500 * 1000);
	res.rss_kb = proc_status_kb(co.pid, "VmRSS:");
	res.hwm_kb = proc_status_kb(co.pid, "VmHWM:");
	printf("  native N=%zu: all rosters complete in %.3f s (%zu/%zu clients done)\n", n,
			res.seconds, res.n_done, n);
	printf("    client side: %" PRIu64 " frames, %" PRIu64 " bytes, %" PRIu64 " read calls\n",
			t.frames, t.bytes, t.reads);
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
	char conf[128], log[128], motd[128];
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
	Client *cl = clients_new(n, "b", false, 0);
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
	res.seconds = t.done_at - t0;
	res.n_done = t.n_done;
	res.dropped = dropped;
	res.cpu = proc_cpu(pid) - cpu0;
	res.rss_kb = proc_status_kb(pid, "VmRSS:");
	res.hwm_kb = proc_status_kb(pid, "VmHWM:");
	printf("  ngircd N=%zu: all members seen in %.3f s (%zu/%zu clients done, %zu dropped "
	       "by ngircd), %" PRIu64 " lines, %" PRIu64 " bytes\n", n, res.seconds,
	       res.n_done, n, dropped, t.frames, t.bytes);
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
	Client *cl = clients_new(n, "r", true, 4 * 1024 * 1024);
	Addr srv;
	uint64_t want = (uint64_t) n * (n - 1) / 2 + n, got = 0, floor_got = 0;
	size_t sent = 0, text_len = 0;
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
	coordinator_start(&co, n);
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
		drain_udp(ep, cl, &got, sent < n ? 0 : 10);
		if (got != before || sent < n) {
			idle_since = now();
		}
	}
	secs = now() - t0;
	cpu = proc_cpu(co.pid) - cpu0;
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

static void help(void) {
	printf("coordinator-storm [--coordinator PATH] [--ngircd PATH] [--sizes N,N,...]\n"
	       "                  [--udp-sizes N,N,...] [--timeout SEC]\n\n"
	       "Login storm figures for p2pchat-coordinator, next to ngircd and a raw\n"
	       "sendmmsg() floor.  --sizes '' or --udp-sizes '' skips a part.\n");
}

int main(int argc, char *argv[]) {
	struct rlimit rl;

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

	/* Two descriptors per client here, one per client in each server. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		(void) setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/coordinator-storm-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		die("mkdtemp: %m");
	}
	if (access(arg_coordinator, X_OK) < 0) {
		die("%s: %m", arg_coordinator);
	}

	printf("coordinator-storm: %ld CPUs, RLIMIT_NOFILE %ld\n", sysconf(_SC_NPROCESSORS_ONLN),
			(long) rl.rlim_cur);
	for (char *s = arg_sizes, *tok; (tok = strtok(s, ",")); s = NULL) {
		size_t n = strtoul(tok, NULL, 10);
		Result a, b;

		if (n < 2 || 2 * n + 64 > rl.rlim_cur) {
			printf("  N=%zu: skipped (needs %zu descriptors)\n", n, 2 * n + 64);
			continue;
		}
		a = storm_native(n);
		if (access(arg_ngircd, X_OK) == 0) {
			b = storm_ngircd(n);
			if (a.n_done == n && b.n_done + b.dropped == n && a.seconds > 0) {
				printf("  N=%zu: ngircd / coordinator time = %.1fx\n", n,
						b.seconds / a.seconds);
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
	for (size_t i = 0; i < 5; i++) {
		static const char *const files[] = {
			"coordinator.log", "ngircd.conf", "ngircd.log", "ngircd.motd", "ngircd.pid",
		};
		char path[128];

		snprintf(path, sizeof(path), "%s/%s", tmpdir, files[i]);
		(void) unlink(path);
	}
	rmdir(tmpdir);
	return 0;
}
