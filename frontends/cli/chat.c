/* SPDX-License-Identifier: MIT */

/*
 * The chat verb.  A Chat lives on verb_chat()'s stack for the whole
 * conversation; every SendMessage call in flight holds a small SentMessage
 * that its floating bus slot frees.
 *
 * Interactive mode uses libedit's readline-compatible callback interface: the
 * event loop tells libedit when a key is ready, so bus signals are handled
 * while a line is being typed.  An incoming line is printed by wiping the
 * edit area, printing, and having libedit redraw prompt and buffer, so what
 * was typed is never garbled.  libedit's callbacks take no userdata, hence
 * the one file-level pointer to the active Chat.
 */

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <json-c/json.h>

#include "common/bus-api.h"
#include "common/json-util.h"
#include "common/log.h"
#include "common/macro.h"
#include "frontends/cli/chat.h"
#include "frontends/cli/client.h"
#include "frontends/cli/editline.h"
#include "frontends/cli/options.h"
#include "frontends/cli/output.h"

/* A longer stdin line is sent as it is (the daemon then refuses it). */
#define CHAT_LINE_MAX (64 * 1024)
#define CHAT_HISTORY_MAX 1000
/* Messages of the conversation shown when an interactive chat starts. */
#define CHAT_BACKLOG 20

typedef struct Chat {
	sd_bus *bus;       /* not owned */
	sd_event *event;   /* not owned */
	const char *peer;
	char *prompt;
	bool interactive;
	bool eof;
	bool peer_online;  /* as far as the signals told */
	const char *presence; /* static: for the banner */
	bool failed;       /* a SendMessage call failed */
	unsigned pending;  /* SendMessage calls without a reply yet */
	struct SentMessage *sent; /* those calls, newest first; not owned */
	char **own_ids;    /* ids of the lines sent here: their MessageQueued is ours */
	size_t n_own_ids;
	char *inbuf;       /* pipe mode: bytes read, not yet a full line */
	size_t inlen;
} Chat;

typedef struct SentMessage {
	Chat *chat;        /* not owned */
	char *text;
	bool claimed;      /* its MessageQueued came before the reply */
	struct SentMessage *next;
} SentMessage;

static Chat *active_chat;

static void sent_message_free(void *userdata) {
	SentMessage *s = userdata;

	if (s) {
		for (SentMessage **p = &s->chat->sent; *p; p = &(*p)->next) {
			if (*p == s) {
				*p = s->next;
				break;
			}
		}
		s->chat->pending--;
		free(s->text);
		free(s);
	}
}

static bool chat_is_own_id(Chat *c, const char *id) {
	for (size_t i = 0; i < c->n_own_ids; i++) {
		if (streq(c->own_ids[i], id)) {
			return true;
		}
	}
	return false;
}

static int chat_add_own_id(Chat *c, const char *id) {
	char **a, *copy;

	copy = strdup(id);
	a = copy ? reallocarray(c->own_ids, c->n_own_ids + 1, sizeof(char *)) : NULL;
	if (!a) {
		free(copy);
		return -ENOMEM;
	}
	c->own_ids = a;
	c->own_ids[c->n_own_ids++] = copy;
	return 0;
}

static unsigned terminal_columns(void) {
	struct winsize ws;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0 || ws.ws_col == 0) {
		return 80;
	}
	return ws.ws_col;
}

/* Prints a line to f; in interactive mode above the input line. */
static void chat_print(Chat *c, FILE *f, const char *line) {
	_cleanup_free_ char *before = NULL;
	size_t width, up;

	if (!c->interactive) {
		(void) fprintf(f, "%s\n", line);
		(void) fflush(f);
		return;
	}

	/* Go to the first row of prompt + buffer, and wipe to the end of screen. */
	before = strndup(*sym_rl_line_buffer ? *sym_rl_line_buffer : "",
		(size_t) MAX(*sym_rl_point, 0));
	width = utf8_width(c->prompt) + (before ? utf8_width(before) : 0);
	up = width / terminal_columns();
	(void) fputc('\r', stdout);
	if (up > 0) {
		(void) fprintf(stdout, "\033[%zuA", up);
	}
	(void) fputs("\033[J", stdout);
	(void) fflush(stdout);

	(void) fprintf(f, "%s\r\n", line);
	(void) fflush(f);
	sym_rl_forced_update_display();
}

/* The error line of a failed send; on a terminal, above the input line. */
static void chat_print_error(Chat *c, const char *what) {
	_cleanup_free_ char *line = NULL;

	if (asprintf(&line, "Failed to send message to '%s': %s", c->peer, what) < 0) {
		(void) log_oom();
		return;
	}
	chat_print(c, stderr, line);
}

