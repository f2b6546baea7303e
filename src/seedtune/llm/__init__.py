"""The LLM client (any OpenAI-compatible chat endpoint), its prompt templates, structured
output schemas and costs. Used by the queries, synthesize and evaluate stages."""
