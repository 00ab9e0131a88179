/* SPDX-License-Identifier: MIT */

/*
 * The measuring half of bench/message-path.py: an sd-bus client that times
 * one path at a time and prints "name value unit" lines.
 *
 *   latency ALICE_BUS BOB_BUS PEER N  SendMessage -> bob's MessageReceived,
 *                                     -> alice's MessageDelivered and -> its
 *                                     reply (p50/p99), one message at a time
 *   throughput ALICE_BUS PEER N       N SendMessage calls, up to 500 in flight
 *                                     at once (the outbox takes 1000 per
 *                                     peer), until N MessageDelivered: msg/s
 *   ping BUS N                        Peer.Ping on p2pchatd: a bare D-Bus
 *                                     method round trip (p50/p99)
 *   ping-pipelined BUS N              N Pings in flight at once: calls/s
 *   signal BUS N                      a signal from one connection to another
 *                                     on the same bus (p50/p99)
 *   udp N                             UDP round trip to a forked echo process
 *   minimal BUS                       connect, one Ping, exit: the smallest
 *                                     sd-bus client, timed by the caller
 *   minimal-send BUS PEER TEXT        connect, one SendMessage, exit: the
 *                                     smallest client doing what
 *                                     `p2pchat send PEER TEXT` does
 */

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "common/bus-api.h"

/* SendMessage calls in flight at once in "throughput". */
#define THROUGHPUT_WINDOW 500u

