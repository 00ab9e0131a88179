/* SPDX-License-Identifier: MIT */
/*
 * The fault-injecting VFS (see fault-vfs.h).  One static sqlite3_vfs wraps
 * the default VFS found at install time; it stays registered until the
 * process exits.  Each file SQLite opens through it is a FaultFile: our
 * sqlite3_file header, then, in the same allocation (szOsFile covers both),
 * the real VFS's file.  The FaultFile carries its own copy of the method
 * table, cut down to the real file's iVersion, so SQLite uses shared memory
 * (the WAL index) or mmap exactly when the real file supports them.
 */

#include <assert.h>
#include <errno.h>
#include <sqlite3.h>
#include <stddef.h>

#include "common/macro.h"
#include "tests/helpers/fault-vfs.h"

typedef struct FaultFile {
	sqlite3_file base; /* first: what SQLite sees */
	sqlite3_io_methods methods;
	FaultVfsFile kind;
	sqlite3_file *real; /* right after this struct, in the same allocation */
} FaultFile;

typedef struct FaultState {
	sqlite3_vfs *real; /* the wrapped VFS; not owned */
	unsigned syncs[_FAULT_VFS_FILE_MAX];
	unsigned writes[_FAULT_VFS_FILE_MAX];
	unsigned fail_syncs;
	unsigned fail_writes;
	int write_error;
	unsigned injected;
} FaultState;

static FaultState fault;

static sqlite3_file *real_file(sqlite3_file *f) {
	return ((FaultFile *) f)->real;
}

static FaultVfsFile kind_from_flags(int flags) {
	if (flags & SQLITE_OPEN_MAIN_DB) {
		return FAULT_VFS_FILE_MAIN_DB;
	}
	if (flags & SQLITE_OPEN_WAL) {
		return FAULT_VFS_FILE_WAL;
	}
	return FAULT_VFS_FILE_OTHER;
}

/* --- the file methods: count, maybe fail, forward --- */

static int file_close(sqlite3_file *f) {
	sqlite3_file *r = real_file(f);

	return r->pMethods->xClose(r);
}

static int file_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 offset) {
	sqlite3_file *r = real_file(f);

	return r->pMethods->xRead(r, buf, n, offset);
}

static int file_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 offset) {
	FaultFile *p = (FaultFile *) f;

	fault.writes[p->kind]++;
	if (fault.fail_writes > 0) {
		fault.fail_writes--;
		fault.injected++;
		/* What unixGetLastError() reports, as after a failed pwrite(). */
		errno = (fault.write_error & 0xff) == SQLITE_FULL ? ENOSPC : EIO;
		return fault.write_error;
	}
	return p->real->pMethods->xWrite(p->real, buf, n, offset);
}

static int file_truncate(sqlite3_file *f, sqlite3_int64 size) {
	sqlite3_file *r = real_file(f);

	return r->pMethods->xTruncate(r, size);
}

static int file_sync(sqlite3_file *f, int flags) {
	FaultFile *p = (FaultFile *) f;

	fault.syncs[p->kind]++;
	if (fault.fail_syncs > 0) {
		fault.fail_syncs--;
		fault.injected++;
		errno = EIO;
		return SQLITE_IOERR_FSYNC;
	}
	return p->real->pMethods->xSync(p->real, flags);
}

static int file_size(sqlite3_file *f, sqlite3_int64 *ret) {
	sqlite3_file *r = real_file(f);

	return r->pMethods->xFileSize(r, ret);
}

static int file_lock(sqlite3_file *f, int lock) {
	sqlite3_file *r = real_file(f);

	return r->pMethods->xLock(r, lock);
}

static int file_unlock(sqlite3_file *f, int lock) {
	sqlite3_file *r = real_file(f);

	return r->pMethods->xUnlock(r, lock);
}

static int file_check_reserved_lock(sqlite3_file *f, int *ret) {
	sqlite3_file *r = real_file(f);

	return r->pMethods->xCheckReservedLock(r, ret);
}

static int file_control(sqlite3_file *f, int op, void *arg) {
	sqlite3_file *r = real_file(f);

	return r->pMethods->xFileControl(r, op, arg);
}

