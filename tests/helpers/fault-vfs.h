/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A fault-injecting SQLite VFS for the tests.  fault_vfs_install() registers
 * it as the default VFS, wrapped around the real default one ("unix"), so
 * every database opened afterwards with the default VFS (history_open()
 * passes NULL) goes through it: install it before the first open, in the
 * group setup or at the top of main().
 *
 * It counts the xSync and xWrite calls on every file, by kind of file, and
 * on request fails the next N of them, so that a COMMIT or the WAL barrier
 * fails the way a dying or full disk makes it fail.  Failed calls count as
 * calls.  Everything else is forwarded unchanged (locks, the WAL index in
 * shared memory, mmap).
 *
 * The state is process-wide and not thread-safe, like the tests that use it.
 */

#include <errno.h>

typedef enum FaultVfsFile {
	FAULT_VFS_FILE_MAIN_DB, /* opened with SQLITE_OPEN_MAIN_DB */
	FAULT_VFS_FILE_WAL,     /* opened with SQLITE_OPEN_WAL */
	FAULT_VFS_FILE_OTHER,   /* journals, temporary files */
	_FAULT_VFS_FILE_MAX,
	_FAULT_VFS_FILE_INVALID = -EINVAL,
} FaultVfsFile;

/*
 * fault_vfs_install() - register the VFS as the default.  Calling it again
 * does nothing.
 *
 * Return: 0; -ENOENT when SQLite has no default VFS to wrap; -EOPNOTSUPP
 * when that VFS is too old (iVersion < 2); -ENOMEM or -EIO when the
 * registration failed.
 */
int fault_vfs_install(void);

/* fault_vfs_reset() - zero the counters and cancel the pending failures. */
void fault_vfs_reset(void);

/* The xSync calls since the last reset: on every file, or on @kind's. */
unsigned fault_vfs_syncs(void);
unsigned fault_vfs_syncs_of(FaultVfsFile kind);

/* The xWrite calls since the last reset: on every file, or on @kind's. */
unsigned fault_vfs_writes(void);
unsigned fault_vfs_writes_of(FaultVfsFile kind);

/* The calls failed on request since the last reset. */
unsigned fault_vfs_injected(void);

/*
 * fault_vfs_fail_syncs() - fail the next @n xSync calls, on any file, with
 * SQLITE_IOERR_FSYNC (errno EIO).  0 cancels.
 */
void fault_vfs_fail_syncs(unsigned n);

/*
 * fault_vfs_fail_writes() - fail the next @n xWrite calls, on any file, with
 * @sqlite_err: SQLITE_FULL for a full disk (errno ENOSPC) or an I/O error
 * such as SQLITE_IOERR_WRITE (errno EIO).  0 cancels.
 */
void fault_vfs_fail_writes(unsigned n, int sqlite_err);