static uint64_t now_usec(void) {
	struct timespec ts;

	(void) clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static int cmp_u64(const void *a, const void *b) {
	uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

	return x < y ? -1 : x > y;
}

static void print_percentiles(const char *name, uint64_t *v, size_t n) {
	qsort(v, n, sizeof(*v), cmp_u64);
	printf("%s_p50 %.1f us\n", name, (double) v[n / 2]);
	printf("%s_p99 %.1f us\n", name, (double) v[(n * 99) / 100]);
}

static sd_bus *open_bus(const char *address) {
	sd_bus *bus = NULL;
	int r;

	r = sd_bus_new(&bus);
	if (r >= 0) {
		r = sd_bus_set_address(bus, address);
	}
	if (r >= 0) {
		r = sd_bus_set_bus_client(bus, 1);
	}
	if (r >= 0) {
		r = sd_bus_start(bus);
	}
	if (r < 0) {
		fprintf(stderr, "Failed to connect to '%s': %s\n", address, strerror(-r));
		exit(EXIT_FAILURE);
	}
	return bus;
}

typedef struct Latency {
	char id[64];          /* from the reply */
	char received_id[64]; /* from the first MessageReceived of the round */
	uint64_t replied;
	uint64_t received;
	uint64_t delivered;
	size_t delivered_count;
	int error;
} Latency;

/*
 * One message is in flight per round, and its MessageReceived may come
 * before the SendMessage() reply: the first one of the round is taken, and
 * checked against the reply's id at the end of the round.
 */
static int on_received(sd_bus_message *m, void *userdata, sd_bus_error *error) {
	Latency *l = userdata;
	const char *id;

	if (!l->received && sd_bus_message_read(m, "s", &id) >= 0) {
		l->received = now_usec();
		(void) snprintf(l->received_id, sizeof(l->received_id), "%s", id);
	}
	return 0;
}

static int on_delivered(sd_bus_message *m, void *userdata, sd_bus_error *error) {
	Latency *l = userdata;
	const char *id;

	if (sd_bus_message_read(m, "s", &id) >= 0) {
		l->delivered_count++;
		if (strcmp(id, l->id) == 0) {
			l->delivered = now_usec();
		}
	}
	return 0;
}

static int on_send_reply(sd_bus_message *m, void *userdata, sd_bus_error *error) {
	Latency *l = userdata;
	const char *id;

	l->replied = now_usec();
	if (sd_bus_message_is_method_error(m, NULL) || sd_bus_message_read(m, "s", &id) < 0) {
		fprintf(stderr, "SendMessage failed: %s\n",
				sd_bus_message_get_error(m) ? sd_bus_message_get_error(m)->message : "?");
		l->error = -EIO;
		return 0;
	}
	(void) snprintf(l->id, sizeof(l->id), "%s", id);
	return 0;
}

static void add_matches(sd_bus *alice, sd_bus *bob, Latency *l) {
	int r = 0;

	if (bob) {
		r = sd_bus_match_signal(bob, NULL, P2PCHAT_BUS_NAME, P2PCHAT_OBJECT_PATH,
				P2PCHAT_MANAGER_INTERFACE, "MessageReceived", on_received, l);
	}
	if (r >= 0) {
		r = sd_bus_match_signal(alice, NULL, P2PCHAT_BUS_NAME, P2PCHAT_OBJECT_PATH,
				P2PCHAT_MANAGER_INTERFACE, "MessageDelivered", on_delivered, l);
	}
	if (r < 0) {
		fprintf(stderr, "Failed to add matches: %s\n", strerror(-r));
		exit(EXIT_FAILURE);
	}
}

static int run_latency(const char *a, const char *b, const char *peer, size_t n) {
	uint64_t *recv_us = calloc(n, sizeof(uint64_t)), *deliv_us = calloc(n, sizeof(uint64_t)),
		 *reply_us = calloc(n, sizeof(uint64_t));
	sd_bus *alice = open_bus(a), *bob = open_bus(b);
	sd_event *event = NULL;
	Latency l = {};
	int r;

	if (!recv_us || !deliv_us || !reply_us || sd_event_new(&event) < 0 ||
			sd_bus_attach_event(alice, event, 0) < 0 ||
			sd_bus_attach_event(bob, event, 0) < 0) {
		return -ENOMEM;
	}
	add_matches(alice, bob, &l);

	for (size_t i = 0; i < n; i++) {
		uint64_t t0, deadline;

		/*
		 * Asynchronous, so that bob's MessageReceived is timed when it
		 * arrives, even if it comes before alice's reply.
		 */
		l.received = l.delivered = l.replied = 0;
		l.id[0] = l.received_id[0] = '\0';
		t0 = now_usec();
		r = sd_bus_call_method_async(alice, NULL, P2PCHAT_BUS_NAME, P2PCHAT_OBJECT_PATH,
				P2PCHAT_MANAGER_INTERFACE, "SendMessage", on_send_reply, &l, "ss",
				peer, "benchmark message");
		if (r < 0) {
			return r;
		}

		deadline = t0 + 10000000u;
		while ((!l.replied || !l.received || !l.delivered) && !l.error &&
				now_usec() < deadline) {
			r = sd_event_run(event, 100000);
			if (r < 0) {
				return r;
			}
		}
		if (l.error) {
			return l.error;
		}
		if (!l.replied || !l.received || !l.delivered) {
			fprintf(stderr, "Message %zu timed out.\n", i);
			return -ETIMEDOUT;
		}
		if (strcmp(l.id, l.received_id) != 0) {
			fprintf(stderr, "Message %zu: bob received %s, not %s.\n", i,
					l.received_id, l.id);
			return -EIO;
		}
		recv_us[i] = l.received - t0;
		deliv_us[i] = l.delivered - t0;
		reply_us[i] = l.replied - t0;
	}
	print_percentiles("send_to_received", recv_us, n);
	print_percentiles("send_to_delivered", deliv_us, n);
	print_percentiles("send_reply", reply_us, n);
	return 0;
}

static int on_throughput_reply(sd_bus_message *m, void *userdata, sd_bus_error *error) {
	Latency *l = userdata;

	if (sd_bus_message_is_method_error(m, NULL)) {
		fprintf(stderr, "SendMessage failed: %s\n", sd_bus_message_get_error(m)->message);
		l->error = -EIO;
	}
	return 0;
}

static int run_throughput(const char *a, const char *peer, size_t n) {
	sd_bus *alice = open_bus(a);
	sd_event *event = NULL;
	Latency l = {};
	uint64_t t0, deadline;
	size_t sent = 0;
	int r;

	if (sd_event_new(&event) < 0 || sd_bus_attach_event(alice, event, 0) < 0) {
		return -ENOMEM;
	}
	add_matches(alice, NULL, &l);
	t0 = now_usec();
	deadline = t0 + 60000000u;
	while (l.delivered_count < n && !l.error && now_usec() < deadline) {
		/* A window below the outbox's limit per peer (1000 pending). */
		for (; sent < n && sent - l.delivered_count < THROUGHPUT_WINDOW; sent++) {
			r = sd_bus_call_method_async(alice, NULL, P2PCHAT_BUS_NAME,
					P2PCHAT_OBJECT_PATH, P2PCHAT_MANAGER_INTERFACE,
					"SendMessage", on_throughput_reply, &l, "ss", peer,
					"benchmark message");
			if (r < 0) {
				return r;
			}
		}
		r = sd_event_run(event, 100000);
		if (r < 0) {
			return r;
		}
	}
	if (l.error) {
		return l.error;
	}
	if (l.delivered_count < n) {
		fprintf(stderr, "Only %zu of %zu delivered.\n", l.delivered_count, n);
		return -ETIMEDOUT;
	}
	printf("messages_per_second %.0f msg/s\n", n * 1e6 / (double) (now_usec() - t0));
	return 0;
}

static int ping(sd_bus *bus) {
	sd_bus_error error = SD_BUS_ERROR_NULL;
	int r;

	r = sd_bus_call_method(bus, P2PCHAT_BUS_NAME, P2PCHAT_OBJECT_PATH,
			"org.freedesktop.DBus.Peer", "Ping", &error, NULL, "");
	sd_bus_error_free(&error);
	return r;
}

static int send_one(sd_bus *bus, const char *peer, const char *text) {
	sd_bus_error error = SD_BUS_ERROR_NULL;
	sd_bus_message *reply = NULL;
	int r;

	r = sd_bus_call_method(bus, P2PCHAT_BUS_NAME, P2PCHAT_OBJECT_PATH,
			P2PCHAT_MANAGER_INTERFACE, "SendMessage", &error, &reply, "ss", peer, text);
	sd_bus_error_free(&error);
	sd_bus_message_unref(reply);
	return r;
}

static int run_ping(const char *address, size_t n) {
	uint64_t *v = calloc(n, sizeof(uint64_t));
	sd_bus *bus = open_bus(address);

	if (!v) {
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t t0 = now_usec();

		if (ping(bus) < 0) {
			return -EIO;
		}
		v[i] = now_usec() - t0;
	}
	print_percentiles("dbus_call", v, n);
	return 0;
}

static int on_pong(sd_bus_message *m, void *userdata, sd_bus_error *error) {
	(*(size_t *) userdata)++;
	return 0;
}

static int run_ping_pipelined(const char *address, size_t n) {
	sd_bus *bus = open_bus(address);
	size_t done = 0;
	uint64_t t0;
	int r;

	t0 = now_usec();
	for (size_t i = 0; i < n; i++) {
		r = sd_bus_call_method_async(bus, NULL, P2PCHAT_BUS_NAME, P2PCHAT_OBJECT_PATH,
				"org.freedesktop.DBus.Peer", "Ping", on_pong, &done, "");
		if (r < 0) {
			return r;
		}
	}
	while (done < n) {
		r = sd_bus_process(bus, NULL);
		if (r < 0) {
			return r;
		}
		if (r == 0) {
			(void) sd_bus_wait(bus, 1000000);
		}
	}
	printf("dbus_calls_pipelined_per_second %.0f calls/s\n",
			n * 1e6 / (double) (now_usec() - t0));
	return 0;
}

static int on_test_signal(sd_bus_message *m, void *userdata, sd_bus_error *error) {
	*(uint64_t *) userdata = now_usec();
	return 0;
}

static int run_signal(const char *address, size_t n) {
	uint64_t *v = calloc(n, sizeof(uint64_t)), seen = 0;
	sd_bus *tx = open_bus(address), *rx = open_bus(address);
	int r;

	if (!v) {
		return -ENOMEM;
	}
	r = sd_bus_match_signal(rx, NULL, NULL, "/bench", "org.p2pchat.Bench", "Tick",
			on_test_signal, &seen);
	if (r < 0) {
		return r;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t t0 = now_usec();

		seen = 0;
		r = sd_bus_emit_signal(tx, "/bench", "org.p2pchat.Bench", "Tick", "s", "x");
		if (r >= 0) {
			r = sd_bus_flush(tx);
		}
		if (r < 0) {
			return r;
		}
		while (!seen) {
			if (now_usec() - t0 > 10000000u) {
				return -ETIMEDOUT;
			}
			r = sd_bus_process(rx, NULL);
			if (r < 0) {
				return r;
			}
			if (r == 0) {
				(void) sd_bus_wait(rx, 1000000);
			}
		}
		v[i] = seen - t0;
	}
	print_percentiles("dbus_signal", v, n);
	return 0;
}

static int run_udp(size_t n) {
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
	} ua = { .in.sin_family = AF_INET }, ub = ua;
	struct sockaddr_in *a = &ua.in, *b = &ub.in;
	socklen_t len = sizeof(*a);
	uint64_t *v = calloc(n, sizeof(uint64_t));
	int sa, sb, status;
	char buf[64] = "benchmark message";
	pid_t pid;

	a->sin_addr.s_addr = b->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa = socket(AF_INET, SOCK_DGRAM, 0);
	sb = socket(AF_INET, SOCK_DGRAM, 0);
	if (!v || sa < 0 || sb < 0 || bind(sa, &ua.sa, sizeof(*a)) < 0 ||
			bind(sb, &ub.sa, sizeof(*b)) < 0 ||
			getsockname(sa, &ua.sa, &len) < 0 ||
			getsockname(sb, &ub.sa, &len) < 0) {
		return -errno;
	}
	pid = fork();
	if (pid < 0) {
		return -errno;
	}
	if (pid == 0) {
		for (size_t i = 0; i < n; i++) {
			ssize_t k = recv(sb, buf, sizeof(buf), 0);

			if (k < 0 || sendto(sb, buf, (size_t) k, 0, &ua.sa,
					sizeof(*a)) < 0) {
				_exit(EXIT_FAILURE);
			}
		}
		_exit(EXIT_SUCCESS);
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t t0 = now_usec();

		if (sendto(sa, buf, 17, 0, &ub.sa, sizeof(*b)) < 0 ||
				recv(sa, buf, sizeof(buf), 0) < 0) {
			return -errno;
		}
		v[i] = now_usec() - t0;
	}
	(void) waitpid(pid, &status, 0);
	print_percentiles("udp_round_trip", v, n);
	return 0;
}

