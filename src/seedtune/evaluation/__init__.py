"""evaluate: base and tuned answers (generation), the LLM judge, the report."""
