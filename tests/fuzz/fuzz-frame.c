/* SPDX-License-Identifier: MIT */

/*
 * libFuzzer target for the LEB128 stream decoder.  The first bytes of the
 * input choose the decoder's cap and the sizes of the pieces the rest is fed
 * in; the frames and the final error must be the same as when the whole
 * stream is fed at once, and every frame must re-encode to exactly the
 * bytes it came from (the decoder accepts only minimal LEB128).
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "common/wire.h"
#include "tests/fuzz/fuzz.h"

#define MAX_FRAMES 4096

typedef struct Result {
	size_t n_frames;
	size_t ends[MAX_FRAMES]; /* stream offset after each frame */
	uint64_t hash;           /* of all frame bytes */
	int error;
} Result;

static uint64_t hash_bytes(uint64_t h, const char *s, size_t n) {
	for (size_t i = 0; i < n; i++) {
		h = (h ^ (uint8_t) s[i]) * 1099511628211u;
	}
	return (h ^ n) * 1099511628211u;
}

/* Feeds @stream in pieces of the sizes in @sizes (cycled), or at once. */
static void decode(const uint8_t *stream, size_t len, size_t max, const uint8_t *sizes,
		size_t n_sizes, Result *res) {
	WireFrameDecoder d;
	size_t off = 0, k = 0;

	*res = (Result) { .hash = 14695981039346656037u };
	wire_frame_decoder_init(&d, max);
	while (off < len && res->n_frames < MAX_FRAMES) {
		size_t piece = n_sizes > 0 ? sizes[k++ % n_sizes] : len - off;
		size_t used;
		int r;

		if (piece == 0) {
			/* An empty feed changes nothing; then go on with one byte. */
			check(wire_frame_decoder_feed(&d, stream + off, 0, &used) == 0);
			check(used == 0);
			piece = 1;
		}
		piece = MIN(piece, len - off);
		r = wire_frame_decoder_feed(&d, stream + off, piece, &used);
		if (r < 0) {
			res->error = r;
			/* It stays failed. */
			check(wire_frame_decoder_feed(&d, stream, len, &used) == r);
			break;
		}
		check(used <= piece);
		off += used;
		if (r == 1) {
			_cleanup_free_ char *frame = NULL;
			_cleanup_free_ uint8_t *enc = NULL;
			size_t flen, elen;

			check(wire_frame_decoder_take(&d, &frame, &flen) == 0);
			check(frame[flen] == 0);
			check(flen <= d.max);
			check(utf8_is_valid(frame, flen));
			check(wire_frame_encode(frame, flen, &enc, &elen) == 0);
			check(elen <= off);
			check(memcmp(enc, stream + off - elen, elen) == 0);
			check(off - elen == (res->n_frames > 0 ? res->ends[res->n_frames - 1] : 0));
			res->hash = hash_bytes(res->hash, frame, flen);
			res->ends[res->n_frames++] = off;
		} else {
			check(used == piece);
		}
	}
	wire_frame_decoder_done(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	static Result whole, pieces;
	size_t n_sizes, max;

	if (size < 2) {
		return 0;
	}
	/* data[0]: cap (bit 7) and how many piece sizes follow (bits 0-3). */
	max = (data[0] & 0x80) ? 64 : 0;
	n_sizes = MIN((size_t) (data[0] & 0x0F) + 1, size - 1);
	{
		uint8_t sizes[16];
		const uint8_t *stream = data + 1 + n_sizes;
		size_t len = size - 1 - n_sizes;

		for (size_t i = 0; i < n_sizes; i++) {
			sizes[i] = data[1 + i] % 32;
		}
		decode(stream, len, max, NULL, 0, &whole);
		decode(stream, len, max, sizes, n_sizes, &pieces);
	}

	check(whole.error == pieces.error);
	check(whole.n_frames == pieces.n_frames);
	check(whole.hash == pieces.hash);
	check(memcmp(whole.ends, pieces.ends, whole.n_frames * sizeof(size_t)) == 0);
	return 0;
}
