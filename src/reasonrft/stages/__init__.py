"""One module per stage, each a thin, linear ``run(config)`` over library pieces:
``sft`` (ANS-SFT / CoT-SFT), ``grpo`` (GRPO), ``evaluate`` (scored generation), ``demo``."""