static int file_sector_size(sqlite3_file *f) {
	sqlite3_file *r = real_file(f);

	return r->pMethods->xSectorSize(r);
}

static int file_device_characteristics(sqlite3_file *f) {
	sqlite3_file *r = real_file(f);

	return r->pMethods->xDeviceCharacteristics(r);
}

static int file_shm_map(sqlite3_file *f, int region, int size, int extend, void volatile **ret) {
	sqlite3_file *r = real_file(f);

	return r->pMethods->xShmMap(r, region, size, extend, ret);
}

static int file_shm_lock(sqlite3_file *f, int offset, int n, int flags) {
	sqlite3_file *r = real_file(f);

	return r->pMethods->xShmLock(r, offset, n, flags);
}

static void file_shm_barrier(sqlite3_file *f) {
	sqlite3_file *r = real_file(f);

	r->pMethods->xShmBarrier(r);
}

static int file_shm_unmap(sqlite3_file *f, int delete_flag) {
	sqlite3_file *r = real_file(f);

	return r->pMethods->xShmUnmap(r, delete_flag);
}

static int file_fetch(sqlite3_file *f, sqlite3_int64 offset, int n, void **ret) {
	sqlite3_file *r = real_file(f);

	return r->pMethods->xFetch(r, offset, n, ret);
}

static int file_unfetch(sqlite3_file *f, sqlite3_int64 offset, void *p) {
	sqlite3_file *r = real_file(f);

	return r->pMethods->xUnfetch(r, offset, p);
}

static const sqlite3_io_methods file_methods = {
	.iVersion = 3,
	.xClose = file_close,
	.xRead = file_read,
	.xWrite = file_write,
	.xTruncate = file_truncate,
	.xSync = file_sync,
	.xFileSize = file_size,
	.xLock = file_lock,
	.xUnlock = file_unlock,
	.xCheckReservedLock = file_check_reserved_lock,
	.xFileControl = file_control,
	.xSectorSize = file_sector_size,
	.xDeviceCharacteristics = file_device_characteristics,
	/* iVersion 2: shared memory, for the WAL index */
	.xShmMap = file_shm_map,
	.xShmLock = file_shm_lock,
	.xShmBarrier = file_shm_barrier,
	.xShmUnmap = file_shm_unmap,
	/* iVersion 3: mmap */
	.xFetch = file_fetch,
	.xUnfetch = file_unfetch,
};

/* --- the VFS methods: xOpen wraps the file, the rest forwards --- */

static int vfs_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags,
		int *ret_flags) {
	FaultFile *p = (FaultFile *) f;
	const sqlite3_io_methods *m;
	int rc;

	*p = (FaultFile) {
		.kind = kind_from_flags(flags),
		.real = (sqlite3_file *) (p + 1),
	};
	rc = fault.real->xOpen(fault.real, name, p->real, flags, ret_flags);

	/*
	 * Wrapped whenever the real file has methods, even on failure: SQLite
	 * then calls our xClose, which must reach the real one.
	 */
	m = p->real->pMethods;
	if (m) {
		p->methods = file_methods;
		p->methods.iVersion = MIN(m->iVersion, file_methods.iVersion);
		if (p->methods.iVersion < 2) {
			p->methods.xShmMap = NULL;
			p->methods.xShmLock = NULL;
			p->methods.xShmBarrier = NULL;
			p->methods.xShmUnmap = NULL;
		}
		if (p->methods.iVersion < 3) {
			p->methods.xFetch = NULL;
			p->methods.xUnfetch = NULL;
		}
		p->base.pMethods = &p->methods;
	}
	return rc;
}

static int vfs_delete(sqlite3_vfs *vfs, const char *name, int sync_dir) {
	return fault.real->xDelete(fault.real, name, sync_dir);
}

static int vfs_access(sqlite3_vfs *vfs, const char *name, int flags, int *ret) {
	return fault.real->xAccess(fault.real, name, flags, ret);
}

static int vfs_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *ret) {
	return fault.real->xFullPathname(fault.real, name, n, ret);
}

static void *vfs_dl_open(sqlite3_vfs *vfs, const char *name) {
	return fault.real->xDlOpen(fault.real, name);
}

