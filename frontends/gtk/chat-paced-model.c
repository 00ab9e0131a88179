/* SPDX-License-Identifier: MIT */
/*
 * ChatPacedModel: a list model that shows another one, except that a batch
 * of items put before the shown ones (a history page) is held back and
 * revealed a few items at a time.
 *
 * GtkListView (4.8) binds and measures a widget for every new item near its
 * anchor in the frame after the change; for a page of wrapped labels that
 * blocks the main loop far longer than a frame.  The window calls
 * chat_paced_model_reveal() once per frame-clock tick while items are
 * pending, so each frame only lays out one step of new rows.
 *
 * What is shown is always the tail of the model: items [pending, n).
 * Changes there, appends and small insertions at the front pass through at
 * once; removals in front of the shown items (which ChatClient never makes)
 * reveal everything.
 */

#include "frontends/gtk/chat-paced-model.h"

struct _ChatPacedModel {
	GObject parent_instance;

	GListModel *model;
	gulong items_changed_handler;
	guint step;
	guint pending;			/* leading items of model not shown */
};

static void chat_paced_model_list_model_init(GListModelInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE(ChatPacedModel, chat_paced_model,
	G_TYPE_OBJECT,
	G_IMPLEMENT_INTERFACE(G_TYPE_LIST_MODEL,
		chat_paced_model_list_model_init))

enum {
	PROP_0,
	PROP_MODEL,
	PROP_STEP,
	PROP_PENDING,
	N_PROPS,
};

static GParamSpec *properties[N_PROPS];

static GType chat_paced_model_get_item_type(GListModel *list) {
	ChatPacedModel *self = CHAT_PACED_MODEL(list);

	return g_list_model_get_item_type(self->model);
}

static guint chat_paced_model_get_n_items(GListModel *list) {
	ChatPacedModel *self = CHAT_PACED_MODEL(list);

	return g_list_model_get_n_items(self->model) - self->pending;
}

static gpointer chat_paced_model_get_item(GListModel *list, guint position) {
	ChatPacedModel *self = CHAT_PACED_MODEL(list);

	if (position >= chat_paced_model_get_n_items(list)) {
		return NULL;
	}
	return g_list_model_get_item(self->model, position + self->pending);
}

static void chat_paced_model_list_model_init(GListModelInterface *iface) {
	iface->get_item_type = chat_paced_model_get_item_type;
	iface->get_n_items = chat_paced_model_get_n_items;
	iface->get_item = chat_paced_model_get_item;
}

static void chat_paced_model_set_pending(ChatPacedModel *self,
		guint pending) {
	if (self->pending == pending) {
		return;
	}
	self->pending = pending;
	g_object_notify_by_pspec(G_OBJECT(self), properties[PROP_PENDING]);
}

static void on_model_items_changed(GListModel *model, guint position,
		guint removed, guint added, gpointer user_data) {
	ChatPacedModel *self = CHAT_PACED_MODEL(user_data);
	guint shown;

	if (removed == 0 && position <= self->pending &&
			(self->pending > 0 || added > self->step)) {
		/* Before the shown items: held back. */
		chat_paced_model_set_pending(self, self->pending + added);
		return;
	}
	if (position >= self->pending) {
		g_list_model_items_changed(G_LIST_MODEL(self),
			position - self->pending, removed, added);
		return;
	}

	/* A removal reaching into the held-back items: show them all. */
	shown = g_list_model_get_n_items(model) + removed - added -
		self->pending;
	chat_paced_model_set_pending(self, 0);
	g_list_model_items_changed(G_LIST_MODEL(self), 0, shown,
		g_list_model_get_n_items(model));
}

/**
 * chat_paced_model_reveal() - Shows the next step of held-back items.
 * @self: the model
 *
 * The shown items gain at most one step of the held-back items that come
 * right before them.
 *
 * Returns: the number of items still held back.
 */
guint chat_paced_model_reveal(ChatPacedModel *self) {
	guint n;

	g_return_val_if_fail(CHAT_IS_PACED_MODEL(self), 0);

	n = MIN(self->step, self->pending);
	if (n == 0) {
		return 0;
	}
	chat_paced_model_set_pending(self, self->pending - n);
	g_list_model_items_changed(G_LIST_MODEL(self), 0, 0, n);
	return self->pending;
}

GListModel *chat_paced_model_get_model(ChatPacedModel *self) {
	g_return_val_if_fail(CHAT_IS_PACED_MODEL(self), NULL);
	return self->model;
}

guint chat_paced_model_get_pending(ChatPacedModel *self) {
	g_return_val_if_fail(CHAT_IS_PACED_MODEL(self), 0);
	return self->pending;
}

static void chat_paced_model_set_model(ChatPacedModel *self,
		GListModel *model) {
	g_return_if_fail(G_IS_LIST_MODEL(model));

	self->model = g_object_ref(model);
	self->items_changed_handler = g_signal_connect(model,
		"items-changed", G_CALLBACK(on_model_items_changed), self);
	/* What the model holds already is shown at once. */
}

static void chat_paced_model_dispose(GObject *object) {
	ChatPacedModel *self = CHAT_PACED_MODEL(object);

	if (self->model) {
		g_clear_signal_handler(&self->items_changed_handler,
			self->model);
		g_clear_object(&self->model);
	}

	G_OBJECT_CLASS(chat_paced_model_parent_class)->dispose(object);
}

static void chat_paced_model_get_property(GObject *object, guint prop_id,
		GValue *value, GParamSpec *pspec) {
	ChatPacedModel *self = CHAT_PACED_MODEL(object);

	switch (prop_id) {
	case PROP_MODEL:
		g_value_set_object(value, self->model);
		break;
	case PROP_STEP:
		g_value_set_uint(value, self->step);
		break;
	case PROP_PENDING:
		g_value_set_uint(value, self->pending);
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
	}
}

static void chat_paced_model_set_property(GObject *object, guint prop_id,
		const GValue *value, GParamSpec *pspec) {
	ChatPacedModel *self = CHAT_PACED_MODEL(object);

	switch (prop_id) {
	case PROP_MODEL:
		chat_paced_model_set_model(self, g_value_get_object(value));
		break;
	case PROP_STEP:
		self->step = g_value_get_uint(value);
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
	}
}

static void chat_paced_model_class_init(ChatPacedModelClass *klass) {
	GObjectClass *object_class = G_OBJECT_CLASS(klass);

	object_class->dispose = chat_paced_model_dispose;
	object_class->get_property = chat_paced_model_get_property;
	object_class->set_property = chat_paced_model_set_property;

	properties[PROP_MODEL] = g_param_spec_object("model", NULL, NULL,
		G_TYPE_LIST_MODEL, G_PARAM_READWRITE |
		G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
	properties[PROP_STEP] = g_param_spec_uint("step", NULL, NULL,
		1, G_MAXUINT, 1, G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
		G_PARAM_STATIC_STRINGS);
	properties[PROP_PENDING] = g_param_spec_uint("pending", NULL, NULL,
		0, G_MAXUINT, 0, G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY |
		G_PARAM_STATIC_STRINGS);
	g_object_class_install_properties(object_class, N_PROPS, properties);
}

static void chat_paced_model_init(ChatPacedModel *self) {
}

/**
 * chat_paced_model_new() - Shows a model, revealing large insertions in
 * front of the shown items step by step.
 * @model: the model to show
 * @step: how many held-back items one chat_paced_model_reveal() shows; an
 *        insertion in front of no more than this many passes through
 */
ChatPacedModel *chat_paced_model_new(GListModel *model, guint step) {
	return g_object_new(CHAT_TYPE_PACED_MODEL, "model", model,
		"step", step, NULL);
}
