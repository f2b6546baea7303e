"""Offline stand-ins for the outside world: loopback simulators of the OpenAI and Naver HTTP
APIs (``sim``), tiny locally built models (``tiny``) and the offline ``demo``. The pipeline
never imports this package; tests, benches and ``seedtune demo`` do."""
