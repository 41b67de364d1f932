"""Task families. Importing this package registers each one (one line per family)."""

from reasonrft.tasks.base import PROMPT_STYLES, TASKS, Sample, Task, get_task, task_names
from reasonrft.tasks import counting  # noqa: F401  (registers "counting")
from reasonrft.tasks import structure  # noqa: F401  (registers "structure")
from reasonrft.tasks import transformation  # noqa: F401  (registers "transformation")
from reasonrft.tasks import perception  # noqa: F401  (registers "perception", the pretraining data)

__all__ = ["PROMPT_STYLES", "TASKS", "Sample", "Task", "get_task", "task_names"]