static void chat_maybe_finish(Chat *c) {
	if (c->eof && c->pending == 0) {
		(void) sd_event_exit(c->event, c->failed ? EXIT_FAILURE : EXIT_SUCCESS);
	}
}

static void chat_print_event(Chat *c, json_object *ev) {
	_cleanup_free_ char *line = NULL;

	if (arg_json != JSON_FORMAT_OFF) {
		if (json_print(ev, arg_json) < 0) {
			/* Nobody reads us any more. */
			(void) sd_event_exit(c->event, EXIT_SUCCESS);
		}
		return;
	}
	line = event_format_line(ev, false);
	if (!line) {
		(void) log_oom();
		return;
	}
	chat_print(c, stdout, line);
}

/* --json: the daemon accepted a line; say which id it got. */
static void chat_print_queued(Chat *c, SentMessage *s, sd_bus_message *reply) {
	_cleanup_(json_object_putp) json_object *ev = NULL;
	const char *id;
	int r;

	r = sd_bus_message_read(reply, "s", &id);
	if (r < 0) {
		chat_print_error(c, "p2pchatd sent a malformed reply.");
		c->failed = true;
		return;
	}
	/* Its MessageQueued came first and was printed: nothing more to say. */
	if (s->claimed) {
		return;
	}
	if (chat_add_own_id(c, id) < 0) {
		(void) log_oom();
		return;
	}
	ev = json_object_new_object();
	if (!ev || json_add_string(ev, "event", "messageQueued") < 0 ||
			json_add_string(ev, "id", id) < 0 ||
			json_add_string(ev, "peer", c->peer) < 0 ||
			json_add_string(ev, "text", s->text) < 0 ||
			json_add(ev, "extra", json_object_new_object()) < 0) {
		(void) log_oom();
		return;
	}
	chat_print_event(c, ev);
}

static int on_send_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
	SentMessage *s = userdata;
	Chat *c = s->chat;
	const char *id;

	if (sd_bus_message_is_method_error(m, NULL)) {
		const sd_bus_error *e = sd_bus_message_get_error(m);

		chat_print_error(c, client_error_message(e, -sd_bus_error_get_errno(e)));
		c->failed = true;
	} else if (arg_json != JSON_FORMAT_OFF) {
		chat_print_queued(c, s, m);
	} else if (!s->claimed && (sd_bus_message_read(m, "s", &id) < 0 ||
			chat_add_own_id(c, id) < 0)) {
		(void) log_oom();
	} else if (!c->peer_online) {
		_cleanup_free_ char *line = NULL;

		if (asprintf(&line, "%s* message queued: %s is offline, it goes out when %s is "
				"back%s", ansi_grey(), c->peer, c->peer, ansi_normal()) < 0) {
			(void) log_oom();
		} else {
			chat_print(c, stdout, line);
		}
	}

	/* The slot frees s, and counts it done, only after this returns. */
	if (c->eof && c->pending == 1) {
		(void) sd_event_exit(c->event, c->failed ? EXIT_FAILURE : EXIT_SUCCESS);
	}
	return 0;
}

static void chat_send(Chat *c, const char *text) {
	_cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
	SentMessage *s;
	int r;

	s = calloc(1, sizeof(SentMessage));
	if (!s || !(s->text = strdup(text))) {
		free(s);
		(void) log_oom();
		return;
	}
	s->chat = c;

	r = sd_bus_call_method_async(c->bus, &slot, P2PCHAT_BUS_NAME, P2PCHAT_OBJECT_PATH,
		P2PCHAT_MANAGER_INTERFACE, "SendMessage", on_send_reply, s, "ss", c->peer, text);
	if (r < 0) {
		free(s->text);
		free(s);
		chat_print_error(c, r == -EINVAL ? "the text is not valid UTF-8." : strerror(-r));
		c->failed = true;
		return;
	}
	c->pending++;
	s->next = c->sent;
	c->sent = s;
	(void) sd_bus_slot_set_destroy_callback(slot, sent_message_free);
	(void) sd_bus_slot_set_floating(slot, 1);
}

static bool is_blank(const char *s) {
	return s[strspn(s, " \t\r")] == '\0';
}

