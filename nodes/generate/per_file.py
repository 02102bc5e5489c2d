"""A value read from a model file, kept until the file changes: reading a GGUF's header or rebuilding the tokenizer in
its metadata takes seconds, and each loader, check and prompt encode asks again for the same file."""
from __future__ import annotations

import functools
from pathlib import Path


def kept_per_file(maxsize: int):
    """Decorate fn(path, *args) so that its value is kept for the file as it stands: its size, modification time,
    inode and change time. A file put in place (renamed over it) is another inode, and no tool sets the change time
    back the way a download keeps the server's modification time. A file that cannot be stat'ed is read each time,
    so fn gives its own message for it."""
    def wrap(fn):
        @functools.lru_cache(maxsize=maxsize)
        def kept(path, state, *args):
            return fn(path, *args)

        @functools.wraps(fn)
        def call(path, *args):
            try:
                stat = Path(path).stat()
            except OSError:
                return fn(path, *args)
            return kept(path, (stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns), *args)
        call.cache_clear = kept.cache_clear
        return call
    return wrap
