"""search and rank: the Naver Search client, document cleaning, search orchestration, e5
ranking and the embedding store. Imports only seedtune.core."""