/* libedit's line callback: line is ours to free, NULL on Ctrl-D. */
static void on_line(char *line) {
	Chat *c = active_chat;

	if (!line) {
		/* Wipe the input line, where libedit may have drawn the "^D". */
		(void) fputs("\r\033[K", stdout);
		(void) fflush(stdout);
		c->eof = true;
		(void) sd_event_exit(c->event, EXIT_SUCCESS);
		return;
	}
	if (!is_blank(line)) {
		(void) sym_add_history(line);
		chat_send(c, line);
	}
	free(line);
	/* libedit leaves buffered mode after a line; installing again undoes that. */
	sym_rl_callback_handler_install(c->prompt, on_line);
}

/* Sends every complete line in c->inbuf; at EOF the rest as well. */
static void chat_flush_lines(Chat *c) {
	size_t start = 0;

	for (size_t i = 0; i < c->inlen; i++) {
		if (c->inbuf[i] != '\n') {
			continue;
		}
		c->inbuf[i] = '\0';
		if (!is_blank(c->inbuf + start)) {
			chat_send(c, c->inbuf + start);
		}
		start = i + 1;
	}
	if (start == 0 && (c->eof || c->inlen >= CHAT_LINE_MAX) && c->inlen > 0) {
		c->inbuf[c->inlen] = '\0';
		if (!is_blank(c->inbuf)) {
			chat_send(c, c->inbuf);
		}
		start = c->inlen;
	}
	memmove(c->inbuf, c->inbuf + start, c->inlen - start);
	c->inlen -= start;
}

static int chat_read_pipe(sd_event_source *s, Chat *c) {
	ssize_t k;

	k = read(STDIN_FILENO, c->inbuf + c->inlen, CHAT_LINE_MAX - c->inlen);
	if (k < 0) {
		if (errno == EAGAIN || errno == EINTR) {
			return 0;
		}
		log_error_errno(errno, "Failed to read standard input: %m");
		c->failed = true;
		k = 0;
	}
	if (k == 0) {
		c->eof = true;
		(void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
	}
	c->inlen += (size_t) k;
	chat_flush_lines(c);
	chat_maybe_finish(c);
	return 0;
}

static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
	Chat *c = userdata;

	if (c->interactive) {
		sym_rl_callback_read_char();
		return 0;
	}
	return chat_read_pipe(s, c);
}

/* libedit's own SIGWINCH handler is off (rl_catch_signals): resize here. */
static int on_sigwinch(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
	sym_rl_resize_terminal();
	return 0;
}

/* Regular files and /dev/null cannot be polled: read them as they come. */
static int on_stdin_defer(sd_event_source *s, void *userdata) {
	return chat_read_pipe(s, userdata);
}

/*
 * A message stored for the peer: one of our lines (shown by the terminal
 * already, or printed from the reply with --json) or one sent by another
 * client, busctl or a script, which belongs to the conversation as well.
 */
static bool chat_wants_queued(Chat *c, json_object *ev) {
	const char *id = strempty(json_get_string(ev, "id", NULL));
	const char *text = strempty(json_get_string(ev, "text", NULL));

	if (!streq_ptr(json_get_string(ev, "peer", NULL), c->peer) || chat_is_own_id(c, id)) {
		return false;
	}
	/* Before its reply: a line of ours still waiting for it has this text. */
	for (SentMessage *s = c->sent; s; s = s->next) {
		if (s->claimed || !streq(s->text, text)) {
			continue;
		}
		s->claimed = true;
		if (chat_add_own_id(c, id) < 0) {
			(void) log_oom();
		}
		return arg_json != JSON_FORMAT_OFF;
	}
	return true;
}

static bool chat_wants_event(Chat *c, json_object *ev) {
	if (event_is(ev, "messageQueued")) {
		return chat_wants_queued(c, ev);
	}
	if (event_is(ev, "messageReceived") || event_is(ev, "messageFailed")) {
		return streq_ptr(json_get_string(ev, "peer", NULL), c->peer);
	}
	if (event_is(ev, "peerJoined") || event_is(ev, "peerLeft")) {
		if (!streq_ptr(json_get_string(ev, "name", NULL), c->peer)) {
			return false;
		}
		c->peer_online = event_is(ev, "peerJoined");
		return true;
	}
	/*
	 * Every state for --json; on a terminal the reply already said when a
	 * message waits for an offline peer, and "failed" comes as messageFailed.
	 */
	if (event_is(ev, "messageStateChanged")) {
		return arg_json != JSON_FORMAT_OFF &&
			streq_ptr(json_get_string(ev, "peer", NULL), c->peer);
	}
	/* Delivery confirmations are only noise on a terminal. */
	if (event_is(ev, "messageDelivered") || event_is(ev, "messageSent")) {
		return arg_json != JSON_FORMAT_OFF &&
			streq_ptr(json_get_string(ev, "peer", NULL), c->peer);
	}
	return false;
}