static void vfs_dl_error(sqlite3_vfs *vfs, int n, char *ret) {
	fault.real->xDlError(fault.real, n, ret);
}

static void (*vfs_dl_sym(sqlite3_vfs *vfs, void *handle, const char *symbol))(void) {
	return fault.real->xDlSym(fault.real, handle, symbol);
}

static void vfs_dl_close(sqlite3_vfs *vfs, void *handle) {
	fault.real->xDlClose(fault.real, handle);
}

static int vfs_randomness(sqlite3_vfs *vfs, int n, char *ret) {
	return fault.real->xRandomness(fault.real, n, ret);
}

static int vfs_sleep(sqlite3_vfs *vfs, int usec) {
	return fault.real->xSleep(fault.real, usec);
}

static int vfs_current_time(sqlite3_vfs *vfs, double *ret) {
	return fault.real->xCurrentTime(fault.real, ret);
}

static int vfs_get_last_error(sqlite3_vfs *vfs, int n, char *ret) {
	return fault.real->xGetLastError(fault.real, n, ret);
}

static int vfs_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *ret) {
	return fault.real->xCurrentTimeInt64(fault.real, ret);
}

/* iVersion 2: the system call overrides of iVersion 3 are for SQLite's own tests. */
static sqlite3_vfs fault_vfs = {
	.iVersion = 2,
	.zName = "fault",
	.xOpen = vfs_open,
	.xDelete = vfs_delete,
	.xAccess = vfs_access,
	.xFullPathname = vfs_full_pathname,
	.xDlOpen = vfs_dl_open,
	.xDlError = vfs_dl_error,
	.xDlSym = vfs_dl_sym,
	.xDlClose = vfs_dl_close,
	.xRandomness = vfs_randomness,
	.xSleep = vfs_sleep,
	.xCurrentTime = vfs_current_time,
	.xGetLastError = vfs_get_last_error,
	.xCurrentTimeInt64 = vfs_current_time_int64,
};

int fault_vfs_install(void) {
	sqlite3_vfs *real;
	int rc;

	if (fault.real) {
		return 0;
	}
	real = sqlite3_vfs_find(NULL);
	if (!real) {
		return -ENOENT;
	}
	if (real->iVersion < 2) {
		return -EOPNOTSUPP;
	}

	fault.real = real;
	fault_vfs.szOsFile = (int) sizeof(FaultFile) + real->szOsFile;
	fault_vfs.mxPathname = real->mxPathname;
	rc = sqlite3_vfs_register(&fault_vfs, 1);
	if (rc != SQLITE_OK) {
		fault.real = NULL;
		return rc == SQLITE_NOMEM ? -ENOMEM : -EIO;
	}
	fault_vfs_reset();
	return 0;
}

void fault_vfs_reset(void) {
	sqlite3_vfs *real = fault.real;

	fault = (FaultState) { .real = real };
}

static unsigned sum(const unsigned a[static _FAULT_VFS_FILE_MAX]) {
	unsigned n = 0;

	for (size_t i = 0; i < _FAULT_VFS_FILE_MAX; i++) {
		n += a[i];
	}
	return n;
}

unsigned fault_vfs_syncs(void) {
	return sum(fault.syncs);
}

unsigned fault_vfs_syncs_of(FaultVfsFile kind) {
	assert(kind >= 0 && kind < _FAULT_VFS_FILE_MAX);

	return fault.syncs[kind];
}

unsigned fault_vfs_writes(void) {
	return sum(fault.writes);
}

unsigned fault_vfs_writes_of(FaultVfsFile kind) {
	assert(kind >= 0 && kind < _FAULT_VFS_FILE_MAX);

	return fault.writes[kind];
}

unsigned fault_vfs_injected(void) {
	return fault.injected;
}

void fault_vfs_fail_syncs(unsigned n) {
	fault.fail_syncs = n;
}

void fault_vfs_fail_writes(unsigned n, int sqlite_err) {
	assert(n == 0 || sqlite_err != SQLITE_OK);

	fault.fail_writes = n;
	fault.write_error = sqlite_err;
}