int main(int argc, char *argv[]) {
	int r = -EINVAL;

	if (argc == 6 && strcmp(argv[1], "latency") == 0) {
		r = run_latency(argv[2], argv[3], argv[4], strtoul(argv[5], NULL, 10));
	} else if (argc == 5 && strcmp(argv[1], "throughput") == 0) {
		r = run_throughput(argv[2], argv[3], strtoul(argv[4], NULL, 10));
	} else if (argc == 4 && strcmp(argv[1], "ping") == 0) {
		r = run_ping(argv[2], strtoul(argv[3], NULL, 10));
	} else if (argc == 4 && strcmp(argv[1], "ping-pipelined") == 0) {
		r = run_ping_pipelined(argv[2], strtoul(argv[3], NULL, 10));
	} else if (argc == 4 && strcmp(argv[1], "signal") == 0) {
		r = run_signal(argv[2], strtoul(argv[3], NULL, 10));
	} else if (argc == 3 && strcmp(argv[1], "udp") == 0) {
		r = run_udp(strtoul(argv[2], NULL, 10));
	} else if (argc == 3 && strcmp(argv[1], "minimal") == 0) {
		r = ping(open_bus(argv[2]));
	} else if (argc == 5 && strcmp(argv[1], "minimal-send") == 0) {
		r = send_one(open_bus(argv[2]), argv[3], argv[4]);
	} else {
		fprintf(stderr, "Usage: see the comment at the top of bench/message-path.c\n");
	}
	if (r < 0) {
		fprintf(stderr, "Failed: %s\n", strerror(-r));
		return EXIT_FAILURE;
	}
	return EXIT_SUCCESS;
}
