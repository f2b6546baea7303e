"""One room per LLM task (as distilabel keeps its tasks): each module holds a task's prompt
template (``templates/<task>.txt``, loaded by :func:`seedtune.tasks.base.load_template`),
the schema its answer must match, the requests it sends (format-in) and what its answers
become (format-out).

- :mod:`.queries`: questions per seed word; :mod:`.titles`: forum titles as questions;
- :mod:`.synthesize`: grounded answers; :mod:`.ask_rag`: the user turn with passages that
  ``seedtune ask --rag`` asks and ``train.with_passages`` teaches;
- :mod:`.judge`: which of two answers is better; :mod:`.score`: one answer, 1-10.

The stages' other work (reading files, filtering, splitting, metrics) stays in
``synthesis`` and ``evaluation``; the LLM machinery (client, cache keys, structured output)
in ``llm``.
"""
