"""multiprocessing.synchronize: semaphores shared between processes, which
a sandboxed guest lacks; importing it fails as on such a platform."""

from .context import _SEM_OPEN

raise ImportError(_SEM_OPEN)
