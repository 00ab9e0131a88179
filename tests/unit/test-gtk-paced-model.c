/* SPDX-License-Identifier: MIT */

/*
 * Unit tests of frontends/gtk/chat-paced-model.c: what a ChatPacedModel
 * shows is always the tail of its model; appends, changes there and small
 * insertions in front pass through at once, a large insertion in front is
 * held back and revealed a step at a time, and a removal that reaches the
 * held-back items shows them all.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "frontends/gtk/chat-paced-model.h"

#define STEP 5

typedef struct Change {
	guint position;
	guint removed;
	guint added;
} Change;

typedef struct Fixture {
	GListStore *store;
	ChatPacedModel *paced;
	GArray *changes;	/* of Change, as the paced model emitted them */
	guint pending_notifies;
} Fixture;

static void on_items_changed(GListModel *model, guint position, guint removed,
		guint added, gpointer user_data) {
	Fixture *f = user_data;
	Change change = { position, removed, added };

	g_array_append_val(f->changes, change);
}

static void on_notify_pending(GObject *object, GParamSpec *pspec,
		gpointer user_data) {
	Fixture *f = user_data;

	f->pending_notifies++;
}

static void store_insert(GListStore *store, guint position, guint n) {
	g_autoptr(GPtrArray) items = g_ptr_array_new_with_free_func(
		g_object_unref);

	for (guint i = 0; i < n; i++) {
		g_ptr_array_add(items, g_object_new(G_TYPE_OBJECT, NULL));
	}
	g_list_store_splice(store, position, 0, items->pdata, items->len);
}

static int setup(void **state) {
	Fixture *f = g_new0(Fixture, 1);

	f->store = g_list_store_new(G_TYPE_OBJECT);
	store_insert(f->store, 0, 4);
	f->paced = chat_paced_model_new(G_LIST_MODEL(f->store), STEP);
	f->changes = g_array_new(FALSE, FALSE, sizeof(Change));
	g_signal_connect(f->paced, "items-changed",
		G_CALLBACK(on_items_changed), f);
	g_signal_connect(f->paced, "notify::pending",
		G_CALLBACK(on_notify_pending), f);
	*state = f;
	return 0;
}

static int teardown(void **state) {
	Fixture *f = *state;

	g_object_unref(f->paced);
	g_object_unref(f->store);
	g_array_unref(f->changes);
	g_free(f);
	return 0;
}

/* The paced model shows store[pending, n) and nothing else. */
static void assert_shows_tail(Fixture *f) {
	GListModel *paced = G_LIST_MODEL(f->paced);
	GListModel *store = G_LIST_MODEL(f->store);
	guint pending = chat_paced_model_get_pending(f->paced);
	guint n = g_list_model_get_n_items(store);

	assert_true(pending <= n);
	assert_int_equal(g_list_model_get_n_items(paced), n - pending);
	for (guint i = 0; i < n - pending; i++) {
		g_autoptr(GObject) a = g_list_model_get_item(paced, i);
		g_autoptr(GObject) b = g_list_model_get_item(store, pending + i);

		assert_ptr_equal(a, b);
	}
	assert_null(g_list_model_get_item(paced, n - pending));
	assert_true(g_list_model_get_item_type(paced) == G_TYPE_OBJECT);
}

static void assert_change(Fixture *f, guint index, guint position,
		guint removed, guint added) {
	Change *c;

	assert_true(index < f->changes->len);
	c = &g_array_index(f->changes, Change, index);
	assert_int_equal(c->position, position);
	assert_int_equal(c->removed, removed);
	assert_int_equal(c->added, added);
}

static void test_paced_model_shows_what_is_there(void **state) {
	Fixture *f = *state;

	assert_int_equal(chat_paced_model_get_pending(f->paced), 0);
	assert_ptr_equal(chat_paced_model_get_model(f->paced), f->store);
	assert_shows_tail(f);
	assert_int_equal(chat_paced_model_reveal(f->paced), 0);
	assert_int_equal(f->changes->len, 0);
}

