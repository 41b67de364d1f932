"""reasonrft: Reason-RFT (reinforcement fine-tuning for visual reasoning) for Qwen2-VL models.

The package is split by role:
- ``tasks``: procedural, verifiable task families (scene -> render -> question -> answer);
- ``rewards``: the format and accuracy rewards of the paper, as pure TRL reward functions;
- ``modeling``: the nano Qwen2-VL model, its tokenizer and the processor loader;
- ``data``: dataset files in the official Reason-RFT formats and their conversion to TRL rows;
- ``stages``: one thin ``run(config)`` per stage (sft, grpo, eval, demo);
- ``cli``: the ``reasonrft`` command.
"""

__version__ = "0.1.0"
