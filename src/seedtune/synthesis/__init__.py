"""queries and synthesize: the LLM writes questions per seed word, then grounded answers."""
