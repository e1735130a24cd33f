"""OpenAI-compatible servers (vLLM, SGLang, TGI, llama-server, Ollama, LM Studio, DeepSeek,
Mistral, OpenAI): the backend, the per-server continuation modes and the probes."""

from .backend import OpenAIBackend
from .servers import SERVER_KINDS, SERVERS, ServerMode

__all__ = ["OpenAIBackend", "SERVER_KINDS", "SERVERS", "ServerMode"]