static int on_chat_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
	_cleanup_(json_object_putp) json_object *ev = NULL;
	Chat *c = userdata;

	if (client_event_from_signal(m, &ev) <= 0) {
		return 0;
	}
	if (chat_wants_event(c, ev)) {
		chat_print_event(c, ev);
	}
	return 0;
}

static const char *chat_peer_presence(Chat *c);

/* Checks we are logged in and builds the prompt from our name. */
static int chat_prepare(Chat *c) {
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
	_cleanup_(json_object_putp) json_object *o = NULL;
	const char *state, *name;
	int r;

	r = client_get_manager(c->bus, &error, &o);
	if (r < 0) {
		return log_error_errno(r, "Failed to start a chat with '%s': %s", c->peer,
			client_error_message(&error, r));
	}
	state = json_get_string(o, "state", NULL);
	if (streq_ptr(state, "offline") || !state) {
		return log_error_errno(ENOTCONN,
			"Failed to start a chat with '%s': not logged in "
			"(run 'p2pchat login NAME' first).", c->peer);
	}
	c->presence = chat_peer_presence(c);
	name = json_get_string(o, "username", NULL);
	if (asprintf(&c->prompt, "%s> ", name && name[0] ? name : "me") < 0) {
		c->prompt = NULL;
		return log_oom();
	}
	return 0;
}

/* On a terminal: the end of the conversation so far, oldest first. */
static void chat_print_history(Chat *c) {
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
	_cleanup_(json_object_putp) json_object *msgs = NULL;

	if (client_get_history(c->bus, c->peer, CHAT_BACKLOG, &error, &msgs) < 0) {
		return; /* an older daemon: chat without it */
	}
	for (size_t i = 0; i < json_object_array_length(msgs); i++) {
		json_object *msg = json_object_array_get_idx(msgs, i), *v;
		_cleanup_free_ char *text = NULL;
		const char *state = strempty(json_get_string(msg, "state", NULL));
		bool in = streq_ptr(json_get_string(msg, "direction", NULL), "in");
		uint64_t ts = 0;
		char clock[9];

		if (json_object_object_get_ex(msg, in ? "receivedUsec" : "sentUsec", &v)) {
			ts = json_object_get_uint64(v);
		}
		text = text_escape(strempty(json_get_string(msg, "text", NULL)));
		if (!text) {
			(void) log_oom();
			return;
		}
		/* Ours show their state unless they arrived. */
		if (in || streq(state, "delivered") || streq(state, "read")) {
			state = "";
		}
		printf("%s[%s]%s %s%s:%s %s%s%s%s%s%s\n", ansi_grey(), format_clock(ts, clock),
			ansi_normal(), ansi_highlight(), in ? c->peer : "me", ansi_normal(), text,
			streq(state, "failed") ? ansi_red() : ansi_grey(), state[0] ? " (" : "",
			state, state[0] ? ")" : "", ansi_normal());
	}
}

/* For the banner: whether the roster knows the peer and has it online. */
static const char *chat_peer_presence(Chat *c) {
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
	_cleanup_(json_object_putp) json_object *peers = NULL;

	if (client_list_peers(c->bus, &error, &peers) < 0) {
		return "presence unknown";
	}
	for (size_t i = 0; i < json_object_array_length(peers); i++) {
		json_object *p = json_object_array_get_idx(peers, i), *online;

		if (!streq_ptr(json_get_string(p, "name", NULL), c->peer)) {
			continue;
		}
		if (json_object_object_get_ex(p, "online", &online) &&
				json_object_get_boolean(online)) {
			c->peer_online = true;
			return "online";
		}
		return "offline";
	}
	return "not known to the coordinator yet";
}

static void chat_done(Chat *c) {
	if (c->interactive && active_chat == c) {
		sym_rl_callback_handler_remove();
		active_chat = NULL;
		if (!c->eof) {
			/* Interrupted: leave the shell prompt on a line of its own. */
			(void) fputc('\n', stdout);
		}
	}
	c->prompt = mfree(c->prompt);
	c->inbuf = mfree(c->inbuf);
	for (size_t i = 0; i < c->n_own_ids; i++) {
		free(c->own_ids[i]);
	}
	c->own_ids = mfree(c->own_ids);
	c->n_own_ids = 0;
}

/*
 * Tells the daemon which conversation is on screen ("" at the end): no
 * notifications for it, and what arrives is marked read.  The daemon also
 * forgets it when we leave the bus.  An older daemon lacks it: ignored.
 */
