/* SPDX-License-Identifier: MIT */

/*
 * A Resolver is owned by whoever started it (the Manager, while a Login()
 * waits for a host name).  Its thread owns a Job: a copy of the question and
 * one end of a socketpair.  The thread answers on that socket and frees the
 * Job; if the Resolver was freed first, the answer goes nowhere (send() to a
 * closed peer fails with EPIPE, no signal) and nothing else is shared.
 */

#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "daemon/resolve.h"

typedef struct Job {
	char host[RESOLVE_HOST_MAX + 1];
	char port[8];
	int family;
	int fd;
} Job;

typedef struct Answer {
	int error;
	Endpoint endpoint;
} Answer;

struct Resolver {
	sd_event_source *source;
	int fd;
	ResolveCallback cb;
	void *userdata;
};

bool resolve_host_is_valid(const char *host) {
	size_t n = strlen(host);

	if (n == 0 || n > RESOLVE_HOST_MAX) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		char c = host[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
				c == '-' || c == '.')) {
			return false;
		}
	}
	return true;
}

static void *job_run(void *p) {
	Job *job = p;
	struct addrinfo hints = {
		.ai_family = job->family,
		.ai_socktype = SOCK_DGRAM,
		.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV,
	}, *res = NULL;
	Answer a = { .error = -EHOSTUNREACH };
	int r;

	r = getaddrinfo(job->host, job->port, &hints, &res);
	if (r == 0) {
		for (struct addrinfo *i = res; i; i = i->ai_next) {
			if (endpoint_from_sockaddr(i->ai_addr, i->ai_addrlen, &a.endpoint) >= 0) {
				a.error = 0;
				break;
			}
		}
		freeaddrinfo(res);
	}
	(void) send(job->fd, &a, sizeof(a), MSG_NOSIGNAL);
	safe_close(job->fd);
	free(job);
	return NULL;
}

static int on_answer(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
	Resolver *r = userdata;
	Answer a = { .error = -EHOSTUNREACH };
	ssize_t n;

	n = recv(fd, &a, sizeof(a), MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		return 0;
	}
	if (n != (ssize_t) sizeof(a)) {
		a.error = -EHOSTUNREACH;
	}
	r->source = sd_event_source_disable_unref(r->source);
	/* Last: the callback may free the Resolver. */
	r->cb(a.error, &a.endpoint, r->userdata);
	return 0;
}

int resolver_start(sd_event *event, const char *host, uint16_t port, int family,
		ResolveCallback cb, void *userdata, Resolver **ret) {
	_cleanup_(resolver_freep) Resolver *r = NULL;
	_cleanup_free_ Job *job = NULL;
	pthread_attr_t attr;
	pthread_t thread;
	int pair[2], k;

	if (!resolve_host_is_valid(host)) {
		return -EINVAL;
	}
	r = calloc(1, sizeof(*r));
	job = calloc(1, sizeof(*job));
	if (!r || !job) {
		return -ENOMEM;
	}
	r->fd = -EBADF;
	r->cb = cb;
	r->userdata = userdata;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) {
		return -errno;
	}
	r->fd = pair[0];
	job->fd = pair[1];
	(void) snprintf(job->host, sizeof(job->host), "%s", host);
	(void) snprintf(job->port, sizeof(job->port), "%u", (unsigned) port);
	job->family = family;

	k = sd_event_add_io(event, &r->source, r->fd, EPOLLIN, on_answer, r);
	if (k < 0) {
		safe_close(job->fd);
		return k;
	}

	k = pthread_attr_init(&attr);
	if (k == 0) {
		k = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (k == 0) {
			k = pthread_create(&thread, &attr, job_run, job);
		}
		(void) pthread_attr_destroy(&attr);
	}
	if (k != 0) {
		safe_close(job->fd);
		return -k;
	}
	TAKE_PTR(job);
	*ret = TAKE_PTR(r);
	return 0;
}

Resolver *resolver_free(Resolver *r) {
	if (!r) {
		return NULL;
	}
	sd_event_source_disable_unref(r->source);
	safe_close(r->fd);
	return mfree(r);
}
