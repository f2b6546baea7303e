"""seedtune: domain seed words -> questions -> Naver search -> e5 ranking -> grounded answers
-> LoRA-tuned Gemma -> LLM-judged evaluation, as one DVC pipeline.

Importing this package has no side effects; see ``seedtune.cli`` for the command line.
"""

__version__ = "0.1.0"
