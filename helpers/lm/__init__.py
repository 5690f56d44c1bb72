"""A small language model trained and served the way large ones are: Tang poems, character by character
(data, counting baselines, the transformer and its training, the inference engine, the OpenAI-compatible service)."""