static void chat_set_active(Chat *c, const char *peer) {
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
	int r;

	r = sd_bus_call_method(c->bus, P2PCHAT_BUS_NAME, P2PCHAT_OBJECT_PATH,
		P2PCHAT_MANAGER_INTERFACE, "SetActiveConversation", &error, NULL, "s", peer);
	if (r < 0) {
		log_debug_errno(r, "Failed to set the active conversation to '%s', ignoring: %s",
			peer, client_error_message(&error, r));
	}
}

static int on_chat_exit(sd_event_source *s, void *userdata) {
	chat_set_active(userdata, "");
	return 0;
}

/* The backlog was shown: it is read now. */
static void chat_mark_read(Chat *c) {
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
	int r;

	r = sd_bus_call_method(c->bus, P2PCHAT_BUS_NAME, P2PCHAT_OBJECT_PATH,
		P2PCHAT_MANAGER_INTERFACE, "MarkRead", &error, NULL, "s", c->peer);
	if (r < 0) {
		log_debug_errno(r, "Failed to mark the messages of '%s' read, ignoring: %s",
			c->peer, client_error_message(&error, r));
	}
}

int verb_chat(int argc, char *argv[], void *userdata) {
	/* Declared first, so cleaned up last: the bus's slots point to it. */
	_cleanup_(chat_done) Chat c = {
		.peer = argv[1],
		.interactive = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO) &&
			arg_json == JSON_FORMAT_OFF,
	};
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	_cleanup_(sd_event_source_unrefp) sd_event_source *input = NULL, *leave = NULL;
	_cleanup_(sd_event_unrefp) sd_event *event = NULL;
	int r;

	r = client_connect(&bus);
	if (r < 0) {
		return r;
	}
	c.bus = bus;
	r = chat_prepare(&c);
	if (r < 0) {
		return r;
	}
	r = client_attach_event(bus, &event);
	if (r < 0) {
		return r;
	}
	c.event = event;
	r = client_subscribe(bus, on_chat_signal, &c);
	if (r < 0) {
		return r;
	}
	chat_set_active(&c, c.peer);
	/* Before the bus closes with the loop (its own exit source runs later). */
	r = sd_event_add_exit(event, &leave, on_chat_exit, &c);
	if (r >= 0) {
		r = sd_event_source_set_priority(leave, SD_EVENT_PRIORITY_IMPORTANT);
	}
	if (r < 0) {
		return log_error_errno(r, "Failed to watch the end of the chat: %m");
	}

	if (c.interactive) {
		sigset_t mask;

		r = editline_load();
		if (r < 0) {
			return r;
		}
		(void) sigemptyset(&mask);
		(void) sigaddset(&mask, SIGWINCH);
		if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
			return log_error_errno(errno, "Failed to block SIGWINCH: %m");
		}
		r = sd_event_add_signal(event, NULL, SIGWINCH, on_sigwinch, NULL);
		if (r < 0) {
			return log_error_errno(r, "Failed to watch terminal resizes: %m");
		}
		*sym_rl_catch_signals = 0;
		sym_stifle_history(CHAT_HISTORY_MAX);
		active_chat = &c;
		chat_print_history(&c);
		chat_mark_read(&c);
		printf("Chatting with %s%s%s (%s). Type a line and press Enter to send it, "
			"Ctrl-D to leave.\n", ansi_highlight(), c.peer, ansi_normal(),
			c.presence);
		(void) fflush(stdout);
		sym_rl_callback_handler_install(c.prompt, on_line);
	} else {
		c.inbuf = malloc(CHAT_LINE_MAX + 1);
		if (!c.inbuf) {
			return log_oom();
		}
	}

	r = sd_event_add_io(event, &input, STDIN_FILENO, EPOLLIN, on_stdin, &c);
	if (r == -EPERM && !c.interactive) {
		r = sd_event_add_defer(event, &input, on_stdin_defer, &c);
		if (r >= 0) {
			r = sd_event_source_set_enabled(input, SD_EVENT_ON);
		}
	}
	if (r < 0) {
		return log_error_errno(r, "Failed to watch standard input: %m");
	}

	r = sd_event_loop(event);
	if (r < 0) {
		return log_error_errno(r, "Failed to run the event loop: %m");
	}
	if (r != EXIT_SUCCESS && !c.failed) {
		return log_error_errno(ECONNRESET, "Failed to chat with '%s': lost the bus "
			"connection.", c.peer);
	}
	return c.failed ? -EIO : 0;
}