static void test_paced_model_passes_appends_and_small_pages(void **state) {
	Fixture *f = *state;

	store_insert(f->store, 4, 20);
	assert_change(f, 0, 4, 0, 20);
	store_insert(f->store, 0, STEP);
	assert_change(f, 1, 0, 0, STEP);
	g_list_store_remove(f->store, 10);
	assert_change(f, 2, 10, 1, 0);
	assert_int_equal(f->changes->len, 3);
	assert_int_equal(f->pending_notifies, 0);
	assert_shows_tail(f);
}

static void test_paced_model_reveals_a_page_step_by_step(void **state) {
	Fixture *f = *state;

	store_insert(f->store, 0, 2 * STEP + 2);
	assert_int_equal(f->changes->len, 0);
	assert_int_equal(chat_paced_model_get_pending(f->paced), 2 * STEP + 2);
	assert_int_equal(f->pending_notifies, 1);
	assert_shows_tail(f);

	/* Meanwhile, a live message at the end shows at once. */
	store_insert(f->store, 2 * STEP + 6, 1);
	assert_change(f, 0, 4, 0, 1);
	assert_shows_tail(f);

	assert_int_equal(chat_paced_model_reveal(f->paced), STEP + 2);
	assert_change(f, 1, 0, 0, STEP);
	assert_shows_tail(f);
	assert_int_equal(chat_paced_model_reveal(f->paced), 2);
	assert_change(f, 2, 0, 0, STEP);
	assert_shows_tail(f);
	assert_int_equal(chat_paced_model_reveal(f->paced), 0);
	assert_change(f, 3, 0, 0, 2);
	assert_shows_tail(f);
	assert_int_equal(chat_paced_model_reveal(f->paced), 0);
	assert_int_equal(f->changes->len, 4);
	assert_int_equal(f->pending_notifies, 4);
}

static void test_paced_model_holds_pages_in_order(void **state) {
	Fixture *f = *state;

	/* Two pages arrive before the first is revealed; even a small one
	 * waits behind the held-back items. */
	store_insert(f->store, 0, STEP + 1);
	store_insert(f->store, 0, 1);
	assert_int_equal(chat_paced_model_get_pending(f->paced), STEP + 2);
	assert_int_equal(f->changes->len, 0);
	assert_shows_tail(f);
	while (chat_paced_model_reveal(f->paced) > 0) {
		assert_shows_tail(f);
	}
	assert_shows_tail(f);
	assert_int_equal(g_list_model_get_n_items(G_LIST_MODEL(f->paced)),
		4 + STEP + 2);
}

static void test_paced_model_shows_all_on_removal_in_front(void **state) {
	Fixture *f = *state;

	store_insert(f->store, 0, 3 * STEP);
	g_list_store_remove(f->store, 1);
	assert_int_equal(chat_paced_model_get_pending(f->paced), 0);
	assert_change(f, 0, 0, 4, 3 * STEP - 1 + 4);
	assert_int_equal(f->changes->len, 1);
	assert_shows_tail(f);
}

static void test_paced_model_empty_store(void **state) {
	g_autoptr(GListStore) store = g_list_store_new(G_TYPE_OBJECT);
	g_autoptr(ChatPacedModel) paced = chat_paced_model_new(
		G_LIST_MODEL(store), STEP);

	/* The first page of a conversation is revealed from its newest. */
	store_insert(store, 0, STEP + 3);
	assert_int_equal(g_list_model_get_n_items(G_LIST_MODEL(paced)), 0);
	assert_int_equal(chat_paced_model_reveal(paced), 3);
	assert_int_equal(g_list_model_get_n_items(G_LIST_MODEL(paced)), STEP);
	{
		g_autoptr(GObject) a = g_list_model_get_item(
			G_LIST_MODEL(paced), STEP - 1);
		g_autoptr(GObject) b = g_list_model_get_item(
			G_LIST_MODEL(store), STEP + 2);

		assert_ptr_equal(a, b);
	}
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_paced_model_shows_what_is_there, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_paced_model_passes_appends_and_small_pages,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_paced_model_reveals_a_page_step_by_step,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_paced_model_holds_pages_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_paced_model_shows_all_on_removal_in_front,
			setup, teardown),
		cmocka_unit_test(test_paced_model_empty_store),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
